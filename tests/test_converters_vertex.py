"""Vertex AI reader (built from the documented schema: no real export exists): masks by 0-1 colours, 0-1 polygons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions
from conceptkit.converters.vertex import read
from PIL import Image

from conceptkit.rasterize import shape_mask


def test_import_line_with_category_mask(tmp_path: Path) -> None:
    Image.new("RGB", (4, 3)).save(tmp_path / "a.jpg")
    mask = np.zeros((3, 4, 3), dtype=np.uint8)
    mask[0, :] = (255, 0, 0)
    mask[2, 3] = (0, 128, 255)
    Image.fromarray(mask).save(tmp_path / "a_mask.png")
    colors = [
        {"display_name": "sky", "color": {"red": 1.0}},  # green and blue omitted = 0
        {"display_name": "sea", "color": {"green": 0.5019608, "blue": 1.0}},
    ]
    line = {
        "image_gcs_uri": "gs://b/x/a.jpg",
        "segmentation_annotations": {
            "category_mask_uri": "gs://b/m/a_mask.png",
            "annotation_spec_colors": colors,
        },
    }
    (tmp_path / "data.jsonl").write_text(json.dumps(line) + "\n\n")
    (rec,) = read(tmp_path, ReadOptions())
    sky, sea = rec.shapes
    assert (rec.key, rec.width, rec.height) == ("a.jpg", 4, 3)
    assert sky.label == "sky" and sky.mask.sum() == 4 and sky.origin == (0, 0)
    assert sea.label == "sea" and sea.origin == (3, 2) and sea.mask.sum() == 1


def test_polygon_annotations_are_fractions(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "b.png")
    poly = {
        "vertexes": [{"x": 0.0, "y": 0.0}, {"x": 0.05}, {"x": 0.05, "y": 0.1}, {"y": 0.1}],
        "displayName": "box",
    }
    line = {"imageGcsUri": "gs://b/b.png", "annotations": [{"polygonAnnotation": poly}]}
    (tmp_path / "d.jsonl").write_text(json.dumps(line))
    (rec,) = read(tmp_path / "d.jsonl", ReadOptions())
    (box,) = rec.shapes
    assert box.points.tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]
    assert shape_mask(box, 100, 200).sum() == 100
