"""Cityscapes (gtFine/gtCoarse instanceIds, labelIds, polygons.json, labelTrainIds).

Layout under ``src`` (the dataset root)::

    gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png   id * 1000 + k for objects, id for stuff
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png      the class id per pixel (0-33)
    gtFine/<split>/<city>/<stem>_gtFine_polygons.json     {imgHeight, imgWidth, objects[{label, polygon, deleted}]}
    gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png the train id per pixel (0-18, 255 ignore)
    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png     the image (also imgsFine/leftImg8bit/)

Each image is read from the first of its files in that order (instanceIds carries classes and
instances; labelIds classes; polygons the drawn objects; labelTrainIds the 19 train classes).
Names come from the Cityscapes label table (:data:`LABELS`, cityscapesScripts' labels.py):
classes marked ignore-in-eval (the void ids 0-6, and parking, rail track, guard rail, bridge,
tunnel, polegroup, caravan, trailer, license plate) are unlabelled. A value outside the table is
a FormatError naming the PNG and its first pixel.

Shapes: PNGs give ``mask`` Shapes (pixels exact), one per instance (``id * 1000 + k``, instance
``k``) or per stuff class. ``polygons.json`` gives polygons in file order, later in front
(``inclusive`` pixels, as cityscapesScripts draws them with PIL); ``deleted`` objects are
skipped, ``<class>group`` labels (a crowd) are the class with no instance, and ignore-in-eval
labels are ignore regions (their pixels become unlabelled over what lies behind them).
Split: the folder under ``gtFine`` (``train``, ``val``, ``test``). PNG headers and the declared
``imgWidth x imgHeight`` are checked against the limits before anything is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from conceptkit.converters import ReadOptions, check_points, each_record
from conceptkit.converters._masks import (
    Boxes,
    boxes,
    files_under,
    image_in,
    lookup,
    mask_shape,
    read_plane,
    regions,
)

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

DESCRIPTION = "Cityscapes (gtFine/gtCoarse instanceIds, labelIds, polygons.json, labelTrainIds)"
EXAMPLE = "conceptkit convert cityscapes cityscapes/ -o broden_cityscapes"


@dataclass(frozen=True)
class Label:
    """One row of the Cityscapes label table."""

    id: int
    name: str
    train_id: int
    ignore: bool


#: cityscapesScripts/helpers/labels.py: (id, name, trainId, ignoreInEval)
LABELS = tuple(
    Label(*row)
    for row in (
        (0, "unlabeled", 255, True),
        (1, "ego vehicle", 255, True),
        (2, "rectification border", 255, True),
        (3, "out of roi", 255, True),
        (4, "static", 255, True),
        (5, "dynamic", 255, True),
        (6, "ground", 255, True),
        (7, "road", 0, False),
        (8, "sidewalk", 1, False),
        (9, "parking", 255, True),
        (10, "rail track", 255, True),
        (11, "building", 2, False),
        (12, "wall", 3, False),
        (13, "fence", 4, False),
        (14, "guard rail", 255, True),
        (15, "bridge", 255, True),
        (16, "tunnel", 255, True),
        (17, "pole", 5, False),
        (18, "polegroup", 255, True),
        (19, "traffic light", 6, False),
        (20, "traffic sign", 7, False),
        (21, "vegetation", 8, False),
        (22, "terrain", 9, False),
        (23, "sky", 10, False),
        (24, "person", 11, False),
        (25, "rider", 12, False),
        (26, "car", 13, False),
        (27, "truck", 14, False),
        (28, "bus", 15, False),
        (29, "caravan", 255, True),
        (30, "trailer", 255, True),
        (31, "train", 16, False),
        (32, "motorcycle", 17, False),
        (33, "bicycle", 18, False),
        (-1, "license plate", -1, True),
    )
)
BY_ID = {lab.id: lab for lab in LABELS if lab.id >= 0}
BY_NAME = {lab.name: lab for lab in LABELS}
BY_TRAIN_ID = {lab.train_id: lab for lab in LABELS if not lab.ignore}
_KINDS = ("instanceIds.png", "labelIds.png", "polygons.json", "labelTrainIds.png")
_FILE = re.compile(
    r"^(?P<stem>.+)_(?P<gt>gtFine|gtCoarse)_(?P<kind>instanceIds\.png|labelIds\.png|polygons\.json|labelTrainIds\.png)$"
)


def _pixel_shapes(values: np.ndarray, instances: bool, found: Boxes | None = None) -> list[Shape]:
    """Mask Shapes of a plane of class ids (or ``id * 1000 + k`` when ``instances``) ``(H, W)``;
    every value's class is already known to be in the table (``found``: its boxes, when
    already computed)."""
    shapes: list[Shape] = []
    for region in regions(values, set(), found):
        v = region.value
        class_id, k = divmod(v, 1000) if instances and v >= 1000 else (v, -1)
        if BY_ID[class_id].ignore:
            continue
        shapes.append(
            mask_shape(
                BY_ID[class_id].name,
                region,
                order=len(shapes),
                place=f"value {v}",
                instance=str(k) if k >= 0 else None,
            )
        )
    return shapes


def _class_ids(values: np.ndarray, instances: bool) -> np.ndarray:
    """The class id of each value: ``v // 1000`` for instance values (``v >= 1000``)."""
    return np.where(values >= 1000, values // 1000, values) if instances else values


def _check_ids(
    plane: np.ndarray, instances: bool, table: dict[int, int], path: Path, kind: str
) -> Boxes:
    """The :class:`Boxes` of ``plane``; FormatError naming the first pixel whose class id the
    label table lacks.

    Checked on the distinct values; only when one is missing is the whole plane looked up (to
    name its first pixel)."""
    found = boxes(plane)
    ids = _class_ids(np.asarray(found.values, dtype=np.int64), instances)
    if not all(i in table for i in ids.tolist()):
        lookup(_class_ids(plane, instances), table, file=path, place="pixels", what=kind)
    return found


def _from_png(path: Path, kind: str) -> tuple[tuple[int, int], list[Shape]]:
    plane = read_plane(path, file=path, place="header", what=kind)
    if plane.ndim != 2:
        raise FormatError(f"{kind} must be a one-channel PNG", path, "header")
    size = (plane.shape[1], plane.shape[0])
    table = {i: i for i in BY_ID}
    if kind in ("instanceIds.png", "labelIds.png"):
        instances = kind == "instanceIds.png"
        found = _check_ids(plane, instances, table, path, kind)
        return size, _pixel_shapes(plane, instances, found)
    train = {lab.train_id: lab.id for lab in BY_TRAIN_ID.values()} | {255: 0}
    ids = lookup(plane, train, file=path, place="pixels", what=kind)
    return size, _pixel_shapes(ids, False)


def _polygon(obj: Any, i: int, path: Path) -> Shape | None:
    place = f"$.objects[{i}]"
    if not isinstance(obj, dict):
        raise FormatError("an object must be a JSON object", path, place)
    if obj.get("deleted"):
        return None
    label = obj.get("label")
    if not isinstance(label, str) or not label:
        raise FormatError("label must be a non-empty string", path, f"{place}.label")
    crowd = label not in BY_NAME and label.endswith("group") and label[:-5] in BY_NAME
    name = label[: -len("group")] if crowd else label
    if name not in BY_NAME:
        raise FormatError(
            f"label {label!r} is not in the Cityscapes label table", path, f"{place}.label"
        )
    raw = obj.get("polygon")
    try:
        points = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        points = np.zeros((0, 1))
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 1:
        raise FormatError("polygon must be a list of [x, y] pairs", path, f"{place}.polygon")
    check_points(points, path, f"{place}.polygon")
    return Shape(
        label=name,
        kind="polygon",
        points=points,
        order=i,
        z=0,
        instance=None if crowd else str(i),
        convention="inclusive",
        place=f"{place}.polygon",
        ignore=BY_NAME[name].ignore,
    )


def _from_json(path: Path) -> tuple[tuple[int, int], list[Shape]]:
    data = jsonfile.load(path, "Cityscapes polygons JSON")
    if not isinstance(data, dict):
        raise FormatError("expected an object {imgHeight, imgWidth, objects}", path, "$")
    w, h = data.get("imgWidth"), data.get("imgHeight")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (w, h)):
        raise FormatError("imgWidth and imgHeight must be whole numbers", path, "$.imgWidth")
    assert isinstance(w, int) and isinstance(h, int)
    check_size(w, h, file=path, place="$.imgWidth")
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise FormatError("objects must be a list", path, "$.objects")
    shapes = [s for i, o in enumerate(objects) if (s := _polygon(o, i, path)) is not None]
    return (w, h), shapes


def read_image(src: Path, files: dict[str, Path]) -> ImageAnnotation:
    """The annotation of one image from its ground-truth ``files`` (kind -> path)."""
    kind = next(k for k in _KINDS if k in files)
    path = files[kind]
    (width, height), shapes = _from_json(path) if kind == "polygons.json" else _from_png(path, kind)
    match = _FILE.match(path.name)
    assert match is not None
    gt_root = next(p for p in path.parents if p.name == match["gt"])  # under src: see groups()
    rel = path.parent.relative_to(gt_root)
    name = f"{match['stem']}_leftImg8bit.png"
    base = gt_root.parent
    candidates = [base / "leftImg8bit" / rel / name, base / "imgsFine" / "leftImg8bit" / rel / name]
    image = image_in(src, candidates, path, "image")
    return ImageAnnotation(
        key=image.name,
        width=width,
        height=height,
        shapes=shapes,
        image_path=image,
        source=str(path),
        annotator=src.name,
        split=rel.parts[0] if rel.parts else "train",
    )


def groups(src: Path) -> list[dict[str, Path]]:
    """The ground-truth files of each image under ``src`` (kind -> path), sorted by folder and
    stem; where an image has both, the gtFine files are used, not the gtCoarse ones."""
    found: dict[tuple[str, str, str], dict[str, dict[str, Path]]] = {}
    for path in files_under(src, "*_gt*_*"):
        match = _FILE.match(path.name)
        folders = path.parent.relative_to(src).parts
        if match is None or match["gt"] not in folders:
            continue
        at = len(folders) - 1 - folders[::-1].index(match["gt"])
        key = ("/".join(folders[:at]), "/".join(folders[at + 1 :]), match["stem"])
        found.setdefault(key, {}).setdefault(match["gt"], {})[match["kind"]] = path
    return [found[k].get("gtFine") or found[k]["gtCoarse"] for k in sorted(found)]


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one annotation per image with ground truth under ``src``, sorted by path."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError("is not a folder; point at the Cityscapes root (it holds gtFine/)", src)
    found = groups(src)
    if not found:
        raise FormatError("holds no Cityscapes *_gtFine_* ground truth", src)
    yield from each_record(found, partial(read_image, src), options, " (skipped)")
