"""Hostile run folders for `conceptkit explain`: one error line naming the file and the place,
exit 1 (2 for usage), nothing written, no temporary files (tests/hostile.py's promise)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES
from hostile import run_hostile

from conceptkit.explain.run import _data_fingerprint

MINI = FIXTURES / "mini_broden"


def _run(ws: Path, **change: Any) -> Path:
    """A run folder in ``ws`` whose results.json matches mini_broden (no model needed to fail)."""
    run = ws / "run"
    run.mkdir(parents=True)
    res: dict[str, Any] = {
        "data": {"path": str(MINI.resolve()), "fingerprint": _data_fingerprint(MINI),
                 "images": 200, "seg_size": [112, 112]},
        "model": {"spec": "torchvision:resnet18:none", "fingerprint": "0" * 64},
        "settings": {"union": "category", "batch_size": 64, "preprocess": "imagenet"},
        "layers": {"layer4": {}},
        "layer_order": ["layer4"],
    }  # fmt: skip
    for key, value in change.items():
        part, _, sub = key.partition("__")
        if sub:
            res[part][sub] = value
        else:
            res[part] = value
    (run / "results.json").write_text(json.dumps(res))
    np.save(run / "quantile_layer4.npy", np.full(512, 1.5))
    return run


def test_results_not_json(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws)
    (run / "results.json").write_text("{not json")
    run_hostile(["explain", run, "-o", ws / "out"], ws, names=["results.json"])


def test_results_missing_key(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws)
    res = json.loads((run / "results.json").read_text())
    del res["model"]
    (run / "results.json").write_text(json.dumps(res))
    run_hostile(["explain", run, "-o", ws / "out"], ws, names=["results.json", "model"])


@pytest.mark.parametrize("layer", ["../escape", "/abs", "a/b", ".hidden", ""])
def test_layer_names_that_leave_the_folder(tmp_path: Path, layer: str) -> None:
    ws = tmp_path / "ws"
    run = _run(ws, layer_order=[layer], layers={layer: {}})
    run_hostile(["explain", run], ws, names=["results.json", "layer_order"])


def test_quantile_missing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws)
    (run / "quantile_layer4.npy").unlink()
    run_hostile(["explain", run], ws, names=["quantile_layer4.npy"])


@pytest.mark.parametrize("content", ["pickle", "nan", "2d", "text"])
def test_bad_thresholds(tmp_path: Path, content: str) -> None:
    ws = tmp_path / "ws"
    run = _run(ws)
    path = run / "quantile_layer4.npy"
    if content == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content == "nan":
        np.save(path, np.array([1.0, np.nan]))
    elif content == "2d":
        np.save(path, np.ones((2, 3)))
    else:
        path.write_text("not an npy file")
    run_hostile(["explain", run], ws, names=["quantile_layer4.npy"])


def test_dataset_changed(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws, data__fingerprint="f" * 64)
    run_hostile(["explain", run], ws, code=2, names=["mini_broden", "differ"])


def test_dataset_size_disagrees(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws, data__images=100)
    run_hostile(["explain", run], ws, names=["index.csv", "200 images"])
    run2 = ws / "run2"
    _run(ws / "b", data__seg_size=[56, 56]).rename(run2)
    run_hostile(["explain", run2], ws, names=["index.csv", "line 2"])


def test_existing_files_kept_without_force(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws)
    (run / "explain_layer4.csv").write_text("mine\n")
    run_hostile(["explain", run], ws, code=2, names=["explain_layer4.csv", "--force"])


def test_usage_errors(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = _run(ws)
    run_hostile(["explain", run, "--exhaustive"], ws, code=2, names=["--units"])
    run_hostile(["explain", run, "--units", "1,x"], ws, code=2, names=["--units"])
    run_hostile(["explain", run, "--length-penalty", "1.5"], ws, code=2, names=["--length-penalty"])
    run_hostile(["explain", ws / "nothing"], ws, names=["nothing"])
