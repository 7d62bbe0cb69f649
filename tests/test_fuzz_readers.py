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
