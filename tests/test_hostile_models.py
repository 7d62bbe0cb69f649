"""`conceptkit dissect --model BAD`: hostile model files through the command line.

Each case runs the real command under tests/hostile.py's promise (exit 1, one error line naming
the file, no traceback, no temporary files, the workspace unchanged). Files whose loading would
write a sentinel into the workspace (TorchScript ``__setstate__``, pickle ``__reduce__``) are
refused before loading, so "the workspace unchanged" is also the proof that no code ran.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from hostile import error_line, run_hostile
from test_dissect_models_untrusted import (
    write_declared_storage,
    write_evil_pickle,
    write_evil_torchscript,
)
from torch import nn

MINI = Path(__file__).resolve().parent / "data" / "fixtures" / "mini_broden"


def _dissect(ws: Path, model: str, *extra: str) -> list[str]:
    return ["dissect", "--model", model, "--data", str(MINI), "-o", str(ws / "out"), *extra]


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def test_torchscript_that_writes_a_file(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    write_evil_torchscript(ws / "scripted.pt", ws / "sentinel")
    proc = run_hostile(_dissect(ws, "scripted.pt"), ws, names=["scripted.pt", "--trust-pickle"])
    assert "TorchScript archive" in error_line(proc)
    assert not (ws / "sentinel").exists()


@pytest.mark.parametrize("how", ["zip", "legacy", "plain"])
def test_pickle_that_runs_a_command(tmp_path: Path, how: str) -> None:
    ws = _workspace(tmp_path)
    write_evil_pickle(ws / "evil.pth", ws / "sentinel", how)
    proc = run_hostile(
        _dissect(ws, "evil.pth", "--arch", "resnet18"),
        ws,
        names=["evil.pth", "posix.system", "--trust-pickle"],
    )
    assert "unpickling it runs code" in error_line(proc)
    assert not (ws / "sentinel").exists()


def test_pickled_module_without_trust(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3)), ws / "whole.pth")
    run_hostile(
        _dissect(ws, "whole.pth"),
        ws,
        names=["whole.pth", "torch.nn.modules.container.Sequential", "--trust-pickle"],
    )


def _good_zip(ws: Path) -> bytes:
    path = ws.parent / "good.pth"
    torch.save(nn.Conv2d(3, 4, 3).state_dict(), path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "name, expect",
    [
        ("garbage.pth", "neither a torch.save zip archive nor a pickle"),
        ("empty.pth", "neither a torch.save zip archive nor a pickle"),
        ("truncated.pth", "truncated or corrupt zip archive"),
        ("cut.pkl", "truncated or malformed pickle"),
        ("huge.pkl", "truncated or malformed pickle"),
        ("photos.zip", "a zip archive without a data.pkl"),
    ],
)
def test_files_that_are_no_model(tmp_path: Path, name: str, expect: str) -> None:
    ws = _workspace(tmp_path)
    path = ws / name
    if name == "garbage.pth":
        path.write_bytes(b"\x00\xffnot a model\n" * 100)
    elif name == "empty.pth":
        path.write_bytes(b"")
    elif name == "truncated.pth":
        data = _good_zip(ws)
        path.write_bytes(data[: len(data) * 2 // 3])
    elif name == "cut.pkl":
        path.write_bytes(pickle.dumps({"w": list(range(100))}, protocol=2)[:-20])
    elif name == "huge.pkl":  # declares a 2**60-byte string: must not be allocated
        path.write_bytes(b"\x80\x04\x8e" + (2**60).to_bytes(8, "little") + b"abc")
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("photos/a.txt", "hello")
    proc = run_hostile(_dissect(ws, name, "--arch", "resnet18"), ws, names=[name, expect])
    assert "not a torch file" in error_line(proc)


def test_directory_as_model(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    (ws / "model_dir").mkdir()
    run_hostile(_dissect(ws, "model_dir"), ws, names=["model_dir", "not a file"])


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_storage_declared_beyond_the_file(tmp_path: Path, legacy: bool) -> None:
    # 40 GB of float32 declared by a file of a few hundred bytes (torch's legacy reader would
    # allocate it before reading); the memory cap of the harness would catch an allocation
    ws = _workspace(tmp_path)
    write_declared_storage(ws / "big.pth", 10**10, legacy)
    run_hostile(
        _dissect(ws, "big.pth", "--arch", "resnet18"),
        ws,
        names=["big.pth", "declare 40,000,000,000 bytes of storage"],
    )
