"""Tests for conceptkit.dissection.models: every spec form, every one-line failure, layers.

All models are built here (small heads, random init); nothing is downloaded.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from conceptkit.dissection import models as M
from conceptkit.dissection.models import (
    LayerInfo,
    LoadedModel,
    default_layers,
    list_layers,
    load_model,
    resolve_layer,
)
from conceptkit.dissection.models import architecture as A
from conceptkit.errors import ModelLoadError, UsageError


@pytest.fixture(scope="module")
def sig_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One architecture-signature cache folder for this module's tests (not ~/.cache)."""
    return tmp_path_factory.mktemp("sig_cache")


@pytest.fixture(autouse=True)
def _quiet_and_cached(monkeypatch: pytest.MonkeyPatch, sig_cache: Path) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    monkeypatch.setenv("CONCEPTKIT_CACHE", str(sig_cache))


@pytest.fixture(scope="module")
def r18() -> nn.Module:
    """A seeded resnet18 with a 10-class head (small files)."""
    torch.manual_seed(0)
    return tvm.resnet18(num_classes=10).eval()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _fail(spec: str | Path, **kwargs: object) -> str:
    """Run load_model expecting a ModelLoadError; return its one-line text."""
    with pytest.raises(ModelLoadError) as info:
        load_model(str(spec), **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text
    assert info.value.file == str(spec)
    return text


# ------------------------------------------------------------------ loading: the spec forms


def test_state_dict_with_torchvision_arch(tmp_path: Path, r18: nn.Module) -> None:
    path = tmp_path / "r18.pth"
    torch.save(r18.state_dict(), path)
    got = load_model(str(path), arch="resnet18")
    assert isinstance(got, LoadedModel)
    assert isinstance(got.module, tvm.ResNet)
    assert not got.module.training
    assert got.module.fc.out_features == 10  # inferred from fc.weight (10, 512)
    assert _same_weights(got.module, r18)
    assert "resnet18" in got.description and "num_classes=10" in got.description
    assert "\n" not in got.description
    assert re.fullmatch(r"[0-9a-f]{64}", got.fingerprint)
    assert not any(t.is_meta for t in got.module.state_dict().values())
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(got.module(x), r18(x))
    # half-precision files are cast to the model's float32, as load_state_dict would
    half = tmp_path / "r18_half.pth"
    torch.save(
        {k: v.half() if v.is_floating_point() else v for k, v in r18.state_dict().items()}, half
    )
    half_model = load_model(str(half), arch="resnet18").module
    assert isinstance(half_model, tvm.ResNet) and half_model.fc.weight.dtype == torch.float32
    # explicit num_classes gives the same model
    again = load_model(str(path), arch="resnet18", num_classes=10)
    assert again.fingerprint == got.fingerprint


def test_checkpoint_with_module_prefix_under_state_dict(tmp_path: Path, r18: nn.Module) -> None:
    # the Places365 layout: {'epoch', 'arch', 'state_dict': {'module.conv1.weight': ...}}
    state = {f"module.{k}": v for k, v in r18.state_dict().items()}
    path = tmp_path / "places.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": state, "best_prec1": 54.7}, path)
    got = load_model(str(path), arch="resnet18")
    assert _same_weights(got.module, r18)
    assert "checkpoint['state_dict']" in got.description
    assert "'module.'" in got.description


def test_checkpoint_model_key(tmp_path: Path, r18: nn.Module) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": r18.state_dict(), "optimizer": {}, "epoch": 3}, path)
    got = load_model(str(path), arch="resnet18", num_classes=10)
    assert _same_weights(got.module, r18)
    assert "checkpoint['model']" in got.description


class _Tiny(nn.Module):
    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


_USER_CODE = """
from torch import nn

def make(num_classes=4):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    )
"""


def test_user_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "src" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(_USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.delitem(sys.modules, "mypkg", raising=False)
    monkeypatch.delitem(sys.modules, "mypkg.nets", raising=False)
    import importlib

    net = importlib.import_module("mypkg.nets").make(num_classes=3)
    path = tmp_path / "net.pth"
    torch.save(net.state_dict(), path)
    got = load_model(str(path), arch="mypkg.nets:make", num_classes=3)
    assert _same_weights(got.module, net)
    assert isinstance(got.module, nn.Sequential) and got.module[5].out_features == 3
    assert "mypkg.nets:make" in got.description
    # without num_classes the callable's default (4) does not fit: one line, both shapes
    text = _fail(path, arch="mypkg.nets:make")
    assert "2 shape mismatches" in text
    assert "5.weight: file (3, 16) vs model (4, 16)" in text
    # a module that cannot be imported
    text = _fail(path, arch="nosuchpkg.nets:make")
    assert "cannot import 'nosuchpkg.nets'" in text and "ModuleNotFoundError" in text
    # a missing attribute
    assert "has no attribute 'build'" in _fail(path, arch="mypkg.nets:build")


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript(tmp_path: Path, how: str) -> None:
    torch.manual_seed(1)
    net = _Tiny().eval()
    x = torch.rand(1, 3, 16, 16)
    jit = torch.jit.script(net) if how == "script" else torch.jit.trace(net, x)
    path = tmp_path / f"tiny_{how}.pt"
    torch.jit.save(jit, str(path))
    assert "TorchScript archive" in _fail(path)  # its code runs on load: trusted only
    got = load_model(str(path), trust_pickle=True)
    assert "TorchScript" in got.description
    assert torch.allclose(got.module(x), net(x))
    assert got.fingerprint == M.fingerprint(net)
    # named submodules resolve; hooks are not possible on TorchScript
    assert resolve_layer(got.module, "features.2") is not None
    layers = list_layers(got.module, input_size=16)
    assert [info.name for info in layers][:2] == ["features", "features.0"]
    assert all(info.out_shape is None for info in layers)


def test_torchvision_random_init() -> None:
    got = load_model("torchvision:resnet18:none")
    assert isinstance(got.module, tvm.ResNet)
    assert got.module.fc.out_features == 1000
    assert "random init" in got.description
    # seeded: the same fingerprint twice
    assert load_model("torchvision:resnet18:none").fingerprint == got.fingerprint
    small = load_model("torchvision:resnet18:none", num_classes=7)
    assert isinstance(small.module, tvm.ResNet) and small.module.fc.out_features == 7


def test_torchvision_weights_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    text = _fail("torchvision:mobilenet_v2:IMAGENET1K_V1")
    assert "mobilenet_v2-b0353104.pth" in text
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in text
    assert "never downloads" in text
    # default weights of resnet18 are IMAGENET1K_V1
    assert "resnet18-f37072fd.pth" in _fail("torchvision:resnet18")
    # an unknown weights name lists the choices
    assert "IMAGENET1K_V1" in _fail("torchvision:resnet18:IMAGENET9K")


def test_torchvision_weights_from_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, r18: nn.Module
) -> None:
    # stand-in for a cached file: a 1000-class resnet18 saved under the name torchvision expects
    # (torchvision checks the hash prefix in the name, so it must be skipped for this fake file)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(2)
    ref = tvm.resnet18()
    torch.save(ref.state_dict(), cache / "resnet18-f37072fd.pth")
    orig = torch.hub.load_state_dict_from_url

    def no_hash(*args: object, **kwargs: object) -> object:
        kwargs["check_hash"] = False
        return orig(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_hash)
    got = load_model("torchvision:resnet18:IMAGENET1K_V1")
    assert _same_weights(got.module, ref)
    assert "IMAGENET1K_V1" in got.description


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    text = _fail(path)
    assert "--trust-pickle" in text
    assert "torch.nn.modules.container.Sequential" in text
    got = load_model(str(path), trust_pickle=True)
    assert isinstance(got.module, nn.Sequential)
    assert _same_weights(got.module, net)
    assert "pickled" in got.description


# ------------------------------------------------------------------ architecture detection


def test_detect_arch_without_arch(
    tmp_path: Path, r18: nn.Module, monkeypatch: pytest.MonkeyPatch, sig_cache: Path
) -> None:
    monkeypatch.setenv("CONCEPTKIT_CACHE", str(sig_cache))
    monkeypatch.setattr(A, "_SIG_MEMO", {})
    monkeypatch.setattr(A, "_DISK_READ", set())
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": r18.state_dict()}, path)
    t0 = time.perf_counter()
    text = _fail(path)
    cold = time.perf_counter() - t0
    assert "looks like resnet18 (num_classes=10): pass --arch resnet18 --num-classes 10" in text
    assert list(sig_cache.glob("arch_signatures-*.json"))
    # second time from the disk cache (memo cleared): same answer, fast
    monkeypatch.setattr(A, "_SIG_MEMO", {})
    monkeypatch.setattr(A, "_DISK_READ", set())
    t0 = time.perf_counter()
    assert _fail(path) == text
    warm = time.perf_counter() - t0
    assert warm < 1.0 and cold < 60.0


def test_detect_arch_no_fit_and_default_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig_cache: Path
) -> None:
    monkeypatch.setenv("CONCEPTKIT_CACHE", str(sig_cache))
    # a state_dict that fits nothing says so
    path = tmp_path / "tiny.pth"
    torch.save(_Tiny().state_dict(), path)
    text = _fail(path)
    assert "fits no torchvision classification architecture" in text
    # a 1000-class resnet18: no --num-classes needed
    path2 = tmp_path / "r18_1000.pth"
    torch.save(tvm.resnet18().state_dict(), path2)
    text2 = _fail(path2)
    assert "looks like resnet18 (num_classes=1000): pass --arch resnet18" in text2
    assert "--num-classes" not in text2
    # shapes are all detection needs, so meta tensors do: inception_v3 saved without its aux head
    meta = A.meta_model("inception_v3", aux_logits=False, num_classes=5)
    assert A.detect_arch(meta.state_dict()) == [("inception_v3", 5)]
    assert A.detect_arch(A.meta_model("vgg11_bn").state_dict()) == [("vgg11_bn", 1000)]


def test_detect_arch_several_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, r18: nn.Module
) -> None:
    sig = {k: tuple(v.shape) for k, v in tvm.resnet18().state_dict().items()}
    monkeypatch.setattr(A, "candidate_signatures", lambda _: {"netB": sig, "netA": sig, "x": {}})
    path = tmp_path / "r18.pth"
    torch.save(r18.state_dict(), path)
    text = _fail(path)
    assert "fits 2 torchvision architectures: netA (num_classes=10), netB (num_classes=10)" in text


def test_meta_build_matches_real_build() -> None:
    # regnet computes with tensors while building (fails under torch.device("meta")), so it
    # takes the shapes-on-meta torch function mode; resnet18 builds under torch.device("meta")
    for name in ("regnet_x_400mf", "resnet18"):
        meta = A.meta_model(name)
        assert all(p.is_meta for p in meta.parameters())
        assert all(b.is_meta for k, b in meta.named_buffers() if "num_batches" not in k)
        assert A.signature(meta) == A.signature(tvm.get_model(name, weights=None))
        # neither way leaves a mode behind: tensors are made on the CPU again
        assert torch.empty(1).device.type == "cpu" and torch.arange(2).device.type == "cpu"
    assert nn.Linear(2, 2).weight.device.type == "cpu"


# ------------------------------------------------------------------ failures, one line each


def test_missing_keys(tmp_path: Path, r18: nn.Module) -> None:
    state = r18.state_dict()
    del state["fc.weight"], state["fc.bias"]
    path = tmp_path / "headless.pth"
    torch.save(state, path)
    text = _fail(path, arch="resnet18", num_classes=10)
    assert (
        "state_dict does not fit resnet18(num_classes=10): 2 missing keys (fc.weight, fc.bias)"
        in text
    )


def test_unexpected_keys(tmp_path: Path, r18: nn.Module) -> None:
    state = r18.state_dict()
    state["extra.weight"] = torch.zeros(3)
    state["extra.bias"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    text = _fail(path, arch="resnet18", num_classes=10)
    assert "2 unexpected keys (extra.weight, extra.bias)" in text
    assert "missing" not in text


def test_shape_mismatch(
    tmp_path: Path, r18: nn.Module, monkeypatch: pytest.MonkeyPatch, sig_cache: Path
) -> None:
    monkeypatch.setenv("CONCEPTKIT_CACHE", str(sig_cache))
    path = tmp_path / "r18.pth"
    torch.save(r18.state_dict(), path)
    text = _fail(path, arch="resnet18", num_classes=5)
    assert (
        "2 shape mismatches (fc.weight: file (10, 512) vs model (5, 512), fc.bias: file (10) vs model (5))"
        in text
    )
    # wrong architecture entirely: counts of both kinds, first names
    text = _fail(path, arch="resnet50")
    assert re.search(r"\d+ missing keys \(layer1\.0\.conv3\.weight, ", text)
    assert "shape mismatches" in text
    assert text.endswith("; it looks like resnet18 (pass --arch resnet18)")


def test_unknown_arch_suggests(tmp_path: Path, r18: nn.Module) -> None:
    path = tmp_path / "r18.pth"
    torch.save(r18.state_dict(), path)
    text = _fail(path, arch="resnet19")
    assert "unknown architecture 'resnet19'" in text and "did you mean resnet18" in text
    assert "did you mean mobilenet_v2" in _fail("torchvision:mobilenetv2:none")


def test_missing_file(tmp_path: Path) -> None:
    spec = tmp_path / "nope.pth"
    assert _fail(spec, arch="resnet18") == f"{spec}: model file not found"


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file\n" * 10)
    text = _fail(path, arch="resnet18")
    assert "not a torch file" in text
    # a state-less object (a list of ints) is refused too
    path2 = tmp_path / "list.pth"
    torch.save([1, 2, 3], path2)
    assert "holds a list, not a state_dict" in _fail(path2, arch="resnet18")


# ------------------------------------------------------------------ fingerprint


def test_fingerprint(r18: nn.Module) -> None:
    torch.manual_seed(0)
    twin = tvm.resnet18(num_classes=10)
    assert M.fingerprint(twin) == M.fingerprint(r18)
    with torch.no_grad():
        twin.layer3[0].conv1.weight[0, 0, 0, 0] += 1e-6
    assert M.fingerprint(twin) != M.fingerprint(r18)
    # dtype is part of the fingerprint even when values are equal
    assert M.fingerprint(nn.Linear(2, 2).double()) != M.fingerprint(nn.Linear(2, 2))


# ------------------------------------------------------------------ layers


def test_layers_resnet18() -> None:
    model = load_model("torchvision:resnet18:none").module
    layers = {info.name: info for info in list_layers(model)}
    assert layers["conv1"] == LayerInfo("conv1", "Conv2d", (1, 64, 112, 112), "map")
    assert layers["maxpool"].out_shape == (1, 64, 56, 56)
    assert layers["layer1"].out_shape == (1, 64, 56, 56)
    assert layers["layer2"].out_shape == (1, 128, 28, 28)
    assert layers["layer3.1.conv2"].out_shape == (1, 256, 14, 14)
    assert layers["layer4"] == LayerInfo("layer4", "Sequential", (1, 512, 7, 7), "map")
    assert layers["avgpool"].out_shape == (1, 512, 1, 1)
    assert layers["fc"].out_shape == (1, 1000) and layers["fc"].read == "-"
    assert "" not in layers and len(layers) == len(list(model.named_modules())) - 1
    assert default_layers(model) == ["layer4"]
    assert isinstance(model, tvm.ResNet)
    assert resolve_layer(model, "layer4.1.conv2") is model.layer4[1].conv2
    with pytest.raises(UsageError) as info:
        resolve_layer(model, "layer5")
    assert "no layer 'layer5'" in str(info.value) and "layer4" in str(info.value)
    assert "\n" not in str(info.value)


def test_layers_mobilenet_v2_and_others() -> None:
    model = load_model("torchvision:mobilenet_v2:none").module
    layers = {info.name: info.out_shape for info in list_layers(model)}
    assert layers["features.0"] == (1, 32, 112, 112)
    assert layers["features.18"] == (1, 1280, 7, 7)
    assert layers["features"] == (1, 1280, 7, 7)
    assert layers["classifier"] == (1, 1000)
    assert default_layers(model) == ["features"]
    # alexnet: the 6x6 adaptive avgpool holds no conv, so features wins
    assert default_layers(tvm.alexnet().eval()) == ["features"]
    # a segmentation model: the dense head is skipped, the backbone's last stage is chosen
    # (the backbone returns a dict, so its children are candidates; the 3-channel heads are not)
    seg = tvm.get_model(
        "deeplabv3_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=3
    )
    assert default_layers(seg.eval(), input_size=64) == ["backbone.16"]
    # a whole-Sequential model: the last conv before Flatten (ReLU holds no conv)
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    assert default_layers(seq.eval(), input_size=8) == ["2"]


class _Pair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3)
        self.pair = _Pair()
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pair(self.body(x))


def test_list_layers_non_tensor_output() -> None:
    layers = list_layers(_TwoHeads().eval(), input_size=10)
    assert [(i.name, i.type, i.out_shape) for i in layers] == [
        ("body", "Conv2d", (1, 4, 8, 8)),
        ("pair", "_Pair", None),
        ("unused", "Linear", None),
    ]
