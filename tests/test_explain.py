"""Compositional explanations on synthetic data where the answer is known: the formula syntax,
packed masks and counts against plain numpy, the beam and the exhaustive search against a
brute-force enumeration that counts IoUs straight from the label planes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conceptkit.errors import UsageError
from conceptkit.explain.formulas import AND, ANDNOT, OR, Formula, canonical, parse, quote
from conceptkit.explain.masks import (
    ImageLabels,
    UnitMask,
    build_concept_masks,
    pack,
    popcount_rows,
    popcount_rows_lut,
    threshold32,
    unit_mask,
    unpack,
)
from conceptkit.explain.search import UnitSearch, beam_search, exhaustive_search

NAMES = ["water", "river", "blue", "potted plant", "AND", "t-shirt", 'say "hi"', "12"]


def leaf(c: int) -> Formula:
    return Formula.leaf(c)


# ----------------------------------------------------------------------------- syntax


def test_text_form_examples() -> None:
    f = leaf(0).join(OR, leaf(1)).join(ANDNOT, leaf(2))
    assert f.to_text(NAMES) == "(water OR river) AND NOT blue"
    g = f.join(OR, leaf(3))
    assert g.to_text(NAMES) == '((water OR river) AND NOT blue) OR "potted plant"'
    assert quote("AND") == '"AND"' and quote('say "hi"') == '"say \\"hi\\""'
    assert len(g) == 4 and g.leaves() == [0, 1, 2, 3]


def _random_formula(rng: np.random.Generator, depth: int) -> Formula:
    if depth == 0 or rng.random() < 0.3:
        return leaf(int(rng.integers(0, len(NAMES))))
    op = (AND, OR, ANDNOT)[int(rng.integers(0, 3))]
    return _random_formula(rng, depth - 1).join(op, _random_formula(rng, depth - 1))


def test_round_trip_random_formulas() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        f = _random_formula(rng, 4)
        text = f.to_text(NAMES)
        assert parse(text, NAMES) == f, text
        assert (
            parse(f.to_text([str(i) for i in range(len(NAMES))]), [str(i) for i in range(8)]) == f
        )


def test_parse_precedence_and_errors() -> None:
    names = ["a", "b", "c", "d"]
    assert parse("a OR b AND NOT c", names) == leaf(0).join(OR, leaf(1).join(ANDNOT, leaf(2)))
    assert parse("a AND b OR c", names) == leaf(0).join(AND, leaf(1)).join(OR, leaf(2))
    assert parse("a OR b OR c", names) == leaf(0).join(OR, leaf(1)).join(OR, leaf(2))
    assert parse("  ( a )  ", names) == leaf(0)
    for bad, what in [
        ("a OR", "missing"),
        ("(a OR b", "'\\)' expected"),
        ("a b", "unexpected"),
        ("a OR e", "unknown concept 'e'"),
        ("NOT a", "a concept expected"),
        ("", "missing"),
    ]:
        with pytest.raises(UsageError, match=what):
            parse(bad, names)
    with pytest.raises(UsageError, match="several labels"):
        parse("x", ["x", "x"])


def test_canonical_identifies_commuted_and_regrouped() -> None:
    a, b, c = leaf(0), leaf(1), leaf(2)
    assert canonical(a.join(OR, b).join(OR, c)) == canonical(c.join(OR, a).join(OR, b))
    assert canonical(a.join(AND, b)) == canonical(b.join(AND, a))
    assert canonical(a.join(ANDNOT, b)) != canonical(b.join(ANDNOT, a))
    assert canonical(a.join(OR, b).join(AND, c)) != canonical(a.join(AND, c).join(OR, b))


# ----------------------------------------------------------------------------- masks


def test_pack_unpack_and_popcount() -> None:
    rng = np.random.default_rng(2)
    for pixels in (1, 63, 64, 65, 12544, 12545):
        bits = rng.random((5, pixels)) < 0.3
        words = pack(bits)
        assert words.shape == (5, (pixels + 63) // 64) and words.dtype == np.uint64
        assert np.array_equal(unpack(words, pixels), bits)
        assert np.array_equal(popcount_rows(words), bits.sum(axis=1))
        assert np.array_equal(popcount_rows_lut(words), bits.sum(axis=1))
    assert int(pack(np.eye(1, 70, 65, dtype=bool))[0, 1]) == 2  # pixel 65 = bit 1 of word 1


def test_threshold32_is_exact() -> None:
    for t in (0.1, 1.0 / 3.0, 3.6986680912971255, -2.5, 0.0, 1e-30):
        t32 = threshold32(t)
        assert float(t32) <= t < float(np.nextafter(t32, np.float32(np.inf)))


def _dataset(seed: int, n: int = 40, size: int = 12) -> tuple[list[ImageLabels], np.ndarray]:
    """Two plane categories (labels 1-4 in plane 0, 5-8 in plane 1) and an image-level one
    (9, 10); returns the items and ``truth: (n, 10, S) bool`` for labels 1..10."""
    rng = np.random.default_rng(seed)
    items, masks = [], np.zeros((n, 10, size * size), dtype=bool)
    for i in range(n):
        p0 = rng.integers(0, 5, (size, size))
        p1 = np.where(rng.random((size, size)) < 0.6, rng.integers(5, 9, (size, size)), 0)
        if i % 5 == 0:
            p1[:] = 0  # images without the second category
        il = np.array([9 + (i % 3 == 0)])
        items.append(ImageLabels(np.stack([p0, p1]).astype(np.int32), il))
        for lab in range(1, 9):
            masks[i, lab - 1] = ((p0 == lab) | (p1 == lab)).ravel()
        masks[i, il[0] - 1] = True
    return items, masks


NUMBERS = list(range(1, 11))
CATS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def _cm(seed: int, **kw: int):  # type: ignore[no-untyped-def]
    items, truth = _dataset(seed, **kw)
    n, _, S = truth.shape
    side = int(round(S**0.5))
    return build_concept_masks(items, n, (side, side), NUMBERS, CATS, 11), truth


def test_concept_masks_counts_match_numpy() -> None:
    cm, truth = _cm(3)
    assert cm.concepts == 10 and cm.categories == 3 and cm.duplicates == 0
    flat = truth.transpose(1, 0, 2).reshape(10, -1)
    assert np.array_equal(cm.truth, flat.sum(axis=1))
    ref = flat.astype(np.int64) @ flat.T.astype(np.int64)
    assert np.array_equal(cm.pair, ref)
    for c in range(10):
        assert np.array_equal(cm.support(c), np.flatnonzero(truth[:, c].any(axis=1)))
        images = np.arange(0, 40, 3)
        assert np.array_equal(unpack(cm.mask(c, images), 144), truth[images, c])
    rng = np.random.default_rng(4)
    images = np.sort(rng.choice(40, 15, replace=False))
    x = rng.random((15, 144)) < 0.4
    expect = (x[:, None, :] & truth[images]).sum(axis=(0, 2))
    assert np.array_equal(cm.count(images, pack(x)), expect)


def test_duplicated_pixels_are_counted() -> None:
    p = np.zeros((2, 2, 2), np.int32)
    p[0, 0, 0] = p[1, 0, 0] = 1  # label 1 twice on one pixel
    items = [ImageLabels(p, np.array([2, 2]))]  # image-level label 2 twice
    cm = build_concept_masks(items, 1, (2, 2), [1, 2], [0, 1], 3)
    assert list(cm.truth) == [1, 4]
    assert cm.duplicates == 1 + 4


# ----------------------------------------------------------------------------- brute force


def _eval(f: Formula, truth: np.ndarray) -> np.ndarray:
    """``(n, S) bool`` of formula f straight from the label masks."""
    if f.is_leaf:
        return truth[:, f.concept]
    a, b = (_eval(x, truth) for x in f.children())
    return {AND: a & b, OR: a | b, ANDNOT: a & ~b}[f.op]  # type: ignore[index]


def _iou(
    f: Formula, unit: np.ndarray, truth: np.ndarray, union: str, cats: list[int] = CATS
) -> float:
    """IoU with the union rule written out: the unit's mask counts in the images where it
    touches a pixel of one of the formula's categories (image-level labels cover the image)."""
    fm = _eval(f, truth)
    inter = int((unit & fm).sum())
    if union == "global":
        act = int(unit.sum())
    else:
        used = {cats[c] for c in f.leaves()}
        labs = [c for c in range(len(cats)) if cats[c] in used]
        counted = (unit[:, None, :] & truth[:, labs]).any(axis=(1, 2))
        act = int(unit[counted].sum())
    return inter / (act + int(fm.sum()) - inter + 1e-10)


def _unit(bits: np.ndarray) -> UnitMask:
    images = np.flatnonzero(bits.any(axis=1))
    return UnitMask(0, images, pack(bits[images]), bits[images].sum(axis=1))


def _all_formulas(max_length: int, concepts: int):  # type: ignore[no-untyped-def]
    """Every formula of the search's grammar: concepts joined one at a time, none twice."""
    for first in range(concepts):
        yield leaf(first)
    for length in range(2, max_length + 1):
        for seq in itertools.permutations(range(concepts), length):
            for ops in itertools.product((AND, OR, ANDNOT), repeat=length - 1):
                f = leaf(seq[0])
                for op, c in zip(ops, seq[1:], strict=True):
                    f = f.join(op, leaf(c))
                yield f


@pytest.mark.parametrize("union", ["category", "global"])
def test_beam_finds_planted_formula(union: str) -> None:
    cm, truth = _cm(5)
    target = leaf(0).join(OR, leaf(5)).join(ANDNOT, leaf(2))  # (1 OR 6) AND NOT 3
    unit = _eval(target, truth)
    s = UnitSearch(cm, _unit(unit), union)
    res = beam_search(s, 3, 5)
    assert res.formula is not None
    assert res.iou == pytest.approx(1.0, abs=1e-9)
    assert res.iou == _iou(res.formula, unit, truth, union)
    assert canonical(res.formula) == canonical(target)
    assert res.best_by_length[0] == res.iou1 < res.best_by_length[1] < res.best_by_length[2]


@pytest.mark.parametrize("union", ["category", "global"])
def test_scores_equal_brute_force_counts(union: str) -> None:
    """Noisy units: every IoU the beam reports equals a brute-force count, and the exhaustive
    search equals the best of a full enumeration (lengths 1-3, 8 concepts)."""
    cm, truth = _cm(6, n=24, size=8)
    rng = np.random.default_rng(7)
    concepts = 8
    formulas = list(_all_formulas(3, concepts))
    for trial in range(3):
        noise = rng.random(truth[:, 0].shape) < 0.05
        base = _eval(_random_planted(rng), truth)
        unit = (base | noise) & ~(rng.random(noise.shape) < 0.1)
        s = UnitSearch(cm, _unit(unit), union)
        res = beam_search(s, 3, 3)
        assert res.formula is not None
        assert res.iou == pytest.approx(_iou(res.formula, unit, truth, union), abs=1e-12)
        # the full enumeration: all 10 concepts up to length 2, the first 8 at length 3
        ious1 = [_iou(leaf(c), unit, truth, union) for c in range(10)]
        assert res.iou1 == pytest.approx(max(ious1), abs=1e-12)
        best2 = max(_iou(f, unit, truth, union) for f in _all_formulas(2, 10))
        ex2, _ = exhaustive_search(s, 2)
        assert ex2 is not None and ex2.iou == pytest.approx(best2, abs=1e-12), trial
        ex3, _ = exhaustive_search(s, 3)
        assert ex3 is not None
        assert ex3.iou == pytest.approx(_iou(ex3.formula, unit, truth, union), abs=1e-12)
        best3 = max(_iou(f, unit, truth, union) for f in formulas)
        assert ex3.iou >= best3 - 1e-12  # 8 of the 10 concepts enumerated
        assert ex3.score >= res.score - 1e-12 and ex2.score <= ex3.score + 1e-12


def _random_planted(rng: np.random.Generator) -> Formula:
    a, b, c = (int(v) for v in rng.choice(8, 3, replace=False))
    op1, op2 = (OR, AND, ANDNOT)[int(rng.integers(0, 3))], (OR, ANDNOT)[int(rng.integers(0, 2))]
    return leaf(a).join(op1, leaf(b)).join(op2, leaf(c))


def test_exhaustive_three_equals_full_enumeration_small() -> None:
    """With only 6 concepts in the data, length 3 exhaustive = the brute-force best."""
    rng = np.random.default_rng(8)
    n, side = 16, 6
    items, truth = [], np.zeros((n, 6, side * side), dtype=bool)
    for i in range(n):
        p0 = rng.integers(0, 4, (side, side))  # labels 1-3
        p1 = np.where(rng.random((side, side)) < 0.5, rng.integers(4, 7, (side, side)), 0)
        items.append(ImageLabels(np.stack([p0, p1]).astype(np.int32), np.zeros(0, np.int64)))
        for lab in range(1, 7):
            truth[i, lab - 1] = ((p0 == lab) | (p1 == lab)).ravel()
    cats = [0, 0, 0, 1, 1, 1]
    cm = build_concept_masks(items, n, (side, side), list(range(1, 7)), cats, 7)
    for _ in range(4):
        unit = (rng.random(truth[:, 0].shape) < 0.2) | (truth[:, 0] & truth[:, 4])
        s = UnitSearch(cm, _unit(unit), "category")
        ex3, _ = exhaustive_search(s, 3)
        best = max(_iou(f, unit, truth, "category", cats) for f in _all_formulas(3, 6))
        assert ex3 is not None and ex3.iou == pytest.approx(best, abs=1e-12)
        assert beam_search(s, 3, 2).score <= ex3.score + 1e-12


def test_length_penalty_prefers_short_formulas() -> None:
    cm, truth = _cm(9)
    # the unit is concept 0 OR concept 5; concept 0 alone has IoU between 0.5 and 1
    unit = truth[:, 0] | truth[:, 5]
    plain = beam_search(UnitSearch(cm, _unit(unit), "category"), 3, 5)
    assert plain.formula == leaf(0).join(OR, leaf(5)) and plain.iou == pytest.approx(1.0)
    assert 0.5 < plain.iou1 < 0.9
    strict = beam_search(UnitSearch(cm, _unit(unit), "category", length_penalty=0.5), 3, 5)
    assert strict.formula == leaf(0) and strict.score == strict.iou == strict.iou1
    mild = beam_search(UnitSearch(cm, _unit(unit), "category", length_penalty=0.001), 3, 5)
    assert mild.formula == plain.formula and mild.score == pytest.approx(mild.iou * 0.999)


def test_unit_without_any_overlap() -> None:
    cm, truth = _cm(10)
    res = beam_search(UnitSearch(cm, _unit(np.zeros_like(truth[:, 0])), "category"), 3, 5)
    assert res.formula is None and res.iou == 0.0 and res.label1 == -1


def test_unit_mask_matches_dissection_arithmetic() -> None:
    rng = np.random.default_rng(11)
    feats = rng.standard_normal((9, 7, 7)).astype(np.float32)
    t = float(np.quantile(feats.astype(np.float64), 0.99))
    um = unit_mask(3, feats, t, (112, 112), max_elems=112 * 112 * 2)  # chunks of 2 images
    up = F.interpolate(torch.from_numpy(feats)[:, None], size=(112, 112), mode="bilinear",
                       align_corners=False).reshape(9, -1).numpy().astype(np.float64)  # fmt: skip
    ref = up > t
    keep = np.flatnonzero(ref.any(axis=1))
    assert um.unit == 3 and np.array_equal(um.images, keep)
    assert np.array_equal(unpack(um.words, 112 * 112), ref[keep])
    assert np.array_equal(um.sizes, ref[keep].sum(axis=1))
