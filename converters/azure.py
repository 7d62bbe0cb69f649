"""Reader of Azure Machine Learning labelling exports: COCO (ids and numbers may be strings) and JSONL.

``src``: a ``.json`` COCO file (or a folder holding one), read by :mod:`conceptkit.converters.coco`
with ``string_numbers`` on (Azure's own COCO files write ``"id": "1"``, ``"area": "46766"``); or
a ``.jsonl`` file (or a folder of them, sorted), the AutoML MLTable lines:

``{"image_url": "azureml://.../paths/<path>" (or "AmlDatastore://..."), "image_details":
{"width", "height"} (numbers or strings like "400px"), "label": [...]}``. Each label item is
``{"label": name, "isCrowd": 0|1, "polygon": [[x1, y1, x2, y2, ...], ...]}`` (instance
segmentation: one instance, its parts unioned) or ``{"label", "topX", "topY", "bottomX",
"bottomY"}`` (boxes); a plain string label (classification) is an image-level tag. **All
coordinates are 0-1** of the image's width and height. ``isCrowd = 1`` is an ignore region.
The image is the URL's last part, beside the JSONL (``images/``, ``img/``).
``convention = "center"`` (Azure converts through pycocotools).
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
    coco,
    integer,
    line_records,
    local_image,
    mapping,
    number,
    text,
    within,
)

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

DESCRIPTION = (
    "Azure ML data labelling export: COCO (string ids accepted) or AutoML JSONL (0-1 coordinates)"
)
EXAMPLE = "conceptkit convert azure labels.jsonl -o broden/"


def _side(value: Any, file: Path, place: str) -> int:
    if isinstance(value, str):
        digits = value.strip().removesuffix("px").strip()
        if not digits.isdigit():
            raise FormatError(f"size {value[:20]!r} is not a number of pixels", file, place)
        return int(digits)
    return integer(value, file, place)


def _item(item: Any, k: int, rec: ImageAnnotation, file: Path, place: str) -> None:
    at = f"{place}.label[{k}]"
    if isinstance(item, str):
        rec.tags.append(item)
        return
    obj = mapping(item, file, at)
    label = text(obj.get("label"), file, f"{at}.label")
    crowd = obj.get("isCrowd", 0)
    if crowd not in (0, 1, "0", "1") or isinstance(crowd, bool):
        raise FormatError(f"isCrowd {crowd!r} is not 0 or 1", file, f"{at}.isCrowd")
    common: dict[str, Any] = {
        "label": label,
        "instance": str(k),
        "convention": "center",
        "ignore": str(crowd) == "1",
    }
    scale = np.array([rec.width, rec.height], dtype=np.float64)
    if "polygon" in obj:
        for j, part in enumerate(array(obj["polygon"], file, f"{at}.polygon")):
            where = f"{at}.polygon[{j}]"
            values = [number(v, file, where) for v in array(part, file, where)]
            if len(values) % 2 or len(values) < 6:
                raise FormatError(
                    f"a polygon part needs 3 or more x, y pairs, found {len(values)} numbers",
                    file,
                    where,
                )
            pts = np.asarray(values).reshape(-1, 2) * scale
            check_points(pts, file, where)
            rec.shapes.append(
                Shape(kind="polygon", points=pts, place=where, order=len(rec.shapes), **common)
            )
        return
    x0, y0, x1, y1 = (
        number(obj.get(c), file, f"{at}.{c}") for c in ("topX", "topY", "bottomX", "bottomY")
    )
    pts = np.array([[x0, y0], [x1, y1]]) * scale
    check_points(pts, file, at)
    rec.shapes.append(
        Shape(kind="rectangle", points=pts, place=at, order=len(rec.shapes), **common)
    )


def _line(line: dict[str, Any], file: Path, place: str) -> ImageAnnotation:
    name = base_name(
        text(line.get("image_url"), file, f"{place}.image_url"), file, f"{place}.image_url"
    )
    details = mapping(line.get("image_details"), file, f"{place}.image_details")
    w = _side(details.get("width"), file, f"{place}.image_details.width")
    h = _side(details.get("height"), file, f"{place}.image_details.height")
    check_size(w, h, file=file, place=f"{place}.image_details")
    rec = ImageAnnotation(
        key=name,
        width=w,
        height=h,
        image_path=local_image(file.parent, name, file, f"{place}.image_url"),
        source=str(file),
    )
    labels = line.get("label", [])
    for k, item in enumerate(labels if isinstance(labels, list) else [labels]):
        _item(item, k, rec, file, place)
    return rec


def _jsonl(src: Path) -> list[Path]:
    if src.is_file():
        return [src] if src.suffix.lower() == ".jsonl" else []
    if src.is_dir():
        return within(src, sorted(p for p in src.glob("*.jsonl") if p.is_file()))
    raise FormatError("no such file or folder (expected an Azure ML .jsonl or COCO .json)", src)


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per image of the Azure ML export at ``src`` (JSONL or COCO)."""
    src = Path(src)
    files = _jsonl(src)
    if not files:
        extra = {**options.extra, "string_numbers": True}
        yield from coco.read(
            src, ReadOptions(options.keep_going, options.warn, options.check_paths, extra)
        )
        return
    for path in files:
        yield from line_records(path, "Azure ML JSONL", _line, options)
