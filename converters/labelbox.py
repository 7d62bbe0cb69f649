"""Reader of Labelbox exports: the legacy v1 JSON (with downloaded mask PNGs) and v2 NDJSON rows.

``src``: one ``.json`` (v1: a list of rows) or ``.ndjson`` file (v2: one row per line), or a
folder whose ``*.json``/``*.ndjson`` files (sorted, not recursive) are read.

**v1 row** ``{"External ID": file name, "Label": {"objects": [...]}}``; an object's class is its
``title`` (else ``value``), its instance its ``featureId``, and its geometry one of ``bbox``
``{top, left, height, width}`` -> ``rectangle``, ``polygon`` ``[{x, y}]`` -> ``polygon``,
``line`` -> ``linestrip``, ``point`` -> ``point``; an object with none of these is a mask whose
PNG was downloaded from ``instanceURI`` (URLs expire, so the export must be read with its
masks): ``bitmasks/<featureId>.png`` or ``masks/<featureId>.png`` or ``<featureId>.png`` beside
the JSON. v1 rows carry no image size: it is read from the image file's header (nothing
decoded).

**v2 row** ``{"data_row": {"external_id"}, "media_attributes": {"width", "height"},
"projects": {id: {"labels": [{"annotations": {"objects": [...]}}]}}}`` (the first label of each
project is read); objects carry ``name``, ``feature_id`` and one of ``bounding_box``,
``polygon`` (closed: the repeated last vertex is dropped), ``line``, ``point``, ``mask``
(``<feature_id>.png`` as above) or ``composite_mask`` (the PNG named by its URL's last part,
pixels equal to ``color_rgb``).

A mask PNG must be the image's size: a mask of another size (Labelbox labelled a different
copy of the image) is refused in one line naming both sizes (the image is skipped with
``--keep-going``). A mask pixel is set when any RGBA channel of it is non-zero (the committed
masks are (0,0,0,0) / (255,255,255,255)). Pixels: ``convention = "inclusive"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from conceptkit.converters import (
    ReadOptions,
    array,
    base_name,
    check_points,
    each_record,
    image_size,
    inside,
    integer,
    json_lines,
    local_image,
    mapping,
    number,
    read_mask_png,
    text,
    tight_mask,
    within,
)

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

DESCRIPTION = "Labelbox v1 JSON (with bitmasks/*.png) and v2 NDJSON export (polygon, box, mask)"
EXAMPLE = "conceptkit convert labelbox export-2021-01-01.json -o broden/"


def _xy(item: Any, file: Path, place: str) -> list[float]:
    p = mapping(item, file, place)
    return [number(p.get(c), file, f"{place}.{c}") for c in ("x", "y")]


def _vertices(value: Any, file: Path, place: str) -> np.ndarray:
    items = array(value, file, place)
    pts = np.array([_xy(p, file, f"{place}[{k}]") for k, p in enumerate(items)], dtype=np.float64)
    return pts.reshape(-1, 2)


def _mask_file(root: Path, name: str, file: Path, place: str) -> Path:
    for path in (root / "bitmasks" / name, root / "masks" / name, root / name):
        if path.is_file():
            if not inside(root, path):
                raise FormatError(f"mask {name!r} is a symbolic link leading outside", file, place)
            return path
    raise FormatError(f"mask {name} not found (bitmasks/, masks/ or beside the JSON)", file, place)


def mask_shape(
    path: Path, size: tuple[int, int], colour: tuple[int, int, int] | None, file: Path, place: str
) -> Shape | None:
    """The ``mask`` Shape of a mask PNG (label empty); FormatError when its size is not ``size``."""
    rgba = read_mask_png(path, file, place, f"mask {path.name!r}")
    h, w = rgba.shape[:2]
    if (w, h) != size:
        raise FormatError(
            f"mask {path.name} is {w}x{h}, the image is {size[0]}x{size[1]}: "
            "the mask was drawn on another copy of the image",
            file,
            place,
        )
    on = (rgba[..., :3] == colour).all(axis=-1) if colour else rgba.any(axis=-1)
    tight = tight_mask(on)
    if tight is None:
        return None
    patch, origin = tight
    return Shape(label="", kind="mask", mask=patch, origin=origin, place=place)


def _geometry(obj: dict[str, Any], keys: dict[str, str], file: Path, place: str) -> Shape | None:
    """Vector geometry of an object; ``keys`` maps the kind to this version's field name."""
    if keys["bbox"] in obj:
        box = mapping(obj[keys["bbox"]], file, f"{place}.{keys['bbox']}")
        t, left, h, w = (
            number(box.get(k), file, f"{place}.{keys['bbox']}.{k}")
            for k in ("top", "left", "height", "width")
        )
        kind, pts = "rectangle", np.array([[left, t], [left + w, t + h]])
    elif "polygon" in obj:
        kind, pts = "polygon", _vertices(obj["polygon"], file, f"{place}.polygon")
        if len(pts) > 3 and (pts[0] == pts[-1]).all():
            pts = pts[:-1]
        if len(pts) < 3:
            raise FormatError(
                f"a polygon needs 3 points, found {len(pts)}", file, f"{place}.polygon"
            )
    elif "line" in obj:
        kind, pts = "linestrip", _vertices(obj["line"], file, f"{place}.line")
    elif "point" in obj:
        kind, pts = "point", np.array([_xy(obj["point"], file, f"{place}.point")])
    else:
        return None
    check_points(pts, file, place)
    return Shape(label="", kind=kind, points=pts, place=place)  # type: ignore[arg-type]


def _v1_row(row: dict[str, Any], file: Path, place: str) -> ImageAnnotation:
    ref = text(row.get("External ID"), file, f"{place}['External ID']")
    name = base_name(ref, file, f"{place}['External ID']")
    path = local_image(file.parent, name, file, f"{place}['External ID']")
    size = image_size(path, file, f"{place}['External ID']")
    record = ImageAnnotation(
        key=name, width=size[0], height=size[1], image_path=path, source=str(file)
    )
    label = row.get("Label", {})
    objects = mapping(label, file, f"{place}.Label").get("objects", []) if label != "Skip" else []
    keys = {"bbox": "bbox"}
    for k, item in enumerate(array(objects, file, f"{place}.Label.objects")):
        where = f"{place}.Label.objects[{k}]"
        obj = mapping(item, file, where)
        feature = text(obj.get("featureId", str(k)), file, f"{where}.featureId")
        shape = _geometry(obj, keys, file, where)
        if shape is None:
            mask = _mask_file(file.parent, base_name(feature, file, where) + ".png", file, where)
            shape = mask_shape(mask, size, None, file, where)
        if shape is None:
            continue
        shape.label = text(obj.get("title", obj.get("value")), file, f"{where}.title")
        shape.instance, shape.order = feature, len(record.shapes)
        record.shapes.append(shape)
    return record


def _v2_mask(obj: dict[str, Any], size: tuple[int, int], file: Path, place: str) -> Shape | None:
    if "composite_mask" in obj:
        cm = mapping(obj["composite_mask"], file, f"{place}.composite_mask")
        name = base_name(text(cm.get("url"), file, f"{place}.composite_mask.url"), file, place)
        rgb = array(cm.get("color_rgb"), file, f"{place}.composite_mask.color_rgb")
        colour = [integer(c, file, f"{place}.composite_mask.color_rgb") for c in rgb]
        if len(colour) != 3:
            raise FormatError(
                "color_rgb needs [r, g, b]", file, f"{place}.composite_mask.color_rgb"
            )
        path = _mask_file(
            file.parent, name if name.endswith(".png") else name + ".png", file, place
        )
        return mask_shape(path, size, (colour[0], colour[1], colour[2]), file, place)
    if "mask" in obj:
        feature = text(obj.get("feature_id"), file, f"{place}.feature_id")
        path = _mask_file(file.parent, base_name(feature, file, place) + ".png", file, place)
        return mask_shape(path, size, None, file, place)
    return None


def _v2_row(row: dict[str, Any], file: Path, place: str) -> ImageAnnotation:
    data_row = mapping(row.get("data_row"), file, f"{place}.data_row")
    ref = data_row.get("external_id") or data_row.get("row_data")
    name = base_name(text(ref, file, f"{place}.data_row.external_id"), file, f"{place}.data_row")
    media = mapping(row.get("media_attributes"), file, f"{place}.media_attributes")
    width = integer(media.get("width"), file, f"{place}.media_attributes.width")
    height = integer(media.get("height"), file, f"{place}.media_attributes.height")
    check_size(width, height, file=file, place=f"{place}.media_attributes")
    record = ImageAnnotation(
        key=name,
        width=width,
        height=height,
        image_path=local_image(file.parent, name, file, f"{place}.data_row"),
        source=str(file),
    )
    projects = mapping(row.get("projects", {}), file, f"{place}.projects")
    for pid in sorted(projects):
        pplace = f"{place}.projects[{pid!r}]"
        labels = array(
            mapping(projects[pid], file, pplace).get("labels", []), file, f"{pplace}.labels"
        )
        if not labels:
            continue
        anns = mapping(
            mapping(labels[0], file, f"{pplace}.labels[0]").get("annotations", {}), file, pplace
        )
        for k, item in enumerate(
            array(anns.get("objects", []), file, f"{pplace}.labels[0].annotations.objects")
        ):
            where = f"{pplace}.labels[0].annotations.objects[{k}]"
            obj = mapping(item, file, where)
            shape = _geometry(obj, {"bbox": "bounding_box"}, file, where) or _v2_mask(
                obj, (width, height), file, where
            )
            if shape is None:
                continue
            shape.label = text(obj.get("name", obj.get("value")), file, f"{where}.name")
            shape.instance = str(obj.get("feature_id", k))
            shape.order = len(record.shapes)
            record.shapes.append(shape)
    return record


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.suffix.lower() == ".ndjson":
        for n, value in json_lines(path, "Labelbox NDJSON"):
            yield f"line {n}", mapping(value, path, f"line {n}")
        return
    data = jsonfile.load(path, "Labelbox JSON")
    rows = [data] if isinstance(data, dict) else array(data, path, "$")
    for i, row in enumerate(rows):
        yield f"$[{i}]", mapping(row, path, f"$[{i}]")


def _row(path: Path, item: tuple[str, dict[str, Any]]) -> ImageAnnotation:
    """The record of one ``(place, row)`` of the Labelbox file ``path`` (v2 rows have data_row)."""
    place, row = item
    return _v2_row(row, path, place) if "data_row" in row else _v1_row(row, path, place)


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if src.is_dir():
        found = sorted(
            p for p in src.iterdir() if p.suffix.lower() in (".json", ".ndjson") and p.is_file()
        )
        if found:
            return within(src, found)
        raise FormatError("no Labelbox export (*.json, *.ndjson) here", src)
    raise FormatError("no such file or folder (expected a Labelbox export)", src)


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per row of the Labelbox export(s) at ``src``."""
    for path in _files(Path(src)):
        yield from each_record(
            _rows(path), partial(_row, path), options, "; row skipped", path.parent.name
        )
