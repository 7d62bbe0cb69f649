"""Azure ML reader: COCO with string ids and numbers, and AutoML JSONL with 0-1 coordinates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conceptkit.converters import ReadOptions
from conceptkit.converters.azure import read
from PIL import Image

from conceptkit.errors import FormatError
from conceptkit.rasterize import shape_mask


def test_jsonl_polygons_boxes_and_crowd(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "a.jpg")
    labels = [
        {"label": "can", "isCrowd": 0, "polygon": [[0.0, 0.0, 0.05, 0.0, 0.05, 0.1, 0.0, 0.1]]},
        {"label": "milk", "isCrowd": 1, "topX": 0.5, "topY": 0.5, "bottomX": 0.6, "bottomY": 0.7},
        "fridge",
    ]
    line = {
        "image_url": "azureml://subscriptions/s/datastores/d/paths/imgs/a.jpg",
        "image_details": {"format": "jpg", "width": "200px", "height": 100},
        "label": labels,
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(line) + "\n")
    (rec,) = read(tmp_path, ReadOptions())
    can, milk = rec.shapes
    assert (rec.key, rec.width, rec.height, rec.tags) == ("a.jpg", 200, 100, ["fridge"])
    assert (
        can.points.tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]
        and shape_mask(can, 100, 200).sum() == 100
    )
    assert (
        milk.kind == "rectangle" and milk.ignore and milk.points.tolist() == [[100, 50], [120, 70]]
    )


def test_coco_with_string_numbers(tmp_path: Path) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "a.jpg")
    coco: dict[str, Any] = {
        "images": [{"id": "1", "file_name": "a.jpg", "width": "20", "height": "10"}],
        "annotations": [
            {
                "id": "1",
                "image_id": "1",
                "category_id": "2",
                "iscrowd": "0",
                "area": "100",
                "bbox": ["0", "0", "10", "10"],
                "segmentation": [["0", "0", "10", "0", "10", "10", "0", "10"]],
            }
        ],
        "categories": [{"id": "2", "name": "milk_bottle"}],
    }
    (tmp_path / "odFridgeObjectsMask_coco.json").write_text(json.dumps(coco))
    (rec,) = read(tmp_path, ReadOptions())
    (shape,) = rec.shapes
    assert shape.label == "milk_bottle" and shape.points.tolist() == [
        [0, 0],
        [10, 0],
        [10, 10],
        [0, 10],
    ]
    assert shape_mask(shape, 10, 20).sum() == 100
    coco["images"][0]["width"] = "twenty"
    (tmp_path / "odFridgeObjectsMask_coco.json").write_text(json.dumps(coco))
    with pytest.raises(FormatError, match=r"\$\.images\[0\]"):
        list(read(tmp_path, ReadOptions()))
