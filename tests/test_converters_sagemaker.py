"""SageMaker reader: semantic masks decoded through internal-color-map, boxes, crowd-html outputs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions
from conceptkit.converters.sagemaker import read
from PIL import Image

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "sagemaker"


def read_all(src: Path) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return list(read(src, ReadOptions(warn=warnings.append))), warnings


def test_real_semantic_segmentation() -> None:
    records, _ = read_all(FIX / "instance_segmentation")
    assert [r.key for r in records] == [
        "cat1.jpg",
        "cat2.jpg",
        "cat3.jpg",
        "dog1.jpg",
        "dog2.jpg",
        "dog3.jpg",
    ]
    cat1 = records[0]
    (cat,) = cat1.shapes
    assert cat.label == "cat" and (cat1.width, cat1.height) == (2187, 2187)
    # decoded independently: palette index 1 of the label PNG (S3's ':' is '_' on disk)
    png = np.asarray(Image.open(FIX / "instance_segmentation" / "0_2020-10-20T21_37_29.760855.png"))
    assert cat.mask.sum() == (png == 1).sum() == 1553535
    assert records[3].shapes[0].label == "dog" and records[3].shapes[0].mask.sum() == 84539


def test_real_bounding_boxes() -> None:
    records, _ = read_all(FIX / "object_detection")
    cat1 = records[0]
    assert (cat1.width, cat1.height) == (2187, 2187)
    (box,) = cat1.shapes
    assert box.label == "cat" and box.points.tolist() == [[539, 17], [539 + 1174, 17 + 2061]]


def _png(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_crowd_semantic_segmentation_and_polygon(tmp_path: Path) -> None:
    Image.new("RGB", (5, 4)).save(tmp_path / "worker.jpg")
    labels = np.full((4, 5, 3), 255, dtype=np.uint8)
    labels[0:2, 0:2] = (0x2C, 0xA0, 0x2C)
    result = {
        "annotatedResult": {
            "inputImageProperties": {"height": 4, "width": 5},
            "labelMappings": {"tree": {"color": "#2ca02c"}, "car": {"color": "#1f77b4"}},
            "labeledImage": {"pngImageData": _png(labels)},
            "polygons": [
                {
                    "label": "roof",
                    "vertices": [{"x": 0, "y": 0}, {"x": 4, "y": 0}, {"x": 4, "y": 3}],
                }
            ],
        }
    }
    (tmp_path / "worker.json").write_text(json.dumps([result, result]))
    (rec,), warnings = read_all(tmp_path)
    roof, tree = rec.shapes  # car's colour is absent
    assert rec.image_path == tmp_path / "worker.jpg" and "2 worker results" in warnings[0]
    assert roof.kind == "polygon" and tree.label == "tree" and tree.mask.sum() == 4


def test_crowd_instance_segmentation(tmp_path: Path) -> None:
    Image.new("RGB", (5, 4)).save(tmp_path / "w.png")
    labels = np.zeros((4, 5, 3), dtype=np.uint8)
    labels[0, 0:2] = (0x2C, 0xA0, 0x2C)
    labels[3, 1:5] = (0x1F, 0x77, 0xB4)
    instances = [{"color": "#2ca02c", "label": "Cat"}, {"color": "#1f77b4", "label": "Cat"}]
    props = {"height": 4, "width": 5}
    result = {
        "annotatedResult": {
            "inputImageProperties": props,
            "instances": instances,
            "labeledImage": {"pngImageData": _png(labels)},
        }
    }
    (tmp_path / "w.json").write_text(json.dumps(result))
    (rec,), _ = read_all(tmp_path)
    first, second = rec.shapes
    assert (first.label, second.label) == ("Cat", "Cat")
    assert (first.instance, second.instance) == ("#2ca02c", "#1f77b4")
    assert (first.mask.sum(), second.mask.sum(), second.origin) == (2, 4, (1, 3))


def test_empty_image_size_of_a_box_job_is_one_error(tmp_path: Path) -> None:
    # found by tests/test_fuzz_readers.py: an empty image_size list was an IndexError
    import pytest

    from conceptkit.errors import FormatError

    line = {
        "source-ref": "s3://b/a.jpg",
        "job": {"image_size": [], "annotations": []},
        "job-metadata": {"type": "groundtruth/object-detection", "class-map": {}},
    }
    (tmp_path / "output.manifest").write_text(json.dumps(line) + "\n")
    with pytest.raises(FormatError) as info:
        read_all(tmp_path)
    assert str(info.value).endswith(
        "output.manifest: line 1['job'].image_size: is empty, expected [{width, height, depth}]"
    )
