"""The compiled CPU counting of the IoU tally (conceptkit.dissection._tally_cpu) against the
tensor code it replaces on the CPU (still the code on CUDA): the same integers for the label
batch and for every tally, over random planes, categories, unions and thresholds."""

from __future__ import annotations

import pytest
import torch

from conceptkit.dissection import stats


def _tensor_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "_compiled", lambda dev, categories: False)


def _random_labels(gen: torch.Generator, nlab: int, K: int, B: int, P: int, size: int):
    label_category = torch.randint(-1, max(K, 1), (nlab,), generator=gen)
    if K == 0:
        label_category[:] = -1
    # numbers outside 1..nlab-1 (negative, too large) count as unlabelled
    planes = torch.randint(-2, nlab + 3, (B, P, size, size), generator=gen, dtype=torch.int32)
    planes[torch.rand(planes.shape, generator=gen) < 0.3] = 0
    image_labels = torch.randint(0, nlab, (B, 2), generator=gen)
    image_labels[torch.rand(image_labels.shape, generator=gen) < 0.5] = 0
    return label_category, planes, image_labels


CASES = [(0, 1, 5, 1), (1, 2, 12, 3), (2, 4, 40, 5), (3, 3, 30, 17), (4, 1, 9, 0), (5, 2, 200, 6)]


@pytest.mark.parametrize(("seed", "P", "nlab", "K"), CASES)
def test_label_batch_equals_the_tensor_code(monkeypatch, seed, P, nlab, K) -> None:
    gen = torch.Generator().manual_seed(seed)
    label_category, planes, image_labels = _random_labels(gen, nlab, K, 6, P, 9)
    tally = stats.IoUTally(4, label_category, K)
    fast = tally.prepare(planes, image_labels)
    _tensor_path(monkeypatch)
    ref = tally.prepare(planes, image_labels)
    for name in ("truth", "uniq", "inv", "catmat", "image_labels", "imgcat", "areas"):
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name
    assert torch.equal(fast.cat_pixels, ref.cat_pixels)
    assert fast.inv.dtype == ref.inv.dtype == torch.int64
    # hand check of one image's category pixels: any plane's label of that category
    cat = torch.where(
        (planes[0] > 0) & (planes[0] < nlab), label_category[planes[0].clamp(0, nlab - 1)], -1
    )
    for k in range(K):
        assert int(fast.cat_pixels[0, k]) == int((cat == k).any(dim=0).sum())


def test_label_batch_takes_any_integer_planes(monkeypatch) -> None:
    gen = torch.Generator().manual_seed(7)
    label_category, planes, image_labels = _random_labels(gen, 20, 4, 3, 2, 8)
    tally = stats.IoUTally(2, label_category, 4)
    planes = planes.clamp(min=0)
    ref = tally.prepare(planes.to(torch.int64), image_labels)
    for dtype in (torch.uint8, torch.int16, torch.int32):
        got = tally.prepare(planes.to(dtype), image_labels)
        assert torch.equal(got.inv, ref.inv) and torch.equal(got.areas, ref.areas)
    noncontig = planes.transpose(2, 3).contiguous().transpose(2, 3)  # same values, strided
    got = tally.prepare(noncontig, image_labels)
    assert torch.equal(got.inv, ref.inv) and torch.equal(got.cat_pixels, ref.cat_pixels)


@pytest.mark.parametrize("union", ["category", "global"])
@pytest.mark.parametrize(("seed", "P", "nlab", "K"), CASES)
def test_tally_equals_the_tensor_code(monkeypatch, union, seed, P, nlab, K) -> None:
    gen = torch.Generator().manual_seed(100 + seed)
    B, C = 6, 7
    label_category, planes, image_labels = _random_labels(gen, nlab, K, B, P, 14)
    acts = torch.randn((B, C, 5, 5), generator=gen)
    acts[:, 0] = 0.25  # a constant map: every pixel ties with its threshold
    thresholds = torch.quantile(acts.transpose(0, 1).reshape(C, -1), 0.8, dim=1).double()
    thresholds[0] = 0.25
    channels_last = acts.contiguous(memory_format=torch.channels_last)

    def tally(x: torch.Tensor) -> tuple[stats.IoUTally, torch.Tensor]:
        t = stats.IoUTally(C, label_category, K, union=union, max_elems=14 * 14 * 5)
        sizes = t.add(x, thresholds, planes, image_labels)  # chunks of 5 pairs
        sizes += t.add(x.flip(0), thresholds, planes, image_labels)
        return t, sizes

    fast, fast_sizes = tally(channels_last)
    _tensor_path(monkeypatch)
    ref, ref_sizes = tally(acts)
    assert torch.equal(fast_sizes, ref_sizes) and int(ref_sizes.sum()) > 0
    for name in ("inter", "truth", "act_cat", "act_total"):
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name
    assert int(ref.inter.sum()) > 0


def test_bad_inputs_raise_instead_of_writing_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="past the 2 categories"):
        stats.IoUTally(3, torch.tensor([-1, 0, 2]), 2)
    gen = torch.Generator().manual_seed(3)
    label_category, planes, image_labels = _random_labels(gen, 10, 3, 2, 2, 8)
    tally = stats.IoUTally(4, label_category, 3)
    small = tally.prepare(planes[:1], image_labels[:1])  # one image's labels
    acts = torch.ones((2, 4, 4, 4))  # two images
    with pytest.raises(ValueError, match="outside the label batch"):
        tally.add(acts, torch.zeros(4, dtype=torch.float64), small)
    lb = tally.prepare(planes, image_labels)
    bad = stats.LabelBatch(**{**vars(lb), "inv": lb.inv + lb.uniq.shape[0]})
    with pytest.raises(ValueError, match="outside the batch's labels"):
        tally.add(acts, torch.zeros(4, dtype=torch.float64), bad)
