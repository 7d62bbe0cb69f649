"""Pascal VOC reader: planes equal the source masks remapped (decoded here with PIL/numpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import ReadOptions, voc
from PIL import Image

from conceptkit.cli import main

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2" / "voc" / "labelme"


def label_planes(ann) -> dict[str, np.ndarray]:
    """label -> the union of its mask Shapes' pixels ``(H, W) bool``."""
    out: dict[str, np.ndarray] = {}
    for s in ann.shapes:
        plane = out.setdefault(s.label, np.zeros((ann.height, ann.width), dtype=bool))
        x0, y0 = s.origin
        h, w = s.mask.shape
        assert not (plane[y0 : y0 + h, x0 : x0 + w] & s.mask).any()  # no pixel twice
        plane[y0 : y0 + h, x0 : x0 + w] |= s.mask
    return out


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_labelme_voc_planes_equal_the_class_mask() -> None:
    names = [n.strip() for n in (FIX / "class_names.txt").read_text().splitlines()]
    names[0] = "background"
    anns = list(voc.read(FIX, ReadOptions()))
    assert [a.key for a in anns] == ["2011_000003.jpg", "2011_000025.jpg"]
    for ann in anns:
        stem = ann.key[:-4]
        cls = np.asarray(Image.open(FIX / "SegmentationClass" / f"{stem}.png"))
        planes = label_planes(ann)
        present = sorted(int(v) for v in np.unique(cls) if v != 255)
        assert sorted(planes) == sorted(names[v] for v in present)
        for v in present:
            np.testing.assert_array_equal(planes[names[v]], cls == v)
        assert all(s.kind == "mask" for s in ann.shapes)
    first = anns[0]
    counts = {lab: int(p.sum()) for lab, p in label_planes(first).items()}
    assert counts == {"background": 125787, "bottle": 873, "person": 32880}
    # three objects (SegmentationObject 1..3), then the background outside them
    objects = [(s.instance, s.label, int(s.mask.sum())) for s in first.shapes if s.instance]
    obj = np.asarray(Image.open(FIX / "SegmentationObject" / "2011_000003.png"))
    assert [(i, n) for i, _, n in objects] == [(str(k), int((obj == k).sum())) for k in (1, 2, 3)]
    assert [lab for _, lab, _ in objects] == ["person", "person", "bottle"]


def _root(tmp: Path, cls: np.ndarray, rgb: bool = False, xml: str | None = None) -> Path:
    root = tmp / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (cls.shape[1], cls.shape[0])).save(root / "JPEGImages" / "a.jpg")
    if rgb:
        colours = {0: (0, 0, 0), 15: (192, 128, 128), 12: (64, 0, 128), 255: (224, 224, 192)}
        img = np.zeros((*cls.shape, 3), dtype=np.uint8)
        for v, c in colours.items():
            img[cls == v] = c
        Image.fromarray(img, "RGB").save(root / "SegmentationClass" / "a.png")
    else:
        im = Image.fromarray(cls.astype(np.uint8), "L").convert("P")
        im.save(root / "SegmentationClass" / "a.png")
    if xml is not None:
        (root / "Annotations").mkdir()
        (root / "Annotations" / "a.xml").write_text(xml)
        obj = np.where(cls == 15, 1, 0).astype(np.uint8)
        Image.fromarray(obj, "L").convert("P").save(root / "SegmentationObject" / "a.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    return root


def test_rgb_masks_through_the_voc_colour_map_and_split(tmp_path: Path) -> None:
    cls = np.zeros((6, 8), dtype=np.int64)
    cls[1:4, 2:5] = 15
    cls[4:, 6:] = 12
    cls[0, :] = 255
    (ann,) = voc.read(_root(tmp_path, cls, rgb=True), ReadOptions())
    planes = label_planes(ann)
    np.testing.assert_array_equal(planes["person"], cls == 15)
    np.testing.assert_array_equal(planes["dog"], cls == 12)
    assert int(planes["background"].sum()) == 48 - 8 - 9 - 4
    assert ann.split == "val"


def test_objects_are_named_by_the_xml(tmp_path: Path) -> None:
    cls = np.zeros((4, 4), dtype=np.int64)
    cls[1:3, 1:3] = 15
    xml = "<annotation><object><name>dog</name></object></annotation>"
    (ann,) = voc.read(_root(tmp_path, cls, xml=xml), ReadOptions())
    (obj,) = [s for s in ann.shapes if s.instance]
    assert (obj.label, obj.origin, int(obj.mask.sum())) == ("dog", (1, 1), 4)


def test_colormap_known_entries() -> None:
    cmap = voc.colormap()
    assert cmap[1].tolist() == [128, 0, 0]
    assert cmap[15].tolist() == [192, 128, 128]
    assert cmap[255].tolist() == [224, 224, 192]


@pytest.mark.parametrize("name", ["labelme"])
def test_cli_converts_and_validates(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    assert run(["convert", "voc", str(FIX), "-o", str(out), "--min-images", "1"]) == 0
    assert run(["validate", str(out)]) == 0
    labels = (out / "label.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in labels] == ["background", "bottle", "bus", "car", "person"]


def test_description_and_example() -> None:
    assert voc.__doc__ is not None
    assert voc.__doc__.splitlines()[0] == voc.DESCRIPTION + "."
    assert voc.EXAMPLE.startswith("conceptkit convert voc ")


def test_converted_planes_equal_the_source_masks_resampled(tmp_path: Path) -> None:
    """End to end at --size native: each object plane is the class mask with VOC indices
    replaced by label numbers (void 255 -> 0), sampled to half size by PIL's NEAREST."""
    out = tmp_path / "out"
    args = ["convert", "voc", str(FIX), "-o", str(out), "--min-images", "1", "--size", "native"]
    assert run(args) == 0
    rows = [r.split(",") for r in (out / "label.csv").read_text().splitlines()[1:]]
    number = {r[1]: int(r[0]) for r in rows}
    names = [n.strip() for n in (FIX / "class_names.txt").read_text().splitlines()]
    names[0] = "background"
    lut = np.zeros(256, dtype=np.uint8)
    for i, name in enumerate(names):
        lut[i] = number.get(name, 0)
    index = [r.split(",") for r in (out / "index.csv").read_text().splitlines()]
    col = index[0].index("object")
    for row in index[1:]:
        stem = row[0][: -len(".jpg")]
        sh, sw = int(row[4]), int(row[5])
        cls = np.asarray(Image.open(FIX / "SegmentationClass" / f"{stem}.png"))
        expected = np.asarray(
            Image.fromarray(lut[cls], "L").resize((sw, sh), Image.Resampling.NEAREST)
        )
        rgb = np.asarray(Image.open(out / "images" / row[col]).convert("RGB")).astype(int)
        np.testing.assert_array_equal(rgb[..., 0] + 256 * rgb[..., 1], expected)
