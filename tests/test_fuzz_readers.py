"""Property-based fuzzing of every reader: mutated real exports raise only ConceptkitError.

Each test starts from a real export in tests/data/fixtures/formats (or, for CVAT video, the
synthetic track document of test_converters_cvat), applies a few random mutations (drop a key,
an attribute or an element; put in a hostile value: NaN, infinities, huge, negative or zero
numbers, booleans, non-ASCII digits, escaping paths, long strings; swap types; nest deeply;
duplicate; move an element elsewhere), serialises it, sometimes truncates or splices the bytes,
and reads it. The reader may accept the document or raise a ConceptkitError with a one-line
message; any other exception (a traceback for the user) fails the test.

The runs are reproducible (``derandomize=True``, no example database) and CI-sized: the
example counts are in EXAMPLES.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import shutil
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conceptkit.converters import ReadOptions, coco, cvat, labelme, labelme_xml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conceptkit.errors import ConceptkitError

FORMATS = Path(__file__).resolve().parent / "data" / "fixtures" / "formats"

#: examples per reader (each a few milliseconds to tens of milliseconds)
EXAMPLES = {
    "labelme": 300,
    "labelme-xml": 250,
    "coco-datumaro": 200,
    "coco-panoptic": 120,
    "cvat-images": 200,
    "cvat-docs": 150,
    "cvat-video": 150,
    "cvat-zip": 100,
}


def fuzz_settings(name: str) -> Any:
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


#: values a hostile or broken export puts where the reader expects something else
HOSTILE_JSON: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63,
    10**30,
    10**400,
    1e308,
    -1e308,
    0.5,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "x",
    "²",
    "٣",
    "NaN",
    "1e999",
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\x.jpg",
    "a\x00b",
    "line\nbreak",
    "k",
    "P" * 40,
    "x" * 5000,
    [],
    {},
    [[]],
    [1, 2],
    [[1, 2], [3]],
    {"size": [1, 1], "counts": "k"},
    {"size": [50000, 50000], "counts": [0, 2500000000]},
    {"size": [-1, 3], "counts": []},
    {"a": 1},
    nested(30),
    nested(260),
]

HOSTILE_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "-7",
    "1",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "1e308",
    "99999999999",
    "4294967296",
    "-99999999",
    "0.5",
    "²",
    "٣",
    "1_0",
    "0x10",
    "a",
    "1,2;3",
    "1,2;3,4;5,6",
    "nan,1;2,3;4,5",
    "1e999,0;1,1;2,2",
    "0, 5, 3",
    "3,-1",
    "../x.jpg",
    "/etc/passwd",
    "a\x00b",
    "x" * 3000,
]


# ----------------------------------------------------------------------------- JSON mutations


def json_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    """Every path (keys and indices) in ``doc``, the root included."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from json_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from json_paths(v, (*prefix, i))


def get_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def swapped(value: Any) -> Any:
    """The value as another JSON type (a number as text, text as a number, ...)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


def mutate_json(data: st.DataObject, doc: Any) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        paths = list(json_paths(doc))
        path = data.draw(st.sampled_from(paths), label="path")
        op = data.draw(
            st.sampled_from(["delete", "replace", "replace", "swap", "nest", "duplicate"]),
            label="op",
        )
        if not path:
            if op == "replace":
                doc = data.draw(st.sampled_from(HOSTILE_JSON))
            continue
        parent, key = get_at(doc, path[:-1]), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = copy.deepcopy(data.draw(st.sampled_from(HOSTILE_JSON), label="value"))
        elif op == "swap":
            parent[key] = swapped(parent[key])
        elif op == "nest":
            value = parent[key]
            for _ in range(data.draw(st.sampled_from([1, 1, 3, 40, 250]), label="depth")):
                value = [value]
            parent[key] = value
        elif isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] * data.draw(st.sampled_from([2, 3]), label="copies")
    return doc


def mangle_bytes(data: st.DataObject, raw: bytes) -> bytes:
    """Usually ``raw`` unchanged; else truncated, or with a few bytes spliced in."""
    how = data.draw(st.sampled_from(["keep"] * 8 + ["truncate", "splice"]), label="bytes")
    if how == "keep" or not raw:
        return raw
    at = data.draw(st.integers(0, len(raw) - 1), label="at")
    if how == "truncate":
        return raw[:at]
    junk = data.draw(
        st.sampled_from([b"\xff", b"\x00", b"<", b"<!DOCTYPE a>", b"[", b"{", b"\xe9", b"&x;"]),
        label="junk",
    )
    return raw[:at] + junk + raw[at:]


def dump_json(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


# ----------------------------------------------------------------------------- XML mutations


def mutate_xml(data: st.DataObject, text: bytes, attrs: list[str]) -> bytes:
    root = ET.fromstring(text)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        elems = list(root.iter())
        elem = data.draw(st.sampled_from(elems), label="element")
        parents = {c: p for p in root.iter() for c in p}
        op = data.draw(
            st.sampled_from(
                ["set", "set", "set", "drop-attr", "text", "delete", "duplicate", "nest", "move"]
            ),
            label="op",
        )
        if op == "set":
            names = sorted(elem.attrib) + attrs
            name = data.draw(st.sampled_from(names), label="attr")
            elem.set(name, data.draw(st.sampled_from(HOSTILE_TEXT), label="value"))
        elif op == "drop-attr" and elem.attrib:
            del elem.attrib[data.draw(st.sampled_from(sorted(elem.attrib)), label="attr")]
        elif op == "text":
            elem.text = data.draw(st.sampled_from(HOSTILE_TEXT), label="text")
        elif elem in parents:
            parent = parents[elem]
            if op == "delete":
                parent.remove(elem)
            elif op == "duplicate":
                parent.append(copy.deepcopy(elem))
            elif op == "nest":
                outer = inner = ET.Element("wrap")
                for _ in range(data.draw(st.sampled_from([1, 3, 250]), label="depth") - 1):
                    inner = ET.SubElement(inner, "wrap")
                parent.remove(elem)
                inner.append(elem)
                parent.append(outer)
            elif op == "move":
                target = data.draw(st.sampled_from(elems), label="target")
                if target is not elem and elem not in target.iter() and target in parents:
                    parent.remove(elem)
                    target.append(elem)
    raw = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")
    return mangle_bytes(data, raw)


# ----------------------------------------------------------------------------- the property


def only_conceptkit_errors(read: Callable[[], Iterable[Any]]) -> None:
    """Run the reader to the end: it may succeed, or raise a one-line ConceptkitError."""
    try:
        for _ in read():
            pass
    except ConceptkitError as exc:
        assert "\n" not in str(exc), str(exc)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def copied(work: Path, name: str, src: Path) -> Path:
    dst = work / name
    if not dst.exists():
        shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- the readers


LABELME = FORMATS / "labelme" / "instance_segmentation" / "data_annotated"
LABELME_DOC = json.loads((LABELME / "2011_000003.json").read_text())


def mask_png() -> str:
    """A 2 x 2 mask as labelme stores it: base64 of a PNG of 0/1."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.array([[1, 0], [1, 1]], dtype=np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


MASK_PNG = mask_png()


@fuzz_settings("labelme")
@given(data=st.data())
def test_labelme_json(work: Path, data: st.DataObject) -> None:
    src = work / "labelme"
    if not src.exists():
        src.mkdir()
        shutil.copy(LABELME / "2011_000003.jpg", src / "2011_000003.jpg")
    doc = copy.deepcopy(LABELME_DOC)
    doc["shapes"] = doc["shapes"][:3]
    if data.draw(st.booleans(), label="with a mask shape"):
        doc["shapes"].append(
            {
                "label": "m",
                "points": [[1, 1], [2, 2]],
                "shape_type": "mask",
                "mask": MASK_PNG,
            }
        )
    (src / "a.json").write_bytes(mangle_bytes(data, dump_json(mutate_json(data, doc))))
    only_conceptkit_errors(lambda: labelme.read(src, ReadOptions()))


LABELME_XML = FORMATS / "labelme-xml"


@fuzz_settings("labelme-xml")
@given(data=st.data())
def test_labelme_xml(work: Path, data: st.DataObject) -> None:
    root = copied(work, "labelme-xml", LABELME_XML)
    original = (LABELME_XML / "Annotations" / "example_folder" / "img1.xml").read_bytes()
    target = root / "Annotations" / "example_folder" / "img1.xml"
    target.write_bytes(mutate_xml(data, original, ["x", "y"]))
    only_conceptkit_errors(lambda: labelme_xml.read(root, ReadOptions()))


COCO = FORMATS / "coco"


@fuzz_settings("coco-datumaro")
@given(data=st.data())
def test_coco_datumaro(work: Path, data: st.DataObject) -> None:
    root = copied(work, "coco", COCO / "datumaro-coco_instances")
    original = json.loads(
        (COCO / "datumaro-coco_instances" / "annotations" / "instances_val.json").read_text()
    )
    target = root / "annotations" / "instances_val.json"
    target.write_bytes(mangle_bytes(data, dump_json(mutate_json(data, original))))
    only_conceptkit_errors(lambda: coco.read(target, ReadOptions()))


PANOPTIC = json.loads((COCO / "panopticapi" / "panoptic_coco_detection_format.json").read_text())


@fuzz_settings("coco-panoptic")
@given(data=st.data())
def test_coco_compressed_rle(work: Path, data: st.DataObject) -> None:
    doc = copy.deepcopy(PANOPTIC)
    doc["annotations"] = doc["annotations"][:4]
    doc["images"] = doc["images"][:1]
    for ann in doc["annotations"]:
        ann["image_id"] = doc["images"][0]["id"]
    doc["categories"] = [c for c in doc["categories"] if c["id"] < 30] + [
        {"id": a["category_id"], "name": "c"} for a in doc["annotations"]
    ]
    target = work / "instances_val.json"
    target.write_bytes(mangle_bytes(data, dump_json(mutate_json(data, doc))))
    options = ReadOptions(extra={"images": COCO / "panopticapi" / "input_images"})
    only_conceptkit_errors(lambda: coco.read(target, options))


CVAT = FORMATS / "cvat"
CVAT_ATTRS = ["width", "height", "points", "xtl", "rle", "left", "width", "frame", "z_order"]


@fuzz_settings("cvat-images")
@given(data=st.data())
def test_cvat_images(work: Path, data: st.DataObject) -> None:
    root = copied(work, "cvat-images", CVAT / "datumaro-export_task")
    original = (CVAT / "datumaro-export_task" / "train.xml").read_bytes()
    (root / "train.xml").write_bytes(mutate_xml(data, original, CVAT_ATTRS))
    only_conceptkit_errors(lambda: cvat.read(root, ReadOptions()))


@fuzz_settings("cvat-docs")
@given(data=st.data())
def test_cvat_masks_and_skeletons(work: Path, data: st.DataObject) -> None:
    root = work / "cvat-docs"
    root.mkdir(exist_ok=True)
    original = (CVAT / "cvat-docs" / "annotations.xml").read_bytes()
    (root / "annotations.xml").write_bytes(mutate_xml(data, original, CVAT_ATTRS))
    only_conceptkit_errors(lambda: cvat.read(root, ReadOptions()))


VIDEO = b"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
<meta><task><size>20</size><mode>interpolation</mode>
<original_size><width>64</width><height>48</height></original_size></task></meta>
<track id="3" label="car" source="manual">
  <box frame="0" keyframe="1" outside="0" occluded="0" xtl="0" ytl="0" xbr="10" ybr="10" z_order="1"/>
  <box frame="10" keyframe="1" outside="0" occluded="1" xtl="10" ytl="20" xbr="30" ybr="30" z_order="1"/>
  <box frame="15" keyframe="1" outside="1" occluded="0" xtl="10" ytl="20" xbr="30" ybr="30" z_order="1"/>
</track>
<track id="4" label="person" source="manual">
  <polygon frame="4" keyframe="1" outside="0" occluded="0" points="0,0;4,0;4,4" z_order="0"/>
  <polygon frame="8" keyframe="1" outside="0" occluded="0" points="8,0;12,0;12,8" z_order="0"/>
  <mask frame="9" keyframe="1" outside="0" rle="2, 3, 1" left="1" top="1" width="3" height="2"/>
</track>
</annotations>
"""


@fuzz_settings("cvat-video")
@given(data=st.data())
def test_cvat_video(work: Path, data: st.DataObject) -> None:
    root = work / "cvat-video"
    root.mkdir(exist_ok=True)
    (root / "annotations.xml").write_bytes(mutate_xml(data, VIDEO, CVAT_ATTRS + ["outside"]))
    only_conceptkit_errors(lambda: cvat.read(root, ReadOptions()))


def cvat_zip() -> bytes:
    buf = io.BytesIO()
    src = CVAT / "datumaro-export_task"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(src / "train.xml", "annotations.xml")
        for image in sorted((src / "images").iterdir()):
            z.write(image, f"images/{image.name}")
    return buf.getvalue()


CVAT_ZIP = cvat_zip()


@fuzz_settings("cvat-zip")
@given(data=st.data())
def test_cvat_zip_bytes(work: Path, data: st.DataObject) -> None:
    raw = bytearray(CVAT_ZIP)
    for _ in range(data.draw(st.integers(1, 6), label="flips")):
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[at] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.sampled_from([len(raw)] * 4 + [len(raw) // 2, len(raw) - 22]), label="cut")
    path = work / "export.zip"
    path.write_bytes(bytes(raw[:cut]))
    only_conceptkit_errors(lambda: cvat.read(path, ReadOptions()))


# ----------------------------------------------------------------------------- the shared parts


def true_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_json_depth_scan_equals_the_parsed_depth(value: Any, ascii_only: bool) -> None:
    from conceptkit.jsonfile import depth

    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert depth(raw) == true_depth(value)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    text=st.text(alphabet="0123456789+-.eE _naifINF²٣x,", max_size=12)
    | st.floats(allow_nan=True).map(repr)
)
def test_xml_numbers_are_plain_decimals(text: str) -> None:
    import math
    import re

    from conceptkit.converters._xml import number

    plain = re.fullmatch(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", text.strip())
    expected = float(text) if plain and math.isfinite(float(text)) else None
    assert number(text) == expected


# ----------------------------------------------------------------------------- issue 14's readers
# The same property for the readers of the annotation tools' exports and the segmentation
# datasets: a mutated JSON / JSON Lines / XML / text file, or a label PNG flipped, cut or
# replaced by a small image of any pixel mode, gives records or one ConceptkitError.

FORMATS2 = Path(__file__).resolve().parent / "data" / "fixtures" / "formats2"

EXAMPLES.update(
    {
        "labelstudio": 120,
        "via": 100,
        "vott": 100,
        "labelbox": 80,
        "sagemaker": 80,
        "vertex": 100,
        "azure": 100,
        "voc": 80,
        "ade20k": 80,
        "cityscapes": 60,
        "supervisely": 80,
        "camvid": 80,
    }
)

#: pixel modes a label PNG may come in (and the numpy type that makes each)
PNG_MODES = {
    "L": np.uint8,
    "P": np.uint8,
    "RGB": np.uint8,
    "RGBA": np.uint8,
    "LA": np.uint8,
    "1": np.bool_,
    "I;16": np.uint16,
    "I": np.int32,
    "F": np.float32,
}


def random_png(data: st.DataObject, size: tuple[int, int] | None) -> bytes:
    """A small PNG of a drawn mode, of ``size`` (w, h) or a drawn one, with drawn values."""
    from PIL import Image

    mode = data.draw(st.sampled_from(sorted(PNG_MODES)), label="mode")
    if size is None or data.draw(st.booleans(), label="other size"):
        size = (data.draw(st.integers(1, 6), label="w"), data.draw(st.integers(1, 6), label="h"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    channels = {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode)
    shape = (size[1], size[0]) if channels is None else (size[1], size[0], channels)
    few = data.draw(st.sampled_from([2, 3, 256, 40000, 2**31 - 1]), label="values")
    values = rng.integers(0, few, size=shape) % (2**16 if mode == "I;16" else 2**31)
    if PNG_MODES[mode] is np.uint8:
        values %= 256
    array: np.ndarray = values.astype(PNG_MODES[mode])
    if mode in ("LA", "RGBA", "RGB"):
        image = Image.fromarray(array, mode)
    elif mode == "P":
        image = Image.fromarray(array, "L").convert("P")
    elif mode in ("I", "F"):  # modes PNG cannot hold: a TIFF where a PNG was expected
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="TIFF")
        return buf.getvalue()
    else:
        image = Image.fromarray(array)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def fuzzed_png(data: st.DataObject, raw: bytes, size: tuple[int, int] | None) -> bytes:
    """``raw`` (a PNG) with a few bytes flipped, cut short, or replaced by :func:`random_png`."""
    how = data.draw(st.sampled_from(["flip", "cut", "random", "random", "keep"]), label="png")
    if how == "random":
        return random_png(data, size)
    if how == "keep":
        return raw
    if how == "cut":
        return raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        # the header (size, mode) is where a flip means most
        at = data.draw(st.integers(0, min(len(out), 40) - 1) | st.integers(0, len(out) - 1))
        out[at] = data.draw(st.integers(0, 255), label="byte")
    return bytes(out)


def mutate_text(data: st.DataObject, text: str) -> str:
    """Lines of ``text`` replaced, deleted or duplicated; hostile lines put in."""
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        op = data.draw(st.sampled_from(["replace", "insert", "delete", "duplicate"]), label="op")
        at = data.draw(st.integers(0, max(0, len(lines) - 1)), label="line")
        value = data.draw(st.sampled_from([*HOSTILE_TEXT, "a b c", "/x/../../y.png /z.png"]))
        if op == "insert" or not lines:
            lines.insert(at, value)
        elif op == "replace":
            lines[at] = value
        elif op == "delete":
            del lines[at]
        else:
            lines.insert(at, lines[at])
    return "\n".join(lines) + "\n"


def json_file(data: st.DataObject, original: Any) -> bytes:
    return mangle_bytes(data, dump_json(mutate_json(data, original)))


def jsonl_file(data: st.DataObject, lines: list[Any]) -> bytes:
    """JSON Lines of the mutated ``lines`` (one document per line; a non-list root is one line)."""
    doc = mutate_json(data, lines)
    rows = doc if isinstance(doc, list) else [doc]
    return mangle_bytes(data, b"\n".join(dump_json(r) for r in rows) + b"\n")


def fresh(work: Path, name: str, src: Path) -> Path:
    """A new copy of ``src`` under ``work`` for one example (the last one removed)."""
    dst = work / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@fuzz_settings("labelstudio")
@given(data=st.data())
def test_labelstudio(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import labelstudio

    name = data.draw(
        st.sampled_from(
            ["image_polygons/0.json", "export_json_min/data.json", "export_yolo/data_polygons.json"]
        ),
        label="file",
    )
    target = work / "labelstudio.json"
    target.write_bytes(json_file(data, read_json(FORMATS2 / "labelstudio" / name)))
    only_conceptkit_errors(lambda: labelstudio.read(target, ReadOptions()))


def brush_task() -> Any:
    """A Label Studio task with one 6 x 4 brush mask (its RGBA stream in Label Studio's RLE)."""
    from conceptkit.converters.labelstudio import encode_rle

    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[1:3, 2:5, 3] = 255
    value = {"format": "rle", "rle": list(encode_rle(rgba.ravel())), "brushlabels": ["road"]}
    result: dict[str, Any] = {"id": "b", "type": "brushlabels", "value": value}
    result |= {"original_width": 6, "original_height": 4}
    return [
        {"id": 1, "data": {"image": "/data/upload/1/a.png"}, "annotations": [{"result": [result]}]}
    ]


BRUSH_TASK = brush_task()


@fuzz_settings("labelstudio")
@given(data=st.data())
def test_labelstudio_brush_rle(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import labelstudio
    from PIL import Image

    root = work / "brush"
    if not root.exists():
        root.mkdir()
        Image.new("RGB", (6, 4)).save(root / "a.png")
    doc = copy.deepcopy(BRUSH_TASK)
    value = doc[0]["annotations"][0]["result"][0]["value"]
    if data.draw(st.booleans(), label="edit the rle"):
        rle = value["rle"]
        for _ in range(data.draw(st.integers(1, 5), label="edits")):
            at = data.draw(st.integers(0, len(rle) - 1), label="at")
            rle[at] = data.draw(st.integers(0, 255) | st.integers(-5, 2**40), label="v")
        value["rle"] = rle[: data.draw(st.sampled_from([len(rle), len(rle) // 2, 3, 0]))]
    (root / "task.json").write_bytes(json_file(data, doc))
    only_conceptkit_errors(lambda: labelstudio.read(root, ReadOptions()))


@fuzz_settings("via")
@given(data=st.data())
def test_via(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import via

    root = copied(work, "via", FORMATS2 / "via")
    original = read_json(FORMATS2 / "via" / "vgg_test.json")
    (root / "vgg_test.json").write_bytes(json_file(data, original))
    only_conceptkit_errors(lambda: via.read(root, ReadOptions()))


VOTT_ASSET = "3e9422d133807a96af47657b7d5575e3-asset.json"


@fuzz_settings("vott")
@given(data=st.data())
def test_vott(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import vott

    root = copied(work, "vott", FORMATS2 / "vott")
    (root / VOTT_ASSET).write_bytes(json_file(data, read_json(FORMATS2 / "vott" / VOTT_ASSET)))
    only_conceptkit_errors(lambda: vott.read(root, ReadOptions()))


@fuzz_settings("labelbox")
@given(data=st.data())
def test_labelbox(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import labelbox

    kind = data.draw(st.sampled_from(["vector_annotations", "instance_segmentation"]))
    root = copied(work, f"labelbox-{kind}", FORMATS2 / "labelbox" / kind)
    original = read_json(FORMATS2 / "labelbox" / kind / "labelbox_example.json")
    if kind == "instance_segmentation":  # its masks are large: read the first rows only
        original = original[:2]
    (root / "labelbox_example.json").write_bytes(json_file(data, original))
    only_conceptkit_errors(lambda: labelbox.read(root, ReadOptions()))


SAGEMAKER = FORMATS2 / "sagemaker"


@fuzz_settings("sagemaker")
@given(data=st.data())
def test_sagemaker(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import sagemaker

    kind = data.draw(st.sampled_from(["instance_segmentation", "object_detection"]))
    root = fresh(work, "sagemaker", SAGEMAKER / kind)
    if kind == "instance_segmentation" and data.draw(st.booleans(), label="mask"):
        png = data.draw(st.sampled_from(sorted(p.name for p in root.glob("*.png"))))
        (root / png).write_bytes(fuzzed_png(data, (root / png).read_bytes(), None))
    else:
        lines = read_jsonl(SAGEMAKER / kind / "output.manifest")
        (root / "output.manifest").write_bytes(jsonl_file(data, lines))
    only_conceptkit_errors(lambda: sagemaker.read(root, ReadOptions()))


def vertex_root(root: Path) -> list[Any]:
    """A Vertex AI export of two images (a category mask, a polygon); returns its lines."""
    from PIL import Image

    Image.new("RGB", (6, 4)).save(root / "a.jpg")
    Image.new("RGB", (6, 4)).save(root / "b.jpg")
    mask = np.zeros((4, 6, 3), dtype=np.uint8)
    mask[1:3, 2:5] = (255, 0, 0)
    Image.fromarray(mask).save(root / "a_mask.png")
    colours = [{"displayName": "sky", "color": {"red": 1.0}}]
    poly = {"vertexes": [{"x": 0.1, "y": 0.1}, {"x": 0.5}, {"x": 0.5, "y": 0.9}]}
    return [
        {
            "imageGcsUri": "gs://b/a.jpg",
            "maskAnnotation": {"maskGcsUri": "gs://b/a_mask.png", "annotationSpecColors": colours},
        },
        {
            "imageGcsUri": "gs://b/b.jpg",
            "polygonAnnotation": {**poly, "displayName": "box"},
            "polylineAnnotation": {**poly, "displayName": "edge"},
        },
    ]


@fuzz_settings("vertex")
@given(data=st.data())
def test_vertex(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import vertex

    root = work / "vertex"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    lines = vertex_root(root)
    if data.draw(st.booleans(), label="mask"):
        raw = (root / "a_mask.png").read_bytes()
        (root / "a_mask.png").write_bytes(fuzzed_png(data, raw, (6, 4)))
        (root / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    else:
        (root / "data.jsonl").write_bytes(jsonl_file(data, lines))
    only_conceptkit_errors(lambda: vertex.read(root, ReadOptions()))


AZURE_LINES = [
    {
        "image_url": "azureml://subscriptions/s/datastores/d/paths/imgs/a.jpg",
        "image_details": {"format": "jpg", "width": "200px", "height": 100},
        "label": [
            {"label": "can", "isCrowd": 0, "polygon": [[0.0, 0.0, 0.05, 0.0, 0.05, 0.1]]},
            {"label": "milk", "isCrowd": 1, "topX": 0.5, "topY": 0.5, "bottomX": 0.6, "bottomY": 1},
            "fridge",
        ],
    }
]


@fuzz_settings("azure")
@given(data=st.data())
def test_azure(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import azure
    from PIL import Image

    root = work / "azure"
    if not root.exists():
        (root / "imgs").mkdir(parents=True)
        Image.new("RGB", (200, 100)).save(root / "a.jpg")
    (root / "train.jsonl").write_bytes(jsonl_file(data, AZURE_LINES))
    only_conceptkit_errors(lambda: azure.read(root, ReadOptions()))


VOC = FORMATS2 / "voc" / "labelme"
VOC_XML = b"""<annotation><filename>2011_000003.jpg</filename>
<size><width>500</width><height>338</height><depth>3</depth></size>
<object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
<object><name>bottle</name></object><object><name>person</name></object>
</annotation>"""


@fuzz_settings("voc")
@given(data=st.data())
def test_voc(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import voc

    root = fresh(work, "voc", VOC)
    what = data.draw(st.sampled_from(["class", "object", "names", "xml"]), label="what")
    if what == "names":
        text = (VOC / "class_names.txt").read_text()
        (root / "class_names.txt").write_text(mutate_text(data, text))
    elif what == "xml":
        (root / "Annotations").mkdir()
        xml = mutate_xml(data, VOC_XML, ["x"])
        (root / "Annotations" / "2011_000003.xml").write_bytes(xml)
    else:
        folder = "SegmentationClass" if what == "class" else "SegmentationObject"
        png = root / folder / "2011_000003.png"
        png.write_bytes(fuzzed_png(data, png.read_bytes(), (500, 338)))
    only_conceptkit_errors(lambda: voc.read(root, ReadOptions()))


@fuzz_settings("ade20k")
@given(data=st.data())
def test_ade20k(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import ade20k

    year = data.draw(st.sampled_from(["2020", "2017"]), label="year")
    root = fresh(work, "ade20k", FORMATS2 / "ade20k" / year)
    folder = root / "validation"
    what = data.draw(st.sampled_from(["seg", "parts", "table"]), label="what")
    if what == "table" and year == "2020":
        doc = read_json(FORMATS2 / "ade20k" / year / "validation" / "2.json")
        (folder / "2.json").write_bytes(json_file(data, doc))
    elif what == "table":
        text = (folder / "2_atr.txt").read_text(encoding="utf-8")
        (folder / "2_atr.txt").write_text(mutate_text(data, text), encoding="utf-8")
    else:
        png = folder / ("2_seg.png" if what == "seg" else "2_parts_1.png")
        png.write_bytes(fuzzed_png(data, png.read_bytes(), (5, 5) if year == "2020" else (4, 3)))
    only_conceptkit_errors(lambda: ade20k.read(root, ReadOptions()))


CITYSCAPES = FORMATS2 / "cityscapes" / "datumaro"
CITY_PNG = "gtFine/val/defaultcity/defaultcity_000001_000019_gtFine_instanceIds.png"
CITY_POLYGONS = {
    "imgHeight": 4,
    "imgWidth": 5,
    "objects": [
        {"label": "road", "polygon": [[0, 0], [4, 0], [4, 3], [0, 3]]},
        {"label": "car", "polygon": [[1, 1], [3, 1], [3, 2]]},
        {"label": "cargroup", "polygon": [[0, 0], [1, 0], [1, 1]]},
    ],
}


@fuzz_settings("cityscapes")
@given(data=st.data())
def test_cityscapes(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import cityscapes
    from PIL import Image

    root = fresh(work, "cityscapes", CITYSCAPES)
    png = root / CITY_PNG
    how = data.draw(st.sampled_from(["png", "ids", "polygons"]), label="how")
    if how == "png":
        png.write_bytes(fuzzed_png(data, png.read_bytes(), (5, 1)))
    elif how == "ids":  # a 16-bit plane of drawn ids, instance ids and stray values
        pick = st.sampled_from([0, 1, 7, 24, 26, 33, 34, 255, 1000, 26000, 26001, 33999, 65535])
        values = [data.draw(pick, label="value") for _ in range(5)]
        Image.fromarray(np.array([values], dtype=np.uint16)).save(png)
    else:
        target = png.with_name(png.name.replace("instanceIds.png", "polygons.json"))
        png.unlink()
        Image.new("RGB", (5, 4)).save(
            root / "imgsFine/leftImg8bit/val/defaultcity/defaultcity_000001_000019_leftImg8bit.png"
        )
        target.write_bytes(json_file(data, CITY_POLYGONS))
    only_conceptkit_errors(lambda: cityscapes.read(root, ReadOptions()))


SUPERVISELY = FORMATS2 / "supervisely"


@fuzz_settings("supervisely")
@given(data=st.data())
def test_supervisely(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import supervisely

    kind = data.draw(st.sampled_from(["instance", "vector"]), label="kind")
    root = fresh(work, "supervisely", SUPERVISELY / kind)
    name = "meta.json"
    if data.draw(st.integers(0, 3), label="which") > 0:
        name = "ds/ann/" + sorted(p.name for p in (root / "ds" / "ann").iterdir())[0]
    (root / name).write_bytes(json_file(data, read_json(SUPERVISELY / kind / name)))
    only_conceptkit_errors(lambda: supervisely.read(root, ReadOptions()))


CAMVID = FORMATS2 / "camvid" / "datumaro"


@fuzz_settings("camvid")
@given(data=st.data())
def test_camvid(work: Path, data: st.DataObject) -> None:
    from conceptkit.converters import camvid

    root = fresh(work, "camvid", CAMVID)
    what = data.draw(st.sampled_from(["mask", "mask", "list", "table"]), label="what")
    if what == "mask":
        png = root / "trainannot" / "0001TP_006690.png"
        png.write_bytes(fuzzed_png(data, png.read_bytes(), (5, 1)))
    elif what == "list":
        (root / "train.txt").write_text(mutate_text(data, (CAMVID / "train.txt").read_text()))
    else:
        table = "0 0 0\tVoid\n64 128 64\tAnimal\n128 64 128\tRoad\n128 128 128\tSky\n"
        (root / "label_colors.txt").write_text(mutate_text(data, table))
    only_conceptkit_errors(lambda: camvid.read(root, ReadOptions()))
