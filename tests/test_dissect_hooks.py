"""Forward hooks by dotted name: nested modules, in-place safety, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.preprocess import get_preprocess
from conceptkit.errors import UsageError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.block = nn.Sequential(nn.Sequential(nn.Conv2d(4, 2, 1)))
        self.head = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(self.features(x))
        return self.head(y.mean(dim=(2, 3)))


def test_hooks_capture_nested_layers_in_one_pass_before_inplace_ops():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 5, 5)
    with FeatureHooks(net, ["features.0", "block.0.0"]) as hooks, torch.no_grad():
        feats = hooks.run(net, x)
        conv = net.features[0](x)
    assert feats["features.0"].shape == (2, 4, 5, 5) and feats["block.0.0"].shape == (2, 2, 5, 5)
    torch.testing.assert_close(feats["features.0"], conv)
    assert feats["features.0"].min() < 0  # the in-place ReLU after it did not touch the copy
    torch.testing.assert_close(feats["block.0.0"], net.block(torch.relu(conv)))
    assert not net.features[0]._forward_hooks  # removed on exit


def test_hooks_reject_unknown_and_non_map_layers():
    net = Net()
    # the one lookup of models.resolve_layer: close names and where to list them
    with pytest.raises(UsageError) as info:
        FeatureHooks(net, ["features.9"])
    assert str(info.value) == (
        "model has no layer 'features.9'; close matches: features.1, features.0, features "
        "(list them with --list-layers)"
    )
    with FeatureHooks(net, ["head"]) as hooks, pytest.raises(UsageError, match="feature map"):
        hooks.run(net, torch.randn(1, 3, 4, 4))


def test_preprocess_arithmetic():
    img = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    nd = get_preprocess("netdissect")(img)
    expect = (
        torch.tensor([0.0, 128.0, 255.0]) - torch.tensor([124.6901, 118.6897, 109.5388])
    ) / 57.12
    torch.testing.assert_close(nd[0, :, 0, 0], expect)
    assert nd.dtype == torch.float32
    inet = get_preprocess("imagenet")(img)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(inet[0, :, 1, 1], (torch.tensor([0, 128, 255]) / 255 - mean) / std)
    custom = get_preprocess("imagenet", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    assert custom.name == "custom"
    torch.testing.assert_close(custom(img)[0, :, 0, 0], torch.tensor([-1.0, 128 / 127.5 - 1, 1.0]))
    with pytest.raises(UsageError):
        get_preprocess("netdissect", mean=[0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    "prep",
    [
        get_preprocess("imagenet"),
        get_preprocess("netdissect"),
        get_preprocess("imagenet", mean=[0.1, 0.2, 0.3], std=[0.7, 0.11, 0.013]),
    ],
    ids=["imagenet", "netdissect", "custom"],
)
def test_preprocess_table_lookup_gives_the_arithmetics_bits(prep):
    # every value of every channel, then a random batch with a strided (non-contiguous) view
    every = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(2, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (4, 3, 40, 30), dtype=torch.uint8, generator=gen)
    for img in (every, batch, batch[:, :, ::2, 1::3], batch.to(memory_format=torch.channels_last)):
        looked_up = prep(img)
        computed = prep._arithmetic(img)
        assert looked_up.dtype == torch.float32 and looked_up.shape == img.shape
        assert torch.equal(looked_up.view(torch.int32), computed.view(torch.int32))
    # not uint8 (a float batch): the arithmetic itself
    as_float = batch.to(torch.float32)
    assert torch.equal(prep(as_float), prep._arithmetic(as_float))


def test_preprocess_input_size_resizes_after_normalising():
    # a ramp of 10 grey levels per column: 0, 10, ..., 70
    img = (torch.arange(8) * 10).to(torch.uint8).view(1, 1, 1, 8).expand(2, 3, 8, 8)
    prep = get_preprocess("imagenet", input_size=4)
    resized = prep(img)
    assert resized.shape == (2, 3, 4, 4)
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    grey = (resized * std + mean) * 255  # back on the 0..255 scale
    # output column j covers input columns 2j, 2j+1: its centre is 2j + 0.5, and the symmetric
    # (antialiased) filter keeps a ramp a ramp away from the border: 25 and 45 at j = 1, 2
    torch.testing.assert_close(grey[..., 1], torch.full((2, 3, 4), 25.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(grey[..., 2], torch.full((2, 3, 4), 45.0), atol=1e-3, rtol=0)
    same = get_preprocess("netdissect", input_size=8)
    torch.testing.assert_close(same(img), get_preprocess("netdissect")(img))
    with pytest.raises(UsageError, match="--input-size must lie between 1 and 4096"):
        get_preprocess("imagenet", input_size=0)


class Counting(nn.Module):
    """Three stages; ``calls`` counts how often each ran; ``twice`` calls stage ``a`` again."""

    def __init__(self, twice: bool = False) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        self.twice = twice
        self.calls = {"a": 0, "b": 0, "c": 0}
        for name in self.calls:
            getattr(self, name).register_forward_pre_hook(self._count(name))

    def _count(self, name: str):
        def hook(_m, _i):
            self.calls[name] += 1

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.a(x))
        if self.twice:
            y = self.a(y)
        return self.c(y)


def test_stop_after_ends_the_forward_once_its_layers_ran():
    torch.manual_seed(0)
    net = Counting().eval()
    x = torch.randn(2, 3, 4, 4)
    with FeatureHooks(net, ["a", "b", "c"]) as hooks, torch.no_grad():
        assert not hooks.stoppable
        early = hooks.run(net, x, stop_after=["a"])  # no whole forward seen yet: runs whole
        assert net.calls == {"a": 1, "b": 1, "c": 1} and hooks.stoppable  # and learns from it
        whole = hooks.run(net, x)
        assert hooks.stoppable and hooks.order == ["a", "b", "c"]
        early = hooks.run(net, x, stop_after=["b", "a"])
        assert net.calls == {"a": 3, "b": 3, "c": 2}  # c was not computed
        assert sorted(early) == ["a", "b"]
        for n in early:
            assert torch.equal(early[n], whole[n])
        assert len(net.a._forward_hooks) == 1  # the stoppers are gone, the feature hook stays


def test_stop_after_runs_whole_when_a_layer_is_called_twice():
    net = Counting(twice=True).eval()
    x = torch.randn(1, 3, 4, 4)
    with FeatureHooks(net, ["a", "b"]) as hooks, torch.no_grad():
        whole = hooks.run(net, x)
        assert not hooks.stoppable
        again = hooks.run(net, x, stop_after=["a", "b"])
    assert net.calls["c"] == 2  # both forwards ran whole
    assert torch.equal(again["a"], whole["a"])  # the last call's output, both times
