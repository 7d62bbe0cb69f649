"""The dissection's forward: layout choice, the record in results.json, and equal features."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from conceptkit.dissection.forward import Forward, conv_share, use_channels_last


class TokenNet(nn.Module):
    """A ViT-like model: a small patch-embedding convolution, most weights in linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.mlp = nn.Sequential(nn.Linear(8, 256), nn.Linear(256, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.mlp(t)


def test_channels_last_auto_for_conv_nets_only():
    resnet = torchvision.models.resnet18(weights=None)
    assert conv_share(resnet) > 0.9
    assert use_channels_last(resnet, "auto") and not use_channels_last(resnet, "off")
    tokens = TokenNet()
    assert conv_share(tokens) < 0.5
    assert not use_channels_last(tokens, "auto") and use_channels_last(tokens, "on")
    mlp = nn.Sequential(nn.Linear(3, 3))
    assert not use_channels_last(mlp, "on")  # no convolution: nothing to lay out


def test_forward_record_rebuilds_the_same_forward():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10)
    cpu = torch.device("cpu")
    fwd = Forward.choose(net, cpu, "auto", layers=["layer1.0.bn1"])
    folds = fwd.describe()["fold_bn"]
    assert fwd.describe() == {"channels_last": True, "autocast": None, "fold_bn": folds}
    assert len(folds) == 19 and ["layer1.0.conv1", "layer1.0.bn1"] not in folds
    again = Forward.of_run(net, cpu, fwd.describe())  # the same folds, not the default's 20
    assert again.describe() == fwd.describe()
    old = Forward.of_run(net, cpu, {})  # a run from before the record: plain layout on CPU
    assert old.describe() == {"channels_last": False, "autocast": None, "fold_bn": []}
    assert old.net is old.model


def test_channels_last_features_equal_plain_within_rounding_and_stop_early():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    plain_net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    plain_net.load_state_dict(net.state_dict())
    x = torch.randn(3, 3, 64, 64)
    cpu = torch.device("cpu")
    fast, plain = Forward.choose(net, cpu, "on"), Forward.choose(plain_net, cpu, "off")
    layers = ["layer1", "layer3"]
    with fast.hooks(layers) as h1, plain.hooks(layers) as h2:
        a, b = fast(h1, x), plain(h2, x)
        first = fast(h1, x, stop_after=["layer1"])
    for n in layers:
        assert a[n].shape == b[n].shape
        torch.testing.assert_close(a[n], b[n], rtol=1e-4, atol=1e-5)
    assert torch.equal(first["layer1"], a["layer1"]) and list(first) == ["layer1"]
