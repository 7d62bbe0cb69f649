"""VoTT reader: asset files and the project export, polygons kept as polygons, tags, the real assets."""

from __future__ import annotations

import json
from pathlib import Path

from conceptkit.converters import ReadOptions
from conceptkit.converters.vott import read

from conceptkit.rasterize import shape_mask

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "vott"


def read_all(src: Path) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return list(read(src, ReadOptions(warn=warnings.append))), warnings


def _asset(name: str, regions: list) -> dict:
    asset = {
        "format": "jpg",
        "id": name,
        "name": name,
        "path": f"file:/home/u/{name}",
        "size": {"width": 20, "height": 10},
    }
    return {"asset": asset, "regions": regions, "version": "2.2.0"}


def test_project_export_with_two_tags_and_none(tmp_path: Path) -> None:
    square = [{"x": 0, "y": 0}, {"x": 10, "y": 0}, {"x": 10, "y": 10}, {"x": 0, "y": 10}]
    box = {"left": 0, "top": 0, "width": 10, "height": 10}
    regions = [
        {"id": "r1", "type": "POLYGON", "tags": ["a", "b"], "boundingBox": box, "points": square},
        {"id": "r2", "type": "RECTANGLE", "tags": [], "boundingBox": box, "points": square},
    ]
    export = {"name": "p", "assets": {"z": _asset("z.jpg", regions), "a": _asset("a.jpg", [])}}
    (tmp_path / "p-export.json").write_text(json.dumps(export))
    (a, z), warnings = read_all(tmp_path)
    assert (a.key, z.key) == ("a.jpg", "z.jpg")  # sorted asset ids
    assert z.image_path == tmp_path / "z.jpg"  # by name, not the annotator's absolute path
    assert [(s.label, s.kind, s.instance) for s in z.shapes] == [
        ("a", "polygon", "r1"),
        ("b", "polygon", "r1"),
    ]
    assert "no tags" in warnings[0] and "regions[1]" in warnings[0]
    # pycocotools' pixels of the 10 x 10 square: 100 centres
    assert shape_mask(z.shapes[0], 10, 20).sum() == 100


def test_real_assets() -> None:
    records, _ = read_all(FIX)
    by_key = {r.key: r for r in records}
    assert sorted(by_key) == [
        "cat1.jpg",
        "cat2.jpg",
        "cat3.jpg",
        "dog1.jpg",
        "dog2.jpg",
        "dog3.jpg",
    ]
    dog2 = by_key["dog2.jpg"]
    assert (dog2.width, dog2.height) == (640, 480)
    (box,) = dog2.shapes
    assert box.label == "Dog" and box.kind == "rectangle"
    assert box.points.tolist() == [
        [110.77977720651243, 17.005714285714287],
        [110.77977720651243 + 296.05826906598116, 17.005714285714287 + 443.7942857142858],
    ]
    kinds = sorted((r.key, s.kind) for r in records for s in r.shapes)
    assert [k for k in kinds if k[1] == "polygon"] == [
        ("cat2.jpg", "polygon"),
        ("cat3.jpg", "polygon"),
        ("dog3.jpg", "polygon"),
    ]
    # the box covers the pixel centres within x 110.78..406.84 (296 columns), y 17.01..460.8 (444 rows)
    assert shape_mask(box, 480, 640).sum() == 296 * 444
