"""Supervisely project (meta.json, <dataset>/ann/*.json: bitmaps, polygons with holes).

Layout under ``src`` (the project root)::

    meta.json                        {"classes": [{"title", "shape", "color"}], ...}
    <dataset>/ann/<image name>.json  {"size": {"height", "width"}, "tags": [...],
                                      "objects": [{"id", "classTitle", "geometryType", ...}]}
    <dataset>/img/<image name>       the image

Datasets and their files are read in sorted order. ``classTitle`` is the label; it must be a
class of ``meta.json`` when the project has one (the project's own class table). Geometry by
``geometryType``:

- ``bitmap``: ``bitmap.data`` = base64 of a zlib-compressed PNG (newer exports: the PNG
  itself), its top-left at ``bitmap.origin`` ``[x, y]``; a pixel is in when its alpha (RGBA) or
  its first channel is non-zero. The PNG's header (size within the limits and the image, from
  the origin) is checked before it is decoded; the zlib stream is inflated only up to the most
  bytes a PNG of the image's size can need. -> a ``mask`` Shape (pixels exact).
- ``polygon``: ``points.exterior`` ``[[x, y], ...]`` and ``points.interior`` (holes). Without
  holes -> a ``polygon`` Shape; with holes -> a ``mask`` Shape: the exterior's pixels minus the
  pixels of each hole (both ``inclusive``, as Supervisely draws them).
- ``rectangle`` (``exterior`` = two corners) -> ``rectangle``; ``line`` -> ``linestrip``;
  ``point`` -> ``point``. Other geometries (``cuboid``, ``graph``, ...) are skipped with a
  warning naming the object.

Each object is its own instance (its ``id``); later objects are in front. Image-level ``tags``
(a list, or the string-encoded list older exports write) become image tags by ``name``. Split:
a dataset named ``train``, ``val`` or ``test``, else ``train``.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from conceptkit.converters import ReadOptions, check_points, each_record, inside, within
from conceptkit.converters._masks import image_in

from conceptkit import images, jsonfile
from conceptkit.annotations import ImageAnnotation, Shape, ShapeKind
from conceptkit.errors import FormatError
from conceptkit.rasterize import shape_mask

DESCRIPTION = "Supervisely project (meta.json, <dataset>/ann/*.json: bitmaps, polygons with holes)"
EXAMPLE = "conceptkit convert supervisely my_project/ -o broden_supervisely"

_KINDS: dict[str, ShapeKind] = {
    "rectangle": "rectangle",
    "line": "linestrip",
    "point": "point",
    "polygon": "polygon",
}


def png_bound(size: tuple[int, int]) -> int:
    """The most bytes a PNG of a bitmap inside an image of ``size`` (w, h) can need: RGBA 16-bit
    stored without compression, a filter byte per row, and room for its chunks."""
    w, h = size
    return 8 * w * h + 2 * h + (1 << 16)


def inflate(data: bytes, bound: int, file: Path, place: str) -> bytes:
    """The PNG of a bitmap's data: zlib-inflated, or as is when it is a PNG already.

    Inflation stops past ``bound`` bytes (:func:`png_bound`), so a zlib bomb costs no more."""
    if data.startswith(b"\x89PNG"):
        return data
    try:
        out = zlib.decompressobj().decompress(data, bound + 1)
    except zlib.error as exc:
        raise FormatError(f"bitmap data is neither zlib nor PNG ({exc})", file, place) from None
    if len(out) > bound:
        raise FormatError(
            f"bitmap data inflates past {bound:,} bytes, more than a PNG of the image can hold",
            file,
            place,
        )
    return out


def decode_bitmap(
    text: Any, origin: Any, size: tuple[int, int], file: Path, place: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """``(mask (h, w) bool, (x0, y0))`` of a Supervisely bitmap inside an image of ``size`` (w, h)."""
    if not isinstance(text, str):
        raise FormatError("bitmap.data must be a base64 string", file, f"{place}.data")
    ok = isinstance(origin, list) and len(origin) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in origin)
    if not ok:
        raise FormatError(
            "bitmap.origin must be [x, y], whole numbers from 0", file, f"{place}.origin"
        )
    try:
        raw = base64.b64decode(text, validate=False)
    except (ValueError, binascii.Error) as exc:
        raise FormatError(f"bitmap.data is not base64 ({exc})", file, f"{place}.data") from None
    png = inflate(raw, png_bound(size), file, f"{place}.data")
    x0, y0 = int(origin[0]), int(origin[1])
    with images.open_image(png, file=file, place=f"{place}.data", what="bitmap") as im:
        w, h = im.size
        if x0 + w > size[0] or y0 + h > size[1]:
            raise FormatError(
                f"bitmap {w}x{h} at ({x0}, {y0}) leaves the {size[0]}x{size[1]} image",
                file,
                f"{place}.origin",
            )
        if im.mode in ("RGBA", "LA", "PA"):
            arr = np.asarray(im.convert("RGBA"))[..., 3]
        else:
            arr = np.asarray(im)
            arr = arr[..., 0] if arr.ndim == 3 else arr
    return arr > 0, (x0, y0)


def _points(value: Any, file: Path, place: str, least: int) -> np.ndarray:
    try:
        pts = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        pts = np.zeros((0, 1))
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < least:
        raise FormatError(f"expected a list of at least {least} [x, y] pairs", file, place)
    check_points(pts, file, place)
    return pts


def _holed(
    exterior: np.ndarray, holes: list[np.ndarray], size: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The pixels of ``exterior`` minus ``holes`` as a tight patch (inclusive convention)."""
    w, h = size
    full = shape_mask(Shape("", "polygon", points=exterior), h, w, "inclusive")
    for hole in holes:
        full &= ~shape_mask(Shape("", "polygon", points=hole), h, w, "inclusive")
    ys, xs = np.nonzero(full)
    if not len(ys):
        return np.zeros((0, 0), dtype=bool), (0, 0)
    y0, x0 = int(ys.min()), int(xs.min())
    return full[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1], (x0, y0)


def _geometry(
    obj: dict[str, Any], shape: Shape, size: tuple[int, int], file: Path, place: str
) -> None:
    """Fill ``shape``'s kind and geometry from the object ``obj``."""
    kind = obj.get("geometryType")
    if kind == "bitmap":
        bitmap = obj.get("bitmap")
        if not isinstance(bitmap, dict):
            raise FormatError("bitmap must be an object {data, origin}", file, f"{place}.bitmap")
        shape.kind = "mask"
        shape.mask, shape.origin = decode_bitmap(
            bitmap.get("data"), bitmap.get("origin"), size, file, f"{place}.bitmap"
        )
        return
    points = obj.get("points")
    if not isinstance(points, dict):
        raise FormatError("points must be an object {exterior, interior}", file, f"{place}.points")
    least = {"point": 1, "line": 2, "rectangle": 2}.get(str(kind), 3)
    exterior = _points(points.get("exterior"), file, f"{place}.points.exterior", least)
    interior = points.get("interior") or []
    if not isinstance(interior, list):
        raise FormatError(
            "points.interior must be a list of rings", file, f"{place}.points.interior"
        )
    holes = [_points(r, file, f"{place}.points.interior[{j}]", 3) for j, r in enumerate(interior)]
    shape.kind = _KINDS[str(kind)]
    shape.points = exterior[:2] if kind == "rectangle" else exterior
    if kind == "polygon" and holes:
        shape.kind = "mask"
        shape.mask, shape.origin = _holed(exterior, holes, size)


def _tags(value: Any) -> list[str]:
    """Image-level tag names (a list of {name}, or the string-encoded list of old exports)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [
        t["name"]
        for t in value
        if isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"]
    ]


def _size(data: Any, file: Path) -> tuple[int, int]:
    size = data.get("size") if isinstance(data, dict) else None
    w = size.get("width") if isinstance(size, dict) else None
    h = size.get("height") if isinstance(size, dict) else None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (w, h)):
        raise FormatError("size must be {height, width}, whole numbers", file, "$.size")
    assert isinstance(w, int) and isinstance(h, int)
    images.check_size(w, h, file=file, place="$.size")
    return w, h


def read_file(
    path: Path, src: Path, classes: set[str] | None, warn: Callable[[str], None]
) -> ImageAnnotation:
    """The annotation of one ``ann/<image>.json``."""
    data = jsonfile.load(path, "Supervisely annotation")
    size = _size(data, path)
    objects = data.get("objects", [])
    if not isinstance(objects, list):
        raise FormatError("objects must be a list", path, "$.objects")
    name = path.name[: -len(".json")]
    dataset = path.parent.parent
    image = image_in(src, [dataset / "img" / name], path, "$")
    ann = ImageAnnotation(
        key=image.name,
        width=size[0],
        height=size[1],
        tags=_tags(data.get("tags")),
        image_path=image,
        source=str(path),
        annotator=src.name,
        split=dataset.name if dataset.name in ("train", "val", "test") else "train",
    )
    for i, obj in enumerate(objects):
        place = f"$.objects[{i}]"
        if not isinstance(obj, dict):
            raise FormatError("an object must be a JSON object", path, place)
        label = obj.get("classTitle")
        if not isinstance(label, str) or not label:
            raise FormatError("classTitle must be a non-empty string", path, f"{place}.classTitle")
        if classes is not None and label not in classes:
            raise FormatError(
                f"class {label!r} is not in meta.json's classes", path, f"{place}.classTitle"
            )
        kind = obj.get("geometryType")
        if kind not in _KINDS and kind != "bitmap":
            warn(f"{path}: {place}: geometry {kind!r} is not a 2-D region (skipped)")
            continue
        shape = Shape(
            label=label,
            kind="polygon",
            order=i,
            instance=str(obj.get("id", i)),
            convention="inclusive",
            place=place,
        )
        _geometry(obj, shape, size, path, place)
        ann.shapes.append(shape)
    return ann


def read_meta(src: Path) -> set[str] | None:
    """The class titles of ``meta.json`` (None when the project has none)."""
    path = src / "meta.json"
    if not path.exists():
        return None
    data = jsonfile.load(path, "Supervisely meta")
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list):
        raise FormatError("classes must be a list", path, "$.classes")
    titles = set()
    for i, c in enumerate(classes):
        if not isinstance(c, dict) or not isinstance(c.get("title"), str):
            raise FormatError("a class must be an object with a title", path, f"$.classes[{i}]")
        titles.add(c["title"])
    return titles


def _files(src: Path) -> list[Path]:
    found = [p for p in src.glob("*/ann/*.json") if p.is_file() and not p.name.startswith(".")]
    return within(src, sorted(found, key=lambda p: p.relative_to(src).as_posix()))


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one annotation per ``<dataset>/ann/*.json`` of the project ``src``, sorted."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError(
            "is not a folder; point at the Supervisely project (it holds meta.json)", src
        )
    classes = read_meta(src)
    files = _files(src)
    if not files:
        raise FormatError("holds no <dataset>/ann/*.json", src)

    def one(path: Path) -> ImageAnnotation:
        if not inside(src, path):
            raise FormatError(f"leads outside SRC ({src})", path)
        return read_file(path, src, classes, options.warn)

    yield from each_record(files, one, options, " (skipped)")
