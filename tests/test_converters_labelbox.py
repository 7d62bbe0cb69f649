"""Labelbox reader: v1 rows with downloaded masks (a mask of the wrong size is refused), vectors, v2 NDJSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import ReadOptions
from conceptkit.converters.labelbox import read
from PIL import Image

from conceptkit.errors import FormatError

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "labelbox"


def read_all(src: Path, keep_going: bool = False) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return list(read(src, ReadOptions(keep_going=keep_going, warn=warnings.append))), warnings


def test_real_masks_and_the_wrong_size_mask() -> None:
    with pytest.raises(
        FormatError, match=r"cki8pqiil03xc0ycoewroe7lj.png is 2000x2000, the image is 2187x2187"
    ):
        read_all(FIX / "instance_segmentation")
    records, warnings = read_all(FIX / "instance_segmentation", keep_going=True)
    assert [r.key for r in records] == ["cat2.jpg", "dog2.jpg", "cat3.jpg", "dog3.jpg"]
    assert len(warnings) == 2 and "2000x2000" in warnings[0] and "not found" in warnings[1]
    cat3 = records[2]
    assert [(s.label, s.kind) for s in cat3.shapes] == [("cat", "mask"), ("dog", "mask")]
    # decoded independently: the non-transparent pixels of the downloaded PNG
    feature = cat3.shapes[0].instance
    png = np.asarray(
        Image.open(FIX / "instance_segmentation" / "bitmasks" / f"{feature}.png").convert("RGBA")
    )
    assert cat3.shapes[0].mask.sum() == png.any(axis=-1).sum() == 309490


def test_real_vector_export() -> None:
    records, _ = read_all(FIX / "vector_annotations")
    cat1 = records[0]
    assert (cat1.key, cat1.width, cat1.height) == ("cat1.jpg", 2000, 2000)
    box = cat1.shapes[0]
    assert box.kind == "rectangle" and box.points.tolist() == [[495, 7], [495 + 1083, 7 + 1841]]
    assert sorted({s.kind for r in records for s in r.shapes}) == [
        "linestrip",
        "point",
        "polygon",
        "rectangle",
    ]


def test_v2_ndjson_polygon_and_composite_mask(tmp_path: Path) -> None:
    Image.new("RGB", (6, 4)).save(tmp_path / "a.jpg")
    composite = np.zeros((4, 6, 3), dtype=np.uint8)
    composite[1, 1:4] = (255, 0, 0)
    composite[2, 2] = (0, 255, 0)
    Image.fromarray(composite).save(tmp_path / "cm1.png")
    objects = [
        {
            "name": "roof",
            "feature_id": "f1",
            "polygon": [{"x": 0, "y": 0}, {"x": 3, "y": 0}, {"x": 3, "y": 3}, {"x": 0, "y": 0}],
        },
        {
            "name": "door",
            "feature_id": "f2",
            "composite_mask": {"url": "https://x/cm1.png", "color_rgb": [255, 0, 0]},
        },
    ]
    row = {
        "data_row": {"external_id": "a.jpg"},
        "media_attributes": {"width": 6, "height": 4},
        "projects": {"p": {"labels": [{"annotations": {"objects": objects}}]}},
    }
    (tmp_path / "export.ndjson").write_text(json.dumps(row) + "\n")
    (rec,), _ = read_all(tmp_path)
    roof, door = rec.shapes
    assert roof.points.tolist() == [[0, 0], [3, 0], [3, 3]]  # closed: the repeat dropped
    assert door.origin == (1, 1) and door.mask.tolist() == [[True, True, True]]
