"""Label Studio reader: percent coordinates, duplicate results by id, brush RLE, JSON_MIN, the real exports."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import ReadOptions
from conceptkit.converters.labelstudio import decode_rle, encode_rle, read
from PIL import Image

from conceptkit.errors import FormatError
from conceptkit.rasterize import shape_mask

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "labelstudio"


def read_all(src: Path, **kw: object) -> list:
    warnings: list[str] = []
    out = list(read(src, ReadOptions(warn=warnings.append, extra=dict(kw))))
    for rec in out:
        rec.warnings = warnings
    return out


def reference_decode(data: bytes) -> list[int]:
    """An independent reading of the rle-pack stream, bit by bit through a string."""
    bits = "".join(format(b, "08b") for b in data)
    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        pos += n
        return int(bits[pos - n : pos], 2)

    num, word = take(32), take(5) + 1
    sizes = [take(4) + 1 for _ in range(4)]
    out: list[int] = []
    while len(out) < num:
        flag = take(1)
        run = take(sizes[take(2)]) + 1
        out += [take(word)] * run if flag else [take(word) for _ in range(run)]
    return out[:num]


def test_hand_encoded_rle() -> None:
    # 2 x 1 pixels RGBA = 8 values: a run of 3 zeros, then literal 0xFF, then 4 x 0x80.
    # num=8 (32 bits), word size 8 -> 7 (5 bits), run sizes 4,4,4,4 -> 3 (4 bits each)
    stream = format(8, "032b") + format(7, "05b") + "0011" * 4
    stream += "1" + "00" + format(2, "04b") + format(0, "08b")  # repeat 0 three times
    stream += "0" + "00" + format(0, "04b") + format(255, "08b")  # one literal 255
    stream += "1" + "00" + format(3, "04b") + format(128, "08b")  # repeat 128 four times
    stream += "0" * (-len(stream) % 8)
    data = int(stream, 2).to_bytes(len(stream) // 8, "big")
    assert decode_rle(data, 8, "f", "p").tolist() == [0, 0, 0, 255, 128, 128, 128, 128]
    assert reference_decode(data) == [0, 0, 0, 255, 128, 128, 128, 128]
    values = np.array([0] * 300 + [7] * 5 + [0] * 3, dtype=np.uint8)
    assert decode_rle(encode_rle(values), 308, "f", "p").tolist() == values.tolist()
    with pytest.raises(FormatError, match="holds 8 values, expected"):
        decode_rle(data, 12, "f", "p")
    with pytest.raises(FormatError, match="ends in the middle"):
        decode_rle(data[:6], 8, "f", "p")


def _task(results: list, image: str = "/data/upload/1/a.png") -> list:
    return [{"id": 1, "data": {"image": image}, "annotations": [{"id": 9, "result": results}]}]


def test_percent_coordinates_and_duplicate_ids(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    common = {"original_width": 200, "original_height": 100, "from_name": "t", "to_name": "img"}
    results = [
        {
            "id": "r1",
            "type": "rectangle",
            "value": {"x": 10, "y": 20, "width": 5, "height": 10},
            **common,
        },
        {
            "id": "r1",
            "type": "labels",
            "value": {"x": 10, "y": 20, "width": 5, "height": 10, "labels": ["car"]},
            **common,
        },
        {
            "id": "p1",
            "type": "polygonlabels",
            "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["sky"]},
            **common,
        },
        {
            "id": "e1",
            "type": "ellipselabels",
            "value": {"x": 50, "y": 50, "radiusX": 5, "radiusY": 10, "ellipselabels": ["sun"]},
            **common,
        },
    ]
    (tmp_path / "export.json").write_text(json.dumps(_task(results)))
    (rec,) = read_all(tmp_path)
    assert (rec.key, rec.width, rec.height) == ("a.png", 200, 100)
    assert rec.image_path == tmp_path / "a.png"
    car, sky, sun = rec.shapes  # r1 twice is one region
    assert car.label == "car" and car.kind == "rectangle"
    assert car.points.tolist() == [[20, 20], [30, 30]]
    assert sky.points.tolist() == [[0, 0], [100, 0], [100, 50]]
    assert sun.kind == "ellipse" and sun.points.tolist() == [[100, 50], [110, 60]]
    # pycocotools' pixels: the 10 x 10 box covers 100 pixel centres
    assert shape_mask(car, 100, 200).sum() == 100


def test_rotated_rectangle_turns_about_its_top_left(tmp_path: Path) -> None:
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    value = {"x": 50, "y": 50, "width": 10, "height": 20, "rotation": 90, "rectanglelabels": ["b"]}
    result = {"id": "x", "value": value, "original_width": 100, "original_height": 100}
    (tmp_path / "e.json").write_text(json.dumps(_task([result])))
    (rec,) = read_all(tmp_path)
    assert rec.shapes[0].kind == "polygon"
    assert np.allclose(rec.shapes[0].points, [[50, 50], [50, 60], [30, 60], [30, 50]])


def test_brush_mask_and_json_min(tmp_path: Path) -> None:
    Image.new("RGB", (4, 3)).save(tmp_path / "a.png")
    alpha = np.zeros((3, 4), dtype=np.uint8)
    alpha[1, 1:3] = 255
    alpha[2, 3] = 100  # under half opaque: not in the mask
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    rle = list(encode_rle(rgba.ravel()))
    value = {"format": "rle", "rle": rle, "brushlabels": ["road"]}
    (tmp_path / "e.json").write_text(json.dumps(_task([{"id": "b", "value": value}])))
    (rec,) = read_all(tmp_path)  # no original_width: the size comes from the image header
    (road,) = rec.shapes
    assert road.kind == "mask" and road.origin == (1, 1) and road.mask.tolist() == [[True, True]]
    rows = [
        {
            "image": "/data/a.png",
            "id": 3,
            "label": [
                {
                    "points": [[0, 0], [50, 0], [50, 100]],
                    "polygonlabels": ["x"],
                    "original_width": 4,
                    "original_height": 3,
                }
            ],
        }
    ]
    (tmp_path / "e.json").write_text(json.dumps(rows))
    (rec,) = read_all(tmp_path)
    assert rec.shapes[0].label == "x" and rec.shapes[0].points.tolist() == [[0, 0], [2, 0], [2, 3]]


def test_real_exports() -> None:
    (coco,) = read_all(FIX / "export_coco")
    assert (coco.width, coco.height) == (500, 320)
    assert [s.label for s in coco.shapes] == [
        "rectangle_label",
        "polygon_label",
    ]  # keypoints skipped
    assert np.allclose(coco.shapes[1].points[0], [41.74228675136116 * 5, 3.546099290780142 * 3.2])
    (yolo,) = read_all(FIX / "export_yolo")
    assert (yolo.key, yolo.width, yolo.height, len(yolo.shapes[0].points)) == (
        "image2",
        640,
        426,
        37,
    )
    (poly,) = read_all(FIX / "image_polygons")
    assert (poly.width, poly.height) == (800, 501)  # from the image's header


def test_real_brush_export(tmp_path: Path) -> None:
    src = tmp_path / "seg"
    shutil.copytree(FIX / "image_segmentation", src)
    (src / "1.json").write_bytes(gzip.decompress((src / "1.json.gz").read_bytes()))
    (src / "1.json.gz").unlink()
    (rec,) = read_all(src)
    (planet,) = rec.shapes
    assert planet.label == "Planet" and (rec.width, rec.height) == (2242, 2802)
    raw = json.loads((src / "1.json").read_text())["annotations"][0]["result"][0]["value"]["rle"]
    alpha = np.array(reference_decode(bytes(raw))[3::4]).reshape(2802, 2242)
    assert planet.mask.sum() == (alpha >= 128).sum() == 253348
    h, w = planet.mask.shape
    x0, y0 = planet.origin
    assert (alpha[y0 : y0 + h, x0 : x0 + w] >= 128).tolist() == planet.mask.tolist()


def test_several_annotations_and_cancelled(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")

    def res(name: str) -> list:
        value = {"points": [[0, 0], [50, 0], [0, 50]], "polygonlabels": [name]}
        return [{"id": "p", "value": value, "original_width": 10, "original_height": 10}]

    task = {
        "data": {"image": "a.png"},
        "annotations": [
            {"was_cancelled": True, "result": res("x")},
            {"result": res("y")},
            {"result": res("z")},
        ],
    }
    (tmp_path / "e.json").write_text(json.dumps([task]))
    (rec,) = read_all(tmp_path)
    assert rec.shapes[0].label == "y" and "2 annotations" in rec.warnings[0]
    (rec,) = read_all(tmp_path, annotation=2)
    assert rec.shapes[0].label == "z"
