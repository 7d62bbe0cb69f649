"""Batch norms folded into convolutions: which pairs fold, the arithmetic, and the record."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from conceptkit.dissection.fold import conv_bn_pairs, fold_batch_norms, folded
from conceptkit.dissection.forward import Forward
from conceptkit.errors import UsageError

CPU = torch.device("cpu")


def _stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm running statistics and an affine map far from the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


def test_hand_computed_fold():
    conv = nn.Conv2d(1, 2, 1, bias=True)
    conv.weight.data = torch.tensor([[[[2.0]]], [[[-1.0]]]])
    conv.bias.data = torch.tensor([1.0, 0.5])
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    bn.running_mean.copy_(torch.tensor([3.0, -1.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    bn.weight.data = torch.tensor([0.5, 2.0])
    bn.bias.data = torch.tensor([1.0, 0.0])
    net = nn.Sequential(conv, bn)
    out, n = fold_batch_norms(net)
    assert n == 1 and isinstance(out[1], nn.Identity) and isinstance(net[1], nn.BatchNorm2d)
    # channel 0: scale 0.5 / 2 = 0.25 -> w 0.5, b (1 - 3) * 0.25 + 1 = 0.5
    # channel 1: scale 2 / 0.5 = 4 -> w -4, b (0.5 + 1) * 4 + 0 = 6
    assert out[0].weight.flatten().tolist() == [0.5, -4.0]
    assert out[0].bias.tolist() == [0.5, 6.0]
    x = torch.tensor([[[[1.0, -2.0]]]])
    assert torch.equal(out(x), net(x))  # exact here: every value is a short binary fraction


def test_resnet18_every_pair_folds_the_model_is_untouched_and_values_agree():
    torch.manual_seed(0)
    net = _stats(torchvision.models.resnet18(weights=None, num_classes=10))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pairs = conv_bn_pairs(net)
    assert len(pairs) == 20 and ("conv1", "bn1") in pairs
    assert ("layer2.0.downsample.0", "layer2.0.downsample.1") in pairs
    run, n = fold_batch_norms(net)
    assert n == 20 and run is not net
    assert not any(type(m) is nn.BatchNorm2d for m in run.modules())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        a, b = net(x), run(x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_layers_read_are_kept():
    net = torchvision.models.resnet18(weights=None).eval()
    kept = conv_bn_pairs(net, keep=["layer3.1.bn2", "layer4.0.conv1"])
    assert len(kept) == 18
    assert ("layer3.1.conv2", "layer3.1.bn2") not in kept
    assert ("layer4.0.conv1", "layer4.0.bn1") not in kept


class Shared(nn.Module):
    """A convolution whose output also feeds a residual sum, one called twice, one whose
    weight is read outside it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.b, self.bn_b = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.c, self.bn_c = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
        self.d, self.bn_d = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = self.bn_a(y) + y  # a's output is used twice: folding would change the sum
        z = self.bn_b(self.b(y)) + self.bn_b(self.b(x))  # b and bn_b are called twice
        z = self.bn_d(self.d(z)) * self.d.weight.mean()  # d's weight is read directly
        return self.bn_c(self.c(z))  # the only pair that folds


class PreAct(nn.Module):
    """Batch norm before the convolution (DenseNet's order), and a subclass of BatchNorm2d."""

    class Scaled(nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    def __init__(self) -> None:
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1), PreAct.Scaled(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.conv(self.bn(x))))


class Branchy(nn.Module):
    """Control flow on the data: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return y if float(y.sum()) > 0 else -y


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_only_safe_pairs_fold():
    shared = _stats(Shared())
    assert conv_bn_pairs(shared) == [("c", "bn_c")]
    run, n = fold_batch_norms(shared)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(run(x), shared(x), rtol=1e-4, atol=1e-5)
    assert conv_bn_pairs(_stats(PreAct())) == []
    branchy = _stats(Branchy())
    assert fold_batch_norms(branchy) == (branchy, 0)
    normed = _stats(nn.Sequential(nn.utils.weight_norm(nn.Conv2d(3, 3, 1)), nn.BatchNorm2d(3)))
    assert conv_bn_pairs(normed) == []  # its hook would recompute the weight from its parts
    training = Shared().train()
    assert conv_bn_pairs(training) == []  # batch statistics: nothing to fold


def test_forward_runs_the_folded_copy_and_hooks_it():
    torch.manual_seed(0)
    net = _stats(torchvision.models.resnet18(weights=None, num_classes=10))
    plain_net = _stats(torchvision.models.resnet18(weights=None, num_classes=10))
    plain_net.load_state_dict(net.state_dict())
    fast = Forward.choose(net, CPU, "off", layers=["layer2", "layer3.0.bn1"])
    plain = Forward.choose(plain_net, CPU, "off", fold_bn="off")
    assert fast.net is not fast.model and plain.net is plain.model and plain.folds == []
    assert type(fast.net.get_submodule("layer3.0.bn1")) is nn.BatchNorm2d
    x = torch.randn(2, 3, 64, 64)
    layers = ["layer2", "layer3.0.bn1"]
    with fast.hooks(layers) as h1, plain.hooks(layers) as h2:
        a, b = fast(h1, x), plain(h2, x)
    for n in layers:
        torch.testing.assert_close(a[n], b[n], rtol=1e-4, atol=1e-5)


def test_a_recorded_fold_the_model_lacks_is_refused():
    net = torchvision.models.resnet18(weights=None).eval()
    with pytest.raises(UsageError, match="cannot fold"):
        Forward.of_run(net, CPU, {"fold_bn": [["layer1.0.conv1", "layer1.0.bn2"]]})
    with pytest.raises(UsageError, match="list of"):
        Forward.of_run(net, CPU, {"fold_bn": "yes"})
    assert folded(net, []) is not net  # a copy even when nothing folds
