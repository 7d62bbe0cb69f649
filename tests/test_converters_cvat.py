"""The CVAT XML reader against real exports, synthetic corner cases, and bad input."""

from __future__ import annotations

import shutil
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conceptkit.converters import ReadOptions
from conceptkit.converters import cvat as reader

from conceptkit import rasterize
from conceptkit.errors import FormatError


def read_all(src: Path, **kw: Any) -> list:
    return list(reader.read(src, ReadOptions(**kw)))


def xml_doc(body: str, meta: str = "<task><size>1</size></task>") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
        f"<meta>{meta}</meta>\n{body}\n</annotations>\n"
    )


# ----------------------------------------------------------------------------- real exports


def test_datumaro_task_export(formats_dir: Path) -> None:
    src = formats_dir / "cvat" / "datumaro-export_task"
    warnings: list[str] = []
    img0, img1 = read_all(src, warn=warnings.append)
    assert (img0.key, img0.width, img0.height, img0.split) == ("img0.jpg", 8, 8, "train")
    assert (img1.key, img1.width, img1.height) == ("img1.jpg", 10, 10)
    assert img0.image_path == src / "images" / "img0.jpg" and img0.image_path.is_file()
    assert img0.annotator == "datumaro-export_task"
    assert img0.source == str(src / "train.xml")
    (box,) = img0.shapes
    assert (box.label, box.kind, box.z, box.order, box.occluded) == (
        "label1",
        "rectangle",
        1,
        0,
        True,
    )
    assert box.points.tolist() == [[0.0, 2.0], [4.0, 4.0]]
    assert box.attributes == {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"}
    assert box.convention == "center" and box.place == "<box> line 44"
    (points,) = img1.shapes
    assert (points.label, points.kind, points.z) == ("label2", "points", 2)
    assert points.points.tolist() == [[1, 2], [3, 4], [5, 6]]
    # label="" on the polyline (line 50) and the polygon (line 53): skipped with a warning each
    assert len(warnings) == 2
    assert warnings[0].endswith(
        'train.xml: <polyline> line 50: label="" (no concept to carry); skipped'
    )
    assert '<polygon> line 53: label=""' in warnings[1]
    # box 0,2-4,4 in pycocotools' pixels: x 0..3, y 2..3
    m = rasterize.shape_mask(box, 8, 8)
    assert m.sum() == 8 and m[2:4, 0:4].all()


def test_cvat_docs_mask(formats_dir: Path) -> None:
    warnings: list[str] = []
    (record,) = read_all(
        formats_dir / "cvat" / "cvat-docs" / "annotations.xml", warn=warnings.append
    )
    assert (record.key, record.width, record.height) == ("filename000.jpg", 1600, 1200)
    assert record.tags == ["good_frame"]
    assert [(s.label, s.kind, s.z) for s in record.shapes] == [
        ("plate", "rectangle", 4),
        ("car", "polygon", 1),
        ("traffic_line", "linestrip", 3),
        ("traffic_line", "linestrip", 2),
        ("wheel", "points", 5),
        ("car", "mask", 0),
    ]
    assert [s.label for s in record.painting_order()] == [
        "car",  # the mask, z 0
        "car",  # the polygon, z 1
        "traffic_line",
        "traffic_line",
        "plate",
        "wheel",
    ]
    assert len(warnings) == 1 and "<skeleton> line 93" in warnings[0]
    mask = record.shapes[-1]
    assert mask.origin == (707, 888) and mask.place == "<mask> line 101"
    patch = mask.mask
    assert patch.shape == (15, 13) and patch.dtype == bool
    assert int(patch.sum()) == 149  # the sum of the odd runs 5+7+9+11+11+12+12+26+12+12+11+9+7+5
    rows, cols = np.flatnonzero(patch.any(1)), np.flatnonzero(patch.any(0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (0, 14, 0, 12)
    # the first run is 3 zeros then 5 ones, row-major
    assert patch[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert patch[7].all() and patch[8].all()
    assert patch[14].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    full = rasterize.shape_mask(mask, 1200, 1600)
    assert full.sum() == 149 and full[888, 710] and not full[888, 709] and full[895, 707]


def test_zip_export(formats_dir: Path, tmp_path: Path) -> None:
    src = formats_dir / "cvat" / "datumaro-export_task"
    archive = tmp_path / "task_7.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(src / "train.xml", "annotations.xml")
        for p in sorted((src / "images").iterdir()):
            z.write(p, f"images/{p.name}")
    records = read_all(archive)
    assert [r.key for r in records] == ["img0.jpg", "img1.jpg"]
    assert records[0].image_data == (src / "images" / "img0.jpg").read_bytes()
    assert records[0].image_path is None and records[0].annotator == "task_7"
    assert records[0].shapes[0].attributes["a2"] == "v3"


def test_project_export_subsets_and_shapes(tmp_path: Path) -> None:
    body = """
<image id="0" name="a.png" subset="Validation" task_id="3" width="20" height="10">
  <ellipse label="sun" cx="5" cy="4" rx="3" ry="2" rotation="30" z_order="2" group_id="7"/>
  <box label="car" xtl="2" ytl="2" xbr="6" ybr="4" rotation="90" z_order="0" group_id="7"/>
  <mask label="road" rle="2, 3,1,  0" left="1" top="2" width="3" height="2" z_order="-1"/>
  <polyline label="lane" points="0,0;10,5" outside="1"/>
  <tag label="street"/>
</image>
<image id="1" name="b.png" subset="Train" width="20" height="10"></image>
"""
    (tmp_path / "annotations.xml").write_text(xml_doc(body, "<project><name>p</name></project>"))
    (tmp_path / "images" / "Validation").mkdir(parents=True)
    (tmp_path / "images" / "Validation" / "a.png").write_bytes(b"png")
    a, b = read_all(tmp_path)
    assert (a.split, b.split) == ("val", "train")
    assert a.image_path == tmp_path / "images" / "Validation" / "a.png"
    assert b.image_path == tmp_path / "images" / "b.png"  # absent: the pipeline reports it
    assert a.tags == ["street"]
    ellipse, box, mask = a.shapes  # the outside polyline is not a shape
    assert ellipse.kind == "ellipse" and ellipse.angle == 30.0 and ellipse.instance == "7"
    assert ellipse.points.tolist() == [[5, 4], [8, 6]]
    assert box.kind == "oriented_rectangle"
    # 4 x 2 box about (4, 3) turned 90 degrees clockwise: 2 wide, 4 tall
    assert np.allclose(box.points, [[5, 1], [5, 5], [3, 5], [3, 1]])
    assert mask.z == -1 and mask.origin == (1, 2)
    # runs 2 zeros, 3 ones, 1 zero, 0 ones, row-major over 3 x 2
    assert mask.mask.tolist() == [[False, False, True], [True, True, False]]
    assert [s.order for s in a.shapes] == [0, 1, 2]


def test_video_tracks_interpolate(tmp_path: Path) -> None:
    meta = "<task><size>20</size><mode>interpolation</mode><original_size><width>64</width><height>48</height></original_size></task>"
    body = """
<track id="3" label="car" source="manual">
  <box frame="0" keyframe="1" outside="0" occluded="0" xtl="0" ytl="0" xbr="10" ybr="10" z_order="1"/>
  <box frame="10" keyframe="1" outside="0" occluded="1" xtl="10" ytl="20" xbr="30" ybr="30" z_order="1"/>
  <box frame="15" keyframe="1" outside="1" occluded="0" xtl="10" ytl="20" xbr="30" ybr="30" z_order="1"/>
</track>
<track id="4" label="person" source="manual">
  <polygon frame="4" keyframe="1" outside="0" occluded="0" points="0,0;4,0;4,4" z_order="0"/>
  <polygon frame="8" keyframe="1" outside="0" occluded="0" points="8,0;12,0;12,8" z_order="0"/>
</track>
"""
    (tmp_path / "annotations.xml").write_text(xml_doc(body, meta))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "frame_000005.jpg").write_bytes(b"j")
    frames = read_all(tmp_path)
    assert len(frames) == 20 and all((f.width, f.height) == (64, 48) for f in frames)
    assert frames[5].key == "frame_000005.jpg" and frames[6].key == "frame_000006.png"
    by_label = [{s.label: s for s in f.shapes} for f in frames]
    assert set(by_label[0]) == {"car"} and set(by_label[4]) == {"car", "person"}
    car5 = by_label[5]["car"]
    assert car5.kind == "rectangle" and car5.points.tolist() == [[5, 10], [20, 20]]
    assert car5.instance == "track3" and not car5.occluded
    assert by_label[10]["car"].occluded
    assert by_label[12]["car"].points.tolist() == [[10, 20], [30, 30]]  # held until outside
    assert all("car" not in d for d in by_label[15:])  # outside ends the track
    assert by_label[6]["person"].points.tolist() == [[4, 0], [8, 0], [8, 6]]
    assert by_label[19]["person"].points.tolist() == [[8, 0], [12, 0], [12, 8]]  # persists


# ----------------------------------------------------------------------------- bad input


def error_of(src: Path, **kw: Any) -> str:
    with pytest.raises(FormatError) as info:
        read_all(src, **kw)
    text = str(info.value)
    assert "\n" not in text and str(src) in text
    return text


def test_malformed_xml(tmp_path: Path) -> None:
    path = tmp_path / "annotations.xml"
    path.write_text(
        xml_doc('<image id="0" name="a.png" width="4" height="4">\n<box label="x"></image>')
    )
    assert "line 6, column 18: malformed XML: mismatched tag" in error_of(path)


def test_entity_bomb(tmp_path: Path) -> None:
    lol = "".join(
        f'<!ENTITY lol{i} "{"".join(f"&lol{i - 1};" for _ in range(10))}">' for i in range(1, 10)
    )
    path = tmp_path / "annotations.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE annotations [<!ENTITY lol0 "lol">{lol}]>\n'
        "<annotations><version>&lol9;</version></annotations>"
    )
    text = error_of(path)
    assert "line 2: a <!DOCTYPE annotations> declaration is refused" in text


def test_rle_counts_not_summing(tmp_path: Path) -> None:
    path = tmp_path / "annotations.xml"
    path.write_text(
        xml_doc(
            '<image id="0" name="a.png" width="9" height="9">\n'
            '<mask label="m" rle="1, 2, 3" left="0" top="0" width="2" height="2"/>\n</image>'
        )
    )
    text = error_of(path)
    assert (
        "<mask> line 6: mask rle: RLE counts sum to 6, expected width x height = 2 x 2 = 4" in text
    )
    warnings: list[str] = []
    assert read_all(path, keep_going=True, warn=warnings.append) == []
    assert len(warnings) == 1 and "image skipped" in warnings[0]


def test_polygon_with_two_points(tmp_path: Path) -> None:
    path = tmp_path / "annotations.xml"
    path.write_text(
        xml_doc(
            '<image id="0" name="a.png" width="9" height="9">\n'
            '<polygon label="p" points="1,1;5,5"/>\n</image>'
        )
    )
    assert "<polygon> line 6: a polygon needs at least 3 points, this one has 2" in error_of(path)


def test_zip_entry_escaping(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("annotations.xml", xml_doc(""))
        z.writestr("../../outside.txt", "x")
    text = error_of(archive)
    assert "zip entry '../../outside.txt': the entry leads outside the archive's folder" in text


def test_image_name_escaping(tmp_path: Path) -> None:
    path = tmp_path / "annotations.xml"
    path.write_text(xml_doc('<image id="0" name="../../secret.png" width="9" height="9"/>'))
    assert "<image> line 5: image name '../../secret.png' leads outside" in error_of(path)


# ----------------------------------------------------------------------------- streaming


def write_big(path: Path, n: int) -> None:
    with open(path, "w") as f:
        f.write(xml_doc("", f"<task><size>{n}</size></task>").rsplit("</annotations>", 1)[0])
        for i in range(n):
            f.write(f'<image id="{i}" name="img_{i:05d}.jpg" width="640" height="480">\n')
            for k in range(5):
                x = (i * 7 + k * 50) % 600
                f.write(
                    f'  <polygon label="c{k}" points="{x},10;{x + 30},10;{x + 30},40;{x},40" '
                    f'z_order="{k}"><attribute name="q">{k}</attribute></polygon>\n'
                )
            f.write("</image>\n")
        f.write("</annotations>\n")


@pytest.mark.slow
def test_streams_10000_images(tmp_path: Path) -> None:
    path = tmp_path / "annotations.xml"
    write_big(path, 10_000)
    assert path.stat().st_size > 5_000_000
    tracemalloc.start()
    count = shapes = 0
    for record in reader.read(path, ReadOptions()):
        count += 1
        shapes += len(record.shapes)
        assert record.shapes[4].z == 4 and record.shapes[4].attributes == {"q": "4"}
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (count, shapes) == (10_000, 50_000)
    # holding all 10,000 parsed <image> elements takes tens of MB (measured below for 1,000);
    # streaming keeps one image plus a 64 KiB parser chunk
    assert peak < 3_000_000, peak
    small = tmp_path / "small.xml"
    write_big(small, 1_000)
    tracemalloc.start()
    held = list(reader.read(small, ReadOptions()))
    held_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(held) == 1_000 and held_peak * 10 > 5 * peak


def test_copied_folder_with_subset_files(formats_dir: Path, tmp_path: Path) -> None:
    src = formats_dir / "cvat" / "datumaro-export_task"
    dst = tmp_path / "annotator_b"
    shutil.copytree(src, dst)
    shutil.copy(dst / "train.xml", dst / "val.xml")
    records = read_all(dst)
    assert [(r.key, r.split) for r in records] == [
        ("img0.jpg", "train"),
        ("img1.jpg", "train"),
        ("img0.jpg", "val"),
        ("img1.jpg", "val"),
    ]
    assert {r.annotator for r in records} == {"annotator_b"}


# ----------------------------------------------------------------------------- limits


def test_numbers_are_read_strictly() -> None:
    from conceptkit.converters._xml import number

    good = {"1": 1.0, " -2.5 ": -2.5, "3e2": 300.0, "+.5": 0.5, "1e308": 1e308}
    assert {k: number(k) for k in good} == good
    for bad in ("nan", "-inf", "Infinity", "1e999", "1_0", "٣", "²", "", "0x10", "1,5", "true"):
        assert number(bad) is None, bad


def test_xml_attribute_and_depth_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conceptkit.converters._xml import parse

    # past the default limit (10 MiB): refused while reading, before expat sees the whole value
    path = tmp_path / "a.xml"
    path.write_text(f'<a>\n<b v="{"x" * (11 << 20)}"/></a>')
    with pytest.raises(
        FormatError, match=r"a run of XML without '<' .* over the limit of 10,485,760"
    ):
        parse(path)
    monkeypatch.setenv("CONCEPTKIT_LIMIT_XML_ATTRIBUTE_CHARS", "1000")
    assert parse(path, data=f'<a v="{"x" * 1000}"/>'.encode()).attrib["v"] == "x" * 1000
    with pytest.raises(
        FormatError, match=r"<a> line 1: attribute 'v' declares 1,001, over the limit"
    ):
        parse(path, data=f'<a v="{"x" * 1001}"/>'.encode())
    monkeypatch.setenv("CONCEPTKIT_LIMIT_XML_DEPTH", "3")
    assert parse(path, data=b"<a><b><c/></b></a>").find("b/c") is not None
    with pytest.raises(FormatError, match=r"<d> line 1: the XML nesting depth declares 4"):
        parse(path, data=b"<a><b><c><d/></c></b></a>")


def test_declared_sizes_over_the_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCEPTKIT_LIMIT_VIDEO_FRAMES", "10")
    meta = "<task><size>{}</size><original_size><width>8</width><height>6</height></original_size></task>"
    track = '<track id="1" label="car"><box frame="{}" xtl="0" ytl="0" xbr="2" ybr="2"/></track>'
    path = tmp_path / "annotations.xml"
    path.write_text(xml_doc(track.format(9), meta.format(10)))
    assert len(read_all(path)) == 10
    path.write_text(xml_doc(track.format(9), meta.format(11)))
    assert "<task> line 4: <size> declares 11, over the limit of 10" in error_of(path)
    path.write_text(xml_doc(track.format(10), meta.format("")))
    assert "<box> line 5: frame declares 11, over the limit of 10" in error_of(path)
    monkeypatch.setenv("CONCEPTKIT_LIMIT_IMAGE_PIXELS", "20")
    mask = '<image id="0" name="a.png" width="4" height="5"><mask label="m" rle="{}" left="0" top="0" width="{}" height="{}"/></image>'
    path.write_text(xml_doc(mask.format("0, 20", 4, 5)))
    assert read_all(path)[0].shapes[0].mask.shape == (5, 4)
    path.write_text(xml_doc(mask.format("0, 21", 3, 7)))
    assert "<mask> line 5: mask patch 3x7 declares 21, over the limit of 20" in error_of(path)


def test_zip_declared_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations.xml", xml_doc(""))
        z.writestr("images/zeros.png", b"\0" * 100_000)  # deflates about 200 times
    assert read_all(path) == []
    monkeypatch.setenv("CONCEPTKIT_LIMIT_ZIP_RATIO", "100")
    text = error_of(path)
    assert "zip entry 'images/zeros.png': the expansion ratio declares" in text
    assert "over the limit of 100" in text
    monkeypatch.setenv("CONCEPTKIT_LIMIT_ZIP_MEMBERS", "1")
    assert "the member count declares 2, over the limit of 1" in error_of(path)


# ----------------------------------------------------------------------------- project subsets


def test_project_subsets_may_reuse_file_names(tmp_path: Path) -> None:
    body = """
<image id="0" name="img0.jpg" subset="Train" width="20" height="10">
  <box label="car" xtl="0" ytl="0" xbr="10" ybr="10" z_order="0"/>
</image>
<image id="1" name="img0.jpg" subset="Test" width="20" height="10">
  <box label="car" xtl="10" ytl="0" xbr="20" ybr="10" z_order="0"/>
</image>
"""
    (tmp_path / "annotations.xml").write_text(xml_doc(body, "<project><name>p</name></project>"))
    for subset in ("Train", "Test"):
        (tmp_path / "images" / subset).mkdir(parents=True)
        (tmp_path / "images" / subset / "img0.jpg").write_bytes(b"jpg")
    train, test = read_all(tmp_path)
    assert (train.key, test.key) == ("Train/img0.jpg", "Test/img0.jpg")
    assert (train.split, test.split) == ("train", "test")
    assert train.image_path == tmp_path / "images" / "Train" / "img0.jpg"
    assert test.image_path == tmp_path / "images" / "Test" / "img0.jpg"
    assert reader.image_key("a\\b.png", "") == "b.png"
