"""VIA / Make Sense reader: regions as dict or list, every shape kind, labels, the real VIA 2 export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions
from conceptkit.converters.via import read
from PIL import Image

from conceptkit.rasterize import shape_mask

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "via"


def read_all(src: Path, **kw: object) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return list(read(src, ReadOptions(warn=warnings.append, extra=dict(kw)))), warnings


def test_make_sense_export_drops_the_repeated_vertex(tmp_path: Path) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "a.jpg")
    doc = {
        "a.jpg": {
            "fileref": "",
            "size": 0,
            "filename": "a.jpg",
            "base64_img_data": "",
            "file_attributes": {},
            "regions": {
                "0": {
                    "shape_attributes": {
                        "name": "polygon",
                        "all_points_x": [0, 9, 9, 0, 0],
                        "all_points_y": [0, 0, 9, 9, 0],
                    },
                    "region_attributes": {"label": "box"},
                }
            },
        }
    }
    (tmp_path / "labels_p_2024-01-01-00-00-00.json").write_text(json.dumps(doc))
    (rec,), _ = read_all(tmp_path)
    (shape,) = rec.shapes
    assert (rec.key, rec.width, rec.height) == ("a.jpg", 20, 10)
    assert shape.points.tolist() == [[0, 0], [9, 0], [9, 9], [0, 9]]
    assert shape_mask(shape, 10, 20).sum() == 100  # inclusive: the boundary is painted


def test_via1_regions_dict_and_shapes(tmp_path: Path) -> None:
    Image.new("RGB", (50, 40)).save(tmp_path / "b.png")
    regions = {
        "0": {
            "shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 3, "height": 4},
            "region_attributes": {"name": "car"},
        },
        "1": {
            "shape_attributes": {"name": "circle", "cx": 10, "cy": 10, "r": 3},
            "region_attributes": {"kind": {"wheel": True}},
        },
        "2": {
            "shape_attributes": {
                "name": "ellipse",
                "cx": 20,
                "cy": 20,
                "rx": 4,
                "ry": 2,
                "theta": 1.5707963267948966,
            },
            "region_attributes": {"class": "sun"},
        },
        "3": {"shape_attributes": {"name": "point", "cx": 5, "cy": 5}, "region_attributes": {}},
    }
    doc = {
        "b.png1234": {"filename": "b.png", "size": 1234, "regions": regions, "file_attributes": {}}
    }
    (tmp_path / "via_region_data.json").write_text(json.dumps(doc))
    (rec,), warnings = read_all(tmp_path)
    rect, circle, ellipse = rec.shapes
    assert (rect.label, rect.kind, rect.points.tolist()) == ("car", "rectangle", [[1, 2], [4, 6]])
    assert (circle.label, circle.points.tolist()) == ("wheel", [[10, 10], [13, 10]])
    assert ellipse.label == "sun" and round(ellipse.angle, 6) == 90.0
    assert "no label" in warnings[0] and "'3'" in warnings[0]
    # a 3 x 4 rectangle from (1, 2), boundary included: 4 x 5 pixels
    assert shape_mask(rect, 40, 50).sum() == 20


def test_real_via2_export() -> None:
    records, _ = read_all(FIX, label_key="type")
    assert [r.key for r in records] == [
        "cat1.jpg",
        "cat2.jpg",
        "cat3.jpg",
        "dog1.jpg",
        "dog2.jpg",
        "dog3.jpg",
    ]
    cat1 = records[0]
    assert (cat1.width, cat1.height) == (2187, 2187)
    assert [(s.label, s.kind) for s in cat1.shapes] == [
        ("cat", "polygon"),
        ("test_shape", "circle"),
    ]
    assert cat1.shapes[0].points[0].tolist() == [704, 10] and len(cat1.shapes[0].points) == 40
    kinds = sorted({s.kind for r in records for s in r.shapes})
    assert kinds == ["circle", "ellipse", "linestrip", "point", "polygon"]
    circle = cat1.shapes[1]
    # the circle of radius 160 about (193, 650), boundary included (PIL ellipse)
    area = shape_mask(circle, 2187, 2187).sum()
    assert abs(area - np.pi * 160**2) < 2 * np.pi * 160 + 10


def test_via2_project_file_and_unknown_shape(tmp_path: Path) -> None:
    Image.new("RGB", (30, 30)).save(tmp_path / "c.jpg")
    regions = [
        {
            "shape_attributes": {
                "name": "polyline",
                "all_points_x": [0, 10],
                "all_points_y": [5, 5],
            },
            "region_attributes": {"label": "lane"},
        },
        {"shape_attributes": {"name": "extreme_rectangle"}, "region_attributes": {"label": "x"}},
    ]
    project = {
        "_via_settings": {},
        "_via_img_metadata": {"c.jpg9": {"filename": "c.jpg", "size": 9, "regions": regions}},
    }
    (tmp_path / "project.json").write_text(json.dumps(project))
    (rec,), warnings = read_all(tmp_path)
    (lane,) = rec.shapes
    assert lane.kind == "linestrip" and lane.points.tolist() == [[0, 5], [10, 5]]
    assert (
        "unknown shape" in warnings[0] and "_via_img_metadata['c.jpg9'].regions[1]" in warnings[0]
    )
