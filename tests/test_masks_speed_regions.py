"""The fast paths of converters/_masks.py give what the plain definitions give.

:func:`regions` (runs of a plane, one radix sort of their ranks) against a reference that
finds each value's pixels with ``np.nonzero``; :func:`colour_codes` and :func:`lookup`
against per-pixel arithmetic and dict look-ups; :func:`read_plane` keeps the PNG's own type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import _masks
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from conceptkit.errors import FormatError


def reference_regions(
    plane: np.ndarray, skip: set[int]
) -> list[tuple[int, tuple[int, int], int, np.ndarray]]:
    """(value, origin, count, mask) of each value not in ``skip``, ascending, by np.nonzero."""
    out = []
    for value in sorted(set(plane.reshape(-1).tolist())):
        if value in skip:
            continue
        ys, xs = np.nonzero(plane == value)
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        mask = plane[y0 : y1 + 1, x0 : x1 + 1] == value
        out.append((value, (int(x0), int(y0)), len(ys), mask))
    return out


def check(plane: np.ndarray, skip: set[int]) -> None:
    got = list(_masks.regions(plane, skip))
    want = reference_regions(plane, skip)
    assert [r.value for r in got] == [w[0] for w in want]
    for r, (_value, origin, count, mask) in zip(got, want):
        assert type(r.value) is int and r.origin == origin and r.count == count
        assert r.mask.dtype == np.bool_ and r.mask.flags.c_contiguous
        np.testing.assert_array_equal(r.mask, mask)


def test_hand_computed_plane() -> None:
    plane = np.array(
        [
            [0, 0, 5, 5],
            [7, 0, 5, 0],
            [7, 7, 0, 5],
        ],
        dtype=np.uint8,
    )
    got = {r.value: r for r in _masks.regions(plane, {0})}
    assert sorted(got) == [5, 7]
    assert got[5].origin == (2, 0) and got[5].count == 4
    np.testing.assert_array_equal(got[5].mask, [[1, 1], [1, 0], [0, 1]])
    assert got[7].origin == (0, 1) and got[7].count == 3
    np.testing.assert_array_equal(got[7].mask, [[1, 0], [1, 1]])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64])
def test_dtypes_and_shapes(dtype: type) -> None:
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 9), (9, 1), (4, 7), (31, 17)]:
        check(rng.integers(0, 4, size=shape).astype(dtype), set())
        check(rng.integers(0, 100, size=shape).astype(dtype), {0, 3})


def test_a_value_that_wraps_across_rows_is_split_into_runs() -> None:
    # the last pixel of row 0 and the first of row 1 hold the same value: two runs, and the
    # box spans both columns
    plane = np.array([[0, 0, 2], [2, 0, 0]], dtype=np.uint8)
    (r,) = list(_masks.regions(plane, {0}))
    assert r.origin == (0, 0) and r.count == 2
    np.testing.assert_array_equal(r.mask, [[0, 0, 1], [1, 0, 0]])


def test_wide_sparse_and_negative_values() -> None:
    rng = np.random.default_rng(5)
    plane = rng.choice(np.array([-70000, -3, 0, 12, 1 << 23, (1 << 31) - 1]), size=(40, 30))
    check(plane.astype(np.int64), {12})
    check((rng.integers(0, 1 << 24, size=(20, 20))).astype(np.uint32), set())


def test_many_values_noise() -> None:
    rng = np.random.default_rng(9)
    check(rng.integers(0, 3000, size=(64, 48)).astype(np.uint16), {0})


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.int64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.integers(0, 5),
    ),
    st.sets(st.integers(0, 5), max_size=3),
)
def test_regions_match_reference(plane: np.ndarray, skip: set[int]) -> None:
    check(plane, skip)


def test_colour_codes_and_lookup() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    codes = _masks.colour_codes(rgb)
    assert codes.dtype == np.uint32
    want = [[(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in row] for row in rgb.tolist()]
    assert codes.tolist() == want
    table = {c: i for i, c in enumerate(sorted(set(codes.reshape(-1).tolist())))}
    mapped = _masks.lookup(codes, table, file=Path("m.png"), place="pixels", what="mask")
    assert mapped.tolist() == [[table[c] for c in row] for row in want]


def test_lookup_names_the_first_pixel_of_a_missing_value() -> None:
    plane = np.array([[1, 1, 2], [9, 1, 9]], dtype=np.uint8)
    with pytest.raises(FormatError) as err:
        _masks.lookup(plane, {1: 0, 2: 1}, file=Path("m.png"), place="pixels", what="mask")
    assert "value 9 at pixel (row 1, column 0)" in str(err.value)
    # past the table's last key, and a colour named as one
    codes = np.array([[5, (1 << 20) + 7]], dtype=np.uint32)
    with pytest.raises(FormatError) as err:
        _masks.lookup(codes, {5: 0}, file=Path("m.png"), place="p", what="mask", describe=True)
    assert "value (16, 0, 7) at pixel (row 0, column 1)" in str(err.value)


@pytest.mark.parametrize(
    ("mode", "values", "dtype"),
    [
        ("L", [0, 7, 255], np.uint8),
        ("I;16", [0, 300, 65535], np.uint16),
        ("1", [0, 1, 1], np.uint8),
    ],
)
def test_read_plane_keeps_the_png_type(
    tmp_path: Path, mode: str, values: list[int], dtype: type
) -> None:
    arr = np.array([values, values[::-1]], dtype=np.uint16 if mode == "I;16" else np.uint8)
    path = tmp_path / "m.png"
    if mode == "1":
        Image.fromarray(arr.astype(bool)).save(path)
    else:
        Image.fromarray(arr).save(path)
    plane = _masks.read_plane(path, file=path, place="header", what="mask")
    assert plane.dtype == dtype and plane.shape == (2, 3)
    assert plane.tolist() == [values, values[::-1]]


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_read_labels_gives_colour_codes(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    arr = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=2) if mode == "RGBA" else rgb
    path = tmp_path / "c.png"
    Image.fromarray(arr, mode).save(path)
    codes, colour = _masks.read_labels(path, file=path, place="header", what="mask")
    assert colour is True and codes.dtype == np.uint32 and codes.shape == (5, 7)
    assert codes.tolist() == _masks.colour_codes(rgb).tolist()
    grey = tmp_path / "g.png"
    Image.fromarray(rgb[..., 0]).save(grey)
    values, colour = _masks.read_labels(grey, file=grey, place="header", what="mask")
    assert colour is False and values.dtype == np.uint8 and values.tolist() == rgb[..., 0].tolist()
