"""ADE20K reader: object and part planes equal the seg/parts PNGs decoded here (class, B rank)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions, ade20k
from PIL import Image

from conceptkit.cli import main

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "ade20k"


def planes(ann, category: str | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for s in ann.shapes:
        if s.category != category:
            continue
        plane = out.setdefault(s.label, np.zeros((ann.height, ann.width), dtype=bool))
        x0, y0 = s.origin
        h, w = s.mask.shape
        plane[y0 : y0 + h, x0 : x0 + w] |= s.mask
    return out


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_2021_json_names_by_class_number() -> None:
    anns = list(ade20k.read(FIX / "2020", ReadOptions()))
    assert [(a.key, a.split, a.tags) for a in anns] == [
        ("1.jpg", "train", ["street"]),
        ("2.jpg", "val", ["street"]),
    ]
    seg = np.asarray(Image.open(FIX / "2020" / "training" / "street" / "1_seg.png")).astype(int)
    klass = seg[..., 0] // 10 * 256 + seg[..., 1]
    objects = planes(anns[0], None)
    assert sorted(objects) == ["car", "person"]
    np.testing.assert_array_equal(objects["car"], klass == 401)
    np.testing.assert_array_equal(objects["person"], klass == 1831)
    assert int(objects["car"].sum()) == 15 and int(objects["person"].sum()) == 5
    part = np.asarray(Image.open(FIX / "2020" / "training" / "street" / "1_parts_1.png")).astype(
        int
    )
    parts = planes(anns[0], "part")
    np.testing.assert_array_equal(parts["door"], part[..., 0] // 10 * 256 + part[..., 1] == 774)


def test_2017_atr_names_by_instance_rank() -> None:
    anns = list(ade20k.read(FIX / "2017", ReadOptions()))
    seg = np.asarray(Image.open(FIX / "2017" / "validation" / "2_seg.png"))
    b = seg[..., 2]
    objects = planes(anns[1], None)
    np.testing.assert_array_equal(objects["sky"], b == 1)  # atr instance 001 = B rank 1
    np.testing.assert_array_equal(objects["person"], b == 2)
    p2 = np.asarray(Image.open(FIX / "2017" / "validation" / "2_parts_2.png"))[..., 2]
    parts = planes(anns[1], "part")
    np.testing.assert_array_equal(parts["rim"], p2 == 1)
    assert int(parts["license plate"].sum()) == 6 and int(parts["rim"].sum()) == 3
    assert anns[0].tags == ["street"] and anns[1].tags == []


def test_short_name() -> None:
    assert ade20k.short_name("person, individual, someone") == "person"


def test_cli_converts_and_validates(tmp_path: Path) -> None:
    for version in ("2017", "2020"):
        out = tmp_path / version
        assert (
            run(["convert", "ade20k", str(FIX / version), "-o", str(out), "--min-images", "1"]) == 0
        )
        assert run(["validate", str(out)]) == 0
        cats = [r.split(",")[0] for r in (out / "category.csv").read_text().splitlines()[1:]]
        assert cats == ["object", "part", "scene"]


def test_description_and_example() -> None:
    assert ade20k.__doc__ is not None
    assert ade20k.__doc__.splitlines()[0] == ade20k.DESCRIPTION + "."
    assert ade20k.EXAMPLE.startswith("conceptkit convert ade20k ")
