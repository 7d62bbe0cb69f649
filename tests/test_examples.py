"""The shipped example dataset: its three tool exports are real, consistent and reproducible.

The exports under examples/data/ are read here with plain json / ElementTree / pycocotools (not
with conceptkit's readers), so that a fault in a reader cannot hide a fault in the data.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data"
IMAGE_NAMES = sorted(p.name for p in (DATA / "source" / "images").glob("*.jpg"))

#: Every shape type labelme 5.x writes.
LABELME_SHAPE_TYPES = {
    "polygon",
    "rectangle",
    "circle",
    "line",
    "point",
    "linestrip",
    "points",
    "mask",
    "oriented_rectangle",
}
LABELME_KEYS = ["version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"]
LABELME_SHAPE_KEYS = ["label", "points", "group_id", "description", "shape_type", "flags", "mask"]

Obj = tuple[str, tuple[tuple[tuple[float, float], ...], ...]]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_exports", REPO / "examples/make_exports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _labelme(folder: Path) -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))
    }


def _labelme_objects(doc: dict) -> list[Obj]:
    """Shapes joined by (label, group_id), in document order of their first polygon."""
    objects: list[tuple[str, list]] = []
    seen: dict[tuple[str, int], int] = {}
    for s in doc["shapes"]:
        poly = tuple((float(x), float(y)) for x, y in s["points"])
        key = (s["label"], s["group_id"])
        if s["group_id"] is not None and key in seen:
            objects[seen[key]][1].append(poly)
            continue
        if s["group_id"] is not None:
            seen[key] = len(objects)
        objects.append((s["label"], [poly]))
    return [(label, tuple(polys)) for label, polys in objects]


def _cvat_images() -> dict[str, ET.Element]:
    root = ET.parse(DATA / "cvat" / "annotations.xml").getroot()
    return {im.get("name", ""): im for im in root.iter("image")}


def _cvat_shapes(image: ET.Element) -> list[tuple[str, int | None, tuple]]:
    polys = sorted(image.iter("polygon"), key=lambda p: int(p.get("z_order", "0")))
    out = []
    for p in polys:
        pts = tuple(
            (float(a), float(b))
            for a, b in (xy.split(",") for xy in p.get("points", "").split(";"))
        )
        group = p.get("group_id")
        out.append((p.get("label", ""), int(group) if group is not None else None, pts))
    return out


def test_regenerates_byte_identically(tmp_path: Path) -> None:
    _module().write_exports(tmp_path)
    for folder in ("labelme", "labelme_annotator2", "cvat", "coco"):
        committed = sorted(
            p.relative_to(DATA / folder) for p in (DATA / folder).rglob("*") if p.is_file()
        )
        written = sorted(
            p.relative_to(tmp_path / folder) for p in (tmp_path / folder).rglob("*") if p.is_file()
        )
        assert written == committed, folder
        for rel in committed:
            assert filecmp.cmp(DATA / folder / rel, tmp_path / folder / rel, shallow=False), rel
    assert filecmp.cmp(DATA / "concepts.csv", tmp_path / "concepts.csv", shallow=False)


@pytest.mark.parametrize("folder", ["labelme", "labelme_annotator2"])
def test_labelme_files_have_labelme_structure(folder: str) -> None:
    docs = _labelme(DATA / folder)
    assert len(docs) == (12 if folder == "labelme" else 6)
    for name, doc in docs.items():
        assert list(doc) == LABELME_KEYS, name
        assert doc["version"].startswith("5.")
        assert doc["imageData"] is None
        image = DATA / folder / doc["imagePath"]
        assert image.name == name.replace(".json", ".jpg") and image.is_file()
        with Image.open(image) as im:
            assert im.size == (doc["imageWidth"], doc["imageHeight"]), name
        assert all(isinstance(v, bool) for v in doc["flags"].values())
        assert any(doc["flags"].values()) or name == "brick.json"
        for shape in doc["shapes"]:
            assert list(shape) == LABELME_SHAPE_KEYS
            assert shape["shape_type"] in LABELME_SHAPE_TYPES
            assert shape["shape_type"] == "polygon" and len(shape["points"]) >= 3
            assert shape["group_id"] is None or isinstance(shape["group_id"], int)
            pts = np.asarray(shape["points"])
            assert pts.min() >= 0
            assert pts[:, 0].max() <= doc["imageWidth"] and pts[:, 1].max() <= doc["imageHeight"]


def test_cvat_xml_parses_with_images_and_labels() -> None:
    root = ET.parse(DATA / "cvat" / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task is not None and task.findtext("size") == "12"
    labels = {lab.findtext("name"): lab.findtext("type") for lab in task.iter("label")}
    images = _cvat_images()
    assert sorted(images) == IMAGE_NAMES
    assert sorted(p.name for p in (DATA / "cvat" / "images").iterdir()) == IMAGE_NAMES
    used_shapes, used_tags = set(), set()
    for name, image in images.items():
        with Image.open(DATA / "cvat" / "images" / name) as im:
            assert im.size == (int(image.get("width", 0)), int(image.get("height", 0)))
        used_shapes |= {label for label, _, _ in _cvat_shapes(image)}
        used_tags |= {t.get("label") for t in image.iter("tag")}
    assert {k for k, v in labels.items() if v == "polygon"} == used_shapes
    assert {k for k, v in labels.items() if v == "tag"} == used_tags
    assert {"person", "eye", "sky", "tripod"} <= used_shapes
    assert used_tags == {"indoor", "outdoor", "striped", "bumpy", "fibrous"}


def test_coco_loads_and_every_annotation_rasterises() -> None:
    coco = COCO(str(DATA / "coco" / "annotations" / "instances_default.json"))
    assert sorted(im["file_name"] for im in coco.dataset["images"]) == IMAGE_NAMES
    assert (
        len(coco.dataset["annotations"]) == 83
    )  # 87 polygons; cup 2, tripod 3, hair 2 polygons each one object
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        assert (DATA / "coco" / "images" / img["file_name"]).is_file()
        m = coco.annToMask(ann)
        assert m.shape == (img["height"], img["width"])
        assert m.sum() == ann["area"] > 0
        ys, xs = np.nonzero(m)
        x, y, w, h = ann["bbox"]
        assert x - 1 <= xs.min() and xs.max() <= x + w and y - 1 <= ys.min() and ys.max() <= y + h
        assert ann["iscrowd"] == 0
        assert coco.cats[ann["category_id"]]["supercategory"] in ("object", "part", "material")


def test_three_exports_describe_the_same_shapes() -> None:
    labelme = _labelme(DATA / "labelme")
    cvat = _cvat_images()
    data = json.loads((DATA / "coco" / "annotations" / "instances_default.json").read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    coco_ids = {im["file_name"]: im["id"] for im in data["images"]}
    n_shapes = 0
    for name in IMAGE_NAMES:
        doc = labelme[name.replace(".jpg", ".json")]
        from_labelme = [
            (s["label"], s["group_id"], tuple((float(x), float(y)) for x, y in s["points"]))
            for s in doc["shapes"]
        ]
        assert _cvat_shapes(cvat[name]) == from_labelme, name
        tags = sorted(k for k, v in doc["flags"].items() if v)
        assert sorted(t.get("label", "") for t in cvat[name].iter("tag")) == tags
        from_coco = [
            (
                cats[a["category_id"]],
                tuple(tuple(zip(seg[::2], seg[1::2], strict=True)) for seg in a["segmentation"]),
            )
            for a in data["annotations"]
            if a["image_id"] == coco_ids[name]
        ]
        assert from_coco == _labelme_objects(doc), name
        n_shapes += len(from_labelme)
    assert n_shapes == 87


def _mask(polys: tuple, h: int, w: int) -> np.ndarray:
    rle = mask_utils.merge(
        mask_utils.frPyObjects([[v for p in poly for v in p] for poly in polys], h, w)
    )
    return mask_utils.decode(rle).astype(bool)


def test_second_annotator_disagrees_realistically() -> None:
    first = _labelme(DATA / "labelme")
    second = _labelme(DATA / "labelme_annotator2")
    assert set(second) <= set(first) and len(second) == 6
    labels1 = {n: {s["label"] for s in d["shapes"]} for n, d in first.items()}
    labels2 = {n: {s["label"] for s in d["shapes"]} for n, d in second.items()}
    assert labels1["coffee.json"] - labels2["coffee.json"] == {"cup"}
    assert labels2["coffee.json"] - labels1["coffee.json"] == {"mug"}
    assert labels1["astronaut.json"] - labels2["astronaut.json"] == {"helmet"}
    for name in second:
        if name not in ("coffee.json", "astronaut.json"):
            assert labels1[name] == labels2[name], name
    # Own outlines, yet the same objects: the person masks overlap well but not perfectly.
    for name in ("astronaut.json", "camera.json", "grace_hopper.json"):
        h, w = first[name]["imageHeight"], first[name]["imageWidth"]
        m1, m2 = (
            _mask(next(p for label, p in _labelme_objects(d[name]) if label == "person"), h, w)
            for d in (first, second)
        )
        iou = (m1 & m2).sum() / (m1 | m2).sum()
        assert 0.85 < iou < 0.99, (name, iou)


def test_concepts_repeat_across_images() -> None:
    docs = _labelme(DATA / "labelme")
    images_with: dict[str, int] = {}
    for doc in docs.values():
        names = {s["label"] for s in doc["shapes"]} | {k for k, v in doc["flags"].items() if v}
        for label in names:
            images_with[label] = images_with.get(label, 0) + 1
    assert images_with["eye"] == 4 and images_with["person"] == 3 and images_with["sky"] == 3
    assert images_with["indoor"] == 5 and images_with["outdoor"] == 6
    assert sum(count >= 2 for count in images_with.values()) >= 12


def test_example_data_is_small() -> None:
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 6 * 1024 * 1024
    for image in (DATA / "source" / "images").glob("*.jpg"):
        with Image.open(image) as im:
            assert max(im.size) <= 512 and im.mode == "RGB"
