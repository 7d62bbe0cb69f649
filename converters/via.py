"""Reader of VGG Image Annotator (VIA 1.x and 2.x) JSON, and of Make Sense's VGG polygon export.

``src``: one ``.json`` file, or a folder whose ``*.json`` files (sorted, not recursive) are
read. Accepted documents: a VIA 2 project file (the images under ``_via_img_metadata``), or the
"annotations" export: an object keyed ``<filename><size>`` (VIA) or ``<filename>`` (Make Sense)
whose values hold ``filename`` and ``regions``. ``regions`` is a list (VIA 2) or an object
``{"0": ..., "1": ...}`` (VIA 1, Make Sense), read in document order.

Per region, ``shape_attributes`` by ``name``, in pixels (``convention = "inclusive"``, as the
tools draw them):

- ``polygon`` -> ``polygon`` from ``all_points_x``/``all_points_y`` (a last vertex repeating the
  first, as Make Sense writes, is dropped); ``polyline`` -> ``linestrip``;
- ``rect`` ``x, y, width, height`` -> ``rectangle``; ``circle`` ``cx, cy, r`` -> ``circle``;
- ``ellipse`` ``cx, cy, rx, ry`` (+ ``theta`` in radians, VIA 2) -> ``ellipse``;
- ``point`` ``cx, cy`` -> ``point``.

The label is a ``region_attributes`` value: the key ``options.extra["label_key"]`` when given,
else the first of ``label``, ``name``, ``class``, ``type`` holding one, else the only attribute
holding one; an attribute holds a label when it is a non-empty string or a checkbox (an object
``{"a": true}``: its first true key). A region with no label is skipped with one warning.

VIA records no image size: it is read from the image file's header (nothing is decoded), so the
image must be there: ``filename`` is looked up beside the JSON (``<folder>/<name>``, then
``images/``, ``img/``), by its last part only. The key is that file name.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from conceptkit.converters import (
    ReadOptions,
    array,
    base_name,
    check_points,
    each_record,
    export_files,
    image_size,
    local_image,
    mapping,
    number,
    text,
)

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError

DESCRIPTION = (
    "VGG Image Annotator 1.x/2.x JSON and Make Sense VGG export (polygon, rect, circle, ellipse)"
)
EXAMPLE = "conceptkit convert via via_region_data.json -o broden/"

_LABEL_KEYS = ("label", "name", "class", "type")


def _value_label(value: Any) -> str | None:
    """A label from one attribute value: a non-empty string, or a checkbox's first ticked key."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        ticked = [k for k, v in value.items() if v is True]
        return str(ticked[0]) if ticked else None
    return None


def _label(attrs: dict[str, Any], options: ReadOptions) -> str | None:
    wanted = options.extra.get("label_key")
    if wanted is not None:
        return _value_label(attrs.get(str(wanted)))
    for key in _LABEL_KEYS:
        found = _value_label(attrs.get(key))
        if found is not None:
            return found
    labels = [v for v in (_value_label(a) for a in attrs.values()) if v is not None]
    return labels[0] if len(labels) == 1 else None


def _coords(shape: dict[str, Any], keys: tuple[str, ...], file: Path, place: str) -> list[float]:
    return [number(shape.get(k), file, f"{place}.{k}") for k in keys]


def _path(shape: dict[str, Any], file: Path, place: str) -> np.ndarray:
    xs = array(shape.get("all_points_x"), file, f"{place}.all_points_x")
    ys = array(shape.get("all_points_y"), file, f"{place}.all_points_y")
    if len(xs) != len(ys):
        raise FormatError(f"all_points_x has {len(xs)} values, all_points_y {len(ys)}", file, place)
    pts = np.array(
        [
            [
                number(x, file, f"{place}.all_points_x[{k}]"),
                number(y, file, f"{place}.all_points_y[{k}]"),
            ]
            for k, (x, y) in enumerate(zip(xs, ys))
        ],
        dtype=np.float64,
    ).reshape(-1, 2)
    if len(pts) > 3 and (pts[0] == pts[-1]).all():
        pts = pts[:-1]
    return pts


def region_shape(shape: dict[str, Any], file: Path, place: str) -> Shape | None:
    """The Shape of one ``shape_attributes`` object (label empty); None for an unknown name."""
    name = text(shape.get("name"), file, f"{place}.name")
    angle = 0.0
    if name in ("polygon", "polyline"):
        pts = _path(shape, file, place)
        kind = "polygon" if name == "polygon" else "linestrip"
        if len(pts) < (3 if kind == "polygon" else 2):
            raise FormatError(f"a {name} needs more points, found {len(pts)}", file, place)
    elif name == "rect":
        x, y, w, h = _coords(shape, ("x", "y", "width", "height"), file, place)
        kind, pts = "rectangle", np.array([[x, y], [x + w, y + h]])
    elif name == "circle":
        cx, cy, r = _coords(shape, ("cx", "cy", "r"), file, place)
        kind, pts = "circle", np.array([[cx, cy], [cx + r, cy]])
    elif name == "ellipse":
        cx, cy, rx, ry = _coords(shape, ("cx", "cy", "rx", "ry"), file, place)
        angle = math.degrees(number(shape.get("theta", 0), file, f"{place}.theta"))
        kind, pts = "ellipse", np.array([[cx, cy], [cx + rx, cy + ry]])
    elif name == "point":
        cx, cy = _coords(shape, ("cx", "cy"), file, place)
        kind, pts = "point", np.array([[cx, cy]])
    else:
        return None
    check_points(pts, file, place)
    return Shape(label="", kind=kind, points=pts, angle=angle, place=place)  # type: ignore[arg-type]


def _entries(data: Any, file: Path) -> list[tuple[str, dict[str, Any]]]:
    """(JSON path, image entry) pairs of a VIA document."""
    doc = mapping(data, file, "$")
    base = "$"
    if "_via_img_metadata" in doc:
        doc = mapping(doc["_via_img_metadata"], file, "$._via_img_metadata")
        base = "$._via_img_metadata"
    return [(f"{base}[{key!r}]", mapping(v, file, f"{base}[{key!r}]")) for key, v in doc.items()]


def _image(entry: dict[str, Any], file: Path, place: str, options: ReadOptions) -> ImageAnnotation:
    name = base_name(
        text(entry.get("filename"), file, f"{place}.filename"), file, f"{place}.filename"
    )
    path = local_image(file.parent, name, file, f"{place}.filename")
    width, height = image_size(path, file, f"{place}.filename")
    record = ImageAnnotation(
        key=name, width=width, height=height, image_path=path, source=str(file)
    )
    regions = entry.get("regions", [])
    items = (
        list(regions.items())
        if isinstance(regions, dict)
        else list(enumerate(array(regions, file, f"{place}.regions")))
    )
    for key, item in items:
        where = (
            f"{place}.regions[{key!r}]" if isinstance(regions, dict) else f"{place}.regions[{key}]"
        )
        region = mapping(item, file, where)
        shape = region_shape(
            mapping(region.get("shape_attributes"), file, f"{where}.shape_attributes"),
            file,
            f"{where}.shape_attributes",
        )
        label = _label(
            mapping(region.get("region_attributes", {}), file, f"{where}.region_attributes"),
            options,
        )
        if shape is None or label is None:
            options.warn(
                f"{file}: {where}: {'no label' if shape else 'unknown shape'}; region skipped"
            )
            continue
        shape.label, shape.order = label, len(record.shapes)
        record.shapes.append(shape)
    return record


def _file(path: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """The records of the VIA JSON file ``path``."""
    return each_record(
        _entries(jsonfile.load(path, "VIA JSON"), path),
        lambda item: _image(item[1], path, item[0], options),
        options,
        "; image skipped",
        path.parent.name,
    )


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per image of the VIA / Make Sense export(s) at ``src``."""
    for path in export_files(Path(src), ("*.json",), "VIA export (*.json)", "a VIA .json export"):
        yield from _file(path, options)
