"""Reader of COCO object-instances files (``instances_<split>.json``) with their images.

``src`` may be one instances JSON file (any name), or a dataset folder holding
``annotations/instances_*.json`` (else ``instances_*.json`` at its top), read in sorted order;
when there is none, the ``.json`` files of ``annotations/`` and of the top that name the keys
``images``, ``annotations`` and ``categories`` (labelme2coco writes ``annotations.json``).
``options.extra["string_numbers"]``: ids and numbers may be strings (Azure ML's COCO files).

Each file is parsed whole (the JSON may be held in memory) and checked against
``schemas/coco.json`` with jsonschema before use, so a bad file gets one FormatError naming the
JSON path (``$.annotations[3].segmentation``). One pass then groups annotation indices by
``image_id``; images are produced one at a time in the order of ``images``, so memory beyond the
JSON itself is bounded by one image's shapes (a file with 100,000 annotations streams).

Shapes, per annotation (``convention = "center"``, pycocotools' pixels):

- polygon segmentation: one ``polygon`` Shape per part, all with ``instance`` = the
  annotation id, so the parts are unioned (COCO polygons have no holes). A part with fewer
  than 3 points or an odd number of coordinates is a FormatError at its JSON path.
- RLE segmentation (``{size: [h, w], counts}``; counts a list = uncompressed, a string =
  compressed; column-major, first run zeros): decoded with ``pycocotools.mask`` into a ``mask``
  Shape holding the tight ``bool`` patch around its pixels with ``origin`` at its top-left. The
  size must equal the image's ``[height, width]`` and the counts must sum to ``h * w``, else
  FormatError: a list is summed before decoding; a string is checked to be well-formed for
  pycocotools' decoder (characters ``0``-``o``, no unfinished count) before pycocotools decodes
  it, and its sum is measured through pycocotools when the mask does not encode back to it.
- an empty segmentation (a box-only annotation, as datumaro writes it) -> a ``rectangle`` from
  ``bbox`` ``[x, y, w, h]``.
- ``iscrowd = 1``: an ignore region, not a label: the Shape carries ``ignore=True`` (the
  pipeline paints its pixels 0 and does not count the label there).
- ``attributes`` (datumaro's extension) are kept as strings; ``order`` = position of the
  annotation among its image's annotations (document order), ``z`` = 0; ``place`` = the JSON
  path of the segmentation.
- a ``category_id`` not in ``categories`` or an ``image_id`` not in ``images`` is a FormatError
  naming the annotation's JSON path.

Image folder rule: with ``options.extra["images"]`` (the CLI's ``--images DIR``) the image is
``DIR/<file_name>``. Otherwise, with ``root`` = the folder holding ``annotations/`` (or the
JSON's own folder when it is not in ``annotations/``) and ``<split>`` the file's name after
``instances_`` (``train2017``), the first that exists of: ``root/images/<split>/<file_name>``
(i.e. ``../images/<split>`` from the JSON), ``root/images/<file_name>``,
``root/<split>/<file_name>`` (COCO's own layout), ``root/<file_name>`` (``file_name`` relative to
``src``); when none exists, the first (the pipeline reports the missing image). A ``file_name``
that is absolute or climbs out of its base folder is a FormatError at ``$.images[i].file_name``.

Limits (:mod:`conceptkit.limits`): the file's size and nesting depth, each image's declared
size (``image_side``, ``image_pixels``, checked before any mask is decoded), every coordinate
(finite, within ``image_side``; ``NaN``/``Infinity`` are refused as JSON), vertex counts.

Split: the file's ``<split>`` without trailing digits (``train2017`` -> ``train``); ``default``
(CVAT's COCO export) and anything else unnamed -> ``train``, ``validation`` -> ``val``.
``annotator`` = the dataset folder's name (``root``).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from conceptkit.converters import ReadOptions, check_points, inside, peek, within
from conceptkit.schemas import load as load_schema
from pycocotools import mask as mask_utils

from conceptkit import jsonfile
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

# --------------------------------------------------------------------------- pure helpers


#: a compressed RLE string as pycocotools writes it: each count is 1 to 12 characters, the last
#: in ``0``-``O`` (a final 5-bit group), the others in ``P``-``o`` (a group with "more follow")
_COMPRESSED = re.compile(r"(?:[P-o]{0,11}[0-O])*")


def compressed_ok(text: str) -> bool:
    """True when ``text`` is well-formed for pycocotools' string decoder.

    Only characters ``0``-``o`` (48..111), and no count left unfinished or longer than 12
    characters (60 bits): pycocotools reads past the end of a truncated string.
    """
    return _COMPRESSED.fullmatch(text) is not None


def compressed_total(counts: bytes, upper: int) -> int | None:
    """The sum of the runs of a well-formed compressed RLE string, if at most ``upper``; else None.

    pycocotools' decoder refuses runs that overflow the mask it fills, so the sum is the
    smallest ``n`` for which the string decodes onto a ``1 x n`` mask (a binary search).
    """

    def fits(n: int) -> bool:
        try:
            mask_utils.decode({"size": [1, n], "counts": counts})
        except ValueError:
            return False
        return True

    if not fits(upper):
        return None
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def split_name(json_name: str) -> tuple[str, str]:
    """``instances_train2017.json`` -> (``train2017`` (the folder name), ``train`` (the split))."""
    stem = PurePosixPath(json_name).stem
    raw = stem[len("instances_") :] if stem.startswith("instances_") else ""
    split = re.sub(r"\d+$", "", raw).lower()
    split = {"": "train", "default": "train", "validation": "val"}.get(split, split)
    return raw, split


def _tight(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """``(h, w) bool`` -> (the patch inside its pixels' bounding box, (x0, y0)); None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    return np.ascontiguousarray(mask[y0 : y1 + 1, x0 : x1 + 1]), (x0, y0)


def _attr_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


# --------------------------------------------------------------------------- file level


def _number(v: Any) -> bool:
    return type(v) is float or type(v) is int


def _image_ok(img: Any) -> bool:
    """A fast check, at least as strict as the schema, of one ``images`` item."""
    return (
        type(img) is dict
        and type(img.get("id")) is int
        and type(img.get("file_name")) is str
        and img["file_name"] != ""
        and type(img.get("width")) is int
        and img["width"] >= 1
        and type(img.get("height")) is int
        and img["height"] >= 1
    )


def _annotation_ok(ann: Any) -> bool:
    """A fast check, at least as strict as the schema, of one ``annotations`` item."""
    if type(ann) is not dict:
        return False
    if not all(type(ann.get(k)) is int for k in ("id", "image_id", "category_id")):
        return False
    if "iscrowd" in ann and not (type(ann["iscrowd"]) is int and ann["iscrowd"] in (0, 1)):
        return False
    if "area" in ann and not (_number(ann["area"]) and ann["area"] >= 0):
        return False
    if "bbox" in ann:
        box = ann["bbox"]
        if not (type(box) is list and len(box) == 4 and all(_number(v) for v in box)):
            return False
    if "attributes" in ann and type(ann["attributes"]) is not dict:
        return False
    seg = ann.get("segmentation")
    if type(seg) is list:
        return all(type(part) is list and all(_number(v) for v in part) for part in seg)
    if type(seg) is dict:
        size, counts = seg.get("size"), seg.get("counts")
        if not (type(size) is list and len(size) == 2):
            return False
        if not all(type(v) is int and v >= 0 for v in size):
            return False
        if type(counts) is str:
            return True
        return type(counts) is list and all(type(v) is int and v >= 0 for v in counts)
    return False


def _validate(data: Any, path: Path) -> None:
    """Check ``data`` against schemas/coco.json; FormatError at the JSON path of the worst error.

    jsonschema is slow (about 0.2 ms per annotation), so the document is validated with the
    ``images`` and ``annotations`` lists emptied, and then each item passes a fast check that is
    at least as strict as the schema; only items failing it go through jsonschema (which either
    accepts them or names the error). The verdict is the schema's.
    """
    import jsonschema

    schema = load_schema("coco")

    def check(instance: Any, subschema: dict[str, Any], prefix: str) -> None:
        validator = jsonschema.Draft202012Validator(subschema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            message = error.message
            if len(message) > 200:
                message = message[:200] + "..."
            where = prefix + error.json_path[1:]
            raise FormatError(f"does not match the COCO instances schema: {message}", path, where)

    if not isinstance(data, dict):
        check(data, schema, "$")
        return
    lists = ("images", "annotations")
    shell = {k: ([] if k in lists and isinstance(v, list) else v) for k, v in data.items()}
    check(shell, schema, "$")
    for key, fast in (("images", _image_ok), ("annotations", _annotation_ok)):
        item_schema = schema["properties"][key]["items"]
        for i, item in enumerate(data[key]):
            if not fast(item):
                check(item, item_schema, f"$.{key}[{i}]")


def looks_like_coco(path: Path) -> bool:
    """True when the start of the JSON file ``path`` names the keys ``images``, ``annotations``
    and ``categories`` (a peek at its first MiB; the file is read properly later)."""
    head = peek(path)
    return all(
        re.search(rb'"%s"\s*:' % key, head) for key in (b"images", b"annotations", b"categories")
    )


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if src.is_dir():
        found = sorted((src / "annotations").glob("instances_*.json")) or sorted(
            src.glob("instances_*.json")
        )
        if not found:  # any name (labelme2coco writes annotations.json): found by content
            found = [
                p
                for p in sorted((src / "annotations").glob("*.json")) + sorted(src.glob("*.json"))
                if looks_like_coco(p)
            ]
        if found:
            return within(src, found)
        raise FormatError(
            "no COCO JSON here (annotations/instances_*.json, instances_*.json, or a .json "
            "holding images, annotations and categories)",
            src,
        )
    raise FormatError("no such file or folder (expected a COCO instances .json or a folder)", src)


class _Images:
    """Where the images of one instances file are (see the module docstring)."""

    def __init__(self, json_path: Path, images_dir: Path | None, raw_split: str) -> None:
        parent = json_path.parent
        self.root = parent.parent if parent.name == "annotations" else parent
        self.images_dir = images_dir
        self.raw_split = raw_split
        self.file = json_path

    def find(self, file_name: str, place: str) -> Path:
        if "\0" in file_name:
            raise FormatError(f"file_name {file_name!r} holds a NUL character", self.file, place)
        norm = file_name.replace("\\", "/")
        if (
            norm.startswith("/")
            or re.match(r"^[A-Za-z]:", norm)
            or posixpath.normpath(norm).startswith("..")
        ):
            raise FormatError(
                f"file_name {file_name!r} leads outside the image folder", self.file, place
            )
        if self.images_dir is not None:
            bases = [self.images_dir]
        else:
            r = self.root
            bases = [r / "images" / self.raw_split] if self.raw_split else []
            bases += [r / "images"]
            bases += [r / self.raw_split] if self.raw_split else []
            bases += [r]
        paths = [b / norm for b in bases]
        for base, p in zip(bases, paths):
            if not inside(base, p):
                raise FormatError(f"file_name {file_name!r} leads outside {base}", self.file, place)
        for p in paths:
            if p.is_file():
                return p
        return paths[0]


# --------------------------------------------------------------------------- per image


def _rle_shape(seg: dict[str, Any], height: int, width: int, file: Path, place: str) -> np.ndarray:
    """Decode an RLE segmentation to ``(height, width) bool`` after checking it."""
    size = [int(v) for v in seg["size"]]
    if size != [height, width]:
        raise FormatError(
            f"RLE size {size} differs from the image's [height, width] = [{height}, {width}]",
            file,
            f"{place}.size",
        )
    counts = seg["counts"]
    if isinstance(counts, str):
        return _decode_compressed(counts, height, width, file, f"{place}.counts")
    total = sum(int(c) for c in counts)
    if total != height * width:
        raise FormatError(_sum_message(str(total), height, width), file, f"{place}.counts")
    decoded: np.ndarray = mask_utils.decode(mask_utils.frPyObjects(seg, height, width))
    return decoded.astype(bool)


def _sum_message(total: str, height: int, width: int) -> str:
    return (
        f"RLE counts sum to {total}, expected height x width = {height} x {width} = "
        f"{height * width}"
    )


def _decode_compressed(text: str, height: int, width: int, file: Path, place: str) -> np.ndarray:
    """Decode a compressed RLE string with pycocotools after checking it.

    pycocotools refuses runs past the end of the mask but leaves the pixels after a short
    string undefined, so a decoded mask that does not encode back to the same string has its
    sum of runs measured (a string with empty runs is valid when it covers the mask exactly).
    """
    if not compressed_ok(text):
        raise FormatError(
            "bad compressed RLE counts: expected characters '0'-'o' and no unfinished count",
            file,
            place,
        )
    counts = text.encode("ascii")
    rle = {"size": [height, width], "counts": counts}
    try:
        decoded: np.ndarray = mask_utils.decode(rle)
    except ValueError:
        raise FormatError(_sum_message("more", height, width), file, place) from None
    if mask_utils.encode(decoded)["counts"] != counts:
        total = compressed_total(counts, height * width)
        if total != height * width:
            raise FormatError(_sum_message(str(total), height, width), file, place)
    return decoded.astype(bool)


def _shapes(
    ann: dict[str, Any], index: int, label: str, height: int, width: int, file: Path, first: int
) -> list[Shape]:
    """The Shapes of annotation number ``index``; ``first`` is the ``order`` of the first."""
    place = f"$.annotations[{index}].segmentation"
    common: dict[str, Any] = {
        "label": label,
        "instance": str(ann["id"]),
        "attributes": {str(k): _attr_text(v) for k, v in (ann.get("attributes") or {}).items()},
        "convention": "center",
        "ignore": bool(ann.get("iscrowd", 0)),
    }
    seg = ann["segmentation"]
    if isinstance(seg, dict):
        full = _rle_shape(seg, height, width, file, place)
        tight = _tight(full)
        if tight is None:
            return []
        patch, origin = tight
        return [Shape(kind="mask", mask=patch, origin=origin, order=first, place=place, **common)]
    if not seg:
        bbox = ann.get("bbox")
        if not bbox:
            return []
        x, y, w, h = (float(v) for v in bbox)
        pts = np.array([[x, y], [x + w, y + h]], dtype=np.float64)
        place = f"$.annotations[{index}].bbox"
        check_points(pts, file, place)
        return [Shape(kind="rectangle", points=pts, order=first, place=place, **common)]
    out = []
    for k, part in enumerate(seg):
        part_place = f"{place}[{k}]"
        if len(part) % 2:
            raise FormatError(
                f"a polygon part holds {len(part)} numbers, expected x, y pairs", file, part_place
            )
        if len(part) < 6:
            raise FormatError(
                f"a polygon needs at least 3 points, this part has {len(part) // 2}",
                file,
                part_place,
            )
        pts = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        check_points(pts, file, part_place)
        out.append(Shape(kind="polygon", points=pts, order=first + k, place=part_place, **common))
    return out


_NUMBER_TEXT = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _cast(value: Any) -> Any:
    """A string that spells a JSON number -> that number (int when it has no fraction)."""
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        number = float(value)
        return int(value) if value.lstrip("-").isdigit() else number
    if isinstance(value, list):
        return [_cast(v) for v in value]
    return value


def cast_string_numbers(data: Any) -> Any:
    """Azure ML's COCO: ids and numbers written as strings (``"id": "1"``) become numbers.

    Only the numeric fields of ``images``, ``annotations`` (and their ``bbox`` and polygon
    ``segmentation``) and ``categories`` are cast; a string that is not a number is left, for
    the schema to name.
    """
    fields = {
        "images": ("id", "width", "height"),
        "annotations": ("id", "image_id", "category_id", "iscrowd", "area", "bbox", "segmentation"),
        "categories": ("id",),
    }
    if not isinstance(data, dict):
        return data
    for key, names in fields.items():
        for item in data.get(key, []) if isinstance(data.get(key), list) else []:
            if isinstance(item, dict):
                for name in names:
                    if name in item:
                        item[name] = _cast(item[name])
    return data


def _read_file(
    path: Path, options: ReadOptions, images_dir: Path | None
) -> Iterator[ImageAnnotation]:
    data = jsonfile.load(path, "COCO instances JSON")
    if options.extra.get("string_numbers"):
        data = cast_string_numbers(data)
    _validate(data, path)
    raw_split, split = split_name(path.name)
    images = _Images(path, images_dir, raw_split)
    categories = {c["id"]: c["name"] for c in data["categories"]}
    index_of: dict[int, int] = {}
    for j, img in enumerate(data["images"]):
        if img["id"] in index_of:
            raise FormatError(
                f"image id {img['id']} is used twice (also at $.images[{index_of[img['id']]}])",
                path,
                f"$.images[{j}].id",
            )
        index_of[img["id"]] = j
    by_image: dict[int, list[int]] = {}
    for i, ann in enumerate(data["annotations"]):
        image_id = ann["image_id"]
        if image_id not in index_of:
            raise FormatError(
                f"image_id {image_id} is not in images", path, f"$.annotations[{i}].image_id"
            )
        by_image.setdefault(image_id, []).append(i)
    annotator = images.root.name
    annotations = data["annotations"]
    for j, img in enumerate(data["images"]):
        try:
            record = _image(
                img, j, by_image.get(img["id"], []), annotations, categories, images, path, split
            )
        except FormatError as exc:
            if not options.keep_going:
                raise
            options.warn(f"{exc}; image skipped")
            continue
        record.annotator = annotator
        yield record


def _image(
    img: dict[str, Any],
    j: int,
    indices: list[int],
    annotations: list[dict[str, Any]],
    categories: dict[int, str],
    images: _Images,
    path: Path,
    split: str,
) -> ImageAnnotation:
    height, width = int(img["height"]), int(img["width"])
    check_size(width, height, file=path, place=f"$.images[{j}]")
    file_name = img["file_name"]
    record = ImageAnnotation(
        key=PurePosixPath(file_name.replace("\\", "/")).name,
        width=width,
        height=height,
        image_path=images.find(file_name, f"$.images[{j}].file_name"),
        source=str(path),
        split=split,
    )
    order = 0
    for i in indices:
        ann = annotations[i]
        label = categories.get(ann["category_id"])
        if label is None:
            raise FormatError(
                f"category_id {ann['category_id']} is not in categories "
                f"(ids: {', '.join(str(c) for c in sorted(categories))})",
                path,
                f"$.annotations[{i}].category_id",
            )
        shapes = _shapes(ann, i, label, height, width, path, order)
        record.shapes.extend(shapes)
        order += max(len(shapes), 1)
    return record


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per image of the COCO instances file(s) at ``src``.

    ``options.extra["images"]``: the image folder (``--images``), overriding the search rule.
    """
    src = Path(src)
    images_dir = options.extra.get("images")
    images_path = Path(str(images_dir)) if images_dir is not None else None
    for path in _files(src):
        yield from _read_file(path, options, images_path)
