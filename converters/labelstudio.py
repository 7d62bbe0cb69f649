"""Reader of Label Studio JSON exports (``JSON`` and ``JSON_MIN``): polygons, boxes, ellipses, brushes.

``src``: one export ``.json`` file, or a folder whose ``*.json`` files (sorted, not recursive)
are exports. A file holds a list of tasks (or one task object, as the frontend examples do).
Images: the task's ``data`` value named by the results' ``source`` (``$image``), else
``data.image``, else its first string value; only the last part of that URL or path is used,
looked up as ``<folder>/<name>``, ``<folder>/images/<name>``, ``<folder>/img/<name>`` beside the
JSON. The key is that file name.

Per task, the first annotation (``annotations``, older ``completions``) that is not
``was_cancelled`` is read; others are skipped with one warning (``options.extra["annotation"]``:
take this index instead). Predictions are not read.

Results with the same ``id`` are one region (the "tool + Labels" configs write a geometry result
and a ``labels`` result with the same id): the label comes from whichever carries
``<type>labels``/``labels``, the geometry from whichever has it. Geometry, in percent of
``original_width``/``original_height`` (pixels = value / 100 * size; ``convention =
"center"``, continuous canvas coordinates as in Label Studio's COCO export):

- ``points`` -> ``polygon``;
- ``x, y, width, height`` (+ ``rotation`` in degrees about the top-left corner) ->
  ``rectangle``, or a 4-vertex ``polygon`` when rotated;
- ``x, y, radiusX, radiusY`` (+ ``rotation``) -> ``ellipse``;
- ``format: "rle"`` + ``rle`` -> ``mask`` decoded by :func:`decode_rle` (Label Studio's own
  bit-packed RGBA stream, not COCO's), a pixel belongs when its alpha byte is >= 128 (more than half opaque: brush strokes are
  anti-aliased);
- keypoints (``x, y`` only) and relations carry no area: skipped (keypoints with one warning).

A brush result without ``original_width``/``original_height`` takes the size from the image
file's header (nothing is decoded). JSON_MIN rows (the task's data fields plus one list of value
dicts per control) are read the same way, each value dict being one region.
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
    integer,
    local_image,
    mapping,
    number,
    text,
    tight_mask,
)

from conceptkit import jsonfile, limits
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError
from conceptkit.images import check_size

DESCRIPTION = "Label Studio JSON / JSON_MIN export (polygon, rectangle, ellipse, brush)"
EXAMPLE = "conceptkit convert labelstudio project-1-export.json -o broden/"

_LABEL_KEYS = (
    "polygonlabels",
    "rectanglelabels",
    "ellipselabels",
    "brushlabels",
    "labels",
    "keypointlabels",
)
_TASK_KEYS = ("id", "annotations", "completions", "predictions", "data")

# ----------------------------------------------------------------------------- brush RLE


class _Bits:
    """A most-significant-bit-first reader over ``data`` (bytes)."""

    def __init__(self, data: bytes, file: str | Path, place: str) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.pos = 0
        self.file, self.place = file, place

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self.bits.size:
            raise FormatError("brush RLE ends in the middle of a run", self.file, self.place)
        value = 0
        for bit in self.bits[self.pos : end]:
            value = (value << 1) | int(bit)
        self.pos = end
        return value

    def words(self, count: int, size: int) -> np.ndarray:
        """``count`` words of ``size`` bits each, as int64."""
        end = self.pos + count * size
        if end > self.bits.size:
            raise FormatError("brush RLE ends in the middle of a run", self.file, self.place)
        chunk = self.bits[self.pos : end].reshape(count, size).astype(np.int64)
        self.pos = end
        weights = np.left_shift(np.int64(1), np.arange(size - 1, -1, -1, dtype=np.int64))
        out: np.ndarray = chunk @ weights
        return out


def decode_rle(data: bytes, expected: int, file: str | Path, place: str) -> np.ndarray:
    """Decode Label Studio's brush RLE (``@thi.ng/rle-pack``) to ``(expected,) uint8``.

    Stream, most significant bit first: a 32-bit value count ``num`` (must equal ``expected``,
    checked before anything is allocated), a 5-bit word size - 1, four 4-bit run-length sizes
    - 1, then until ``num`` values are out: a 1-bit flag; a 2-bit selector of the run-length
    size; a run length - 1 in that many bits; then one word repeated (flag 1) or that many
    literal words (flag 0).
    """
    bits = _Bits(data, file, place)
    num = bits.read(32)
    if num != expected:
        raise FormatError(
            f"brush RLE holds {num:,} values, expected width x height x 4 = {expected:,}",
            file,
            place,
        )
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = bits.read(1)
        run = bits.read(sizes[bits.read(2)]) + 1
        j = min(i + run, num)
        if repeat:
            out[i:j] = bits.read(word) & 0xFF
        else:
            out[i:j] = bits.words(run, word)[: j - i] & 0xFF
        i = j
    return out


def encode_rle(values: np.ndarray, word: int = 8, size: int = 8) -> bytes:
    """The inverse of :func:`decode_rle` for tests and benchmarks: runs of at most ``2**size``.

    Every run is written as repeated (flag 1) with selector 0; ``values`` ``(n,) uint8``.
    """
    bits: list[str] = [format(len(values), "032b"), format(word - 1, "05b")]
    bits += [format(size - 1, "04b")] * 4
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i] and j - i < (1 << size):
            j += 1
        bits += ["1", "00", format(j - i - 1, f"0{size}b"), format(int(values[i]), f"0{word}b")]
        i = j
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return int(stream, 2).to_bytes(len(stream) // 8, "big") if stream else b""


# ----------------------------------------------------------------------------- regions


def _label(values: list[dict[str, Any]], file: Path, place: str) -> str | None:
    for value in values:
        for key in _LABEL_KEYS:
            if key in value:
                names = array(value[key], file, f"{place}.{key}")
                if names:
                    return text(names[0], file, f"{place}.{key}[0]")
    return None


def _geometry(values: list[dict[str, Any]]) -> dict[str, Any] | None:
    for value in values:
        if any(k in value for k in ("points", "rle", "radiusX", "height")):
            return value
    return values[0] if values else None


def _polygon(value: dict[str, Any], w: int, h: int, file: Path, place: str) -> np.ndarray:
    points = array(value["points"], file, f"{place}.points")
    out = np.zeros((len(points), 2))
    for k, p in enumerate(points):
        pair = array(p, file, f"{place}.points[{k}]")
        if len(pair) != 2:
            raise FormatError("a point needs [x, y]", file, f"{place}.points[{k}]")
        out[k] = [number(v, file, f"{place}.points[{k}]") for v in pair]
    if len(out) < 3:
        raise FormatError(f"a polygon needs 3 points, found {len(out)}", file, f"{place}.points")
    return out * [w / 100.0, h / 100.0]


def _box(value: dict[str, Any], w: int, h: int, file: Path, place: str) -> tuple[str, np.ndarray]:
    x, y, bw, bh = (
        number(value.get(k), file, f"{place}.{k}") for k in ("x", "y", "width", "height")
    )
    angle = number(value.get("rotation", 0), file, f"{place}.rotation")
    x0, y0, pw, ph = x * w / 100, y * h / 100, bw * w / 100, bh * h / 100
    if angle == 0:
        return "rectangle", np.array([[x0, y0], [x0 + pw, y0 + ph]])
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    corners = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float64)
    return "polygon", corners @ np.array([[c, s], [-s, c]]) + [x0, y0]


def _ellipse(
    value: dict[str, Any], w: int, h: int, file: Path, place: str
) -> tuple[np.ndarray, float]:
    cx, cy, rx, ry = (
        number(value.get(k), file, f"{place}.{k}") for k in ("x", "y", "radiusX", "radiusY")
    )
    angle = number(value.get("rotation", 0), file, f"{place}.rotation")
    cx, cy, rx, ry = cx * w / 100, cy * h / 100, rx * w / 100, ry * h / 100
    return np.array([[cx, cy], [cx + rx, cy + ry]]), angle


def _brush(value: dict[str, Any], w: int, h: int, file: Path, place: str) -> Shape | None:
    rle = array(value["rle"], file, f"{place}.rle")
    limits.check("file_bytes", len(rle), file=file, place=f"{place}.rle", what="the RLE")
    if not all(type(b) is int and 0 <= b <= 255 for b in rle):
        raise FormatError("brush RLE must be a list of bytes (0-255)", file, f"{place}.rle")
    flat = decode_rle(bytes(rle), w * h * 4, file, f"{place}.rle")
    tight = tight_mask(flat[3::4].reshape(h, w) >= 128)
    if tight is None:
        return None
    patch, origin = tight
    return Shape(label="", kind="mask", mask=patch, origin=origin)


def region_shape(
    values: list[dict[str, Any]], w: int, h: int, file: Path, place: str
) -> Shape | None:
    """The Shape of one region (its results' ``value`` dicts); None for one with no area."""
    value = _geometry(values)
    if value is None:
        return None
    if "rle" in value:
        shape = _brush(value, w, h, file, place)
        if shape is None:
            return None
    elif "points" in value:
        shape = Shape(label="", kind="polygon", points=_polygon(value, w, h, file, place))
    elif "radiusX" in value:
        pts, angle = _ellipse(value, w, h, file, place)
        shape = Shape(label="", kind="ellipse", points=pts, angle=angle)
    elif "height" in value:
        kind, pts = _box(value, w, h, file, place)
        shape = Shape(label="", kind=kind, points=pts)  # type: ignore[arg-type]
    else:
        return None
    check_points(shape.points, file, place)
    shape.place, shape.convention = place, "center"
    return shape


# ----------------------------------------------------------------------------- tasks


def _chosen(
    task: dict[str, Any], file: Path, place: str, options: ReadOptions
) -> tuple[list[Any], str] | None:
    key = "annotations" if "annotations" in task else "completions"
    anns = array(task.get(key, []), file, f"{place}.{key}")
    index = options.extra.get("annotation")
    live = [
        i
        for i, a in enumerate(anns)
        if not mapping(a, file, f"{place}.{key}[{i}]").get("was_cancelled")
    ]
    if index is not None:
        live = [int(str(index))] if int(str(index)) < len(anns) else []
    if not live:
        return None
    if len(live) > 1:
        options.warn(
            f"{file}: {place}: {len(live)} annotations; the first is read, the others skipped"
        )
    where = f"{place}.{key}[{live[0]}]"
    ann = mapping(anns[live[0]], file, where)
    return array(ann.get("result", []), file, f"{where}.result"), f"{where}.result"


def _regions(
    results: list[Any], file: Path, place: str
) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """Results grouped by ``id`` in document order: (place, values, first result)."""
    groups: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any]]] = {}
    for k, item in enumerate(results):
        where = f"{place}[{k}]"
        result = mapping(item, file, where)
        if result.get("type") == "relation" or "value" not in result:
            continue
        value = mapping(result["value"], file, f"{where}.value")
        rid = str(result.get("id", f"#{k}"))
        if rid not in groups:
            groups[rid] = (f"{where}.value", [], result)
        groups[rid][1].append(value)
    return list(groups.values())


def _declared(results: list[Any], file: Path, place: str) -> tuple[int, int] | None:
    """``(original_width, original_height)`` of the first result that has them."""
    for k, item in enumerate(results):
        if isinstance(item, dict) and "original_width" in item:
            w = integer(item["original_width"], file, f"{place}[{k}].original_width")
            h = integer(item.get("original_height"), file, f"{place}[{k}].original_height")
            return w, h
    return None


def _image_ref(task: dict[str, Any], results: list[Any], file: Path, place: str) -> str:
    data = mapping(task.get("data", {}), file, f"{place}.data")
    source = next(
        (r.get("source") for r in results if isinstance(r, dict) and r.get("source")), None
    )
    key = str(source)[1:] if isinstance(source, str) and source.startswith("$") else "image"
    value = data.get(key)
    if not isinstance(value, str):
        value = next((v for v in data.values() if isinstance(v, str)), None)
    if value is None:
        raise FormatError("the task's data names no image", file, f"{place}.data")
    return value


def _min_results(task: dict[str, Any]) -> list[Any]:
    """JSON_MIN: every list of value dicts in the row becomes results (one region each)."""
    out: list[Any] = []
    for key, values in task.items():
        if key in _TASK_KEYS or not isinstance(values, list):
            continue
        for value in values:
            if isinstance(value, dict):
                out.append(
                    {
                        "id": f"{key}:{len(out)}",
                        "value": value,
                        **{
                            k: value[k] for k in ("original_width", "original_height") if k in value
                        },
                    }
                )
    return out


def _task(
    task: dict[str, Any], file: Path, place: str, options: ReadOptions
) -> ImageAnnotation | None:
    if "annotations" in task or "completions" in task:
        chosen = _chosen(task, file, place, options)
        if chosen is None:
            return None
        results, rplace = chosen
        ref = _image_ref(task, results, file, place)
    else:
        results, rplace = _min_results(task), place
        ref = _image_ref(
            {"data": {k: v for k, v in task.items() if isinstance(v, str)}}, [], file, place
        )
    name = base_name(ref, file, f"{place}.data")
    image_path = local_image(file.parent, name, file, f"{place}.data")
    size = _declared(results, file, rplace) or image_size(image_path, file, f"{place}.data")
    w, h = size
    check_size(w, h, file=file, place=rplace)
    record = ImageAnnotation(key=name, width=w, height=h, image_path=image_path, source=str(file))
    for where, values, _first in _regions(results, file, rplace):
        shape = region_shape(values, w, h, file, where)
        label = _label(values, file, where)
        if shape is None or label is None:
            if shape is None and any(
                "x" in v and "radiusX" not in v and "height" not in v for v in values
            ):
                options.warn(f"{file}: {where}: a keypoint has no area; skipped")
            continue
        shape.label, shape.order = label, len(record.shapes)
        record.shapes.append(shape)
    return record


def _file(path: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """The records of the annotated tasks of the Label Studio JSON file ``path``."""
    data = jsonfile.load(path, "Label Studio JSON")
    tasks = [data] if isinstance(data, dict) else array(data, path, "$")
    places = ["$"] if isinstance(data, dict) else [f"$[{i}]" for i in range(len(tasks))]
    return each_record(
        zip(places, tasks),
        lambda item: _task(mapping(item[1], path, item[0]), path, item[0], options),
        options,
        "; task skipped",
        path.parent.name,
    )


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per annotated task of the Label Studio export(s) at ``src``."""
    found = export_files(
        Path(src), ("*.json",), "Label Studio export (*.json)", "a Label Studio export .json"
    )
    for path in found:
        yield from _file(path, options)
