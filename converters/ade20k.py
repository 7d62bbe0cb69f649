"""ADE20K (X_seg.png, X_parts_N.png with X_atr.txt or the 2021 X.json): objects and parts.

Per image ``X.jpg`` (found by its ``X_seg.png``, anywhere under ``src``, sorted)::

    X_seg.png        objects: class = (R // 10) * 256 + G, instance = the distinct values of B
    X_parts_N.png    part level N (1, 2, ...), the same encoding
    X_atr.txt        2016/2017: ``instance # part_level # occluded # name # raw name # "attrs"``
    X.json           2021: annotation.object[{id, name, name_ndx, parts{part_level}, ...}],
                     annotation.scene, annotation.imsize [H, W, 3]

Names (ADE's own table; no mapping by hand): with ``X.json``, the class number of a region is
the ``name_ndx`` of the image's objects and its name is that object's ``name`` up to the first
comma (WordNet lemmas: ``"car, auto, automobile"`` -> ``car``); class 0 is unlabelled. With
``X_atr.txt``, the instance number of a region is the rank of its B value among the PNG's
distinct B values with 0 counted in (B = 0 is rank 0, unlabelled unless listed), and its name is
the row of that instance and part level, up to the first comma. A region that the table does
not name is a FormatError naming the PNG, the value and its first pixel.

Shapes (``mask``, pixels exact, from the modal ``_seg``/``_parts`` PNGs, not the amodal
``instance_*.png``): one per (level, class, B value) region; level 0 is category ``object``
(the vocabulary decides), part levels are category ``part``, as in Broden. The scene
(JSON ``scene``'s last entry, else the image's folder when it sits in ``training/`` or
``validation/``) is an image-level tag. Split: ``validation`` in the path -> ``val``, else
``train``. Every PNG header is checked against the limits and the ``_seg`` size before decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions, each_record
from conceptkit.converters._masks import (
    files_under,
    image_in,
    mask_shape,
    pack_bytes,
    read_plane,
    read_text,
    regions,
)

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError

DESCRIPTION = (
    "ADE20K (X_seg.png, X_parts_N.png with X_atr.txt or the 2021 X.json): objects and parts"
)
EXAMPLE = "conceptkit convert ade20k ADE20K_2021_17_01/images/ADE -o broden_ade"

_SUFFIX = "_seg.png"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass
class Names:
    """The name table of one image: by class number (JSON) or by (level, instance) (atr)."""

    by_class: dict[int, str] = field(default_factory=dict)
    by_instance: dict[tuple[int, int], str] = field(default_factory=dict)
    scene: str | None = None
    source: Path | None = None
    by_number: bool = True


def short_name(name: str) -> str:
    """ADE's WordNet-style name up to the first comma: ``"car, auto"`` -> ``car``."""
    return name.split(",", 1)[0].strip()


def _whole(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def read_atr(path: Path) -> Names:
    """The ``(part level, instance) -> name`` table of a 2016/2017 ``_atr.txt``."""
    names = Names(source=path, by_number=False)
    for i, line in enumerate(read_text(path, what="attribute file"), 1):
        if not line.strip():
            continue
        fields = line.split(" # ")
        instance = _whole(fields[0]) if len(fields) >= 5 else None
        level = _whole(fields[1]) if len(fields) >= 5 else None
        if instance is None or level is None or not short_name(fields[3]):
            raise FormatError(
                "expected 'instance # part level # occluded # name # raw name # attributes'",
                path,
                f"line {i}",
            )
        names.by_instance[(level, instance)] = short_name(fields[3])
    return names


def read_json(path: Path) -> Names:
    """The ``class number -> name`` table (and the scene) of a 2021 per-image JSON."""
    data = jsonfile.load(path, "ADE20K JSON")
    ann = data.get("annotation") if isinstance(data, dict) else None
    objects = ann.get("object") if isinstance(ann, dict) else None
    if not isinstance(objects, list):
        raise FormatError("expected an object {annotation: {object: [...]}}", path, "$")
    names = Names(source=path)
    for i, obj in enumerate(objects):
        place = f"$.annotation.object[{i}]"
        ndx = obj.get("name_ndx") if isinstance(obj, dict) else None
        name = obj.get("name") if isinstance(obj, dict) else None
        if not isinstance(ndx, int) or isinstance(ndx, bool) or ndx < 1 or ndx >= 1 << 24:
            raise FormatError("name_ndx must be a whole number from 1", path, f"{place}.name_ndx")
        if not isinstance(name, str) or not short_name(name):
            raise FormatError("name must be a non-empty string", path, f"{place}.name")
        names.by_class[ndx] = short_name(name)
    scene = ann.get("scene") if isinstance(ann, dict) else None
    if isinstance(scene, list) and scene and isinstance(scene[-1], str) and scene[-1].strip():
        names.scene = scene[-1].strip()
    return names


def _names(stem: Path) -> Names:
    json_path = stem.with_name(stem.name + ".json")
    atr_path = stem.with_name(stem.name + "_atr.txt")
    if json_path.is_file():
        return read_json(json_path)
    if atr_path.is_file():
        names = read_atr(atr_path)
        if stem.parent.parent.name in ("training", "validation"):
            names.scene = stem.parent.name
        return names
    raise FormatError(
        f"has neither {json_path.name} nor {atr_path.name} beside it",
        stem.with_name(stem.name + _SUFFIX),
    )


def _first_pixel(plane: np.ndarray, value: int) -> str:
    row, col = (int(c[0]) for c in np.nonzero(plane == value))
    return f"pixel (row {row}, column {col})"


def level_shapes(rgb: np.ndarray, level: int, names: Names, png: Path, start: int) -> list[Shape]:
    """The Shapes of one level's PNG ``(H, W, 3) uint8`` (level 0 = objects, N = part level N)."""
    category = "part" if level > 0 else None
    shapes: list[Shape] = []
    if names.by_number:
        # class * 256 + B = (R // 10) << 16 | G << 8 | B: at most 25 * 2**16 + 2**16 - 1
        key = pack_bytes(rgb[..., 0] // 10, rgb[..., 1], rgb[..., 2])
        # keys below 256 are class 0 (unlabelled): never a region
        for region in regions(key, set(range(256))):
            number, blue = divmod(region.value, 256)
            label = names.by_class.get(number)
            if label is None:
                raise FormatError(
                    f"class {number} at {_first_pixel(key, region.value)} is not named in "
                    f"{names.source.name if names.source else 'the name table'}",
                    png,
                    "pixels",
                )
            shapes.append(
                mask_shape(
                    label,
                    region,
                    order=start + len(shapes),
                    place=f"class {number}",
                    instance=f"{level}:{blue}",
                    category=category,
                )
            )
        return shapes
    b = rgb[..., 2]
    present = np.bincount(b.reshape(-1), minlength=256) > 0
    present[0] = True  # B = 0 is rank 0 whether or not it occurs
    ranks = (np.cumsum(present) - 1).astype(np.uint8)[b]
    for region in regions(ranks, set()):
        label = names.by_instance.get((level, region.value))
        if label is None:
            if region.value == 0:
                continue
            raise FormatError(
                f"instance {region.value} (part level {level}) at "
                f"{_first_pixel(ranks, region.value)} is not in {names.source.name if names.source else 'the table'}",
                png,
                "pixels",
            )
        shapes.append(
            mask_shape(
                label,
                region,
                order=start + len(shapes),
                place=f"instance {region.value}",
                instance=f"{level}:{region.value}",
                category=category,
            )
        )
    return shapes


def _levels(seg: Path, stem: Path) -> list[Path]:
    """``X_seg.png`` then ``X_parts_1.png``, ``X_parts_2.png``, ... while they exist."""
    found = [seg]
    n = 1
    while (part := stem.with_name(f"{stem.name}_parts_{n}.png")).is_file():
        found.append(part)
        n += 1
    return found


def read_image(src: Path, seg: Path) -> ImageAnnotation:
    """The annotation of the image whose object PNG is ``seg``."""
    stem = seg.with_name(seg.name[: -len(_SUFFIX)])
    names = _names(stem)
    shapes: list[Shape] = []
    size: tuple[int, int] | None = None
    for level, png in enumerate(_levels(seg, stem)):
        what = "object mask" if level == 0 else f"part level {level} mask"
        rgb = read_plane(png, file=png, place="header", what=what, size=size)
        if rgb.ndim != 3:
            raise FormatError(
                f"{what} must be an RGB PNG (class in R and G, instance in B)", png, "header"
            )
        size = (rgb.shape[1], rgb.shape[0])
        shapes.extend(level_shapes(rgb, level, names, png, len(shapes)))
    assert size is not None
    image = image_in(src, [stem.with_name(stem.name + s) for s in _IMAGE_SUFFIXES], seg, "image")
    parts = {p.lower() for p in seg.relative_to(src).parts} if seg.is_relative_to(src) else set()
    return ImageAnnotation(
        key=image.name,
        width=size[0],
        height=size[1],
        shapes=shapes,
        tags=[names.scene] if names.scene else [],
        image_path=image,
        source=str(names.source or seg),
        annotator=src.name,
        split="val" if "validation" in parts else "train",
    )


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one annotation per ``*_seg.png`` under ``src``, sorted by path."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError("is not a folder; point at an ADE20K images folder", src)
    segs = files_under(src, f"*{_SUFFIX}")
    if not segs:
        raise FormatError(f"holds no ADE20K *{_SUFFIX} file", src)
    yield from each_record(segs, partial(read_image, src), options, " (skipped)")
