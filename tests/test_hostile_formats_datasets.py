"""Hostile segmentation datasets (VOC, ADE20K, Cityscapes, Supervisely, CamVid) given to `convert`.

Each case builds a small dataset with one thing wrong and runs the real command through
tests/hostile.py: exit 1, exactly one error line naming the file and the place, no traceback,
nothing left behind, under the memory cap.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import ReadOptions, get_reader
from hostile import run_hostile
from PIL import Image

from conceptkit.errors import FormatError


def huge_png(path: Path, width: int = 50_000, height: int = 50_000, mode: int = 2) -> bytes:
    """A PNG whose header declares ``width x height`` (colour type ``mode``) with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    data += chunk(b"IEND", b"")
    path.write_bytes(data)
    return data


def _png(path: Path, arr: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


# ----------------------------------------------------------------------------- VOC


def _voc(ws: Path) -> Path:
    root = ws / "VOC"
    cls = np.zeros((4, 6), dtype=np.uint8)
    cls[1:3, 1:3] = 15
    _png(root / "SegmentationClass" / "a.png", cls, "L")
    _png(root / "JPEGImages" / "a.jpg", np.zeros((4, 6, 3), np.uint8), "RGB")
    return root


def voc_bad_png(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    (root / "SegmentationClass" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root, ["a.png", "class mask cannot be read"]


def voc_huge(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    huge_png(root / "SegmentationClass" / "a.png", mode=0)
    return root, ["a.png", "header", "over the limit"]


def voc_index_not_in_table(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    cls = np.zeros((4, 6), dtype=np.uint8)
    cls[2, 3] = 42
    _png(root / "SegmentationClass" / "a.png", cls, "L")
    return root, ["a.png", "class index 42"]


def voc_colour_not_in_map(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[3, 5] = (1, 2, 3)
    _png(root / "SegmentationClass" / "a.png", rgb, "RGB")
    return root, ["a.png", "(1, 2, 3)", "row 3, column 5"]


def voc_bad_xml(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    _png(root / "SegmentationObject" / "a.png", np.ones((4, 6), np.uint8), "L")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text("<annotation><object><name>x</name></annotation>")
    return root, ["a.xml", "line 1"]


def voc_xml_entity(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    _png(root / "SegmentationObject" / "a.png", np.ones((4, 6), np.uint8), "L")
    (root / "Annotations").mkdir()
    bomb = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation>&x;</annotation>'
    (root / "Annotations" / "a.xml").write_text(bomb)
    return root, ["a.xml", "DOCTYPE"]


def voc_object_past_xml(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    obj = np.zeros((4, 6), np.uint8)
    obj[0, 0] = 2
    _png(root / "SegmentationObject" / "a.png", obj, "L")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><object><name>dog</name></object></annotation>"
    )
    return root, ["a.png", "object index 2"]


def voc_symlink_out(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    outside = ws / "elsewhere.png"
    _png(outside, np.zeros((4, 6), np.uint8), "L")
    (root / "SegmentationClass" / "b.png").symlink_to(outside)
    return root, ["b.png", "outside SRC"]


def voc_bad_names(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    (root / "class_names.txt").write_bytes(b"_background_\n\xff\xfe person\n")
    return root, ["class_names.txt", "UTF-8"]


def voc_size_mismatch(ws: Path) -> tuple[Path, list[str]]:
    root = _voc(ws)
    _png(root / "SegmentationObject" / "a.png", np.zeros((5, 6), np.uint8), "L")
    return root, ["a.png", "6x5", "6x4"]


# ----------------------------------------------------------------------------- ADE20K


def _ade(ws: Path) -> Path:
    root = ws / "ADE" / "training" / "street"
    seg = np.zeros((4, 4, 3), dtype=np.uint8)
    seg[1:3, 1:3] = (10, 5, 1)  # class 261
    _png(root / "a_seg.png", seg, "RGB")
    _png(root / "a.jpg", np.zeros((4, 4, 3), np.uint8), "RGB")
    doc = {
        "annotation": {
            "object": [{"id": 0, "name": "car, auto", "name_ndx": 261, "parts": {"part_level": 0}}]
        }
    }
    (root / "a.json").write_text(json.dumps(doc))
    return ws / "ADE"


def ade_bad_png(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    (src / "training" / "street" / "a_seg.png").write_bytes(b"garbage")
    return src, ["a_seg.png", "cannot be read"]


def ade_huge_parts(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    huge_png(src / "training" / "street" / "a_parts_1.png")
    return src, ["a_parts_1.png", "over the limit"]


def ade_class_not_named(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    seg = np.zeros((4, 4, 3), dtype=np.uint8)
    seg[0, 2] = (20, 1, 3)  # class 513
    _png(src / "training" / "street" / "a_seg.png", seg, "RGB")
    return src, ["a_seg.png", "class 513", "row 0, column 2"]


def ade_bad_json(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    (src / "training" / "street" / "a.json").write_text('{"annotation": {"object": [}}')
    return src, ["a.json", "line 1"]


def ade_bad_ndx(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    doc = {"annotation": {"object": [{"name": "car", "name_ndx": "261"}]}}
    (src / "training" / "street" / "a.json").write_text(json.dumps(doc))
    return src, ["a.json", "$.annotation.object[0].name_ndx"]


def ade_bad_atr(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    (src / "training" / "street" / "a.json").unlink()
    (src / "training" / "street" / "a_atr.txt").write_text(
        '001 # 0 # 0 # car # car # ""\nnonsense\n'
    )
    return src, ["a_atr.txt", "line 2"]


def ade_parts_size(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    _png(src / "training" / "street" / "a_parts_1.png", np.zeros((5, 4, 3), np.uint8), "RGB")
    return src, ["a_parts_1.png", "4x5"]


def ade_symlink_out(ws: Path) -> tuple[Path, list[str]]:
    src = _ade(ws)
    outside = ws / "b_seg.png"
    _png(outside, np.zeros((4, 4, 3), np.uint8), "RGB")
    (src / "training" / "street" / "b_seg.png").symlink_to(outside)
    return src, ["b_seg.png", "outside SRC"]


# ----------------------------------------------------------------------------- Cityscapes


def _cs(ws: Path, name: str = "instanceIds.png") -> tuple[Path, Path]:
    root = ws / "cs"
    gt = root / "gtFine" / "val" / "x" / f"x_0_0_gtFine_{name}"
    gt.parent.mkdir(parents=True)
    _png(
        root / "leftImg8bit" / "val" / "x" / "x_0_0_leftImg8bit.png",
        np.zeros((2, 3, 3), np.uint8),
        "RGB",
    )
    return root, gt


def cs_bad_png(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws)
    gt.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return root, [gt.name, "cannot be read"]


def cs_huge(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws)
    huge_png(gt, 70_000, 2, mode=0)
    return root, [gt.name, "over the limit"]


def cs_id_not_in_table(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws)
    Image.fromarray(np.array([[7, 7, 40]], dtype=np.uint16)).save(gt)
    return root, [gt.name, "value 40", "row 0, column 2"]


def cs_bad_json(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws, "polygons.json")
    gt.write_text('{"imgHeight": 2, "imgWidth": 3, "objects": [NaN]}')
    return root, [gt.name, "NaN"]


def cs_huge_declared(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws, "polygons.json")
    gt.write_text(json.dumps({"imgHeight": 100_000, "imgWidth": 100_000, "objects": []}))
    return root, [gt.name, "$.imgWidth", "over the limit"]


def cs_label_not_in_table(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws, "polygons.json")
    doc = {
        "imgHeight": 2,
        "imgWidth": 3,
        "objects": [{"label": "spaceship", "polygon": [[0, 0], [1, 0], [1, 1]]}],
    }
    gt.write_text(json.dumps(doc))
    return root, [gt.name, "$.objects[0].label", "spaceship"]


def cs_bad_polygon(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws, "polygons.json")
    doc = {
        "imgHeight": 2,
        "imgWidth": 3,
        "objects": [{"label": "car", "polygon": [[0, 0], [1e300, 0]]}],
    }
    gt.write_text(json.dumps(doc))
    return root, [gt.name, "$.objects[0].polygon", "over the limit"]


def cs_symlink_out(ws: Path) -> tuple[Path, list[str]]:
    root, gt = _cs(ws, "labelIds.png")
    outside = ws / "outside.png"
    _png(outside, np.zeros((2, 3), np.uint8), "L")
    gt.symlink_to(outside)
    return root, [gt.name, "outside SRC"]


# ----------------------------------------------------------------------------- Supervisely


def _sly(
    ws: Path, objects: list[dict], size: dict | None = None, classes: tuple[str, ...] = ("wall",)
) -> Path:
    root = ws / "proj"
    (root / "ds" / "ann").mkdir(parents=True)
    _png(root / "ds" / "img" / "a.png", np.zeros((8, 10, 3), np.uint8), "RGB")
    (root / "meta.json").write_text(json.dumps({"classes": [{"title": c} for c in classes]}))
    doc = {"size": size or {"height": 8, "width": 10}, "tags": [], "objects": objects}
    (root / "ds" / "ann" / "a.png.json").write_text(json.dumps(doc))
    return root


def _bitmap(png: bytes, origin: list[int], zipped: bool = True) -> dict:
    data = zlib.compress(png) if zipped else png
    return {
        "classTitle": "wall",
        "geometryType": "bitmap",
        "bitmap": {"data": base64.b64encode(data).decode(), "origin": origin},
    }


def _small_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h), 255).save(buf, format="PNG")
    return buf.getvalue()


def sly_bitmap_leaves_image(ws: Path) -> tuple[Path, list[str]]:
    return _sly(ws, [_bitmap(_small_png(4, 4), [8, 2])]), [
        "a.png.json",
        "$.objects[0].bitmap.origin",
    ]


def sly_huge_bitmap(ws: Path) -> tuple[Path, list[str]]:
    png = huge_png(ws / "huge.png")
    (ws / "huge.png").unlink()
    return _sly(ws, [_bitmap(png, [0, 0])]), [
        "a.png.json",
        "$.objects[0].bitmap.data",
        "over the limit",
    ]


def sly_zlib_bomb(ws: Path) -> tuple[Path, list[str]]:
    obj = _bitmap(b"", [0, 0])
    obj["bitmap"]["data"] = base64.b64encode(zlib.compress(b"\0" * (64 << 20), 9)).decode()
    return _sly(ws, [obj]), ["a.png.json", "$.objects[0].bitmap.data", "inflates past"]


def sly_not_zlib(ws: Path) -> tuple[Path, list[str]]:
    obj = _bitmap(b"", [0, 0])
    obj["bitmap"]["data"] = base64.b64encode(b"plainly not zlib").decode()
    return _sly(ws, [obj]), ["a.png.json", "$.objects[0].bitmap.data"]


def sly_class_not_in_meta(ws: Path) -> tuple[Path, list[str]]:
    obj = {
        "classTitle": "door",
        "geometryType": "point",
        "points": {"exterior": [[1, 1]], "interior": []},
    }
    return _sly(ws, [obj]), ["a.png.json", "$.objects[0].classTitle", "meta.json"]


def sly_bad_json(ws: Path) -> tuple[Path, list[str]]:
    root = _sly(ws, [])
    (root / "ds" / "ann" / "a.png.json").write_text('{"size": {"height": 8,, "width": 10}}')
    return root, ["a.png.json", "line 1"]


def sly_huge_size(ws: Path) -> tuple[Path, list[str]]:
    return _sly(ws, [], {"height": 1 << 30, "width": 4}), ["a.png.json", "$.size", "over the limit"]


def sly_bad_points(ws: Path) -> tuple[Path, list[str]]:
    obj = {
        "classTitle": "wall",
        "geometryType": "polygon",
        "points": {"exterior": [[0, 0], [1, "x"], [2, 2]], "interior": []},
    }
    return _sly(ws, [obj]), ["a.png.json", "$.objects[0].points.exterior"]


# ----------------------------------------------------------------------------- CamVid


def _camvid(ws: Path, mask: np.ndarray, mode: str, listing: str | None = None) -> Path:
    root = ws / "CamVid"
    _png(root / "train" / "a.png", np.zeros((2, 3, 3), np.uint8), "RGB")
    _png(root / "trainannot" / "a.png", mask, mode)
    (root / "train.txt").write_text(
        listing or "/SegNet/CamVid/train/a.png /SegNet/CamVid/trainannot/a.png\n"
    )
    return root


def cv_colour_not_in_table(ws: Path) -> tuple[Path, list[str]]:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2] = (9, 9, 9)
    return _camvid(ws, rgb, "RGB"), ["a.png", "(9, 9, 9)", "row 1, column 2"]


def cv_index_not_in_table(ws: Path) -> tuple[Path, list[str]]:
    idx = np.zeros((2, 3), np.uint8)
    idx[0, 1] = 200
    return _camvid(ws, idx, "L"), ["a.png", "value 200"]


def cv_bad_png(ws: Path) -> tuple[Path, list[str]]:
    root = _camvid(ws, np.zeros((2, 3), np.uint8), "L")
    (root / "trainannot" / "a.png").write_bytes(b"PNG? no")
    return root, ["a.png", "cannot be read"]


def cv_huge(ws: Path) -> tuple[Path, list[str]]:
    root = _camvid(ws, np.zeros((2, 3), np.uint8), "L")
    huge_png(root / "trainannot" / "a.png")
    return root, ["a.png", "over the limit"]


def cv_escaping_list(ws: Path) -> tuple[Path, list[str]]:
    root = _camvid(ws, np.zeros((2, 3), np.uint8), "L", "train/a.png trainannot/..\n")
    return root, ["train.txt", "line 1"]


def cv_bad_list_line(ws: Path) -> tuple[Path, list[str]]:
    root = _camvid(ws, np.zeros((2, 3), np.uint8), "L", "train/a.png trainannot/a.png extra\n")
    return root, ["train.txt", "line 1"]


def cv_bad_colour_table(ws: Path) -> tuple[Path, list[str]]:
    root = _camvid(ws, np.zeros((2, 3, 3), np.uint8), "RGB")
    (root / "label_colors.txt").write_text("0 0 0\tVoid\n300 0 0\tRed\n")
    return root, ["label_colors.txt", "line 2"]


def cv_symlink_out(ws: Path) -> tuple[Path, list[str]]:
    root = _camvid(ws, np.zeros((2, 3), np.uint8), "L")
    outside = ws / "outside"
    outside.mkdir()
    _png(outside / "a.png", np.zeros((2, 3), np.uint8), "L")
    (root / "evil").symlink_to(outside)
    (root / "train.txt").write_text("train/a.png evil/a.png\n")
    return root, ["train.txt", "line 1", "outside SRC"]


CASES: dict[str, tuple[str, Callable[[Path], tuple[Path, list[str]]]]] = {
    f.__name__: (fmt, f)
    for fmt, fs in (
        (
            "voc",
            [
                voc_bad_png,
                voc_huge,
                voc_index_not_in_table,
                voc_colour_not_in_map,
                voc_bad_xml,
                voc_xml_entity,
                voc_object_past_xml,
                voc_symlink_out,
                voc_bad_names,
                voc_size_mismatch,
            ],
        ),
        (
            "ade20k",
            [
                ade_bad_png,
                ade_huge_parts,
                ade_class_not_named,
                ade_bad_json,
                ade_bad_ndx,
                ade_bad_atr,
                ade_parts_size,
                ade_symlink_out,
            ],
        ),
        (
            "cityscapes",
            [
                cs_bad_png,
                cs_huge,
                cs_id_not_in_table,
                cs_bad_json,
                cs_huge_declared,
                cs_label_not_in_table,
                cs_bad_polygon,
                cs_symlink_out,
            ],
        ),
        (
            "supervisely",
            [
                sly_bitmap_leaves_image,
                sly_huge_bitmap,
                sly_zlib_bomb,
                sly_not_zlib,
                sly_class_not_in_meta,
                sly_bad_json,
                sly_huge_size,
                sly_bad_points,
            ],
        ),
        (
            "camvid",
            [
                cv_colour_not_in_table,
                cv_index_not_in_table,
                cv_bad_png,
                cv_huge,
                cv_escaping_list,
                cv_bad_list_line,
                cv_bad_colour_table,
                cv_symlink_out,
            ],
        ),
    )
    for f in fs
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_dataset(tmp_path: Path, case: str) -> None:
    fmt, build = CASES[case]
    ws = tmp_path / "ws"
    ws.mkdir()
    src, names = build(ws)
    run_hostile(["convert", fmt, src, "-o", ws / "out", "--min-images", "1"], ws, names=names)


def test_keep_going_skips_the_bad_image(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    src, _ = voc_index_not_in_table(ws)
    cls = np.zeros((4, 6), dtype=np.uint8)
    cls[0:2, 0:2] = 12
    _png(src / "SegmentationClass" / "b.png", cls, "L")
    _png(src / "JPEGImages" / "b.jpg", np.zeros((4, 6, 3), np.uint8), "RGB")
    out = ws / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conceptkit",
            "convert",
            "voc",
            str(src),
            "-o",
            str(out),
            "--min-images",
            "1",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "class index 42" in proc.stderr + proc.stdout
    assert [r.split(",")[0] for r in (out / "index.csv").read_text().splitlines()[1:]] == ["b.jpg"]


FIXTURES = Path(__file__).parent / "data" / "fixtures" / "formats2"
#: format -> (fixture root, the mask of its last image, relative to the root)
LAST_MASK = {
    "voc": ("voc/labelme", "SegmentationClass/2011_000025.png"),
    "ade20k": ("ade20k/2020", "validation/2_seg.png"),
    "cityscapes": (
        "cityscapes/datumaro",
        "gtFine/val/defaultcity/defaultcity_000001_000019_gtFine_instanceIds.png",
    ),
    "camvid": ("camvid/datumaro", "testannot/0001TP_008580.png"),
    "supervisely": ("supervisely/instance", "ds/ann/dog3.jpg.json"),
}


@pytest.mark.parametrize("fmt", sorted(LAST_MASK))
def test_readers_stream(tmp_path: Path, fmt: str) -> None:
    """The first image comes out before the last one is read: a broken last file is met only
    when the reader gets to it."""
    root, last = LAST_MASK[fmt]
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / root, src)
    (src / last).write_bytes(b"broken")
    stream = get_reader(fmt)(src, ReadOptions())
    first = next(iter(stream))
    assert first.shapes
    with pytest.raises(FormatError, match=Path(last).name):
        list(stream)
