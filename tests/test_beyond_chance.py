"""The analytic chance level of an IoU against Monte-Carlo placements of the same masks:
rectangles at random offsets within their images (the expected intersection is exact there)
and random pixel sets (the hypergeometric model itself: mean, dispersion and the union rule's
expected mask total all match)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from conceptkit.beyond.chance import category_pixels, expected_counts
from conceptkit.dissection.chance import chance_iou, overlap_probability
from conceptkit.explain.masks import ConceptMasks, ImageLabels, UnitMask, build_concept_masks, pack
from conceptkit.explain.search import UnitSearch

N, SIDE = 30, 16
S = SIDE * SIDE
A, B, C, SCENE = 1, 2, 3, 4  # A, B: category 0; C: category 1; SCENE: image-level, category 2
TRIALS = 400


def _data(seed: int = 0) -> tuple[ConceptMasks, np.ndarray]:
    """Concept rectangles; per image a unit rectangle shape ``(N, 2)`` (0 x 0: empty)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(N):
        p0 = np.zeros((SIDE, SIDE), np.int64)
        p1 = np.zeros((SIDE, SIDE), np.int64)
        for plane, label, p in ((p0, A, 0.8), (p0, B, 0.6), (p1, C, 0.5)):
            if rng.random() < p:
                y, x = rng.integers(0, SIDE - 3, size=2)
                h, w = rng.integers(2, 9, size=2)
                plane[y : y + h, x : x + w] = label
        items.append(ImageLabels(np.stack([p0, p1]), np.array([SCENE] if i % 3 == 0 else [])))
    cm = build_concept_masks(items, N, (SIDE, SIDE), [A, B, C, SCENE], [0, 0, 1, 2], 5)
    shapes = rng.integers(2, 10, size=(N, 2))
    shapes[rng.random(N) < 0.2] = 0
    return cm, shapes


def _rect_mask(shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A ``h x w`` rectangle at a random offset (wrapping round the image): ``(S,) bool``."""
    m = np.zeros((SIDE, SIDE), bool)
    m[: shape[0], : shape[1]] = True
    dy, dx = rng.integers(0, SIDE, size=2)
    return np.roll(m, (int(dy), int(dx)), axis=(0, 1)).reshape(-1)


def _random_set(size: int, rng: np.random.Generator) -> np.ndarray:
    m = np.zeros(S, bool)
    m[rng.choice(S, size=size, replace=False)] = True
    return m


def _counts(cm: ConceptMasks, bits: np.ndarray, union: str) -> tuple[np.ndarray, np.ndarray]:
    """``bits: (N, S)`` one unit's masks -> ``inter (L,)`` and the union's mask total ``(L,)``."""
    sizes = bits.sum(axis=1)
    images = np.flatnonzero(sizes)
    um = UnitMask(0, images, pack(bits[images]), sizes[images].astype(np.int64))
    s = UnitSearch(cm, um, union)
    act = np.array([s.act(1 << k) for k in range(cm.categories)], dtype=np.float64)
    return s.uc.astype(np.float64), act[cm.cats]


def _monte_carlo(
    cm: ConceptMasks, place: Callable[[int, np.random.Generator], np.ndarray], union: str
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(1)
    inter, act = [], []
    for _ in range(TRIALS):
        bits = np.stack([place(i, rng) for i in range(N)])
        x, y = _counts(cm, bits, union)
        inter.append(x)
        act.append(y)
    inter_a, act_a = np.array(inter), np.array(act)
    iou = inter_a / (act_a + cm.truth[None, :] - inter_a + 1e-10)
    return inter_a, act_a, iou


def _analytic(cm: ConceptMasks, a: np.ndarray, union: str) -> tuple[np.ndarray, ...]:
    E, V, EA = expected_counts(a[None, :], cm, union)
    chance, sd, _ = chance_iou(E, E, V, EA, cm.truth.astype(np.float64), cm.cats)
    return E[0], V[0], EA[0][cm.cats], chance[0], sd[0]


def test_random_offsets_match_the_chance_level() -> None:
    cm, shapes = _data()
    a = shapes.prod(axis=1).astype(np.float64)
    inter, _, iou = _monte_carlo(cm, lambda i, rng: _rect_mask(shapes[i], rng), "global")
    E, V, _, chance, sd = _analytic(cm, a, "global")
    pixel = slice(0, 3)  # A, B, C
    se = inter.std(axis=0) / np.sqrt(TRIALS)
    assert np.all(np.abs(inter.mean(axis=0) - E)[pixel] < 4 * se[pixel])  # E[I] is exact
    assert np.all(np.abs(iou.mean(axis=0) - chance)[pixel] < sd[pixel])  # within its dispersion
    # a rigid rectangle's pixels move together: it disperses more than a random set (the
    # documented limit of z; about 3x here)
    assert np.all(inter.std(axis=0)[pixel] > 2 * np.sqrt(V)[pixel])
    assert np.all(sd[pixel] > 0) and sd[3] == 0.0 and V[3] == 0.0
    assert iou[:, 3] == pytest.approx(chance[3])  # the scene covers every mask, every time


def test_random_sets_match_mean_dispersion_and_union_rule() -> None:
    cm, shapes = _data(2)
    a = shapes.prod(axis=1)
    inter, act, iou = _monte_carlo(cm, lambda i, rng: _random_set(int(a[i]), rng), "category")
    E, V, EA, chance, sd = _analytic(cm, a.astype(np.float64), "category")
    pixel = slice(0, 3)
    se = inter.std(axis=0) / np.sqrt(TRIALS)
    assert np.all(np.abs(inter.mean(axis=0) - E)[pixel] < 4 * se[pixel])
    assert inter.std(axis=0)[pixel] == pytest.approx(np.sqrt(V)[pixel], rel=0.15)
    act_se = act.std(axis=0) / np.sqrt(TRIALS) + 1e-9
    assert np.all(np.abs(act.mean(axis=0) - EA) < 4 * act_se + 1e-9)
    assert np.all(np.abs(iou.mean(axis=0) - chance)[pixel] < sd[pixel])
    assert EA[3] == pytest.approx(float(a[::3].sum()))  # image-level: admitted where present


def test_overlap_probability_by_hand() -> None:
    # 3 of 5 pixels avoid 2 given ones with probability C(3, 3) / C(5, 3) = 1 / 10
    assert float(overlap_probability(torch.tensor(3), torch.tensor(2), 5)) == pytest.approx(0.9)
    assert float(overlap_probability(torch.tensor(4), torch.tensor(2), 5)) == 1.0  # unavoidable
    assert float(overlap_probability(torch.tensor(0), torch.tensor(2), 5)) == 0.0


def test_category_pixels_merge_labels_of_one_category() -> None:
    p = np.zeros((1, 4, 4), np.int64)
    p[0, :2, :2] = A
    p[0, 1:3, 1:3] = B  # painted over A; the second plane adds A along the top row
    q = np.zeros((1, 4, 4), np.int64)
    q[0, 0, :] = A
    items = [ImageLabels(np.concatenate([p, q]), np.zeros(0, np.int64))]
    cm = build_concept_masks(items, 1, (4, 4), [A, B, C], [0, 0, 1], 4)
    img, cat, pix = category_pixels(cm)
    assert img.tolist() == [0] and cat.tolist() == [0]
    assert pix.tolist() == [len({(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 2), (1, 2)}
                                | {(0, 2), (0, 3)})]  # fmt: skip
