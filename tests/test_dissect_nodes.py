"""Graph nodes as layers: ResNet-18's residual sum ``layer4.1.add``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from conceptkit.dissection.hooks import FeatureHooks, check_layers
from conceptkit.dissection.nodes import graph_nodes
from conceptkit.dissection.run import dissect
from conceptkit.errors import ModelLoadError, UsageError

tv = pytest.importorskip("torchvision")


def _resnet() -> Any:
    """A seeded ResNet-18 (typed Any: its blocks are reached by attribute)."""
    torch.manual_seed(0)
    return tv.models.resnet18().eval()


def test_add_node_is_bn2_plus_the_block_input() -> None:
    model = _resnet()
    assert "layer4.1.add" in graph_nodes(model)
    fh = FeatureHooks(model, ["layer4.1.add", "layer4"])  # traces the model first
    seen: dict[str, torch.Tensor] = {}
    block = model.layer4[1]
    hooks = [
        block.bn2.register_forward_hook(lambda _m, _i, o: seen.__setitem__("bn2", o.clone())),
        block.register_forward_pre_hook(lambda _m, i: seen.__setitem__("in", i[0].clone())),
    ]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        model(x)  # the module hooks, on the eager model
        for h in hooks:
            h.remove()
        feats = fh.run(model, x)
    # layer4.1 has no downsample: its identity is its input
    assert block.downsample is None
    torch.testing.assert_close(feats["layer4.1.add"], seen["bn2"] + seen["in"])
    assert feats["layer4.1.add"].min() < 0  # before the in-place ReLU
    torch.testing.assert_close(feats["layer4"], torch.relu(feats["layer4.1.add"]))


def test_downsampled_add_node() -> None:
    model = _resnet()
    fh = FeatureHooks(model, ["layer4.0.add"])
    block = model.layer4[0]
    seen: dict[str, torch.Tensor] = {}
    block.bn2.register_forward_hook(lambda _m, _i, o: seen.__setitem__("bn2", o.clone()))
    block.downsample.register_forward_hook(lambda _m, _i, o: seen.__setitem__("ds", o.clone()))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        got = fh.run(model, x)["layer4.0.add"]
    torch.testing.assert_close(got, seen["bn2"] + seen["ds"])


def test_node_layer_dissects(mini_slice: Callable[[int], Path]) -> None:
    res = dissect(_resnet(), mini_slice(3), ["layer4.1.add"], batch_size=3, workers=0, device="cpu")
    lay = res.layers["layer4.1.add"]
    assert lay.units == 512 and lay.map_size == (7, 7)


def test_unknown_names_and_torchscript_are_one_line() -> None:
    model = _resnet()
    check_layers(model, ["layer4.1.add", "layer3"])
    assert not model.layer3._forward_hooks
    with pytest.raises(UsageError, match=r"no layer 'layer4.1.ad'; close matches"):
        check_layers(model, ["layer4.1.ad"])
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1)))
    with pytest.raises(ModelLoadError, match="cannot hook the layers of a TorchScript module"):
        FeatureHooks(scripted, ["0"])
