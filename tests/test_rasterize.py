"""Pixel conventions, painting order, resampling: hand-computed cases and labelme2voc's pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import ReadOptions
from conceptkit.converters.labelme import read
from PIL import Image, ImageDraw

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.rasterize import (
    IGNORE,
    check_shape,
    crop_box,
    half_size,
    instance_plane,
    paint,
    resample_labels,
    shape_mask,
)


def sq(kind: str = "polygon", conv: str = "inclusive", **kw: object) -> Shape:
    pts = np.array([[0, 0], [9, 0], [9, 9], [0, 9]], dtype=float)
    return Shape(label="a", kind=kind, points=pts, convention=conv, **kw)  # type: ignore[arg-type]


def test_square_is_100_pixels_inclusive_and_81_center() -> None:
    assert shape_mask(sq(), 20, 20).sum() == 100
    assert shape_mask(sq(), 20, 20)[:10, :10].all()
    assert shape_mask(sq(), 20, 20, convention="center").sum() == 81
    assert shape_mask(sq(conv="center"), 20, 20)[:9, :9].all()


def test_rectangle_corners_in_any_order() -> None:
    r = Shape("a", "rectangle", np.array([[9.0, 9.0], [2.0, 3.0]]))
    m = shape_mask(r, 20, 20)
    assert m.sum() == 8 * 7 and m[3:10, 2:10].all()
    assert shape_mask(r, 20, 20, convention="center").sum() == 7 * 6


def test_circle_center_convention_by_pixel_centres() -> None:
    # centres (j+.5, i+.5) within 2 of (5, 5): offsets (.5,.5), (.5,1.5), (1.5,.5) per quadrant
    c = Shape("a", "circle", np.array([[5.0, 5.0], [7.0, 5.0]]), convention="center")
    m = shape_mask(c, 12, 12)
    assert m.sum() == 12
    assert m[3:7, 3:7].sum() == 12


def test_circle_inclusive_is_pil_ellipse() -> None:
    c = Shape("a", "circle", np.array([[20.3, 15.2], [24.0, 18.0]]))
    d = float(np.hypot(3.7, 2.8))
    im = Image.new("L", (40, 30))
    ImageDraw.Draw(im).ellipse([20.3 - d, 15.2 - d, 20.3 + d, 15.2 + d], outline=1, fill=1)
    assert (shape_mask(c, 30, 40) == np.asarray(im).astype(bool)).all()


@pytest.mark.parametrize("kind", ["line", "linestrip", "point"])
def test_strokes_and_points_match_labelme_defaults(kind: str) -> None:
    pts = {
        "line": [[3, 4], [30, 20]],
        "linestrip": [[3, 4], [30, 20], [35, 5]],
        "point": [[20, 12]],
    }
    s = Shape("a", kind, np.array(pts[kind], dtype=float))  # type: ignore[arg-type]
    im = Image.new("L", (40, 30))
    draw = ImageDraw.Draw(im)
    if kind == "point":
        draw.ellipse([15, 7, 25, 17], outline=1, fill=1)
    else:
        draw.line([tuple(p) for p in pts[kind]], fill=1, width=10)
    assert (shape_mask(s, 30, 40) == np.asarray(im).astype(bool)).all()


def _pil_reference(kind: str, pts: np.ndarray, w: int, h: int) -> np.ndarray:
    """labelme's shape_to_mask drawn independently on a full canvas."""
    im = Image.new("L", (w, h))
    d = ImageDraw.Draw(im)
    xy = [tuple(p) for p in pts.tolist()]
    if kind == "polygon":
        d.polygon(xy, outline=1, fill=1)
    elif kind == "rectangle":
        (a, b), (c, e) = xy
        d.rectangle([min(a, c), min(b, e), max(a, c), max(b, e)], outline=1, fill=1)
    elif kind == "circle":
        (cx, cy), (px, py) = xy
        r = float(np.hypot(cx - px, cy - py))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif kind == "linestrip":
        d.line(xy, fill=1, width=10)
    else:
        cx, cy = xy[0]
        d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], outline=1, fill=1)
    return np.asarray(im).astype(bool)


def test_patches_equal_full_canvas_rasterisation() -> None:
    """Cropping to the shape's box must not move a pixel, in both conventions, even with
    1- and 2-decimal coordinates (rounding ties), shapes crossing the edges, a shared canvas."""
    from pycocotools import mask as mu

    rng = np.random.default_rng(5)
    kinds = ["polygon", "rectangle", "circle", "linestrip", "point"]
    shapes, refs = [], []
    for t in range(600):
        pts = rng.uniform(-8, 75, size=(int(rng.integers(3, 10)), 2))
        if t % 3:
            pts = pts.round(t % 3)
        kind = kinds[t % 5]
        pts = pts[: {"rectangle": 2, "circle": 2, "point": 1}.get(kind, len(pts))]
        s = Shape("a", kind, pts)  # type: ignore[arg-type]
        ref = _pil_reference(kind, pts, 64, 48)
        assert (shape_mask(s, 48, 64) == ref).all(), (t, kind)
        shapes.append(s)
        refs.append(ref)
        if kind == "polygon":
            coco = mu.decode(mu.merge(mu.frPyObjects([pts.reshape(-1).tolist()], 48, 64)))
            assert (shape_mask(s, 48, 64, "center") == coco.astype(bool)).all(), t
    # painting many shapes through one reused canvas leaks nothing between them
    ann = _ann(*shapes[:40])
    plane = paint(ann, lambda s: "object", lambda s: s.order + 1, 48, 64)["object"][0]
    expected = np.zeros((48, 64), dtype=np.int32)
    for i, ref in enumerate(refs[:40]):
        expected[ref] = i + 1
    assert (plane == expected).all()


def test_mask_pasted_at_origin_and_clipped() -> None:
    patch = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    s = Shape("a", "mask", mask=patch, origin=(8, 4))
    m = shape_mask(s, 6, 10)
    assert m.sum() == 3  # only columns 8, 9 and rows 4, 5 fit
    assert m[4, 8] and not m[4, 9] and m[5, 8] and m[5, 9]


def _ann(*shapes: Shape) -> ImageAnnotation:
    for i, s in enumerate(shapes):
        s.order = i
    return ImageAnnotation("x.jpg", 20, 20, shapes=list(shapes))


def _rect(label: str, x0: float, y0: float, x1: float, y1: float, z: int = 0) -> Shape:
    return Shape(label, "rectangle", np.array([[x0, y0], [x1, y1]]), z=z)


NUM = {"a": 1, "b": 2, "c": 3}


def test_later_shape_in_front_then_z_order() -> None:
    a, b = _rect("a", 0, 0, 9, 9), _rect("b", 5, 5, 14, 14)
    planes = paint(_ann(a, b), lambda s: "object", lambda s: NUM[s.label], 20, 20)
    p = planes["object"]
    assert len(p) == 1 and p[0][7, 7] == 2 and p[0][2, 2] == 1 and p[0][12, 12] == 2
    a.z = 1  # now a is in front although earlier
    p = paint(_ann(a, b), lambda s: "object", lambda s: NUM[s.label], 20, 20)["object"]
    assert p[0][7, 7] == 1


def test_planes_mode_keeps_hidden_labels() -> None:
    a, b, c = _rect("a", 0, 0, 9, 9), _rect("b", 5, 5, 14, 14), _rect("c", 7, 7, 8, 8)
    front = paint(_ann(a, b, c), lambda s: "object", lambda s: NUM[s.label], 20, 20)
    planes = paint(
        _ann(a, b, c), lambda s: "object", lambda s: NUM[s.label], 20, 20, overlap="planes"
    )["object"]
    assert len(planes) == 3
    assert (planes[0] == front["object"][0]).all()
    assert planes[0][7, 7] == 3 and planes[1][7, 7] == 2 and planes[2][7, 7] == 1
    assert planes[1][6, 6] == 1 and planes[2][6, 6] == 0
    # every label keeps all of its pixels somewhere
    for s in (a, b, c):
        m = shape_mask(s, 20, 20)
        assert (np.stack(planes) == NUM[s.label]).any(axis=0)[m].all()


def test_ignore_clears_behind_not_in_front() -> None:
    a, ig, b = _rect("a", 0, 0, 9, 9), _rect("__ignore__", 3, 3, 12, 12), _rect("b", 10, 10, 14, 14)
    planes = paint(
        _ann(a, ig, b),
        lambda s: IGNORE if s.label == "__ignore__" else ("part" if s.label == "b" else "object"),
        lambda s: NUM.get(s.label, 0),
        20,
        20,
    )
    assert planes["object"][0][5, 5] == 0 and planes["object"][0][1, 1] == 1
    assert planes["part"][0][11, 11] == 2


def test_resample_is_nearest_on_labels() -> None:
    plane = np.arange(16, dtype=np.int32).reshape(4, 4)
    assert resample_labels(plane, 2, 2).tolist() == [[5, 7], [13, 15]]
    assert resample_labels(plane, 8, 8)[::2, ::2].tolist() == plane.tolist()
    # matches PIL's NEAREST
    big = np.random.default_rng(1).integers(0, 9, size=(37, 53)).astype(np.int32)
    pil = np.asarray(Image.fromarray(big).resize((20, 11), Image.Resampling.NEAREST))
    assert (resample_labels(big, 11, 20) == pil).all()
    assert crop_box(480, 640) == (80, 0, 560, 480)
    assert resample_labels(plane, 2, 2, box=(1, 0, 3, 2)).tolist() == [[1, 2], [5, 6]]


def test_half_size_rounds_as_broden() -> None:
    assert (half_size(224), half_size(227), half_size(375)) == (112, 113, 187)


def test_check_shape_errors_and_warnings() -> None:
    with pytest.raises(FormatError, match="at least 3 points, found 2") as e:
        check_shape(
            Shape("a", "polygon", np.array([[0.0, 0], [1, 1]]), place="$.shapes[3].points"), 10, 10
        )
    assert str(e.value).startswith("$.shapes[3].points: ")
    with pytest.raises(FormatError, match="far outside"):
        check_shape(Shape("a", "polygon", np.array([[0.0, 0], [500, 1], [1, 5]])), 100, 100)
    assert (
        check_shape(Shape("a", "polygon", np.array([[-3.0, 0], [104, 1], [1, 5]])), 100, 100) == []
    )
    bow = Shape("a", "polygon", np.array([[0.0, 0], [10, 10], [10, 0], [0, 10]]), place="p")
    assert check_shape(bow, 20, 20) == ["p: self-intersecting polygon, filled even-odd"]
    # a bow-tie fills its two triangles in both conventions
    for conv in ("inclusive", "center"):
        m = shape_mask(bow, 20, 20, conv)  # type: ignore[arg-type]
        assert m[5, 1] and m[5, 9] and not m[1, 5] and not m[9, 5]


# ----------------------------------------------------------------------------- labelme2voc


def _boundary(ref: np.ndarray) -> np.ndarray:
    """Pixels with a differently-labelled 8-neighbour."""
    pad = np.pad(ref, 1, mode="edge")
    out = np.zeros(ref.shape, dtype=bool)
    h, w = ref.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] != ref
    return out


@pytest.mark.parametrize("example", ["instance_segmentation", "semantic_segmentation"])
def test_labelme_fixtures_match_labelme2voc(formats_dir: Path, example: str) -> None:
    base = formats_dir / "labelme" / example
    names = [n for n in (base / "data_dataset_voc/class_names.txt").read_text().split("\n") if n]
    total = diff_total = 0
    for ann in read(base / "data_annotated", ReadOptions()):
        stem = ann.key.rsplit(".", 1)[0]
        ref = np.load(base / f"data_dataset_voc/SegmentationClassNpy/{stem}.npy")
        planes = paint(
            ann,
            lambda s: IGNORE if s.label == "__ignore__" else "object",
            lambda s: names.index(s.label),
            ann.height,
            ann.width,
        )
        got = planes["object"][0]
        ref0 = np.where(ref < 0, 0, ref)  # __ignore__ (-1) is unlabelled in Broden
        diff = got != ref0
        assert not (diff & ~_boundary(ref0)).any(), f"{stem}: a difference off a boundary"
        total += diff.size
        diff_total += int(diff.sum())
        if example == "instance_segmentation":
            obj = np.load(base / f"data_dataset_voc/SegmentationObjectNpy/{stem}.npy")
            ins = instance_plane(ann, ann.height, ann.width)
            assert not ((ins != obj) & ~_boundary(obj)).any()
            assert (ins != obj).sum() <= diff.sum()
    assert 1 - diff_total / total >= 0.9999
    assert diff_total <= 1  # Pillow moved one boundary pixel of 2011_000006


def test_group_id_instance_is_one_object(formats_dir: Path) -> None:
    base = formats_dir / "labelme/instance_segmentation"
    ann = next(
        a for a in read(base / "data_annotated", ReadOptions()) if a.key == "2011_000003.jpg"
    )
    ins = instance_plane(ann, ann.height, ann.width)
    grouped = [s for s in ann.shapes if s.instance == "0"]
    assert len(grouped) == 2
    ids = {int(np.bincount(ins[shape_mask(s, ann.height, ann.width)]).argmax()) for s in grouped}
    assert len(ids) == 1
    obj = np.asarray(Image.open(base / "data_dataset_voc/SegmentationObject/2011_000003.png"))
    assert set(np.unique(ins)) == set(np.unique(obj)) - {255}
