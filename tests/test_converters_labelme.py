"""LabelMe JSON (every version, every shape type) and MIT LabelMe XML readers."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conceptkit.converters import READERS, ReadOptions, get_reader
from conceptkit.converters._xml import parse
from conceptkit.converters.labelme import read
from PIL import Image

from conceptkit.errors import FormatError, UsageError
from conceptkit.rasterize import shape_mask


def png_b64(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def jpeg(path: Path, w: int = 40, h: int = 30, exif_orientation: int | None = None) -> None:
    im = Image.new("RGB", (w, h), (120, 30, 200))
    if exif_orientation is None:
        im.save(path)
        return
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    im.save(path, exif=exif.tobytes())


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def doc(shapes: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    base = {
        "version": "5.5.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": "img.jpg",
        "imageData": None,
        "imageHeight": 30,
        "imageWidth": 40,
    }
    base.update(kw)
    return base


def shape(label: str, points: list[list[float]], kind: str | None = "polygon", **kw: Any) -> dict:
    s = {"label": label, "points": points, "group_id": None, "flags": {}, "shape_type": kind}
    s.update(kw)
    return s


def one(src: Path, warnings: list[str] | None = None) -> Any:
    out = list(read(src, ReadOptions(warn=(warnings if warnings is not None else []).append)))
    assert len(out) == 1
    return out[0]


def test_registry() -> None:
    assert set(READERS) >= {"labelme", "cvat", "coco"}
    assert get_reader("labelme") is read
    with pytest.raises(UsageError, match="unknown FORMAT 'pascal'"):
        get_reader("pascal")


def test_fixture_files(formats_dir: Path) -> None:
    anns = list(read(formats_dir / "labelme/instance_segmentation/data_annotated", ReadOptions()))
    assert [a.key for a in anns] == ["2011_000003.jpg", "2011_000006.jpg", "2011_000025.jpg"]
    a = anns[0]
    assert (a.width, a.height) == (500, 338)
    assert [s.label for s in a.shapes] == ["person", "person", "person", "bottle", "__ignore__"]
    assert [s.instance for s in a.shapes] == [None, "0", "0", None, None]
    assert all(s.kind == "polygon" and s.convention == "inclusive" for s in a.shapes)
    assert a.image_path is not None and a.image_path.name == "2011_000003.jpg"


def test_every_shape_type(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg")
    m = np.zeros((3, 4), dtype=np.uint8)
    m[1, 1:3] = 1
    shapes = [
        shape("a", [[1, 1], [10, 1], [10, 8]]),
        shape("b", [[12, 2], [15, 6]], "rectangle"),
        shape("c", [[20, 2], [25, 2], [25, 6], [20, 6]], "oriented_rectangle"),
        shape("d", [[8, 20], [10, 20]], "circle"),
        shape("e", [[1, 25], [30, 25]], "line"),
        shape("f", [[1, 28], [5, 20], [9, 28]], "linestrip"),
        shape("g", [[35, 5]], "point"),
        shape("h", [[30, 10], [31, 12]], "points"),
        shape("i", [[30, 20], [33, 22]], "mask", mask=png_b64(m)),
    ]
    warnings: list[str] = []
    ann = one(write(tmp_path / "a.json", doc(shapes)), warnings)
    assert [s.kind for s in ann.shapes] == [
        "polygon",
        "rectangle",
        "oriented_rectangle",
        "circle",
        "line",
        "linestrip",
        "point",
        "mask",
    ]
    assert len(warnings) == 1 and "$.shapes[7]: 'points' prompt clicks skipped" in warnings[0]
    mask = ann.shapes[-1]
    assert mask.origin == (30, 20) and mask.mask.sum() == 2
    full = shape_mask(mask, 30, 40)
    assert full[21, 31] and full[21, 32] and full.sum() == 2
    assert shape_mask(ann.shapes[1], 30, 40).sum() == 4 * 5


def test_old_files_without_shape_type_or_sizes(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg", 40, 30)
    old = {
        "flags": {},
        "shapes": [
            {
                "label": "dog",
                "line_color": None,
                "fill_color": None,
                "points": [[1, 1], [9, 1], [5, 7]],
            }
        ],
        "lineColor": [0, 255, 0, 128],
        "fillColor": [255, 0, 0, 128],
        "imagePath": "img.jpg",
        "imageData": None,
    }
    ann = one(write(tmp_path / "old.json", old))
    assert ann.shapes[0].kind == "polygon"
    assert (ann.width, ann.height) == (40, 30)


def test_exif_orientation_swaps_sizes(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg", 40, 30, exif_orientation=6)  # rotated 90 degrees
    data = doc([shape("a", [[1, 1], [9, 1], [5, 7]])])
    del data["imageHeight"], data["imageWidth"]
    ann = one(write(tmp_path / "a.json", data))
    assert (ann.width, ann.height) == (30, 40)


def test_embedded_image_flags_groups_windows_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    jpeg(tmp_path / "sub" / "img.jpg")
    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, format="PNG")
    data = doc(
        [shape("a", [[1, 1], [9, 1], [5, 7]], group_id=3, flags={"truncated": True})],
        flags={"indoor": True, "night": False},
        imagePath="..\\sub\\img.jpg",
    )
    (tmp_path / "j").mkdir()
    write(tmp_path / "j" / "a.json", data)
    ann = one(tmp_path)
    assert ann.image_path == tmp_path / "j" / ".." / "sub" / "img.jpg"
    assert ann.key == "img.jpg"
    assert ann.tags == ["indoor"]
    assert ann.shapes[0].instance == "3"
    assert ann.shapes[0].attributes == {"truncated": "true"}
    data["imageData"] = base64.b64encode(buf.getvalue()).decode()
    data["imagePath"] = "nowhere.png"
    write(tmp_path / "j" / "a.json", data)
    ann = one(tmp_path)
    assert ann.image_data == buf.getvalue() and ann.image_path is None


def test_schema_errors_name_the_json_path(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg")
    bad = doc([shape("a", [[1, 1], [9, 1], [5, 7]]), shape("b", [[1, 1], [2]])])
    with pytest.raises(FormatError) as e:
        one(write(tmp_path / "a.json", bad))
    assert str(e.value).startswith(f"{tmp_path / 'a.json'}: $.shapes[1].points[1]: ")
    bad = doc([shape("a", [[1, 1], [9, 1], [5, 7]], "hexagon")])
    with pytest.raises(FormatError, match=r"\$\.shapes\[0\]\.shape_type: 'hexagon' is not one of"):
        one(write(tmp_path / "a.json", bad))
    with pytest.raises(FormatError, match=r": \$: 'imagePath' is a required property"):
        one(write(tmp_path / "a.json", {"shapes": []}))


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"shapes": [\n  {"label": "a",,}\n]}')
    with pytest.raises(FormatError, match=r"a\.json: line 2, column 17: malformed JSON"):
        one(tmp_path)


def test_paths_outside_src_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    jpeg(tmp_path / "img.jpg")
    write(src / "a.json", doc([], imagePath="../img.jpg"))
    with pytest.raises(
        FormatError, match=r"\$\.imagePath: image path '\.\./img\.jpg' points outside SRC"
    ):
        one(src)
    write(src / "a.json", doc([], imagePath="C:\\data\\img.jpg"))
    with pytest.raises(FormatError, match="is absolute"):
        one(src)
    write(src / "a.json", doc([], imagePath="/etc/img.jpg"))
    with pytest.raises(FormatError, match="is absolute"):
        one(src)


def test_missing_image_and_keep_going(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg")
    write(tmp_path / "a.json", doc([], imagePath="gone.jpg"))
    write(tmp_path / "b.json", doc([]))
    with pytest.raises(FormatError, match=r"a\.json: \$\.imagePath: image 'gone\.jpg' not found"):
        list(read(tmp_path, ReadOptions()))
    warnings: list[str] = []
    anns = list(read(tmp_path, ReadOptions(keep_going=True, warn=warnings.append)))
    assert [a.source for a in anns] == [str(tmp_path / "b.json")]
    assert len(warnings) == 1 and "not found (skipped)" in warnings[0]


def test_mask_box_must_fit_the_mask(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg")
    m = np.ones((3, 4), dtype=np.uint8)
    write(tmp_path / "a.json", doc([shape("a", [[1, 1], [9, 9]], "mask", mask=png_b64(m))]))
    with pytest.raises(FormatError, match=r"\$\.shapes\[0\]\.mask: mask is 4x3"):
        one(tmp_path)


# ----------------------------------------------------------------------------- MIT LabelMe XML


def test_labelme_xml_fixture(formats_dir: Path) -> None:
    ann = one(formats_dir / "labelme-xml")
    assert (ann.key, ann.width, ann.height) == ("img1.jpg", 2560, 1920)
    window, plate = ann.shapes
    assert (window.label, window.kind) == ("window", "polygon")
    assert window.points.tolist() == [[1078, 858], [1123, 854], [1126, 937], [1078, 940]]
    assert (plate.label, plate.kind, plate.mask.shape) == ("license plate", "mask", (1920, 2560))
    ys, xs = np.nonzero(plate.mask)
    # the mask lies inside the segm <box> (1457, 1671.75)-(1559, 1706.75)
    assert 1456 <= xs.min() and xs.max() <= 1560 and 1670 <= ys.min() and ys.max() <= 1708


XML = """<annotation><filename>img.jpg</filename><folder></folder>
<imagesize><nrows>30</nrows><ncols>40</ncols></imagesize>
<object><name>car</name><deleted>0</deleted><id>0</id><parts><hasparts>1</hasparts><ispartof/></parts>
<polygon><pt><x>1</x><y>1</y></pt><pt><x>30</x><y>1</y></pt><pt><x>30</x><y>20</y></pt></polygon></object>
<object><name>wheel</name><deleted>0</deleted><id>1</id><parts><hasparts/><ispartof>0</ispartof></parts>
<polygon><pt><x>5</x><y>5</y></pt><pt><x>9</x><y>5</y></pt><pt><x>9</x><y>9</y></pt></polygon></object>
<object><name>ghost</name><deleted>1</deleted><id>2</id>
<polygon><pt><x>5</x><y>5</y></pt><pt><x>9</x><y>5</y></pt><pt><x>9</x><y>9</y></pt></polygon></object>
</annotation>"""


def test_labelme_xml_parts_and_deleted(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg")
    (tmp_path / "img.xml").write_text(XML)
    ann = one(tmp_path)
    assert [(s.label, s.category, s.parent) for s in ann.shapes] == [
        ("car", None, None),
        ("wheel", "part", 0),
    ]
    assert ann.shapes[1].place == "<polygon> line 6"


def test_xml_entity_bomb_is_one_clear_error(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        + "".join(
            f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
            for i in range(1, 10)
        )
        + "]>\n<annotation>&lol9;</annotation>\n"
    )
    (tmp_path / "bomb.xml").write_text(bomb)
    with pytest.raises(FormatError) as e:
        one(tmp_path)
    text = str(e.value)
    assert "\n" not in text and "bomb.xml: line 2: a <!DOCTYPE lolz> declaration is refused" in text


def test_malformed_xml(tmp_path: Path) -> None:
    with pytest.raises(
        FormatError, match=r"x\.xml: line 2, column 6: malformed XML: mismatched tag"
    ):
        parse(tmp_path / "x.xml", data=b"<a>\n<b></c></a>")


def test_fast_schema_check_agrees_with_jsonschema() -> None:
    """The plain-Python check may only accept what jsonschema accepts."""
    from conceptkit.converters.labelme import _fast_valid, _validator

    good = doc(
        [shape("a", [[1, 1], [9, 1.5], [5, 7]], group_id=2, description="x", flags={"f": True})]
    )
    mutations: list[Any] = [
        lambda d: d.update(imagePath=""),
        lambda d: d.update(imageHeight=0),
        lambda d: d.update(imageWidth=True),
        lambda d: d.update(imageData=3),
        lambda d: d.update(flags={"a": 1}),
        lambda d: d.update(version=5),
        lambda d: d.pop("shapes"),
        lambda d: d["shapes"][0].update(label=None),
        lambda d: d["shapes"][0].update(points=[[1, 2, 3]]),
        lambda d: d["shapes"][0].update(points=[[1, "2"]]),
        lambda d: d["shapes"][0].update(points=[[1, True]]),
        lambda d: d["shapes"][0].update(shape_type="hexagon"),
        lambda d: d["shapes"][0].update(shape_type=None),
        lambda d: d["shapes"][0].update(group_id="1"),
        lambda d: d["shapes"][0].update(group_id=False),
        lambda d: d["shapes"][0].update(mask=1),
        lambda d: d["shapes"][0].update(flags={"x": "yes"}),
        lambda d: d["shapes"][0].update(flags=None),
        lambda d: d.update(flags=None, imageData=None, imageHeight=None),
    ]
    assert _fast_valid(good) and _validator().is_valid(good)
    for i, mutate in enumerate(mutations):
        d = json.loads(json.dumps(good))
        mutate(d)
        assert _fast_valid(d) == _validator().is_valid(d), i


# ----------------------------------------------------------------------------- limits


def test_json_depth_scan_ignores_brackets_in_strings() -> None:
    from conceptkit.jsonfile import depth

    cases = {
        b"5": 0,
        b"[]": 1,
        b'{"a": [{}, [[1]]]}': 4,
        b'{"a": "[[[[", "b": "\\"[", "c": "\\\\", "d": ["]]"]}': 2,
        b"[" * 300 + b"]" * 300: 300,
    }
    assert {k[:20]: depth(k) for k in cases} == {k[:20]: v for k, v in cases.items()}


def test_json_documents_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conceptkit.jsonfile import load

    def error(raw: bytes) -> str:
        path = tmp_path / "a.json"
        path.write_bytes(raw)
        with pytest.raises(FormatError) as info:
            load(path)
        return str(info.value)

    assert error(b'{"a": 1,\n "b": [2, NaN]}').endswith(
        "a.json: line 2, column 11: malformed JSON: NaN is not a JSON number"
    )
    assert "line 1, column 7: malformed JSON: an integer of more than 4300 digits" in error(
        b'{"a": ' + b"7" * 5000 + b"}"
    )
    assert error(b"[" * 100_000 + b"]" * 100_000).endswith(
        "the nesting depth declares 100,000, over the limit of 200 "
        "(raise it with CONCEPTKIT_LIMIT_JSON_DEPTH=N if the file is trusted)"
    )
    assert "the nesting depth declares 201" in error(b"[" * 201 + b"]" * 201)
    assert error(b" \n").endswith("a.json: is empty, expected a JSON document")
    assert "a.json: is not UTF-8 text" in error(b'{"a": "\xe9"}')
    (tmp_path / "d.json").mkdir()
    with pytest.raises(FormatError, match=r"d\.json: is a folder, expected a JSON file"):
        load(tmp_path / "d.json")
    monkeypatch.setenv("CONCEPTKIT_LIMIT_FILE_BYTES", "10")
    assert "the JSON file declares 12, over the limit of 10" in error(b'{"a": [1,2]}')


def test_numbers_declared_sizes_and_coordinates(tmp_path: Path) -> None:
    jpeg(tmp_path / "img.jpg")
    write(tmp_path / "a.json", doc([shape("a", [[0, 0], [1e300, 0], [5, 5]])]))
    with pytest.raises(
        FormatError, match=r"\$\.shapes\[0\]\.points: a coordinate declares 1e\+300"
    ):
        one(tmp_path)
    (tmp_path / "a.json").write_text(
        json.dumps(doc([shape("a", [[0, 0], [9.5, 0], [5, 5]])])).replace("9.5", "1e999")
    )
    with pytest.raises(FormatError, match=r"\$\.shapes\[0\]\.points: a coordinate is not a finite"):
        one(tmp_path)
    write(tmp_path / "a.json", doc([], imageWidth=70000))
    with pytest.raises(FormatError, match=r"\$\.imageWidth: image width declares 70,000"):
        one(tmp_path)
    for bad in (True, "40", 0, -3, 40.5):
        write(tmp_path / "a.json", doc([], imageWidth=bad))
        with pytest.raises(FormatError, match=r"a\.json: \$\.imageWidth: "):
            one(tmp_path)
