"""Reader of LabelMe exports: a folder (searched recursively) or one file.

``*.json`` files are wkentaro/labelme JSON of any version (no ``shape_type`` before 3.6.12 means
polygon); ``*.xml`` files are MIT LabelMe XML, read by :mod:`conceptkit.converters.labelme_xml`.
Every JSON file is checked against ``schemas/labelme.json`` before use, so a problem is reported
with its JSON path (``a.json: $.shapes[3].points: ...``).

What becomes of a LabelMe file:

- shapes: polygon, rectangle, oriented_rectangle, circle, line, linestrip, point, mask (base64
  PNG over the inclusive 2-point box) -> :class:`Shape` with convention ``inclusive``;
  ``points`` (prompt clicks of the AI tools) are skipped with a warning.
- ``group_id`` -> ``Shape.instance``: shapes with the same (label, group_id) are one object.
- ``description`` and shape ``flags`` set true -> ``Shape.attributes``.
- image ``flags`` set true -> image-level tags.
- ``imageData`` (base64) is used when present, else ``imagePath`` relative to the JSON file
  (Windows separators accepted); a path leading outside SRC is an error.
- When ``imageHeight``/``imageWidth`` are absent (old files) the size is read from the image
  header, after EXIF orientation (labelme applies it before annotating).

Limits (:mod:`conceptkit.limits`), checked before anything is allocated: the file's size and
nesting depth (:mod:`conceptkit.jsonfile`; ``NaN``/``Infinity`` are not JSON), the
declared or header image size and every mask PNG's header (:func:`conceptkit.images.open_image`),
every coordinate (finite and within ``image_side``, mask boxes included) and vertex count.
Annotation files found in SRC that are symbolic links leading out of it are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, cast

import numpy as np
from conceptkit.converters import ReadOptions, check_points, inside, within

from conceptkit import images, jsonfile
from conceptkit.annotations import ImageAnnotation, Shape, ShapeKind
from conceptkit.errors import FormatError

SHAPE_TYPES = (
    "polygon",
    "rectangle",
    "oriented_rectangle",
    "circle",
    "line",
    "linestrip",
    "point",
    "points",
    "mask",
)


@lru_cache(maxsize=1)
def _validator() -> Any:
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("conceptkit.schemas").joinpath("labelme.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def json_path(parts: Any) -> str:
    """``["shapes", 3, "points"]`` -> ``$.shapes[3].points``."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


_SHAPE_KEYS = {
    "shape_type": ((str, type(None)), SHAPE_TYPES + (None,)),
    "group_id": ((int, type(None)), None),
    "description": ((str, type(None)), None),
    "mask": ((str, type(None)), None),
}


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _flags_ok(v: Any) -> bool:
    return v is None or (
        isinstance(v, dict) and all(x is None or isinstance(x, bool) for x in v.values())
    )


def _shape_ok(s: Any) -> bool:
    """The fast check of one ``shapes`` item (see :func:`_fast_valid`)."""
    if not isinstance(s, dict) or not isinstance(s.get("label"), str):
        return False
    pts = s.get("points")
    if not isinstance(pts, list):
        return False
    for p in pts:
        if not (isinstance(p, list) and len(p) == 2 and _is_num(p[0]) and _is_num(p[1])):
            return False
    for key, (types, allowed) in _SHAPE_KEYS.items():
        if key in s:
            v = s[key]
            if not isinstance(v, types) or isinstance(v, bool):
                return False
            if allowed is not None and v not in allowed:
                return False
    return "flags" not in s or _flags_ok(s["flags"])


def _fast_valid(data: Any) -> bool:
    """True only when ``data`` certainly satisfies schemas/labelme.json (a plain-Python check
    of the same rules, ~50x faster than jsonschema); False sends it to jsonschema for the
    precise message."""
    if not isinstance(data, dict):
        return False
    shapes, path = data.get("shapes"), data.get("imagePath")
    if not isinstance(shapes, list) or not isinstance(path, str) or not path:
        return False
    if "version" in data and not isinstance(data["version"], str):
        return False
    if "flags" in data and not _flags_ok(data["flags"]):
        return False
    if "imageData" in data and not isinstance(data["imageData"], str | type(None)):
        return False
    for k in ("imageHeight", "imageWidth"):
        v = data.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            return False
    return all(_shape_ok(s) for s in shapes)


def check_schema(data: Any, file: Path) -> None:
    """Raise FormatError naming the JSON path of the first schema violation (document order)."""
    if _fast_valid(data):
        return
    errors = list(_validator().iter_errors(data))
    if errors:
        err = min(
            errors, key=lambda e: [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in e.path]
        )
        msg = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        raise FormatError(msg, file=file, place=json_path(err.path))


def resolve_image(src_root: Path, file: Path, text: str, place: str, check: bool = True) -> Path:
    """The image an export names, relative to the export file; refuse paths escaping SRC."""
    if "\0" in text:
        raise FormatError(f"image path {text!r} holds a NUL character", file, place)
    if (
        PureWindowsPath(text).is_absolute()
        or PurePosixPath(text).is_absolute()
        or (PureWindowsPath(text).drive)
    ):
        raise FormatError(f"image path {text!r} is absolute; it must lie inside SRC", file, place)
    rel = PurePosixPath(text.replace("\\", "/"))
    path = file.parent / Path(*rel.parts) if rel.parts else file.parent
    if check and not inside(src_root, path):
        raise FormatError(f"image path {text!r} points outside SRC ({src_root})", file, place)
    return path


def image_size(path: Path | None, data: bytes | None, file: Path, place: str) -> tuple[int, int]:
    """(width, height) of an image after EXIF orientation, from its header only (size-checked)."""
    source = data if data is not None else path
    assert source is not None
    with images.open_image(source, file=file, place=place) as im:
        return images.upright_size(im)


def _decode_mask(text: str, box: tuple[int, int, int, int], file: Path, place: str) -> np.ndarray:
    """The base64 PNG ``text`` as ``(h, w) bool``; its header must fit ``box`` (x1, y1, x2, y2)
    before any pixel is decoded."""
    try:
        png = base64.b64decode(text, validate=False)
    except (ValueError, binascii.Error) as exc:
        raise FormatError(f"mask is not a base64 PNG ({exc})", file, place) from None
    x1, y1, x2, y2 = box
    with images.open_image(png, file=file, place=place, what="mask") as im:
        if im.size != (x2 - x1 + 1, y2 - y1 + 1):
            raise FormatError(
                f"mask is {im.size[0]}x{im.size[1]}, its box "
                f"({x1},{y1})-({x2},{y2}) is {x2 - x1 + 1}x{y2 - y1 + 1}",
                file,
                place,
            )
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(bool)


def _mask_shape(s: dict[str, Any], pts: np.ndarray, shape: Shape, path: Path, place: str) -> None:
    """Fill ``shape`` (a mask) from ``s["mask"]``, checked against its 2-point box ``pts``."""
    if not s.get("mask"):
        raise FormatError("a mask shape needs 'mask' (base64 PNG)", path, f"{place}.mask")
    if len(pts) != 2:
        raise FormatError("a mask shape needs 2 points (its box)", path, f"{place}.points")
    (x1, y1), (x2, y2) = pts.astype(int)
    shape.mask = _decode_mask(s["mask"], (x1, y1, x2, y2), path, f"{place}.mask")
    shape.origin = (int(x1), int(y1))
    shape.points = np.zeros((0, 2))


def _image(data: dict[str, Any], path: Path, src_root: Path, options: ReadOptions) -> Any:
    """(image bytes or None, image path or None, width, height) of a checked LabelMe document."""
    image_data: bytes | None = None
    image_path: Path | None = None
    if data.get("imageData"):
        try:
            image_data = base64.b64decode(data["imageData"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise FormatError(f"is not base64 ({exc})", path, "$.imageData") from None
    else:
        image_path = resolve_image(
            src_root, path, data["imagePath"], "$.imagePath", options.check_paths
        )
        if not image_path.is_file():
            raise FormatError(f"image {data['imagePath']!r} not found", path, "$.imagePath")
    width, height = data.get("imageWidth"), data.get("imageHeight")
    if not width or not height:
        where = "$.imageData" if image_data is not None else "$.imagePath"
        width, height = image_size(image_path, image_data, path, where)
    else:
        images.check_size(int(width), int(height), file=path, place="$.imageWidth")
    return image_data, image_path, int(width), int(height)


def read_file(path: Path, src_root: Path, options: ReadOptions) -> ImageAnnotation:
    """Read one LabelMe JSON file into an :class:`ImageAnnotation`."""
    data = jsonfile.load(path)
    check_schema(data, path)
    image_data, image_path, width, height = _image(data, path, src_root, options)
    key = PurePosixPath(data["imagePath"].replace("\\", "/")).name
    ann = ImageAnnotation(
        key=key,
        width=width,
        height=height,
        image_path=image_path,
        image_data=image_data,
        source=str(path),
        annotator=src_root.name,
        tags=sorted(k for k, v in (data.get("flags") or {}).items() if v),
    )
    for i, s in enumerate(data["shapes"]):
        place = f"$.shapes[{i}]"
        kind = s.get("shape_type") or "polygon"
        if kind == "points":
            options.warn(f"{path}: {place}: 'points' prompt clicks skipped")
            continue
        pts = np.asarray(s["points"], dtype=np.float64).reshape(-1, 2)
        check_points(pts, path, f"{place}.points")
        attrs = {k: "true" for k, v in (s.get("flags") or {}).items() if v}
        if s.get("description"):
            attrs["description"] = str(s["description"])
        shape = Shape(
            label=s["label"],
            kind=cast(ShapeKind, kind),  # the schema check admits only known kinds
            points=pts,
            instance=None if s.get("group_id") is None else str(s["group_id"]),
            order=i,
            attributes=attrs,
            convention="inclusive",
            place=f"{place}.points",
        )
        if kind == "mask":
            _mask_shape(s, pts, shape, path, place)
        ann.shapes.append(shape)
    return ann


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FormatError("is neither a LabelMe file nor a folder", file=src)
    found = [
        p
        for p in src.rglob("*")
        if p.suffix.lower() in (".json", ".xml") and p.is_file() and not p.name.startswith(".")
    ]
    return within(src, sorted(found, key=lambda p: p.relative_to(src).as_posix()))


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one annotation per LabelMe JSON or MIT LabelMe XML file under ``src``, sorted."""
    src = Path(src)
    root = src if src.is_dir() else src.parent
    files = _files(src)
    if not files:
        raise FormatError("holds no LabelMe .json or .xml file", file=src)
    for path in files:
        try:
            if path.suffix.lower() == ".xml":
                from conceptkit.converters import labelme_xml

                ann = labelme_xml.read_file(path, root, options)
            else:
                ann = read_file(path, root, options)
        except FormatError as exc:
            if not options.keep_going:
                raise
            options.warn(f"{exc} (skipped)")
            continue
        yield ann
