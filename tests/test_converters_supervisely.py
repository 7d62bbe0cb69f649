"""Supervisely reader: bitmaps equal the decoded PNGs at their origin; polygons with holes."""

from __future__ import annotations

import base64
import io
import json
import zlib
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions, supervisely
from PIL import Image

from conceptkit.cli import main

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "supervisely"


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_bitmaps_equal_the_decoded_png() -> None:
    anns = list(supervisely.read(FIX / "instance", ReadOptions()))
    assert [a.key for a in anns] == ["dog2.jpg", "dog3.jpg"]
    doc = json.loads((FIX / "instance" / "ds" / "ann" / "dog3.jpg.json").read_text())
    for shape, obj in zip(anns[1].shapes, doc["objects"], strict=True):
        png = zlib.decompress(base64.b64decode(obj["bitmap"]["data"]))
        im = Image.open(io.BytesIO(png))
        alpha = np.asarray(im.convert("RGBA"))[..., 3] > 0
        assert shape.kind == "mask" and shape.label == "dog"
        assert shape.origin == tuple(obj["bitmap"]["origin"])
        np.testing.assert_array_equal(shape.mask, alpha)
        assert shape.instance == str(obj["id"])
    assert [int(s.mask.sum()) for s in anns[1].shapes] == [
        int(
            (
                np.asarray(
                    Image.open(
                        io.BytesIO(zlib.decompress(base64.b64decode(o["bitmap"]["data"])))
                    ).convert("RGBA")
                )[..., 3]
                > 0
            ).sum()
        )
        for o in doc["objects"]
    ]


def test_vector_objects() -> None:
    anns = list(supervisely.read(FIX / "vector", ReadOptions()))
    kinds = [(a.key, [(s.label, s.kind, len(s.points)) for s in a.shapes]) for a in anns]
    assert kinds[0] == (
        "cat3.jpg",
        [("cat", "rectangle", 2), ("test_point", "point", 1), ("test_point", "point", 1)],
    )
    assert kinds[1][1][0] == ("dog2", "polygon", 3)
    docs = [json.loads((FIX / "vector" / "ds" / "ann" / f"{a.key}.json").read_text()) for a in anns]
    assert [a.tags for a in anns] == [[t["name"] for t in d["tags"]] for d in docs]


def _project(tmp: Path, objects: list[dict]) -> Path:
    root = tmp / "proj"
    (root / "ds" / "ann").mkdir(parents=True)
    (root / "ds" / "img").mkdir()
    Image.new("RGB", (10, 8)).save(root / "ds" / "img" / "a.png")
    (root / "meta.json").write_text(
        json.dumps({"classes": [{"title": "wall", "shape": "polygon"}]})
    )
    doc = {"size": {"height": 8, "width": 10}, "tags": "[]", "objects": objects}
    (root / "ds" / "ann" / "a.png.json").write_text(json.dumps(doc))
    return root


def test_polygon_with_a_hole(tmp_path: Path) -> None:
    obj = {
        "id": 7,
        "classTitle": "wall",
        "geometryType": "polygon",
        "points": {
            "exterior": [[0, 0], [7, 0], [7, 5], [0, 5]],
            "interior": [[[2, 2], [4, 2], [4, 3], [2, 3]]],
        },
    }
    (ann,) = supervisely.read(_project(tmp_path, [obj]), ReadOptions())
    (shape,) = ann.shapes
    expected = np.ones((6, 8), dtype=bool)  # inclusive square 0..7 x 0..5
    expected[2:4, 2:5] = False  # the hole, inclusive 2..4 x 2..3
    assert shape.kind == "mask" and shape.origin == (0, 0) and shape.instance == "7"
    np.testing.assert_array_equal(shape.mask, expected)


def test_plain_png_bitmap(tmp_path: Path) -> None:
    patch = np.zeros((3, 4), dtype=np.uint8)
    patch[1, 1:3] = 1
    buf = io.BytesIO()
    Image.fromarray(patch * 255, "L").save(buf, format="PNG")
    obj = {
        "classTitle": "wall",
        "geometryType": "bitmap",
        "bitmap": {"data": base64.b64encode(buf.getvalue()).decode(), "origin": [5, 4]},
    }
    (ann,) = supervisely.read(_project(tmp_path, [obj]), ReadOptions())
    np.testing.assert_array_equal(ann.shapes[0].mask, patch > 0)
    assert ann.shapes[0].origin == (5, 4)


def test_cli_converts_and_validates(tmp_path: Path) -> None:
    for name in ("instance", "vector"):
        out = tmp_path / name
        assert (
            run(["convert", "supervisely", str(FIX / name), "-o", str(out), "--min-images", "1"])
            == 0
        )
        assert run(["validate", str(out)]) == 0


def test_description_and_example() -> None:
    assert supervisely.__doc__ is not None
    assert supervisely.__doc__.splitlines()[0] == supervisely.DESCRIPTION + "."
    assert supervisely.EXAMPLE.startswith("conceptkit convert supervisely ")
