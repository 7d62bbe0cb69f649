"""CamVid reader: colour masks (CamVid's 32 colours or the root's table) and SegNet index masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions, camvid
from PIL import Image

from conceptkit.cli import main

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "camvid" / "datumaro"


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_colour_masks_of_the_fixture() -> None:
    anns = list(camvid.read(FIX, ReadOptions()))
    assert [(a.key, a.split) for a in anns] == [
        ("0001TP_006690.png", "train"),
        ("0016E5_07959.png", "val"),
        ("0001TP_008550.png", "test"),
        ("0001TP_008580.png", "test"),
    ]
    rgb = np.asarray(Image.open(FIX / "testannot" / "0001TP_008550.png"))[0]
    got = {s.label: (s.origin, int(s.mask.sum())) for s in anns[2].shapes}
    # (64,128,64) Animal x2, (128,64,128) Road x1, (128,128,128) Sky x2
    assert got == {"Animal": ((0, 0), 2), "Road": ((2, 0), 1), "Sky": ((3, 0), 2)}
    assert rgb[3].tolist() == [128, 128, 128]


def _root(tmp: Path, mask: Image.Image, table: str | None = None) -> Path:
    root = tmp / "CamVid"
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir()
    Image.new("RGB", mask.size).save(root / "train" / "a.png")
    mask.save(root / "trainannot" / "a.png")
    (root / "train.txt").write_text("/SegNet/CamVid/train/a.png /SegNet/CamVid/trainannot/a.png\n")
    if table is not None:
        (root / "label_colors.txt").write_text(table)
    return root


def test_segnet_index_masks(tmp_path: Path) -> None:
    idx = np.array([[0, 0, 3, 11], [3, 3, 10, 11]], dtype=np.uint8)
    (ann,) = camvid.read(_root(tmp_path, Image.fromarray(idx, "L")), ReadOptions())
    got = {s.label: int(s.mask.sum()) for s in ann.shapes}
    assert got == {"Sky": 2, "Road": 3, "Bicyclist": 1}  # 11 = void


def test_label_colors_table(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (10, 20, 30)
    rgb[1, :] = (1, 2, 3)
    table = "0 0 0\tVoid\n10 20 30\tLamp Post\n1 2 3\tKerb\n"
    (ann,) = camvid.read(_root(tmp_path, Image.fromarray(rgb, "RGB"), table), ReadOptions())
    assert {s.label: int(s.mask.sum()) for s in ann.shapes} == {"Lamp Post": 1, "Kerb": 3}


def test_cli_converts_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(["convert", "camvid", str(FIX), "-o", str(out), "--min-images", "1"]) == 0
    assert run(["validate", str(out)]) == 0
    assert len((out / "label.csv").read_text().splitlines()) == 9


def test_description_and_example() -> None:
    assert camvid.__doc__ is not None
    assert camvid.__doc__.splitlines()[0] == camvid.DESCRIPTION + "."
    assert camvid.EXAMPLE.startswith("conceptkit convert camvid ")


def test_converted_planes_equal_the_colour_masks_resampled(tmp_path: Path) -> None:
    """End to end at --size 4: each plane is the colour mask with CamVid colours replaced by
    label numbers, sampled to 2 x 2 by PIL's NEAREST (the image is stretched to 4 x 4)."""
    colours = {(64, 128, 64): "animal", (192, 0, 128): "archway", (0, 128, 192): "bicyclist",
               (0, 128, 64): "bridge", (192, 128, 64): "child", (128, 64, 128): "road",
               (128, 128, 128): "sky", (128, 128, 0): "tree"}  # fmt: skip
    out = tmp_path / "out"
    assert (
        run(["convert", "camvid", str(FIX), "-o", str(out), "--min-images", "1", "--size", "4"])
        == 0
    )
    number = {
        r.split(",")[1]: int(r.split(",")[0])
        for r in (out / "label.csv").read_text().splitlines()[1:]
    }
    index = [r.split(",") for r in (out / "index.csv").read_text().splitlines()[1:]]
    masks = {p.name: p for p in FIX.glob("*annot/*.png")}
    for row in index:
        rgb = np.asarray(Image.open(masks[row[0][: -len(".jpg")] + ".png"]).convert("RGB"))
        numbers = np.array(
            [
                [number.get(colours[(int(px[0]), int(px[1]), int(px[2]))], 0) for px in line]
                for line in rgb
            ],
            np.uint8,
        )
        expected = np.asarray(
            Image.fromarray(numbers, "L").resize((2, 2), Image.Resampling.NEAREST)
        )
        assert expected.any()
        plane = np.asarray(Image.open(out / "images" / row[6]).convert("RGB")).astype(int)
        np.testing.assert_array_equal(plane[..., 0] + 256 * plane[..., 1], expected)
