"""Painting on the output grid (``paint(..., grid=...)``) gives the full-size planes, sampled.

convert paints each image's planes at their nearest-neighbour samples only; these tests check
that this is exactly ``resample_labels`` of the full-size painting, for masks, polygons and
other kinds, ignore regions, both overlap modes, stretch and crop, down- and upsampling.
"""

from __future__ import annotations

import numpy as np
import pytest

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.rasterize import IGNORE, crop_box, paint, resample_labels, sample_grid


def random_shapes(rng: np.random.Generator, h: int, w: int, n: int) -> list[Shape]:
    shapes = []
    for k in range(n):
        kind = ["mask", "polygon", "rectangle", "circle", "mask"][k % 5]
        label = f"l{int(rng.integers(0, 4))}"
        if kind == "mask":
            mh, mw = int(rng.integers(1, h)), int(rng.integers(1, w))
            mask = rng.random((mh, mw)) < 0.6
            # partly outside the image now and then
            origin = (int(rng.integers(-3, w - 1)), int(rng.integers(-3, h - 1)))
            shapes.append(Shape(label, "mask", mask=mask, origin=origin, order=k))
            continue
        pts = rng.uniform(-2, [w + 2, h + 2], size=(2 if kind != "polygon" else 5, 2))
        conv = "center" if k % 3 == 0 else "inclusive"
        shapes.append(Shape(label, kind, points=pts, order=k, z=int(k % 4 == 0), convention=conv))  # type: ignore[arg-type]
    return shapes


def category(shape: Shape) -> str | None:
    return {"l0": "object", "l1": "part", "l2": IGNORE, "l3": None}[shape.label]


def number(shape: Shape) -> int:
    return 1 + shape.order % 3


@pytest.mark.parametrize("overlap", ["front", "planes"])
@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w", "crop"),
    [
        (48, 64, 11, 13, False),
        (48, 64, 16, 16, True),
        (9, 7, 20, 15, False),
        (30, 30, 30, 30, False),
    ],
)
def test_grid_painting_is_the_sampled_full_painting(
    overlap: str, h: int, w: int, out_h: int, out_w: int, crop: bool
) -> None:
    rng = np.random.default_rng(h * 1000 + out_h)
    box = crop_box(h, w) if crop else None
    for trial in range(20):
        ann = ImageAnnotation(key="k", width=w, height=h, shapes=random_shapes(rng, h, w, 12))
        full = paint(ann, category, number, h, w, overlap=overlap)
        grid = sample_grid(h, w, out_h, out_w, box)
        small = paint(ann, category, number, h, w, overlap=overlap, grid=grid)
        want = {
            cat: [p for p in (resample_labels(p, out_h, out_w, box) for p in stack) if p.any()]
            for cat, stack in full.items()
        }
        want = {cat: stack for cat, stack in want.items() if stack}
        assert list(small) == list(want), trial
        for cat, stack in small.items():
            got = [p for p in stack if p.any()]
            assert len(got) == len(want[cat]), (trial, cat)
            for a, b in zip(got, want[cat]):
                assert a.dtype == np.int32 and a.shape == (out_h, out_w)
                np.testing.assert_array_equal(a, b)


def test_hand_computed_grid() -> None:
    # a 4x4 image sampled at rows (1, 3), columns (0, 2): the mask covers (1..2, 0..1)
    mask = np.ones((2, 2), dtype=bool)
    ann = ImageAnnotation(
        key="k", width=4, height=4, shapes=[Shape("a", "mask", mask=mask, origin=(0, 1))]
    )
    grid = (np.array([1, 3]), np.array([0, 2]))
    (plane,) = paint(ann, lambda s: "object", lambda s: 7, 4, 4, grid=grid)["object"]
    assert plane.tolist() == [[7, 0], [0, 0]]
    rows, cols = sample_grid(4, 4, 2, 2)
    assert rows.tolist() == [1, 3] and cols.tolist() == [1, 3]


def test_check_shape_of_a_mask_matches_the_general_path() -> None:
    """The readers' masks (no points) take a short path; a mask given its points as a list
    takes the general one: both give the same verdict and message."""
    from conceptkit.errors import FormatError
    from conceptkit.rasterize import check_shape

    def verdict(shape: Shape, h: int, w: int, margin: float | None) -> str:
        try:
            return repr(check_shape(shape, h, w, margin))
        except FormatError as exc:
            return f"{exc.message} @ {exc.place}"

    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(300):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        mask = np.ones((int(rng.integers(1, 30)), int(rng.integers(1, 30))), dtype=bool)
        origin = (int(rng.integers(-40, 90)), int(rng.integers(-40, 90)))
        margin = None if rng.random() < 0.5 else float(rng.integers(0, 20))
        fast = Shape("a", "mask", mask=mask, origin=origin, place="class a")
        general = Shape("a", "mask", points=[], mask=mask, origin=origin, place="class a")  # type: ignore[arg-type]
        got, want = verdict(fast, h, w, margin), verdict(general, h, w, margin)
        assert got == want
        seen.add(got == "[]")
    assert seen == {True, False}  # both outcomes were tried
    for bad in (None, np.ones(3, dtype=bool)):
        with pytest.raises(FormatError, match="needs a 2-D mask"):
            check_shape(Shape("a", "mask", mask=bad), 10, 10)
