"""Shapes -> pixels: the one place for pixel conventions, z-order, holes and resampling.

Two conventions (see DESIGN.md, "Pixel conventions"):

- ``inclusive`` (labelme / PIL, what ``labelme2voc`` writes): the pixel grid has pixel (i, j)
  centred on the point (j, i); shapes are drawn with ``PIL.ImageDraw`` with outline and fill, so
  the boundary is painted (the square (0,0)-(9,9) is 100 pixels). Per kind, as labelme's
  ``shape_to_mask``: polygon / oriented_rectangle -> polygon; rectangle -> rectangle; circle ->
  ellipse of radius = |centre - point|; line / linestrip -> a line of width 10 (``Shape.width``);
  point -> a disc of radius 5; ellipse -> PIL ellipse (polygon of 72 vertices when rotated).
- ``center`` (pycocotools, what COCO and CVAT mask exports give): pixel (i, j) covers
  [j, j+1) x [i, i+1); polygons and rectangles go through ``pycocotools.mask.frPyObjects`` +
  ``decode`` (the square (0,0)-(9,9) is 81 pixels); circles, ellipses and points take the
  pixels whose centre (j + 0.5, i + 0.5) is inside; open paths are buffered by width / 2 into a
  polygon first.

``mask`` shapes are pasted at their origin in both conventions. Self-intersecting polygons (a
bow-tie, a loop) are found with shapely and warned about (:func:`check_shape`,
:func:`self_intersecting`) and filled by each tool's own rasteriser, PIL or pycocotools, which
both fill even-odd: the region shapely's ``make_valid`` repair encloses. Drawing the repaired
parts instead moved 24 boundary pixels of labelme2voc's 2011_000006 and one pycocotools pixel of
a COCO test polygon; the tools' own fill moves none.

Every shape is rasterised into a patch around its bounding box (``shape_patch``), so an image
with many small shapes costs little more than its planes. The tools' rounding depends on the
coordinates themselves (a shifted coordinate can land on the other side of a rounding tie:
pycocotools scales by 5 first; PIL moved 2 of 600 test polygons by a pixel), so coordinates are
never shifted: ``inclusive`` draws on one full-size PIL canvas per image and reads back the
window (then clears it), ``center`` runs pycocotools' encoder on the full canvas and decodes
only the window from its run lengths.

Resampling of label planes is nearest-neighbour on labels, never interpolation: output pixel
(i, j) of an (h, w) plane takes the source pixel (floor((i + 0.5) * H / h), floor((j + 0.5) * W /
w)), the same sampling as PIL's ``Image.NEAREST``. Planes are rasterised at the image's native
size first, then resampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conceptkit.annotations import Convention, ImageAnnotation, Shape
from conceptkit.errors import FormatError

#: labelme's ``shape_to_mask`` defaults.
LINE_WIDTH = 10.0
POINT_RADIUS = 5.0
#: vertices used for a rotated ellipse.
ELLIPSE_VERTICES = 72
#: ``category_of`` returns this for shapes that clear every plane (labelme's ``__ignore__``).
IGNORE = "*ignore*"


@dataclass
class Patch:
    """A shape's pixels: ``mask`` is ``(h, w) bool`` with its top-left pixel at (``y0``, ``x0``)."""

    y0: int
    x0: int
    mask: np.ndarray

    def full(self, height: int, width: int) -> np.ndarray:
        """The patch placed in an ``(height, width) bool`` array."""
        out = np.zeros((height, width), dtype=bool)
        h, w = self.mask.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.mask
        return out


# ----------------------------------------------------------------------------- geometry checks


def _polygon_like(shape: Shape) -> bool:
    return shape.kind in ("polygon", "oriented_rectangle")


def check_shape(
    shape: Shape,
    height: int,
    width: int,
    margin: float | None = None,
    intersections: bool = True,
) -> list[str]:
    """Check a shape against an image of ``height x width``; return warnings, raise on errors.

    Errors (FormatError with ``shape.place``): too few points for the kind, non-finite
    coordinates, coordinates farther outside the image than ``margin`` (default: 10% of the
    larger side, at least 16 pixels). Warnings: self-intersecting polygons (filled even-odd,
    as the tools do), only when ``intersections``
    (:func:`self_intersecting` tests many shapes at once, faster).
    """
    m = max(16.0, 0.1 * max(height, width)) if margin is None else margin
    if shape.kind == "mask" and isinstance(shape.points, np.ndarray) and not shape.points.size:
        _check_mask(shape, height, width, m)  # the readers' pixel masks: no array arithmetic
        return []
    pts = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    need = {
        "polygon": 3,
        "oriented_rectangle": 3,
        "rectangle": 2,
        "circle": 2,
        "ellipse": 2,
        "line": 2,
        "linestrip": 2,
        "point": 1,
        "points": 1,
        "mask": 0,
    }[shape.kind]
    if len(pts) < need:
        raise FormatError(
            f"a {shape.kind} needs at least {need} points, found {len(pts)}", place=shape.place
        )
    if not np.isfinite(pts).all():
        raise FormatError("coordinates must be finite numbers", place=shape.place)
    if shape.kind == "mask":
        if shape.mask is None or np.asarray(shape.mask).ndim != 2:
            raise FormatError("a mask shape needs a 2-D mask", place=shape.place)
        ox, oy = shape.origin
        mh, mw = np.asarray(shape.mask).shape
        pts = np.array([[ox, oy], [ox + mw - 1, oy + mh - 1]], dtype=np.float64)
    if len(pts):
        bad = (
            (pts[:, 0] < -m) | (pts[:, 0] > width + m) | (pts[:, 1] < -m) | (pts[:, 1] > height + m)
        )
        if bad.any():
            x, y = pts[int(np.argmax(bad))]
            raise FormatError(
                f"point ({x:g}, {y:g}) lies far outside the {width}x{height} image",
                place=shape.place,
            )
    if intersections and self_intersecting([shape])[0]:
        return [f"{shape.place}: self-intersecting polygon, filled even-odd"]
    return []


def _check_mask(shape: Shape, height: int, width: int, margin: float) -> None:
    """:func:`check_shape` of a ``mask`` shape without points: its first and last pixel lie
    within ``margin`` of the image (the same errors, in the same order)."""
    if shape.mask is None or np.ndim(shape.mask) != 2:
        raise FormatError("a mask shape needs a 2-D mask", place=shape.place)
    ox, oy = shape.origin
    mh, mw = np.shape(shape.mask)
    for x, y in ((float(ox), float(oy)), (float(ox + mw - 1), float(oy + mh - 1))):
        if x < -margin or x > width + margin or y < -margin or y > height + margin:
            raise FormatError(
                f"point ({x:g}, {y:g}) lies far outside the {width}x{height} image",
                place=shape.place,
            )


def self_intersecting(shapes: list[Shape]) -> list[bool]:
    """For each shape: is it a polygon whose ring crosses itself (shapely: not valid)?"""
    idx = [i for i, s in enumerate(shapes) if _polygon_like(s) and len(s.points) >= 3]
    out = [False] * len(shapes)
    if idx:
        import shapely

        rings = [np.asarray(shapes[i].points, dtype=np.float64).reshape(-1, 2) for i in idx]
        which = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
        polys = shapely.polygons(shapely.linearrings(np.concatenate(rings), indices=which))
        for i, valid in zip(idx, shapely.is_valid(polys).tolist()):
            out[i] = not valid
    return out


# ----------------------------------------------------------------------------- one shape


def _bbox(shape: Shape) -> tuple[float, float, float, float]:
    """Float (xmin, ymin, xmax, ymax) covering every pixel the shape may touch."""
    pts = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    if shape.kind == "mask":
        ox, oy = shape.origin
        h, w = np.asarray(shape.mask).shape
        return ox, oy, ox + w, oy + h
    if shape.kind == "circle":
        (cx, cy), (px, py) = pts[0], pts[1]
        r = math.hypot(cx - px, cy - py)
        return cx - r, cy - r, cx + r, cy + r
    if shape.kind == "ellipse":
        (cx, cy), (ex, ey) = pts[0], pts[1]
        r = max(abs(ex - cx), abs(ey - cy))
        return cx - r, cy - r, cx + r, cy + r
    pad = 0.0
    if shape.kind in ("line", "linestrip"):
        pad = (shape.width or LINE_WIDTH) / 2 + 1
    elif shape.kind in ("point", "points"):
        pad = shape.width / 2 if shape.width else POINT_RADIUS
    return (
        float(pts[:, 0].min()) - pad,
        float(pts[:, 1].min()) - pad,
        float(pts[:, 0].max()) + pad,
        float(pts[:, 1].max()) + pad,
    )


def _window(shape: Shape, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Integer (x0, y0, x1, y1) patch window inside the image, or None when empty."""
    xmin, ymin, xmax, ymax = _bbox(shape)
    x0 = max(0, math.floor(xmin) - 2)
    y0 = max(0, math.floor(ymin) - 2)
    x1 = min(width, math.ceil(xmax) + 3)
    y1 = min(height, math.ceil(ymax) + 3)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _ellipse_polygon(cx: float, cy: float, rx: float, ry: float, angle: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)
    a = math.radians(angle)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack(
        [cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)], axis=1
    )


class Canvas:
    """A reusable full-size PIL canvas: shapes are drawn with their image coordinates (PIL's
    rounding depends on them, so they are never shifted) and read back window by window."""

    def __init__(self, height: int, width: int) -> None:
        from PIL import Image, ImageDraw

        self.image = Image.new("L", (width, height), 0)
        self.draw = ImageDraw.Draw(self.image)

    def take(self, win: tuple[int, int, int, int]) -> np.ndarray:
        """The window (x0, y0, x1, y1) as ``bool``; the window is cleared for the next shape."""
        out = np.asarray(self.image.crop(win), dtype=np.uint8).astype(bool)
        self.draw.rectangle([win[0], win[1], win[2] - 1, win[3] - 1], fill=0)
        return out


def _inclusive(
    shape: Shape, pts: np.ndarray, canvas: Canvas, win: tuple[int, int, int, int]
) -> np.ndarray:
    """labelme's shape_to_mask drawn on ``canvas``, returned for the window ``win``."""
    draw = canvas.draw
    xy = [(float(x), float(y)) for x, y in pts]
    kind = shape.kind
    if kind in ("polygon", "oriented_rectangle"):
        # PIL fills a self-intersecting ring even-odd, as labelme2voc does (see the docstring).
        draw.polygon(xy, outline=1, fill=1)
    elif kind == "rectangle":
        (xa, ya), (xb, yb) = xy[0], xy[1]
        draw.rectangle([min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)], outline=1, fill=1)
    elif kind == "circle":
        (cx, cy), (px, py) = xy[0], xy[1]
        d = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif kind == "ellipse":
        (cx, cy), (ex, ey) = xy[0], xy[1]
        rx, ry = abs(ex - cx), abs(ey - cy)
        if shape.angle % 360 == 0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=1, fill=1)
        else:
            poly = _ellipse_polygon(cx, cy, rx, ry, shape.angle)
            draw.polygon([tuple(p) for p in poly.tolist()], outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        draw.line(xy, fill=1, width=int(round(shape.width or LINE_WIDTH)))
    elif kind in ("point", "points"):
        r = shape.width / 2 if shape.width else POINT_RADIUS
        for cx, cy in xy:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:  # pragma: no cover - kinds are checked by the caller
        raise ValueError(kind)
    return canvas.take(win)


def _coco_polygon(
    rings: list[np.ndarray], h: int, w: int, win: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """pycocotools rasterisation of polygons (unioned) on an (h, w) canvas: the window ``win``
    = (x0, y0, x1, y1) of it (default the whole canvas).

    ``frPyObjects`` encodes each ring on the whole canvas with the original coordinates (its
    rounding is left as it is); only the window is decoded from each ring's run lengths
    (:func:`_rle_window`) and the windows are unioned, which is pixel for pixel what
    ``decode(merge(rles))`` gives, without writing the full canvas per shape.
    """
    from pycocotools import mask as mask_utils

    x0, y0, x1, y1 = (0, 0, w, h) if win is None else win
    flat = [np.asarray(r, dtype=np.float64).reshape(-1).tolist() for r in rings if len(r) >= 3]
    if not flat:
        return np.zeros((y1 - y0, x1 - x0), dtype=bool)
    out: np.ndarray | None = None
    for rle in mask_utils.frPyObjects(flat, h, w):
        part = _rle_window(_rle_counts(rle["counts"]), h, (x0, y0, x1, y1))
        out = part if out is None else out | part
    assert out is not None
    return out


def _rle_counts(text: bytes) -> np.ndarray:
    """The run lengths ``(m,) int64`` of a compressed COCO RLE string (``rleFrString``: 5 bits
    per character, least significant first, 0x20 = more to come, 0x10 of the last = negative;
    from the fourth run on, each is stored as its difference from the run two before)."""
    c = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    c -= 48
    last = np.flatnonzero((c & 0x20) == 0)  # the last character of each number
    first = np.empty_like(last)
    first[0] = 0
    first[1:] = last[:-1] + 1
    digit = np.arange(len(c)) - np.repeat(first, last - first + 1)
    x: np.ndarray = np.add.reduceat((c & 0x1F) << (5 * digit), first)
    negative = (c[last] & 0x10) != 0
    x[negative] -= np.int64(1) << (5 * (digit[last[negative]] + 1))
    x[3::2] = np.cumsum(x[1::2])[1:]
    x[4::2] = np.cumsum(x[2::2])[1:]
    return x


def _rle_window(counts: np.ndarray, h: int, win: tuple[int, int, int, int]) -> np.ndarray:
    """The window (x0, y0, x1, y1) ``(y1 - y0, x1 - x0) bool`` of the column-major run
    lengths ``counts`` (0s first, alternating) of an ``h``-row canvas, as ``rleDecode``
    writes them."""
    x0, y0, x1, y1 = win
    bounds = np.cumsum(counts)
    stop = bounds[1::2]  # the runs of 1s: [start, stop) in column-major pixel order
    start = bounds[0::2][: len(stop)]
    # the runs of a shape lie in its window's columns (the rest are cut off below)
    col, last = start // h, (stop - 1) // h
    span = last - col + 1
    if len(span) and int(span.max()) > 1:  # runs that go on into the next columns: cut
        run = np.repeat(np.arange(len(span)), span)
        cols = col[run] + np.arange(len(run)) - np.repeat(np.cumsum(span) - span, span)
        r0 = np.where(cols == col[run], start[run] - cols * h, 0)
        r1 = np.where(cols == last[run], stop[run] - cols * h, h)
        col = cols
    else:
        r0, r1 = start - col * h, stop - col * h
    r0 = np.maximum(r0, y0) - y0
    r1 = np.minimum(r1, y1) - y0
    ok = (r1 > r0) & (col >= x0) & (col < x1)
    rows = y1 - y0
    base = (col[ok] - x0) * (rows + 1)
    edges = np.zeros((x1 - x0) * (rows + 1), dtype=np.int8)
    edges[base + r0[ok]] = 1  # the pieces of one column are disjoint, in order
    edges[base + r1[ok]] -= 1
    inside = np.cumsum(edges, dtype=np.int8).view(np.bool_)
    out: np.ndarray = inside.reshape(x1 - x0, rows + 1)[:, :rows].T
    return out


def _center(
    shape: Shape, pts: np.ndarray, height: int, width: int, win: tuple[int, int, int, int]
) -> np.ndarray:
    """pycocotools / pixel-centre rasterisation of the window ``win`` = (x0, y0, x1, y1).

    ``pts`` are in image coordinates: pycocotools scales coordinates by 5 and rounds, so it
    runs on the whole ``height x width`` canvas with the original numbers (shifting them to the
    window first would move its rounding ties), and only the window is decoded.
    """
    kind = shape.kind
    x0, y0, x1, y1 = win
    h, w = y1 - y0, x1 - x0

    def coco(rings: list[np.ndarray]) -> np.ndarray:
        return _coco_polygon(rings, height, width, win)

    def centres() -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[y0:y1, x0:x1]
        return xx + 0.5, yy + 0.5

    if kind in ("polygon", "oriented_rectangle"):
        return coco([pts])
    if kind == "rectangle":
        (xa, ya), (xb, yb) = pts[0], pts[1]
        xa, xb = min(xa, xb), max(xa, xb)
        ya, yb = min(ya, yb), max(ya, yb)
        return coco([np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])])
    if kind in ("circle", "ellipse"):
        (cx, cy), (px, py) = pts[0], pts[1]
        if kind == "circle":
            rx = ry = math.hypot(cx - px, cy - py)
            a = 0.0
        else:
            rx, ry, a = abs(px - cx), abs(py - cy), math.radians(shape.angle)
        if rx <= 0 or ry <= 0:
            return np.zeros((h, w), dtype=bool)
        cx_grid, cy_grid = centres()
        dx, dy = cx_grid - cx, cy_grid - cy
        u = dx * math.cos(a) + dy * math.sin(a)
        v = -dx * math.sin(a) + dy * math.cos(a)
        return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    if kind in ("point", "points"):
        r = shape.width / 2 if shape.width else POINT_RADIUS
        out = np.zeros((h, w), dtype=bool)
        cx_grid, cy_grid = centres()
        for px, py in pts:
            out |= (cx_grid - px) ** 2 + (cy_grid - py) ** 2 <= r * r
        return out
    if kind in ("line", "linestrip"):
        from shapely.geometry import LineString

        geom = LineString(pts).buffer((shape.width or LINE_WIDTH) / 2, cap_style="flat")
        exteriors: list[np.ndarray] = [
            np.asarray(g.exterior.coords)[:-1]
            for g in getattr(geom, "geoms", [geom])
            if not g.is_empty
        ]
        return coco(exteriors)
    raise ValueError(kind)  # pragma: no cover


def shape_patch(
    shape: Shape,
    height: int,
    width: int,
    convention: Convention | None = None,
    canvas: Canvas | None = None,
) -> Patch | None:
    """The pixels of ``shape`` in an image of ``height x width``, cropped to its bounding box.

    ``convention``: None uses the shape's own. Returns None when nothing lies in the image.
    ``canvas``: a blank :class:`Canvas` of the image size to reuse (PIL drawing); it is left
    blank again.
    """
    conv = convention or shape.convention
    if shape.kind == "mask":
        m = np.asarray(shape.mask, dtype=bool)
        ox, oy = int(shape.origin[0]), int(shape.origin[1])
        y0, x0 = max(0, oy), max(0, ox)
        y1, x1 = min(height, oy + m.shape[0]), min(width, ox + m.shape[1])
        if y1 <= y0 or x1 <= x0:
            return None
        return Patch(y0, x0, m[y0 - oy : y1 - oy, x0 - ox : x1 - ox])
    win = _window(shape, height, width)
    if win is None:
        return None
    x0, y0, x1, y1 = win
    pts = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    if conv == "inclusive":
        mask = _inclusive(shape, pts, canvas or Canvas(height, width), win)
    elif conv == "center":
        mask = _center(shape, pts, height, width, win)
    else:
        raise ValueError(f"unknown pixel convention {conv!r}")
    return Patch(y0, x0, mask)


def shape_mask(
    shape: Shape, height: int, width: int, convention: Convention | None = None
) -> np.ndarray:
    """``(height, width) bool``: the pixels of ``shape`` (``convention`` None = the shape's own)."""
    patch = shape_patch(shape, height, width, convention)
    if patch is None:
        return np.zeros((height, width), dtype=bool)
    return patch.full(height, width)


# ----------------------------------------------------------------------------- painting


def paint(
    ann: ImageAnnotation,
    category_of: Callable[[Shape], str | None],
    number_of: Callable[[Shape], int],
    height: int,
    width: int,
    overlap: str = "front",
    convention: Convention | None = None,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Label planes of one image: ``{category: [(height, width) int32 plane, ...]}``.

    Shapes are taken in ``ann.painting_order()`` (back to front: higher ``z``, then later, in
    front). ``category_of(shape)``: the category, None to leave the shape out, or
    :data:`IGNORE` for a region that clears every plane behind it (labelme's ``__ignore__``).
    ``number_of(shape)``: its global label number (> 0).

    ``overlap="front"``: one plane per category, the front shape wins (labelme2voc's pixels).
    ``overlap="planes"``: plane 0 is the same; plane k holds, at each pixel, the k-th distinct
    label counted from the front, so no label is lost. Categories without pixels are absent.

    ``grid`` ``(rows, cols)``: non-decreasing source rows ``(h,)`` and columns ``(w,)``
    (:func:`sample_grid`); the planes are then ``(h, w)``: the full-size planes sampled at
    ``np.ix_(rows, cols)``, painted on those pixels only (every step above is per pixel, so the
    result is the same, and it costs the output's size, not the image's).
    """
    if overlap not in ("front", "planes"):
        raise ValueError(f"overlap must be 'front' or 'planes', not {overlap!r}")
    planes: dict[str, list[np.ndarray]] = {}
    blocked: np.ndarray | None = None
    canvas: Canvas | None = None
    size = (height, width) if grid is None else (len(grid[0]), len(grid[1]))
    for shape in reversed(ann.painting_order()):
        cat = category_of(shape)
        if cat is None:
            continue
        if (
            canvas is None
            and shape.kind != "mask"
            and (convention or shape.convention) == "inclusive"
        ):
            canvas = Canvas(height, width)
        patch = shape_patch(shape, height, width, convention, canvas)
        if patch is None or not patch.mask.any():
            continue
        m, ys, xs = _painted(patch, grid)
        if blocked is not None:
            m &= ~blocked[ys, xs]
        if cat == IGNORE:
            if blocked is None:
                blocked = np.zeros(size, dtype=bool)
            blocked[ys, xs] |= m
            continue
        stack = planes.setdefault(cat, [])
        _put(stack, m, ys, xs, number_of(shape), size, overlap == "front")
    return {cat: stack for cat, stack in planes.items() if any(p.any() for p in stack)}


def _painted(
    patch: Patch, grid: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, slice, slice]:
    """(a writable copy of the patch's pixels, its rows, its columns) in plane coordinates:
    the image's, or with ``grid`` the sampled pixels that fall in the patch (maybe none)."""
    h, w = patch.mask.shape
    if grid is None:
        ys, xs = slice(patch.y0, patch.y0 + h), slice(patch.x0, patch.x0 + w)
        return patch.mask.copy(), ys, xs
    rows, cols = grid
    i0, i1 = np.searchsorted(rows, (patch.y0, patch.y0 + h)).tolist()
    j0, j1 = np.searchsorted(cols, (patch.x0, patch.x0 + w)).tolist()
    m = patch.mask.take(rows[i0:i1] - patch.y0, axis=0).take(cols[j0:j1] - patch.x0, axis=1)
    return m, slice(i0, i1), slice(j0, j1)


def _put(
    stack: list[np.ndarray],
    m: np.ndarray,
    ys: slice,
    xs: slice,
    number: int,
    size: tuple[int, int],
    front: bool,
) -> None:
    """Paint ``number`` on the pixels ``m`` of the window (``ys``, ``xs``) of a category's
    planes ``stack`` (``front``: one plane, what is painted stays; else each pixel's labels
    go to the first plane free there, a label once per pixel). ``m`` is changed."""
    if front:
        if not stack:
            stack.append(np.zeros(size, dtype=np.int32))
        win = stack[0][ys, xs]
        win[m & (win == 0)] = number
        return
    for plane in stack:
        m &= plane[ys, xs] != number
    for plane in stack:
        if not m.any():
            break
        win = plane[ys, xs]
        free = m & (win == 0)
        win[free] = number
        m &= ~free
    if m.any():
        plane = np.zeros(size, dtype=np.int32)
        plane[ys, xs][m] = number
        stack.append(plane)


def instance_plane(
    ann: ImageAnnotation,
    height: int,
    width: int,
    ignore: Callable[[Shape], bool] = lambda s: s.label == "__ignore__",
    convention: Convention | None = None,
) -> np.ndarray:
    """``(height, width) int32`` instance ids as labelme2voc's SegmentationObject.

    Instances are numbered 1, 2, ... in order of first appearance of (label, instance key);
    a shape with ``instance`` None is its own instance. Later shapes paint over earlier ones;
    pixels of ignored shapes are 0.
    """
    keys: list[tuple[str, object]] = []
    canvas = Canvas(height, width)
    out = np.zeros((height, width), dtype=np.int32)
    ign = np.zeros((height, width), dtype=bool)
    for shape in ann.painting_order():
        key: tuple[str, object] = (
            shape.label,
            shape.instance if shape.instance is not None else ("own", shape.order),
        )
        if key not in keys:
            keys.append(key)
        patch = shape_patch(shape, height, width, convention, canvas)
        if patch is None:
            continue
        ys = slice(patch.y0, patch.y0 + patch.mask.shape[0])
        xs = slice(patch.x0, patch.x0 + patch.mask.shape[1])
        out[ys, xs][patch.mask] = keys.index(key) + 1
        ign[ys, xs][patch.mask] = ignore(shape)
    out[ign] = 0
    return out


# ----------------------------------------------------------------------------- resampling


def half_size(n: int) -> int:
    """Broden's segmentation size for an image side of ``n``: 224 -> 112, 227 -> 113 (floor)."""
    return max(1, n // 2)


def nearest_indices(src: int, dst: int, start: int = 0, length: int | None = None) -> np.ndarray:
    """Source indices sampled for ``dst`` outputs over ``[start, start + length)`` of ``src``.

    Output ``k`` takes ``start + floor((k + 0.5) * length / dst)`` (PIL's NEAREST sampling).
    """
    length = src - start if length is None else length
    idx = start + np.floor((np.arange(dst) + 0.5) * length / dst).astype(np.int64)
    return np.clip(idx, 0, src - 1)


def sample_grid(
    height: int, width: int, out_h: int, out_w: int, box: tuple[int, int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The source (rows ``(out_h,)``, columns ``(out_w,)``) that :func:`resample_labels`
    samples from an ``(height, width)`` plane (non-decreasing; ``box`` as there)."""
    x0, y0, x1, y1 = box if box is not None else (0, 0, width, height)
    return nearest_indices(height, out_h, y0, y1 - y0), nearest_indices(width, out_w, x0, x1 - x0)


def resample_labels(
    plane: np.ndarray, out_h: int, out_w: int, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Nearest-neighbour resampling of an ``(H, W)`` label plane to ``(out_h, out_w)``.

    ``box`` = (x0, y0, x1, y1) crops the source first (used with ``--fit crop``).
    """
    rows, cols = sample_grid(plane.shape[0], plane.shape[1], out_h, out_w, box)
    return plane[np.ix_(rows, cols)]


def crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The centred square (x0, y0, x1, y1) that ``--fit crop`` keeps."""
    side = min(height, width)
    x0 = (width - side) // 2
    y0 = (height - side) // 2
    return x0, y0, x0 + side, y0 + side
