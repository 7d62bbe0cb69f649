"""Streaming statistics: exact quantile, top-N images, IoU tally (hand-computed and brute force)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conceptkit.dissection.stats import IoUTally, TopImages, TopQuantile, quantile_need


@pytest.mark.parametrize("q", [0.005, 0.2, 0.5])
@pytest.mark.parametrize("sizes", [[5, 3, 9], [1] * 17, [17]])
def test_top_quantile_equals_numpy_linear(q, sizes):
    g = torch.Generator().manual_seed(len(sizes))
    acts = torch.randn(sum(sizes), 6, 5, 4, generator=g)
    acts[:, 2] = torch.round(acts[:, 2])  # many ties
    stat = TopQuantile(6, acts.shape[0] * 20, quantile=q)
    start = 0
    for n in sizes:
        stat.add(acts[start : start + n])
        start += n
    assert stat.top.shape[1] == quantile_need(acts.shape[0] * 20, q) <= acts.shape[0] * 20
    values = acts.transpose(0, 1).reshape(6, -1).numpy().astype(np.float64)
    np.testing.assert_array_equal(stat.result(), np.quantile(values, 1 - q, axis=1))


@pytest.mark.parametrize("q", [0.005, 0.05])
def test_top_quantile_work_per_batch_does_not_grow(q):
    """Many batches: values under each unit's k-th largest are dropped on arrival, so the
    buffer (kept + pending) stays within 2k plus one batch, and the result stays exact."""
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(4, 5, 6, 6, generator=g) for _ in range(60)]
    batches[7][:, 1] = 10.0  # a block of ties at the top of unit 1
    batches[30] = torch.round(batches[30] * 2)
    total = 60 * 4 * 36
    stat = TopQuantile(5, total, quantile=q)
    widest = 0
    for b in batches:
        stat.add(b)
        widest = max(widest, stat._top.shape[1] + stat._pending_width)
    assert widest <= 2 * stat.need + 4 * 36
    values = torch.cat(batches).transpose(0, 1).reshape(5, -1).numpy().astype(np.float64)
    np.testing.assert_array_equal(stat.result(), np.quantile(values, 1 - q, axis=1))
    # a checkpoint taken with values pending restores to the same statistic
    half = TopQuantile(5, total, quantile=q)
    for b in batches[:31]:
        half.add(b)
    again = TopQuantile(5, 1, quantile=q)
    again.load_state_dict(half.state_dict())
    for b in batches[31:]:
        again.add(b)
    np.testing.assert_array_equal(again.result(), stat.result())


def test_top_quantile_merge_and_state_dict():
    acts = torch.randn(40, 3, 7, 7, generator=torch.Generator().manual_seed(1))
    whole = TopQuantile(3, 40 * 49)
    whole.add(acts)
    a, b = TopQuantile(3, 40 * 49), TopQuantile(3, 40 * 49)
    a.add(acts[:13])
    b.add(acts[13:])
    restored = TopQuantile(3, 1)
    restored.load_state_dict(a.state_dict())
    restored.merge(b)
    np.testing.assert_array_equal(restored.result(), whole.result())
    assert quantile_need(1000, 0.005) == 6  # positions 994 and 995 of 0..999


def test_top_images_order_ties_and_merge():
    acts = torch.zeros(5, 2, 2, 2)
    acts[:, 0, 0, 0] = torch.tensor([1.0, 3.0, 3.0, 2.0, 0.5])
    acts[:, 1, 1, 1] = torch.tensor([4.0, 4.0, 4.0, 4.0, 9.0])
    rows = torch.arange(10, 15)
    top = TopImages(2, 3, (2, 2))
    top.add(acts[3:], rows[3:])
    top.add(acts[:3], rows[:3])
    assert top.indices.tolist() == [[11, 12, 13], [14, 10, 11]]
    assert top.values.tolist() == [[3.0, 3.0, 2.0], [9.0, 4.0, 4.0]]
    torch.testing.assert_close(top.maps[1, 0], acts[4, 1])
    a, b = TopImages(2, 3, (2, 2)), TopImages(2, 3, (2, 2))
    a.add(acts[:2], rows[:2])
    b.add(acts[2:], rows[2:])
    a.merge(b)
    assert a.indices.tolist() == top.indices.tolist()


def _hand_case(union: str) -> IoUTally:
    """One unit; categories 0 = 'obj' (pixel planes), 1 = 'scene' (image-level).

    Labels: 1, 2 -> obj; 3 -> scene. Maps are 2x2 at label size 2x2 (upsampling is identity).
    Image 0: mask = top row; plane [[1, 0], [2, 2]]; scene label 3.
    Image 1: mask = bottom-left; plane [[1, 1], [0, 0]] (mask misses every obj pixel); no scene.
    Image 2: mask = all; two planes [[1, 1], [1, 0]] and [[2, 0], [0, 0]]; scene label 3.
    """
    label_category = torch.tensor([-1, 0, 0, 1])
    tally = IoUTally(1, label_category, 2, union=union, max_elems=4)
    acts = torch.tensor(
        [
            [[[1.0, 1.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [1.0, 0.0]]],
            [[[1.0, 1.0], [1.0, 1.0]]],
        ]
    )
    planes = torch.zeros(3, 2, 2, 2, dtype=torch.int32)
    planes[0, 0] = torch.tensor([[1, 0], [2, 2]])
    planes[1, 0] = torch.tensor([[1, 1], [0, 0]])
    planes[2, 0] = torch.tensor([[1, 1], [1, 0]])
    planes[2, 1] = torch.tensor([[2, 0], [0, 0]])
    labels = torch.tensor([[3], [0], [3]])
    sizes = tally.add(acts, torch.tensor([0.5], dtype=torch.float64), planes, labels)
    assert sizes.tolist() == [[2], [1], [4]]  # each image's mask pixels
    return tally


def test_label_batch_per_image_areas_and_category_pixels():
    """Per image: pixels of each present label (planes summed) and of each category."""
    label_category = torch.tensor([-1, 0, 0, 1])
    tally = IoUTally(1, label_category, 2)
    planes = torch.zeros(2, 2, 2, 2, dtype=torch.int32)
    planes[0, 0] = torch.tensor([[1, 0], [2, 2]])
    planes[1, 0] = torch.tensor([[1, 1], [1, 0]])
    planes[1, 1] = torch.tensor([[2, 0], [0, 2]])  # pixel (0, 0) carries labels 1 and 2
    lb = tally.prepare(planes, torch.tensor([[3], [0]]))
    assert lb.uniq.tolist() == [0, 1, 2]
    assert lb.areas[:, 1:].tolist() == [[1, 2], [3, 2]]
    # category 0 ('obj'): image 0 has 3 labelled pixels; image 1 has 4 (pixel (0, 0) once)
    # category 1 (image-level only) has no pixels in the planes
    assert lb.cat_pixels.tolist() == [[3, 0], [4, 0]]


def test_tally_hand_computed_union_rules():
    cat = _hand_case("category")
    # truth: label 1 = 1 + 2 + 3 pixels; label 2 = 2 + 1; label 3 = 2 images * 4 pixels
    assert cat.truth.tolist() == [0, 6, 3, 8]
    # intersect: label 1 = 1 (img0) + 0 + 3 (img2); label 2 = 0 + 0 + 1; label 3 = 2 + 4
    assert cat.inter.tolist() == [[0, 4, 1, 6]]
    # obj union: img0 (overlaps label 1) 2 + img1 (no overlap) 0 + img2 4 = 6
    # scene union: img0 2 (image-level label) + img1 0 (none) + img2 4 = 6
    assert cat.act_cat.tolist() == [[6, 6]]
    assert cat.act_total.tolist() == [7]
    glob = _hand_case("global")
    assert glob.inter.tolist() == cat.inter.tolist() and glob.truth.tolist() == cat.truth.tolist()
    assert glob.act_cat.tolist() == [[7, 7]]
    iou = cat.iou()
    assert iou[0, 1].item() == pytest.approx(4 / (6 + 6 - 4))
    assert iou[0, 3].item() == pytest.approx(6 / (6 + 8 - 6))
    assert iou[0, 0].item() == 0
    assert glob.iou()[0, 1].item() == pytest.approx(4 / (7 + 6 - 4))


def _brute_force(acts, thr, planes, labels, label_category, ncat, union):
    """NetDissect-Lite's per-image, per-unit loop, written plainly."""
    B, C = acts.shape[:2]
    L = label_category.shape[0]
    sh, sw = planes.shape[-2:]
    inter = np.zeros((C, L), np.int64)
    truth = np.zeros(L, np.int64)
    act = np.zeros((C, ncat), np.int64)
    up = F.interpolate(acts, size=(sh, sw), mode="bilinear", align_corners=False).numpy()
    for i in range(B):
        pix = planes[i].numpy().reshape(planes.shape[1], -1)
        scal = [int(v) for v in labels[i] if v > 0]
        truth += np.bincount(pix.ravel(), minlength=L)
        for s in scal:
            truth[s] += sh * sw
        for u in range(C):
            m = (up[i, u] > thr[u]).ravel()
            n = int(m.sum())
            bt = np.bincount(pix[:, m].ravel(), minlength=L)
            bt[0] = 0
            inter[u] += bt
            cats = np.zeros(ncat, np.int64)
            for lab in np.flatnonzero(bt):
                cats[label_category[lab]] += bt[lab]
            for s in scal:
                inter[u, s] += n
                cats[label_category[s]] += 1
            act[u] += n * (cats > 0) if union == "category" else n
    truth[0] = 0
    return inter, truth, act


@pytest.mark.parametrize("union", ["category", "global"])
def test_tally_vectorised_equals_per_unit_loop(union):
    g = torch.Generator().manual_seed(3)
    B, C, L, ncat = 6, 9, 8, 3
    label_category = torch.tensor([-1, 0, 0, 1, 1, 2, 2, 0])
    acts = torch.randn(B, C, 4, 5, generator=g)
    thr = torch.quantile(acts.transpose(0, 1).reshape(C, -1), 0.8, dim=1).double()
    planes = torch.randint(0, L, (B, 2, 12, 10), generator=g, dtype=torch.int32)
    planes[:, :, :4] = 0
    planes[::2, 1] = 0
    labels = torch.tensor([[5, 3], [0, 0], [6, 0], [0, 0], [4, 0], [0, 0]])
    tally = IoUTally(C, label_category, ncat, union=union, max_elems=300)
    tally.add(acts[:4], thr, planes[:4], labels[:4])
    rest = IoUTally(C, label_category, ncat, union=union)
    rest.add(acts[4:], thr, planes[4:], labels[4:])
    tally.merge(rest)
    inter, truth, act = _brute_force(
        acts, thr.numpy(), planes, labels, label_category.numpy(), ncat, union
    )
    np.testing.assert_array_equal(tally.inter.numpy(), inter)
    np.testing.assert_array_equal(tally.truth.numpy(), truth)
    np.testing.assert_array_equal(tally.act_cat.numpy(), act)
    assert inter.sum() > 0 and act.sum() > 0
    fresh = IoUTally(C, label_category, ncat, union=union)
    fresh.load_state_dict(tally.state_dict())
    torch.testing.assert_close(fresh.iou(), tally.iou())


def test_statistics_ignore_the_memory_layout():
    """A channels-last batch (as a channels-last forward gives) yields the same statistics."""
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(6, 4, 7, 9, generator=g).relu_() for _ in range(12)]
    label_category = torch.tensor([-1, 0, 0, 1])
    planes = torch.randint(0, 3, (6, 2, 14, 18), generator=g, dtype=torch.int32)
    image_labels = torch.randint(0, 4, (6, 1), generator=g)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        q, top = TopQuantile(4, 12 * 6 * 63, 0.05), TopImages(4, 5, (7, 9))
        tally = IoUTally(4, label_category, 2)
        for i, b in enumerate(batches):
            b = b.contiguous(memory_format=layout)
            q.add(b)
            top.add(b, torch.arange(6) + 6 * i)
        thr = torch.from_numpy(q.result())
        sizes = [tally.add(b.contiguous(memory_format=layout), thr, planes, image_labels)
                 for b in batches]  # fmt: skip
        results.append((q.result(), top.indices, top.maps, tally.inter, tally.act_cat, sizes))
    (q0, i0, m0, n0, a0, s0), (q1, i1, m1, n1, a1, s1) = results
    np.testing.assert_array_equal(q0, q1)
    assert torch.equal(i0, i1) and torch.equal(m0, m1)
    assert torch.equal(n0, n1) and torch.equal(a0, a1)
    assert all(torch.equal(x, y) for x, y in zip(s0, s1))
    assert int(n0.sum()) > 0


@pytest.mark.parametrize("ncat", [3, 20])
def test_label_batch_category_pixels_brute_force(ncat):
    g = torch.Generator().manual_seed(ncat)
    nlab = 30
    label_category = torch.randint(-1, ncat, (nlab,), generator=g)
    label_category[0] = -1
    tally = IoUTally(1, label_category, ncat)
    planes = torch.randint(0, nlab, (5, 3, 6, 7), generator=g, dtype=torch.int32)
    planes[:, 2] = 0  # a padding plane
    lb = tally.prepare(planes, torch.zeros((5, 1), dtype=torch.int64))
    for b in range(5):
        for k in range(ncat):
            has = torch.zeros((6, 7), dtype=torch.bool)
            for p in range(3):
                lab = planes[b, p].long()
                has |= (lab > 0) & (label_category[lab] == k)
            assert int(lb.cat_pixels[b, k]) == int(has.sum()), (b, k)
        for j, lab in enumerate(lb.uniq.tolist()[1:], 1):
            assert int(lb.areas[b, j]) == int((planes[b] == lab).sum())
