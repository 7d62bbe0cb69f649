"""Model files that could run code are refused before loading, unless trusted.

conceptkit.dissection.models.untrusted reads a file's pickles opcode by opcode; these tests build
files whose loading would write a sentinel file (a TorchScript ``__setstate__``, a pickle's
``__reduce__``) and check that without ``trust_pickle`` the refusal comes first and the sentinel
is never written. Also: every weights-only global torch allows is allowed here, garbage and
truncated files are one-line errors, legacy-format and non-finite state_dicts load.

The ``write_*`` builders are shared with tests/test_hostile_models.py.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import shlex
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from conceptkit.dissection.models import load_model
from conceptkit.dissection.models.untrusted import allowed_global, read_pickle, scan
from conceptkit.errors import ModelLoadError


class _WritesOnLoad(nn.Module):
    """A legitimate model (``x * w[0]``) whose TorchScript ``__setstate__`` creates ``path``.

    ``torch.from_file(..., shared=True)`` creates the file and ``fill_`` writes ``AA`` into it;
    the result feeds the weights so that TorchScript keeps the call.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.register_buffer("w", torch.full((2,), 3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w[0]

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.path, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        written = torch.from_file(state[0], shared=True, size=2, dtype=torch.uint8)
        written.fill_(65)
        self.w = state[1] * (written.to(torch.float32) * 0.0 + 1.0)
        self.training = state[2]


def write_evil_torchscript(path: Path, sentinel: Path) -> Path:
    """A TorchScript archive at ``path`` whose ``torch.jit.load`` writes ``sentinel``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(_WritesOnLoad(str(sentinel))), str(path))
    return path


class _Touch:
    """Unpickling this object runs ``touch PATH`` (the classic os.system payload)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


def write_evil_pickle(path: Path, sentinel: Path, how: str) -> Path:
    """A file whose unpickling writes ``sentinel``: ``how`` = zip (torch.save), legacy, plain."""
    payload = {"state_dict": {"w": torch.zeros(2)}, "extra": _Touch(sentinel)}
    if how == "zip":
        torch.save(payload, path)
    elif how == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(_Touch(sentinel), protocol=5))
    return path


class _Storage:
    """Stands for a storage of ``numel`` float32 elements in a hand-written torch pickle."""

    def __init__(self, numel: int) -> None:
        self.numel = numel


class _Tensor:
    """Pickles as ``_rebuild_tensor_v2(storage, 0, (numel,), (1,), ...)``, as torch.save does."""

    def __init__(self, numel: int) -> None:
        self.numel = numel

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        args: tuple[object, ...] = (_Storage(self.numel), 0, (self.numel,), (1,), False)
        args += (collections.OrderedDict(),)
        return (torch._utils._rebuild_tensor_v2, args)


class _TorchPickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, legacy: bool) -> None:
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj: object) -> object:
        if not isinstance(obj, _Storage):
            return None
        pid = ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return pid + (None,) if self.legacy else pid


def write_declared_storage(path: Path, numel: int, legacy: bool) -> Path:
    """A state_dict ``{'w': float32 (numel,)}`` whose file holds only 64 bytes of storage.

    ``legacy``: torch's pre-1.6 format (five pickles, then raw storages), which allocates the
    declared size before reading; otherwise a torch.save zip archive.
    """
    buf = io.BytesIO()
    _TorchPickler(buf, legacy).dump({"w": _Tensor(numel)})
    if legacy:
        from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

        with open(path, "wb") as f:
            pickle.dump(MAGIC_NUMBER, f, protocol=2)
            pickle.dump(PROTOCOL_VERSION, f, protocol=2)
            info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True}
            pickle.dump({**info, "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
            f.write(buf.getvalue())
            pickle.dump(["0"], f, protocol=2)
            f.write(numel.to_bytes(8, "little") + bytes(64))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", buf.getvalue())
            z.writestr("archive/byteorder", "little")
            z.writestr("archive/data/0", bytes(64))
            z.writestr("archive/version", "3\n")
    return path


def _fail(spec: Path, **kwargs: object) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(str(spec), **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text and info.value.file == str(spec)
    return text


# ------------------------------------------------------------------ what weights_only allows


def test_allowed_globals_are_torchs_weights_only_set() -> None:
    import torch._weights_only_unpickler as wou

    torch_allows = sorted(wou._get_allowed_globals())
    assert len(torch_allows) > 100
    assert [n for n in torch_allows if not allowed_global(n)] == []
    for name in (
        "posix.system",
        "os.system",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.open",
        "torch.load",
        "torch.from_file",
        "torch.jit.load",
        "torch._utils._import_dotted_name",
        "torch.nn.modules.container.Sequential",
        "torch.serialization.load",
        "collections.OrderedDict.fromkeys",
        "subprocess.Popen",
    ):
        assert not allowed_global(name), name


def test_read_pickle_follows_the_memo_and_refuse_what_they_cannot_resolve() -> None:
    # protocol 4: module and name strings are memoised; the second global's module is a BINGET
    data = pickle.dumps([os.system, os.getcwd, os.system], protocol=4)
    assert read_pickle(io.BytesIO(data)).globals == ["posix.system", "posix.getcwd"]
    # protocol 2 (torch.save): GLOBAL opcodes, Python 2 names mapped as pickle maps them
    assert read_pickle(io.BytesIO(pickle.dumps({1, 2}, protocol=2))).globals == ["builtins.set"]
    # STACK_GLOBAL whose name is not a pushed string (an int here) cannot be resolved
    crafted = b"\x80\x04\x8c\x05posixK\x01\x93."
    assert read_pickle(io.BytesIO(crafted)).globals == ["<unresolved STACK_GLOBAL>"]
    # copyreg's extension registry
    assert read_pickle(io.BytesIO(b"\x80\x02\x82\x07.")).globals == ["<extension 7>"]
    # INST names a class inline, like GLOBAL
    assert read_pickle(io.BytesIO(b"(ios\nsystem\n.")).globals == ["os.system"]
    with pytest.raises(ValueError):
        read_pickle(io.BytesIO(data[:-5]))


# ------------------------------------------------------------------ refused before they run


def test_torchscript_that_writes_a_file_is_refused_without_trust(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    path = write_evil_torchscript(tmp_path / "scripted.pt", sentinel)
    assert scan(path, str(path)).torchscript
    text = _fail(path)
    assert text == (
        f"{path}: file is a TorchScript archive; loading it runs the code inside it: pass "
        "--trust-pickle if you trust its source, or save model.state_dict() instead"
    )
    assert not sentinel.exists()
    # trusted, it is a working model (and its code did run)
    got = load_model(str(path), trust_pickle=True)
    assert sentinel.read_bytes() == b"AA"
    assert "TorchScript module from scripted.pt (trusted)" == got.description
    assert torch.equal(got.module(torch.ones(2)), torch.full((2,), 3.0))


@pytest.mark.parametrize("how", ["zip", "legacy", "plain"])
def test_malicious_pickle_is_refused_without_trust(tmp_path: Path, how: str) -> None:
    sentinel = tmp_path / "sentinel"
    path = write_evil_pickle(tmp_path / f"evil_{how}.pth", sentinel, how)
    assert scan(path, str(path)).unsafe == ["posix.system"]
    text = _fail(path, arch="resnet18")
    assert "pickled Python object (posix.system)" in text and "--trust-pickle" in text
    assert not sentinel.exists()


def test_trusted_pickled_module_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    path = tmp_path / "whole.pth"
    torch.save({"model": net, "epoch": 3}, path)
    assert "(torch.nn.modules.container.Sequential)" in _fail(path)
    got = load_model(str(path), trust_pickle=True)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(got.module(x), net(x))
    assert (
        got.description == "pickled torch.nn.modules.container.Sequential from whole.pth (trusted)"
    )


# ------------------------------------------------------------------ one line for every bad file


def _r18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).state_dict()


def test_garbage_truncated_and_odd_files(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_r18_state(), good)
    data = good.read_bytes()
    cases = {
        "text.pth": (b"this is not a torch file\n" * 10, "neither a torch.save zip archive"),
        "empty.pth": (b"", "neither a torch.save zip archive nor a pickle"),
        "cut_zip.pth": (data[: len(data) // 2], "truncated or corrupt zip archive"),
        "cut_head.pth": (data[:30], "truncated or corrupt zip archive"),
        "cut_pickle.pth": (pickle.dumps({"a": 1}, protocol=2)[:-3], "truncated or malformed"),
        "huge_string.pth": (b"\x80\x04\x8d" + (2**60).to_bytes(8, "little") + b"x", "malformed"),
    }
    for name, (content, expect) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        text = _fail(path, arch="resnet18")
        assert text.startswith(f"{path}: not a torch file (") and expect in text, text
    # a deflated data.pkl whose compressed stream is damaged (zlib.error)
    deflated = tmp_path / "deflated.pth"
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(list(range(5000)), protocol=2))
    raw = bytearray(deflated.read_bytes())
    start = 30 + len("archive/data.pkl")  # the member's data follows its local header
    raw[start : start + 6] = b"\xff" * 6
    deflated.write_bytes(bytes(raw))
    assert "corrupt zip archive: error: Error -3 while decompressing" in _fail(deflated)
    # a zip that is no torch archive
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("photos/readme.txt", "hello")
    assert _fail(other) == f"{other}: not a torch file (a zip archive without a data.pkl)"
    # a directory
    assert _fail(tmp_path) == f"{tmp_path}: model path is not a file"


def test_legacy_format_and_non_finite_state_dicts_load(tmp_path: Path) -> None:
    import torchvision.models as tvm

    torch.manual_seed(0)
    state = tvm.resnet18(num_classes=10).state_dict()
    zip_path, legacy = tmp_path / "new.pth", tmp_path / "old.pth"
    torch.save(state, zip_path)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert scan(zip_path, "z").unsafe == [] and scan(legacy, "l").unsafe == []
    a = load_model(str(zip_path), arch="resnet18")
    b = load_model(str(legacy), arch="resnet18")
    assert a.fingerprint == b.fingerprint
    # NaN and inf weights are data, not a loading problem (the dissection reports them)
    bad = {k: v.clone() for k, v in state.items()}
    bad["conv1.weight"][0, 0, 0, 0] = float("nan")
    bad["fc.bias"][1] = float("inf")
    path = tmp_path / "nonfinite.pth"
    torch.save(bad, path)
    got = load_model(str(path), arch="resnet18").module
    assert isinstance(got, tvm.ResNet)
    assert torch.isnan(got.conv1.weight[0, 0, 0, 0]) and torch.isinf(got.fc.bias[1])
    assert torch.isfinite(got.conv1.weight.flatten()[1:]).all()


def test_storages_larger_than_the_file_are_refused_before_allocation(tmp_path: Path) -> None:
    # 16 elements in 64 bytes: a real (tiny) state_dict, in both formats
    for legacy in (False, True):
        path = write_declared_storage(tmp_path / f"ok_{legacy}.pth", 16, legacy)
        assert scan(path, "x").storage_bytes == 64
        torch.testing.assert_close(torch.load(path, weights_only=True)["w"], torch.zeros(16))
    # 4e8 float32 = 1.6 GB declared by a 400-byte file: the legacy format would allocate it
    for legacy in (False, True):
        path = write_declared_storage(tmp_path / f"big_{legacy}.pth", 4 * 10**8, legacy)
        text = _fail(path, arch="resnet18")
        size = path.stat().st_size
        assert "its tensors declare 1,600,000,000 bytes of storage but the file holds" in text
        assert (f"holds {size:,} bytes" in text) == legacy  # a zip counts its members' sizes
    # a storage shared by several tensors of a legacy file is counted once
    w = torch.randn(10, 10)
    shared = tmp_path / "shared.pth"
    torch.save({"a": w, "b": w[2:], "c": w.t()}, shared, _use_new_zipfile_serialization=False)
    assert scan(shared, "s").storage_bytes == 400
