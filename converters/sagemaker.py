"""Reader of Amazon SageMaker Ground Truth output manifests, and of crowd-html worker outputs (MTurk).

``src``: an ``output.manifest`` (JSON Lines) or a folder holding ``*.manifest`` files (sorted);
or a crowd-html output ``.json`` file, or a folder of them when it holds no manifest.

**Manifest line**: ``source-ref`` (an ``s3://`` URI; the image is its last part, beside the
manifest, in ``images/`` or ``img/``) and label attributes, each with ``<attr>-metadata``
whose ``type`` says what it is:

- ``groundtruth/semantic-segmentation``: ``<attr>`` (its name ends in ``-ref``) is the URI of
  the label PNG, found by its last part beside the manifest (``:`` in S3 keys may be ``_`` on
  disk; both are tried). The PNG is decoded by colour through ``internal-color-map``
  (``{"0": {"class-name", "hex-color"}}``): every pixel of a class's colour is that class;
  ``#ffffff`` (background, class ``0``) is unlabelled. The colour table is the vocabulary, so
  class names come out as the job defined them. One ``mask`` Shape per class present. The PNG
  must be the image's size (read from the image's header).
- ``groundtruth/object-detection``: ``annotations[{class_id, left, top, width, height}]`` in
  pixels, the class from ``class-map`` (string keys), the size from ``image_size[0]`` ->
  ``rectangle`` Shapes.

Other types (classification, verification) are skipped. Several label attributes on one line
are all read, in sorted order.

**Crowd-html output** (``crowd-semantic-segmentation``, ``crowd-instance-segmentation``,
``crowd-polygon``; a list of
``{"annotatedResult": ...}`` or one such object, one per worker): the image is the file of the
same stem beside the JSON (``.jpg``, ``.jpeg``, ``.png``); the size is
``inputImageProperties``. ``labeledImage.pngImageData`` (base64 PNG) is decoded by colour through
``labelMappings`` (``{label: {"color": "#rrggbb"}}``), or through ``instances``
(``[{"color", "label"}]``: each colour one object, labels may repeat); ``polygons[{label, vertices[{x, y}]}]``
are polygons in pixels. Only the first worker's result is read (a warning names the others).

Pixels: ``convention = "inclusive"`` (the masks are pasted as they are).
"""

from __future__ import annotations

import base64
import binascii
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
    hex_colour,
    image_size,
    integer,
    line_records,
    local_image,
    mapping,
    number,
    read_mask_png,
    text,
    tight_mask,
)

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

DESCRIPTION = (
    "SageMaker Ground Truth output.manifest (semantic masks, boxes) and MTurk crowd-html outputs"
)
EXAMPLE = "conceptkit convert sagemaker output.manifest -o broden/"

SEMANTIC = "groundtruth/semantic-segmentation"
BOXES = "groundtruth/object-detection"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def colour_shapes(
    rgba: np.ndarray,
    table: list[tuple[str, tuple[int, int, int]]],
    place: str,
    instances: bool = False,
) -> list[Shape]:
    """One ``mask`` Shape per (label, colour) of ``table`` present in ``rgba`` ``(H, W, 4) uint8``.

    ``instances``: each colour is one object (its ``instance`` is the colour, ``#rrggbb``).
    """
    out: list[Shape] = []
    # each pixel's bytes r, g, b, a read as one little-endian uint32: r | g << 8 | b << 16 (no copy)
    packed = np.ascontiguousarray(rgba, dtype=np.uint8).view("<u4")[..., 0] & 0xFFFFFF
    # a long table is first narrowed to the colours present (a short one: one comparison each)
    present = set(np.unique(packed).tolist()) if len(table) > 32 else None
    for label, (r, g, b) in table:
        code = (r << 16) | (g << 8) | b
        key = r | (g << 8) | (b << 16)
        if present is not None and key not in present:
            continue
        tight = tight_mask(packed == key)
        if tight is None:
            continue
        patch, origin = tight
        out.append(
            Shape(
                label=label,
                kind="mask",
                mask=patch,
                origin=origin,
                place=place,
                order=len(out),
                instance=f"#{code:06x}" if instances else None,
            )
        )
    return out


def _label_png(root: Path, uri: str, file: Path, place: str) -> Path:
    name = base_name(uri, file, place)
    for candidate in (name, name.replace(":", "_")):
        path = local_image(root, candidate, file, place)
        if path.is_file():
            return path
    raise FormatError(f"label PNG {name} not found beside the manifest", file, place)


def _semantic(
    line: dict[str, Any],
    attr: str,
    meta: dict[str, Any],
    rec: ImageAnnotation,
    file: Path,
    place: str,
) -> None:
    cmap = mapping(
        meta.get("internal-color-map"), file, f"{place}['{attr}-metadata']['internal-color-map']"
    )
    table = []
    for key in sorted(cmap, key=lambda k: (len(k), k)):
        where = f"{place}['{attr}-metadata']['internal-color-map'][{key!r}]"
        entry = mapping(cmap[key], file, where)
        colour = hex_colour(
            text(entry.get("hex-color"), file, f"{where}['hex-color']"), file, where
        )
        name = text(entry.get("class-name"), file, f"{where}['class-name']")
        if key != "0" and colour != (255, 255, 255):
            table.append((name, colour))
    png = _label_png(
        file.parent, text(line[attr], file, f"{place}[{attr!r}]"), file, f"{place}[{attr!r}]"
    )
    rgba = read_mask_png(png, file, f"{place}[{attr!r}]", f"label PNG {png.name!r}")
    if rgba.shape[1::-1] != (rec.width, rec.height):
        raise FormatError(
            f"label PNG {png.name} is {rgba.shape[1]}x{rgba.shape[0]}, the image is {rec.width}x{rec.height}",
            file,
            f"{place}[{attr!r}]",
        )
    for shape in colour_shapes(rgba, table, f"{place}[{attr!r}]"):
        shape.order = len(rec.shapes)
        rec.shapes.append(shape)


def _boxes(
    line: dict[str, Any],
    attr: str,
    meta: dict[str, Any],
    rec: ImageAnnotation,
    file: Path,
    place: str,
) -> None:
    where = f"{place}[{attr!r}]"
    body = mapping(line[attr], file, where)
    classes = mapping(meta.get("class-map", {}), file, f"{place}['{attr}-metadata']['class-map']")
    for k, item in enumerate(array(body.get("annotations", []), file, f"{where}.annotations")):
        at = f"{where}.annotations[{k}]"
        box = mapping(item, file, at)
        cid = str(integer(box.get("class_id"), file, f"{at}.class_id"))
        if cid not in classes:
            raise FormatError(f"class_id {cid} is not in class-map", file, f"{at}.class_id")
        x, y, w, h = (
            number(box.get(c), file, f"{at}.{c}") for c in ("left", "top", "width", "height")
        )
        pts = np.array([[x, y], [x + w, y + h]])
        check_points(pts, file, at)
        label = text(classes[cid], file, f"{place}['{attr}-metadata']['class-map'][{cid!r}]")
        rec.shapes.append(
            Shape(label=label, kind="rectangle", points=pts, place=at, order=len(rec.shapes))
        )


def _manifest_line(line: dict[str, Any], file: Path, place: str) -> ImageAnnotation:
    name = base_name(
        text(line.get("source-ref"), file, f"{place}['source-ref']"), file, f"{place}['source-ref']"
    )
    path = local_image(file.parent, name, file, f"{place}['source-ref']")
    attrs = sorted(k for k in line if f"{k}-metadata" in line)
    metas = {a: mapping(line[f"{a}-metadata"], file, f"{place}['{a}-metadata']") for a in attrs}
    if any(m.get("type") == BOXES for m in metas.values()) and not any(
        m.get("type") == SEMANTIC for m in metas.values()
    ):
        attr = next(a for a in attrs if metas[a].get("type") == BOXES)
        body = mapping(line[attr], file, f"{place}[{attr!r}]")
        sizes = array(body.get("image_size"), file, f"{place}[{attr!r}].image_size")
        if not sizes:
            raise FormatError(
                "is empty, expected [{width, height, depth}]",
                file,
                f"{place}[{attr!r}].image_size",
            )
        size = mapping(sizes[0], file, f"{place}[{attr!r}].image_size[0]")
        w = integer(size.get("width"), file, f"{place}[{attr!r}].image_size[0].width")
        h = integer(size.get("height"), file, f"{place}[{attr!r}].image_size[0].height")
    else:
        w, h = image_size(path, file, f"{place}['source-ref']")
    check_size(w, h, file=file, place=place)
    rec = ImageAnnotation(key=name, width=w, height=h, image_path=path, source=str(file))
    for attr in attrs:
        kind = metas[attr].get("type")
        if kind == SEMANTIC:
            _semantic(line, attr, metas[attr], rec, file, place)
        elif kind == BOXES:
            _boxes(line, attr, metas[attr], rec, file, place)
    return rec


def _crowd(data: Any, file: Path, options: ReadOptions) -> ImageAnnotation:
    items = data if isinstance(data, list) else [data]
    if len(items) > 1:
        options.warn(f"{file}: {len(items)} worker results; the first is read")
    place = "$[0].annotatedResult" if isinstance(data, list) else "$.annotatedResult"
    if not items:
        raise FormatError("holds no worker result", file, "$")
    result = mapping(
        mapping(items[0], file, place.rsplit(".", 1)[0]).get("annotatedResult"), file, place
    )
    props = mapping(result.get("inputImageProperties"), file, f"{place}.inputImageProperties")
    w = integer(props.get("width"), file, f"{place}.inputImageProperties.width")
    h = integer(props.get("height"), file, f"{place}.inputImageProperties.height")
    check_size(w, h, file=file, place=f"{place}.inputImageProperties")
    image = next(
        (file.with_suffix(s) for s in _IMAGE_SUFFIXES if file.with_suffix(s).is_file()),
        file.with_suffix(".jpg"),
    )
    rec = ImageAnnotation(key=image.name, width=w, height=h, image_path=image, source=str(file))
    for k, item in enumerate(array(result.get("polygons", []), file, f"{place}.polygons")):
        at = f"{place}.polygons[{k}]"
        poly = mapping(item, file, at)
        verts = array(poly.get("vertices"), file, f"{at}.vertices")
        pts = np.array(
            [
                [
                    number(
                        mapping(v, file, f"{at}.vertices[{j}]").get(c),
                        file,
                        f"{at}.vertices[{j}].{c}",
                    )
                    for c in ("x", "y")
                ]
                for j, v in enumerate(verts)
            ]
        ).reshape(-1, 2)
        if len(pts) < 3:
            raise FormatError(
                f"a polygon needs 3 vertices, found {len(pts)}", file, f"{at}.vertices"
            )
        check_points(pts, file, at)
        rec.shapes.append(
            Shape(
                label=text(poly.get("label"), file, f"{at}.label"),
                kind="polygon",
                points=pts,
                place=at,
                order=len(rec.shapes),
            )
        )
    if "labeledImage" in result:
        _crowd_mask(result, rec, file, place)
    return rec


def _crowd_mask(result: dict[str, Any], rec: ImageAnnotation, file: Path, place: str) -> None:
    at = f"{place}.labeledImage.pngImageData"
    b64 = text(
        mapping(result["labeledImage"], file, f"{place}.labeledImage").get("pngImageData"), file, at
    )
    try:
        png = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError("pngImageData is not base64", file, at) from None
    table = _crowd_table(result, file, place)
    rgba = read_mask_png(png, file, at, "labeledImage")
    if rgba.shape[1::-1] != (rec.width, rec.height):
        raise FormatError(
            f"labeledImage is {rgba.shape[1]}x{rgba.shape[0]}, the image {rec.width}x{rec.height}",
            file,
            at,
        )
    for shape in colour_shapes(rgba, table, at, instances="instances" in result):
        shape.order = len(rec.shapes)
        rec.shapes.append(shape)


def _crowd_table(
    result: dict[str, Any], file: Path, place: str
) -> list[tuple[str, tuple[int, int, int]]]:
    """(label, colour) pairs: ``instances`` (instance segmentation) or ``labelMappings``."""
    if "instances" in result:
        items = array(result["instances"], file, f"{place}.instances")
        pairs = []
        for k, item in enumerate(items):
            at = f"{place}.instances[{k}]"
            inst = mapping(item, file, at)
            label = text(inst.get("label"), file, f"{at}.label")
            pairs.append(
                (label, hex_colour(text(inst.get("color"), file, f"{at}.color"), file, at))
            )
        return pairs
    mappings = mapping(result.get("labelMappings", {}), file, f"{place}.labelMappings")
    out = []
    for label, value in mappings.items():
        at = f"{place}.labelMappings[{label!r}]"
        colour = text(mapping(value, file, at).get("color"), file, f"{at}.color")
        out.append((label, hex_colour(colour, file, at)))
    return out


def _files(src: Path) -> list[Path]:
    return export_files(
        src, ("*.manifest", "*.json"), "*.manifest (nor crowd-html *.json)", "an output.manifest"
    )


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per manifest line (or crowd-html output file) at ``src``."""
    for path in _files(Path(src)):
        if path.suffix.lower() == ".json":
            yield from each_record(
                [path],
                lambda p: _crowd(jsonfile.load(p, "crowd-html output JSON"), p, options),
                options,
                "; file skipped",
                path.parent.name,
            )
            continue
        yield from line_records(path, "SageMaker manifest", _manifest_line, options)
