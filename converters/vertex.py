"""Reader of Google Vertex AI image-segmentation JSON Lines (import files and exported annotations).

No real Vertex AI export was found (FORMATS.md section 6): this reader follows the documented
schema (``image_segmentation_io_format_1.0.0.yaml`` and the ``ImageSegmentationAnnotation``
REST type), and its tests are built from that schema.

``src``: a ``.jsonl`` file or a folder of them (sorted). One line per image:
``imageGcsUri`` / ``image_gcs_uri`` (the image is its last part, beside the JSONL, in
``images/`` or ``img/``) and annotations in any of these places:

- ``segmentationAnnotations`` / ``segmentation_annotations`` (an object or a list) holding
  ``categoryMaskUri``/``category_mask_uri`` and ``annotationSpecColors``/``annotation_spec_colors``;
- ``maskAnnotation`` (``maskGcsUri``, ``annotationSpecColors``);
- ``polygonAnnotation`` / ``polylineAnnotation`` (objects or lists; ``vertexes[{x, y}]`` and
  ``displayName``), also inside a list ``annotations``.

Colours: ``color: {red, green, blue}`` as 0-1 floats (a missing component is 0, as protobuf
omits zeros), matched against the mask PNG's pixels after rounding ``c * 255``; the colour table
is the vocabulary (``displayName`` / ``display_name``). The mask PNG (its URI's last part,
beside the JSONL) must be the image's size. Vertices are 0-1 of the image's size (read from the
image file's header); polygons are implicitly closed. ``convention = "center"``.
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
    export_files,
    image_size,
    line_records,
    local_image,
    mapping,
    number,
    read_mask_png,
    text,
)
from conceptkit.converters.sagemaker import colour_shapes

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError

DESCRIPTION = (
    "Google Vertex AI image segmentation JSONL (category masks, polygons; 0-1 coordinates)"
)
EXAMPLE = "conceptkit convert vertex dataset.jsonl -o broden/"


def _get(obj: dict[str, Any], camel: str) -> Any:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj.get(camel, obj.get(snake))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _colours(specs: Any, file: Path, place: str) -> list[tuple[str, tuple[int, int, int]]]:
    out = []
    for k, item in enumerate(array(specs, file, place)):
        at = f"{place}[{k}]"
        spec = mapping(item, file, at)
        label = text(_get(spec, "displayName"), file, f"{at}.displayName")
        colour = mapping(spec.get("color", {}), file, f"{at}.color")
        rgb = []
        for c in ("red", "green", "blue"):
            v = number(colour.get(c, 0), file, f"{at}.color.{c}")
            if not 0 <= v <= 1:
                raise FormatError(
                    f"colour component {v} is not within 0-1", file, f"{at}.color.{c}"
                )
            rgb.append(int(round(v * 255)))
        out.append((label, (rgb[0], rgb[1], rgb[2])))
    return out


def _mask(ann: dict[str, Any], uri_key: str, rec: ImageAnnotation, file: Path, place: str) -> None:
    uri = text(_get(ann, uri_key), file, f"{place}.{uri_key}")
    path = local_image(file.parent, base_name(uri, file, place), file, f"{place}.{uri_key}")
    table = _colours(_get(ann, "annotationSpecColors"), file, f"{place}.annotationSpecColors")
    rgba = read_mask_png(path, file, f"{place}.{uri_key}", f"mask {path.name!r}")
    if rgba.shape[1::-1] != (rec.width, rec.height):
        raise FormatError(
            f"mask {path.name} is {rgba.shape[1]}x{rgba.shape[0]}, the image is {rec.width}x{rec.height}",
            file,
            f"{place}.{uri_key}",
        )
    for shape in colour_shapes(rgba, table, place):
        shape.order, shape.convention = len(rec.shapes), "center"
        rec.shapes.append(shape)


def _path(ann: dict[str, Any], kind: str, rec: ImageAnnotation, file: Path, place: str) -> None:
    verts = array(ann.get("vertexes"), file, f"{place}.vertexes")
    pts = np.zeros((len(verts), 2))
    for j, v in enumerate(verts):
        p = mapping(v, file, f"{place}.vertexes[{j}]")
        pts[j] = [number(p.get(c, 0), file, f"{place}.vertexes[{j}].{c}") for c in ("x", "y")]
    if len(pts) < (3 if kind == "polygon" else 2):
        raise FormatError(
            f"a {kind} needs more vertexes, found {len(pts)}", file, f"{place}.vertexes"
        )
    pts = pts * [rec.width, rec.height]
    check_points(pts, file, place)
    label = text(_get(ann, "displayName"), file, f"{place}.displayName")
    rec.shapes.append(
        Shape(
            label=label,
            kind=kind,  # type: ignore[arg-type]
            points=pts,
            place=place,
            order=len(rec.shapes),
            convention="center",
        )
    )


def _annotations(line: dict[str, Any], rec: ImageAnnotation, file: Path, place: str) -> None:
    sources: list[tuple[str, Any]] = [(place, line)]
    if "annotations" in line:
        sources += [
            (f"{place}.annotations[{k}]", a)
            for k, a in enumerate(array(line["annotations"], file, f"{place}.annotations"))
        ]
    for base, holder in sources:
        obj = mapping(holder, file, base)
        for key, handler in (
            ("segmentationAnnotations", "category"),
            ("maskAnnotation", "mask"),
            ("polygonAnnotation", "polygon"),
            ("polylineAnnotation", "linestrip"),
        ):
            value = _get(obj, key)
            if value is None:
                continue
            for k, ann in enumerate(_listed(value)):
                at = f"{base}.{key}" + (f"[{k}]" if isinstance(value, list) else "")
                ann = mapping(ann, file, at)
                if handler == "category":
                    _mask(ann, "categoryMaskUri", rec, file, at)
                elif handler == "mask":
                    _mask(ann, "maskGcsUri", rec, file, at)
                else:
                    _path(ann, handler, rec, file, at)


def _line(line: dict[str, Any], file: Path, place: str) -> ImageAnnotation:
    uri = text(_get(line, "imageGcsUri"), file, f"{place}.imageGcsUri")
    name = base_name(uri, file, f"{place}.imageGcsUri")
    path = local_image(file.parent, name, file, f"{place}.imageGcsUri")
    w, h = image_size(path, file, f"{place}.imageGcsUri")
    rec = ImageAnnotation(key=name, width=w, height=h, image_path=path, source=str(file))
    _annotations(line, rec, file, place)
    return rec


def _files(src: Path) -> list[Path]:
    return export_files(src, ("*.jsonl",), "Vertex AI *.jsonl", "a Vertex AI .jsonl")


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per line of the Vertex AI JSONL file(s) at ``src``."""
    for path in _files(Path(src)):
        yield from line_records(path, "Vertex AI JSONL", _line, options)
