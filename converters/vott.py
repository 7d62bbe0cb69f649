"""Reader of VoTT 2.x JSON: the per-asset ``*-asset.json`` files and the "VoTT JSON" project export.

``src``: a folder (its ``*-asset.json`` files, sorted; else its ``*-export.json`` / ``*.vott``
files), or one such file. An asset file is ``{"asset": {...}, "regions": [...]}``; an export or
project file holds ``assets: {id: <asset file's content>}`` (a ``.vott`` project's assets carry
no regions and are skipped). Asset keys in an export are read in sorted order.

``asset.path`` is an absolute ``file:`` URL from the annotator's machine, so the image is found
by ``asset.name`` beside the JSON (``<folder>/<name>``, ``images/``, ``img/``); the size is
``asset.size`` (``width``, ``height``). Regions, in float pixels (``convention = "center"``):

- ``POLYGON`` -> ``polygon`` from ``points`` (datumaro degrades these to boxes; this does not);
- ``RECTANGLE`` -> ``rectangle`` from ``boundingBox`` ``left, top, width, height``;
- ``POLYLINE`` -> ``linestrip``; ``POINT`` -> ``point``.

``tags`` is a list: one Shape per tag (each tag is a concept of the region, the same
instance). A region without tags is skipped with one warning.
"""

from __future__ import annotations

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
    integer,
    local_image,
    mapping,
    number,
    text,
)

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

DESCRIPTION = "VoTT 2.x JSON: *-asset.json files or the VoTT JSON export (polygon, rectangle)"
EXAMPLE = "conceptkit convert vott vott-project/ -o broden/"

_KINDS = {"POLYGON": "polygon", "RECTANGLE": "rectangle", "POLYLINE": "linestrip", "POINT": "point"}


def _points(region: dict[str, Any], file: Path, place: str) -> np.ndarray:
    items = array(region.get("points"), file, f"{place}.points")
    out = np.zeros((len(items), 2))
    for k, item in enumerate(items):
        p = mapping(item, file, f"{place}.points[{k}]")
        out[k] = [number(p.get(c), file, f"{place}.points[{k}].{c}") for c in ("x", "y")]
    return out


def region_shape(region: dict[str, Any], file: Path, place: str) -> Shape | None:
    """The geometry of one region (label empty); None for an unknown type."""
    kind = _KINDS.get(str(region.get("type")))
    if kind is None:
        return None
    if kind == "rectangle":
        box = mapping(region.get("boundingBox"), file, f"{place}.boundingBox")
        x, y, w, h = (
            number(box.get(k), file, f"{place}.boundingBox.{k}")
            for k in ("left", "top", "width", "height")
        )
        pts = np.array([[x, y], [x + w, y + h]])
    else:
        pts = _points(region, file, place)
        least = {"polygon": 3, "linestrip": 2, "point": 1}[kind]
        if len(pts) < least:
            raise FormatError(f"a {kind} needs {least} points, found {len(pts)}", file, place)
        pts = pts[:1] if kind == "point" else pts
    check_points(pts, file, place)
    return Shape(label="", kind=kind, points=pts, place=place, convention="center")  # type: ignore[arg-type]


def _asset(doc: dict[str, Any], file: Path, place: str, options: ReadOptions) -> ImageAnnotation:
    asset = mapping(doc.get("asset"), file, f"{place}.asset")
    name = base_name(
        text(asset.get("name"), file, f"{place}.asset.name"), file, f"{place}.asset.name"
    )
    size = mapping(asset.get("size"), file, f"{place}.asset.size")
    width = integer(size.get("width"), file, f"{place}.asset.size.width")
    height = integer(size.get("height"), file, f"{place}.asset.size.height")
    check_size(width, height, file=file, place=f"{place}.asset.size")
    record = ImageAnnotation(
        key=name,
        width=width,
        height=height,
        image_path=local_image(file.parent, name, file, f"{place}.asset.name"),
        source=str(file),
    )
    for k, item in enumerate(array(doc.get("regions", []), file, f"{place}.regions")):
        where = f"{place}.regions[{k}]"
        region = mapping(item, file, where)
        shape = region_shape(region, file, where)
        tags = [
            text(t, file, f"{where}.tags")
            for t in array(region.get("tags", []), file, f"{where}.tags")
        ]
        if shape is None or not tags:
            options.warn(
                f"{file}: {where}: {'no tags' if shape else 'unknown type'}; region skipped"
            )
            continue
        for tag in tags:
            record.shapes.append(
                Shape(
                    label=tag,
                    kind=shape.kind,
                    points=shape.points,
                    instance=str(region.get("id", k)),
                    order=len(record.shapes),
                    place=where,
                    convention="center",
                )
            )
    return record


def _documents(path: Path) -> list[tuple[str, dict[str, Any]]]:
    data = mapping(jsonfile.load(path, "VoTT JSON"), path, "$")
    if "asset" in data:
        return [("$", data)]
    assets = mapping(data.get("assets", {}), path, "$.assets")
    out = []
    for key in sorted(assets):
        doc = mapping(assets[key], path, f"$.assets[{key!r}]")
        if "asset" in doc:
            out.append((f"$.assets[{key!r}]", doc))
    return out


def _files(src: Path) -> list[Path]:
    return export_files(
        src,
        ("*-asset.json", "*-export.json", "*.vott"),
        "VoTT *-asset.json, *-export.json or .vott file",
        "a VoTT export",
    )


def _file(path: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """The records of the assets of the VoTT file ``path``."""
    return each_record(
        _documents(path),
        lambda item: _asset(item[1], path, item[0], options),
        options,
        "; asset skipped",
        path.parent.name,
    )


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per asset with regions of the VoTT export at ``src``."""
    for path in _files(Path(src)):
        yield from _file(path, options)
