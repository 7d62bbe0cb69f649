"""The dissection's bilinear upsampling and its sparse mask: equal to PyTorch's upsample at the
sizes dissections use, and the sparse pixels equal the dense threshold everywhere."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conceptkit.dissection.upsample import axis, bilinear, mask_pixels, mask_pixels_torch

#: the CPU kernel (what mask_pixels runs here) and the tensor code (what it runs on CUDA)
IMPLEMENTATIONS = pytest.mark.parametrize(
    "impl", [mask_pixels, mask_pixels_torch], ids=["cpu", "torch"]
)


def _maps(k: int, h: int, w: int, seed: int, kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, h, w, generator=g) * 3
    if kind == "relu":
        return x.relu_()
    if kind == "ties":  # few distinct values: taps equal to the threshold, flat areas
        return torch.round(x)
    return x


@pytest.mark.parametrize("h", [7, 14, 28, 56, 112, 224])
def test_bilinear_equals_torch_upsample_at_dissection_sizes(h):
    """Feature maps of 7..224 px upsampled to Broden's 112x112 label planes."""
    x = _maps(64, h, h, h, "signed")
    ref = F.interpolate(x[:, None], size=(112, 112), mode="bilinear", align_corners=False)
    assert torch.equal(bilinear(x, (112, 112)), ref[:, 0])


def test_bilinear_equals_torch_upsample_at_other_sizes():
    for h, w, sh, sw in [(7, 7, 113, 97), (14, 14, 100, 100), (17, 23, 112, 112), (3, 5, 112, 224)]:
        x = _maps(32, h, w, h * w, "signed")
        ref = F.interpolate(x[:, None], size=(sh, sw), mode="bilinear", align_corners=False)
        assert torch.equal(bilinear(x, (sh, sw)), ref[:, 0]), (h, w, sh, sw)


def test_axis_blocks_partition_the_output_and_share_taps():
    for n_in, n_out in [(7, 112), (56, 112), (9, 30), (5, 11), (224, 112), (1, 8), (6, 6)]:
        ax = axis(n_in, n_out)
        covered = torch.cat([torch.arange(s, s + n) for s, n in zip(ax.start, ax.length)])
        assert covered.tolist() == list(range(n_out))
        assert int(ax.length.max()) <= ax.width
        for s, n, lo, hi in zip(ax.start, ax.length, ax.block_lo, ax.block_hi):
            assert set(ax.lo[s : s + n].tolist()) == {int(lo)}
            assert set(ax.hi[s : s + n].tolist()) == {int(hi)}


@IMPLEMENTATIONS
@pytest.mark.parametrize("kind", ["relu", "signed", "ties"])
@pytest.mark.parametrize(
    "shape", [(7, 7, 112, 112), (56, 56, 112, 112), (9, 5, 30, 11), (224, 224, 112, 112),
              (1, 1, 8, 8), (5, 9, 5, 9), (3, 4, 50, 7)],
)  # fmt: skip
def test_mask_pixels_equal_the_dense_threshold(impl, kind, shape):
    h, w, sh, sw = shape
    x = _maps(120, h, w, sum(shape), kind)
    dense = bilinear(x, (sh, sw)).reshape(120, -1)
    for q in (0.5, 0.9, 0.995, 1.0):
        t = torch.quantile(dense, q, dim=1)
        if kind == "ties":  # thresholds equal to sample values and to constant areas
            t = torch.round(t)
        m, p = impl(x, t, (sh, sw))
        got = torch.zeros_like(dense, dtype=torch.bool)
        got[m, p] = True
        assert m.numel() == int(got.sum()), "a pixel reported twice"
        assert torch.equal(got, dense > t[:, None]), (kind, shape, q)


@IMPLEMENTATIONS
def test_mask_pixels_of_constant_and_empty_maps(impl):
    x = torch.full((3, 7, 7), 2.0)
    m, _ = impl(x, torch.tensor([1.0, 2.0, 3.0]), (112, 112))
    assert m.tolist() == [0] * 112 * 112  # above 1 everywhere; never above 2 or 3
    m, p = impl(torch.zeros(0, 7, 7), torch.zeros(0), (112, 112))
    assert m.numel() == p.numel() == 0


@pytest.mark.parametrize("kind", ["relu", "signed", "ties"])
def test_the_cpu_kernel_gives_the_tensor_codes_pixels_in_its_order(kind):
    """Same pairs, same order, at every layer size of a ResNet and some odd ones, thresholds
    from the upsampled values' top quantiles (the dissection's) down to the median."""
    for h, w, sh, sw in [(56, 56, 112, 112), (28, 28, 112, 112), (14, 14, 112, 112),
                         (7, 7, 112, 112), (9, 5, 30, 11), (224, 224, 112, 112), (3, 4, 50, 7)]:  # fmt: skip
        x = _maps(200, h, w, h * w + sh, kind)
        dense = bilinear(x, (sh, sw)).reshape(200, -1)
        for q in (0.5, 0.99, 0.995, 0.999):
            t = torch.quantile(dense, q, dim=1)
            a, b = mask_pixels(x, t, (sh, sw)), mask_pixels_torch(x, t, (sh, sw))
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), (kind, h, w, q)


def test_the_cpu_kernel_grows_its_output():
    """More pixels above threshold than its first guess of the output's size (every pixel of
    four 7x7 maps upsampled to 112x112: 50,176 against 16,384)."""
    m, p = mask_pixels(torch.ones(4, 7, 7), torch.zeros(4), (112, 112))
    assert torch.equal(torch.sort(m * 12544 + p).values, torch.arange(4 * 12544))
