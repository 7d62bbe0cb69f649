"""The COCO instances reader against real exports, pycocotools' own masks, and bad input."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from conceptkit.converters import ReadOptions
from conceptkit.converters import coco as reader
from conceptkit.schemas import load as load_schema
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from conceptkit import rasterize
from conceptkit.errors import FormatError


def read_all(src: Path, **kw: Any) -> list:
    return list(reader.read(src, ReadOptions(**kw)))


def coco_api(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def instance_masks(record, height: int, width: int) -> dict[str, np.ndarray]:
    """Union of every shape of each instance, rasterised by conceptkit.rasterize."""
    out: dict[str, np.ndarray] = {}
    for shape in record.shapes:
        m = rasterize.shape_mask(shape, height, width)
        out[shape.instance] = out.get(shape.instance, np.zeros((height, width), bool)) | m
    return out


def pasted(shape, height: int, width: int) -> np.ndarray:
    """A mask shape pasted by hand (independent of rasterize)."""
    full = np.zeros((height, width), bool)
    x0, y0 = shape.origin
    h, w = shape.mask.shape
    full[y0 : y0 + h, x0 : x0 + w] = shape.mask
    return full


# ----------------------------------------------------------------------------- real exports


def test_datumaro_instances(formats_dir: Path) -> None:
    src = formats_dir / "coco" / "datumaro-coco_instances"
    records = read_all(src)
    assert [(r.key, r.width, r.height, r.split) for r in records] == [
        ("a.jpg", 10, 5, "train"),
        ("b.jpg", 5, 10, "val"),
    ]
    a, b = records
    # images found through the rule root/images/<split>/<file_name>
    assert a.image_path == src / "images" / "train" / "a.jpg"
    assert b.image_path == src / "images" / "val" / "b.jpg"
    assert a.annotator == b.annotator == "datumaro-coco_instances"
    # a box-only annotation (empty segmentation) -> its bbox [2, 2, 3, 1]
    (box,) = a.shapes
    assert (box.label, box.kind, box.instance, box.ignore) == ("b", "rectangle", "1", False)
    assert box.points.tolist() == [[2.0, 2.0], [5.0, 3.0]]
    poly, crowd = b.shapes
    assert (poly.label, poly.kind, poly.convention) == ("a", "polygon", "center")
    assert poly.points.tolist() == [[0, 0], [1, 0], [1, 2], [0, 2]]
    assert poly.attributes == {"x": "1", "y": "hello"}
    assert poly.place == "$.annotations[0].segmentation[0]"
    # crowd: uncompressed RLE [0, 20, 30] over 10 x 5 column-major = the first two columns
    assert (crowd.label, crowd.kind, crowd.ignore, crowd.instance) == ("b", "mask", True, "2")
    assert crowd.origin == (0, 0) and crowd.mask.shape == (10, 2) and crowd.mask.all()
    api = coco_api(src / "annotations" / "instances_val.json")
    for shape in (poly, crowd):
        ann = api.anns[int(shape.instance)]
        assert np.array_equal(rasterize.shape_mask(shape, 10, 5), api.annToMask(ann).astype(bool))
    assert rasterize.shape_mask(poly, 10, 5).sum() == 2  # pycocotools: 1 x 2 pixels


def test_panopticapi_compressed_rles(formats_dir: Path) -> None:
    src = formats_dir / "coco" / "panopticapi"
    path = src / "panoptic_coco_detection_format.json"
    records = read_all(path, extra={"images": src / "input_images"})
    assert [r.key for r in records] == ["000000142238.jpg", "000000439180.jpg"]
    assert all(r.image_path is not None and r.image_path.is_file() for r in records)
    data = json.loads(path.read_text())
    anns = {str(a["id"]): a for a in data["annotations"]}
    shapes = [s for r in records for s in r.shapes]
    assert len(shapes) == 50 and {s.instance for s in shapes} == set(anns)
    assert sum(s.ignore for s in shapes) == 3
    assert {s.instance for s in shapes if s.ignore} == {
        str(a["id"]) for a in data["annotations"] if a["iscrowd"]
    }
    names = {c["id"]: c["name"] for c in data["categories"]}
    for record in records:
        h, w = record.height, record.width
        for shape in record.shapes:
            ann = anns[shape.instance]
            assert shape.label == names[ann["category_id"]]
            expected = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert np.array_equal(pasted(shape, h, w), expected)
            assert np.array_equal(rasterize.shape_mask(shape, h, w), expected)
            assert int(expected.sum()) == int(ann["area"])


def multi_part_file(tmp_path: Path, decimals: int | None) -> tuple[Path, list[dict[str, Any]]]:
    """40 annotations of 1-3 star-shaped parts on a 37 x 53 image (some cross its edges)."""
    rng = np.random.default_rng(7)
    h, w = 37, 53
    anns = []
    for i in range(40):
        parts = []
        for _ in range(1 + i % 3):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            k = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = rng.uniform(2, 12, k)
            xy = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).reshape(-1)
            parts.append([round(float(v), decimals) if decimals else float(v) for v in xy])
        anns.append({"id": 100 + i, "image_id": 1, "category_id": 1 + i % 2, "segmentation": parts})
    doc = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": w, "height": h}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(doc))
    return path, anns


def test_multi_part_polygons_match_ann_to_mask(tmp_path: Path) -> None:
    path, anns = multi_part_file(tmp_path, decimals=2)
    h, w = 37, 53
    (record,) = read_all(path)
    assert record.split == "val"
    assert record.image_path == tmp_path / "images" / "val2017" / "x.jpg"  # absent: 1st candidate
    assert len(record.shapes) == sum(len(a["segmentation"]) for a in anns)
    assert [s.order for s in record.shapes] == list(range(len(record.shapes)))
    api = coco_api(path)
    for ann in anns:
        shapes = [s for s in record.shapes if s.instance == str(ann["id"])]
        assert all(s.kind == "polygon" and s.convention == "center" for s in shapes)
        flat = [s.points.reshape(-1).tolist() for s in shapes]
        ours = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(flat, h, w)))
        expected = api.annToMask(api.anns[ann["id"]])
        assert np.array_equal(ours, expected), ann["id"]


def test_rasterize_matches_ann_to_mask_full_precision(tmp_path: Path) -> None:
    path, anns = multi_part_file(tmp_path, decimals=None)
    (record,) = read_all(path)
    masks = instance_masks(record, 37, 53)
    api = coco_api(path)
    for ann in anns:
        expected = api.annToMask(api.anns[ann["id"]]).astype(bool)
        assert np.array_equal(masks[str(ann["id"])], expected), ann["id"]


def test_rasterize_matches_ann_to_mask_two_decimals(tmp_path: Path) -> None:
    path, anns = multi_part_file(tmp_path, decimals=2)
    (record,) = read_all(path)
    masks = instance_masks(record, 37, 53)
    api = coco_api(path)
    for ann in anns:
        expected = api.annToMask(api.anns[ann["id"]]).astype(bool)
        assert np.array_equal(masks[str(ann["id"])], expected), ann["id"]


def test_image_folder_rule(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "annotations").mkdir(parents=True)
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 4, "height": 4},
            {"id": 2, "file_name": "b.jpg", "width": 4, "height": 4},
            {"id": 3, "file_name": "sub/c.jpg", "width": 4, "height": 4},
            {"id": 4, "file_name": "d.jpg", "width": 4, "height": 4},
        ],
        "annotations": [],
        "categories": [],
    }
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(doc))
    for rel in ("images/train2017/a.jpg", "images/b.jpg", "train2017/sub/c.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    got = [r.image_path for r in read_all(root)]
    assert got == [
        root / "images/train2017/a.jpg",
        root / "images/b.jpg",
        root / "train2017/sub/c.jpg",
        root / "images/train2017/d.jpg",  # missing: the first candidate (the pipeline reports it)
    ]


def test_fast_checks_never_accept_what_the_schema_refuses() -> None:
    schema = load_schema("coco")
    ann_v = jsonschema.Draft202012Validator(schema["properties"]["annotations"]["items"])
    img_v = jsonschema.Draft202012Validator(schema["properties"]["images"]["items"])
    good = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1]]}
    mutations: list[tuple[str, Any]] = [
        ("id", "1"),
        ("id", 1.5),
        ("image_id", None),
        ("category_id", True),
        ("iscrowd", 2),
        ("iscrowd", True),
        ("area", -1),
        ("bbox", [1, 2, 3]),
        ("bbox", [1, 2, 3, "4"]),
        ("attributes", []),
        ("segmentation", [[0, "x"]]),
        ("segmentation", [0, 1]),
        ("segmentation", {"size": [2, 2]}),
        ("segmentation", {"size": [2], "counts": [4]}),
        ("segmentation", {"size": [2, 2], "counts": [-1, 5]}),
        ("segmentation", {"size": [2, 2], "counts": 5}),
        ("segmentation", {"size": [2, 2], "counts": "04"}),
        ("segmentation", []),
        ("segmentation", None),
    ]
    for key, value in mutations:
        item = copy.deepcopy(good)
        item[key] = value
        if reader._annotation_ok(item):
            assert ann_v.is_valid(item), (key, value)
    for item in ({"id": 1, "file_name": "", "width": 1, "height": 1}, {"id": 1}, []):
        assert not reader._image_ok(item) or img_v.is_valid(item)
    assert reader._annotation_ok(good) and ann_v.is_valid(good)


def test_compressed_strings_checked_before_pycocotools() -> None:
    rng = np.random.default_rng(3)
    m = np.asfortranarray((rng.random((29, 31)) > 0.6).astype(np.uint8))
    counts = mask_utils.encode(m)["counts"]
    assert reader.compressed_ok(counts.decode()) and reader.compressed_ok("")
    assert reader.compressed_total(counts, 29 * 31) == 29 * 31
    assert reader.compressed_total(counts, 29 * 31 - 1) is None
    # [3, 5, 30] encodes as "35n0": the third run (30) is stored as its difference to 3
    short = mask_utils.frPyObjects({"size": [6, 8], "counts": [3, 5, 30]}, 6, 8)["counts"]
    assert short == b"35n0" and reader.compressed_total(short, 48) == 38
    assert reader.compressed_total(b"", 48) == 0
    assert not reader.compressed_ok("k")  # 0x20 set: a count that never ends
    assert not reader.compressed_ok("3p")  # 'p' (112) is past the alphabet
    assert not reader.compressed_ok("3 5")
    assert not reader.compressed_ok("P" * 12 + "0")  # 13 groups: more than 60 bits
    assert reader.compressed_ok("P" * 11 + "0")


def test_compressed_rle_edge_cases_equal_pycocotools(tmp_path: Path) -> None:
    # runs with a trailing empty run ([.., 0]): not what pycocotools writes, but they cover the
    # mask exactly, so the string is read (as pycocotools decodes it)
    runs = [10, 20, 18, 0]
    text = mask_utils.frPyObjects({"size": [6, 8], "counts": runs}, 6, 8)["counts"].decode()
    assert (
        mask_utils.encode(mask_utils.decode({"size": [6, 8], "counts": text.encode()}))["counts"]
        != text.encode()
    )
    (record,) = read_all(write(tmp_path, minimal(segmentation={"size": [6, 8], "counts": text})))
    expected = mask_utils.decode({"size": [6, 8], "counts": text.encode()}).astype(bool)
    (shape,) = record.shapes
    assert np.array_equal(pasted(shape, 6, 8), expected) and expected.sum() == 20


@pytest.mark.slow
def test_streams_100000_annotations(tmp_path: Path) -> None:
    n_img, n_ann = 1000, 100_000
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, (n_ann, 2)).round(1)
    anns = [
        {
            "id": i + 1,
            "image_id": i % n_img,
            "category_id": 1,
            "segmentation": [[x, y, x + 30, y, x + 30, y + 20, x, y + 20]],
        }
        for i, (x, y) in enumerate(xy.tolist())
    ]
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(n_img)]
    path = tmp_path / "instances_train.json"
    path.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "c"}]})
    )
    del anns, images
    it = reader.read(path, ReadOptions())
    first = next(it)
    assert len(first.shapes) == 100 and first.shapes[0].instance == "1"
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    count = 1
    for record in it:
        assert len(record.shapes) == 100
        count += 1
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert count == n_img
    # one image's 100 shapes are a few tens of kB; holding all 100,000 would be tens of MB
    assert peak < 2_000_000, peak


# ----------------------------------------------------------------------------- bad input


def minimal(**ann: Any) -> dict[str, Any]:
    a = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}
    a.update(ann)
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
        "annotations": [a],
        "categories": [{"id": 1, "name": "thing"}],
    }


def error_of(path: Path, **kw: Any) -> str:
    with pytest.raises(FormatError) as info:
        read_all(path, **kw)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    return text


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "instances_train.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_malformed_json(tmp_path: Path) -> None:
    path = write(tmp_path, '{"images": [\n  {"id": 1,,}]}')
    assert "line 2, column 12: malformed JSON" in error_of(path)


def test_schema_violation_names_the_json_path(tmp_path: Path) -> None:
    doc = minimal()
    doc["annotations"][0]["bbox"] = [1, 2, "3", 4]
    text = error_of(write(tmp_path, doc))
    assert "$.annotations[0].bbox[2]: does not match the COCO instances schema" in text


def test_unknown_category_id(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(category_id=7))
    assert "$.annotations[0].category_id: category_id 7 is not in categories" in error_of(path)
    warnings: list[str] = []
    assert read_all(path, keep_going=True, warn=warnings.append) == []
    assert len(warnings) == 1 and "image skipped" in warnings[0]


def test_polygon_with_two_points(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(segmentation=[[0, 0, 4, 0, 4, 4], [1, 1, 2, 2]]))
    text = error_of(path)
    assert "$.annotations[0].segmentation[1]: a polygon needs at least 3 points" in text


def test_rle_counts_not_summing(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(segmentation={"size": [6, 8], "counts": [3, 5, 30]}))
    text = error_of(path)
    assert "$.annotations[0].segmentation.counts: RLE counts sum to 38" in text
    assert "6 x 8 = 48" in text
    seg = {"size": [6, 8], "counts": mask_utils.encode(np.zeros((6, 7), np.uint8, order="F"))}
    seg["counts"] = seg["counts"]["counts"].decode()
    text = error_of(write(tmp_path, minimal(segmentation=seg)))
    assert "RLE counts sum to 42" in text
    seg["counts"] = mask_utils.encode(np.zeros((7, 8), np.uint8, order="F"))["counts"].decode()
    text = error_of(write(tmp_path, minimal(segmentation=seg)))
    assert "$.annotations[0].segmentation.counts: RLE counts sum to more, expected" in text
    for bad in ("k", "3 5", "35\u00e9"):
        seg["counts"] = bad
        text = error_of(write(tmp_path, minimal(segmentation=seg)))
        assert "segmentation.counts: bad compressed RLE counts" in text


def test_file_name_escaping(tmp_path: Path) -> None:
    doc = minimal()
    doc["images"][0]["file_name"] = "../../etc/passwd"
    text = error_of(write(tmp_path, doc))
    assert "$.images[0].file_name: file_name '../../etc/passwd' leads outside" in text
    doc["images"][0]["file_name"] = "/etc/passwd"
    assert "leads outside" in error_of(write(tmp_path, doc))


# ----------------------------------------------------------------------------- found by content


def _small_coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [0, 0, 10, 10],
                "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]],
            }
        ],
        "categories": [{"id": 1, "name": "car"}],
    }


def test_a_coco_file_of_any_name_is_found_by_content(tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text(json.dumps(_small_coco()))  # labelme2coco's name
    (tmp_path / "notes.json").write_text(json.dumps({"images": []}))  # not COCO: ignored
    (rec,) = read_all(tmp_path)
    assert rec.key == "a.jpg" and rec.shapes[0].label == "car" and rec.split == "train"
    assert rasterize.shape_mask(rec.shapes[0], 10, 20).sum() == 100
    (again,) = read_all(tmp_path / "annotations.json")  # the file itself as SRC
    assert again.shapes[0].points.tolist() == rec.shapes[0].points.tolist()
    assert reader.looks_like_coco(tmp_path / "annotations.json")
    assert not reader.looks_like_coco(tmp_path / "notes.json")


def test_string_numbers_only_when_asked(tmp_path: Path) -> None:
    doc = _small_coco()
    doc["images"][0]["id"] = "1"
    doc["annotations"][0]["image_id"] = "1"
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"\$\.images\[0\]"):
        read_all(tmp_path)
    (rec,) = read_all(tmp_path, extra={"string_numbers": True})
    assert rec.shapes[0].instance == "5"
    assert reader.cast_string_numbers(
        {"images": [{"id": "7", "width": "1.5", "file_name": "9"}]}
    ) == {"images": [{"id": 7, "width": 1.5, "file_name": "9"}]}
