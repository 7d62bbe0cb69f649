"""Cityscapes reader: instanceIds / labelIds / polygons.json through the Cityscapes label table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions, cityscapes
from PIL import Image

from conceptkit.cli import main

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "cityscapes" / "datumaro"


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_instance_ids_of_the_fixture() -> None:
    anns = list(cityscapes.read(FIX, ReadOptions()))
    assert [(a.key, a.split) for a in anns] == [
        ("defaultcity_000001_000031_leftImg8bit.png", "test"),
        ("defaultcity_000001_000032_leftImg8bit.png", "test"),
        ("defaultcity_000002_000045_leftImg8bit.png", "train"),
        ("defaultcity_000001_000019_leftImg8bit.png", "val"),
    ]
    png = FIX / "gtFine/test/defaultcity/defaultcity_000001_000031_gtFine_instanceIds.png"
    values = np.asarray(Image.open(png)).astype(int)  # [[3, 3, 27001, 27002, 27002]]
    got = [(s.label, s.instance, s.origin, s.mask.shape, int(s.mask.sum())) for s in anns[0].shapes]
    # 3 = out of roi (void: unlabelled); 27 = truck, instances 1 and 2
    assert got == [("truck", "1", (2, 0), (1, 1), 1), ("truck", "2", (3, 0), (1, 2), 2)]
    assert int((values == 27002).sum()) == 2
    # 12 = wall (stuff, no instance), 31001 = train; id 1 (ego vehicle) is void
    assert [(s.label, s.instance) for s in anns[1].shapes] == [("wall", None), ("train", "1")]
    assert anns[3].shapes == []


def _gt(tmp: Path, kind: str) -> Path:
    folder = tmp / "cs" / "gtFine" / "val" / "x"
    folder.mkdir(parents=True)
    (tmp / "cs" / "leftImg8bit" / "val" / "x").mkdir(parents=True)
    Image.new("RGB", (6, 4)).save(
        tmp / "cs" / "leftImg8bit" / "val" / "x" / "x_0_0_leftImg8bit.png"
    )
    return folder / f"x_0_0_gtFine_{kind}"


def test_label_ids_plane(tmp_path: Path) -> None:
    ids = np.array([[7, 7, 8, 8, 0, 26], [7, 7, 8, 9, 0, 26], [23] * 6, [23] * 6], dtype=np.uint8)
    Image.fromarray(ids, "L").save(_gt(tmp_path, "labelIds.png"))
    (ann,) = cityscapes.read(tmp_path / "cs", ReadOptions())
    names = {lab.id: lab.name for lab in cityscapes.LABELS}
    got = {s.label: int(s.mask.sum()) for s in ann.shapes}
    # 0 (unlabeled) and 9 (parking, ignore in eval) are unlabelled
    assert got == {names[v]: int((ids == v).sum()) for v in (7, 8, 23, 26)}
    assert ann.image_path is not None and ann.image_path.is_file()


def test_polygons_json(tmp_path: Path) -> None:
    doc = {
        "imgHeight": 4,
        "imgWidth": 6,
        "objects": [
            {"label": "road", "polygon": [[0, 0], [5, 0], [5, 3], [0, 3]]},
            {"label": "cargroup", "polygon": [[1, 1], [2, 1], [2, 2], [1, 2]]},
            {"label": "ego vehicle", "polygon": [[4, 2], [5, 2], [5, 3], [4, 3]]},
            {"label": "car", "polygon": [[0, 0], [1, 0], [1, 1]], "deleted": 1},
        ],
    }
    _gt(tmp_path, "polygons.json").write_text(json.dumps(doc))
    (ann,) = cityscapes.read(tmp_path / "cs", ReadOptions())
    got = [(s.label, s.instance, s.ignore, s.order) for s in ann.shapes]
    assert got == [("road", "0", False, 0), ("car", None, False, 1), ("ego vehicle", "2", True, 2)]


def test_cli_converts_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(["convert", "cityscapes", str(FIX), "-o", str(out), "--min-images", "1"]) == 0
    assert run(["validate", str(out)]) == 0
    labels = [r.split(",")[1] for r in (out / "label.csv").read_text().splitlines()[1:]]
    assert labels == ["person", "train", "truck", "wall"]


def test_description_and_example() -> None:
    assert cityscapes.__doc__ is not None
    assert cityscapes.__doc__.splitlines()[0] == cityscapes.DESCRIPTION + "."
    assert cityscapes.EXAMPLE.startswith("conceptkit convert cityscapes ")
