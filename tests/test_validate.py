"""`conceptkit validate`: the clean fixture passes; each corrupted copy yields its own code."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conceptkit import broden
from conceptkit.cli import cli
from conceptkit.validate import CODES, summary, validate


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link images (cheap); every mutation below unlinks a file before rewriting it."""
    if src.endswith(".csv"):
        shutil.copy2(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture
def copy(mini_broden: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(mini_broden, dst, copy_function=_link_or_copy)
    return dst


def _write(path: Path, data: str | bytes) -> None:
    path.unlink(missing_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    _write(path, text.replace(old, new, count))


def _plane(d: Path, rel: str) -> np.ndarray:
    return broden.decode_plane(d / "images" / rel)


def _save_plane(d: Path, rel: str, arr: np.ndarray) -> None:
    (d / "images" / rel).unlink()
    broden.save_plane(arr, d / "images" / rel)


def _save_image(d: Path, rel: str, h: int, w: int) -> None:
    (d / "images" / rel).unlink()
    Image.new("RGB", (w, h), (10, 20, 30)).save(d / "images" / rel)


def _paint(d: Path, rel: str, value: int) -> None:
    arr = _plane(d, rel)
    arr[0:3, 0:3] = value
    _save_plane(d, rel, arr)


# row 1 of index.csv (line 2): mini/000001.jpg, part planes _part_1/_part_2, scene 3, texture 11
ROW1 = (
    "mini/000001.jpg,train,224,224,112,112,mini/000001_part_1.png;mini/000001_part_2.png,3,"
    "mini/000001_object.png,mini/000001_color.png,11"
)


def _dup_row(d: Path) -> None:
    text = (d / "index.csv").read_text()
    _write(d / "index.csv", text + ROW1 + "\n")


def _other_size(d: Path) -> None:
    """Row 1's image and planes at 200x200 / 100x100, consistently declared."""
    _save_image(d, "mini/000001.jpg", 200, 200)
    for p in ("part_1", "part_2", "object", "color"):
        rel = f"mini/000001_{p}.png"
        small = _plane(d, rel)[:100, :100]
        _save_plane(d, rel, small)
    _edit(d / "index.csv", "000001.jpg,train,224,224,112,112", "000001.jpg,train,200,200,100,100")


def _not_square(d: Path) -> None:
    _save_image(d, "mini/000001.jpg", 224, 200)
    _edit(d / "index.csv", "000001.jpg,train,224,224", "000001.jpg,train,224,200")


CORRUPTIONS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "missing label.csv": ("E101", lambda d: (d / "label.csv").unlink()),
    "missing c_color.csv": ("E101", lambda d: (d / "c_color.csv").unlink()),
    "missing images folder": ("E101", lambda d: shutil.rmtree(d / "images")),
    "label.csv not UTF-8": (
        "E102",
        lambda d: _write(d / "label.csv", (d / "label.csv").read_bytes() + b"18,caf\xe9,x(1)\n"),
    ),
    "category.csv header": ("E103", lambda d: _edit(d / "category.csv", "first,last", "lo,hi")),
    "plane missing": ("E104", lambda d: (d / "images/mini/000007_object.png").unlink()),
    "plane not a PNG": ("E105", lambda d: _write(d / "images/mini/000007_color.png", b"junk")),
    "frequency not an integer": (
        "E106",
        lambda d: _edit(d / "c_part.csv", "1,1,upper-half,200,", "1,1,upper-half,2x0,"),
    ),
    "negative coverage": (
        "E107",
        lambda d: _edit(
            d / "label.csv", "1,upper-half,part(200),200,11.527982", "1,upper-half,part(200),200,-1"
        ),
    ),
    "row with an extra cell": ("E108", lambda d: _edit(d / "index.csv", ROW1, ROW1 + ",extra")),
    "duplicate label number": (
        "E109",
        lambda d: _edit(d / "label.csv", "2,rim,", "1,rim,"),
    ),
    "duplicate image": ("E201", _dup_row),
    "image size vs ih/iw": ("E202", lambda d: _save_image(d, "mini/000009.jpg", 220, 220)),
    "plane size vs sh/sw": (
        "E203",
        lambda d: _save_plane(d, "mini/000005_object.png", np.zeros((64, 64), np.int32)),
    ),
    "non-square image": ("E204", _not_square),
    "mixed image sizes": ("E205", _other_size),
    "unknown pixel label": ("E301", lambda d: _paint(d, "mini/000003_object.png", 99)),
    "label under the wrong category": (
        "E302",
        lambda d: _paint(d, "mini/000003_color.png", 4),  # 4 = square, an object label
    ),
    "image-level label of another category": (
        "E303",
        lambda d: _edit(d / "index.csv", ROW1, ROW1.replace(",3,mini", ",8,mini")),
    ),
    "category count": (
        "E401",
        lambda d: _edit(d / "category.csv", "object,4,6,3,", "object,4,6,4,"),
    ),
    "label frequency": (
        "E402",
        lambda d: _edit(
            d / "label.csv", "5,triangle,object(108),108,", "5,triangle,object(108),107,"
        ),
    ),
    "label coverage": ("E403", lambda d: _edit(d / "label.csv", ",6.297353,", ",6.397353,")),
    "code frequency": (
        "E404",
        lambda d: _edit(d / "c_object.csv", "2,5,triangle,108,", "2,5,triangle,18,"),
    ),
    "code coverage": ("E405", lambda d: _edit(d / "c_object.csv", ",8.990195", ",9.990195")),
    "category field not cat(n)": (
        "E406",
        lambda d: _edit(d / "label.csv", "square,object(108)", "square,object"),
    ),
    "codes not dense": ("E407", lambda d: _edit(d / "c_object.csv", "3,6,circle", "4,6,circle")),
    "code name differs": ("E408", lambda d: _edit(d / "c_object.csv", "3,6,circle", "3,6,disc")),
    "category field names an unknown category": (
        "E409",
        lambda d: _edit(d / "label.csv", "striped,texture(86)", "striped,texture(86);shape(1)"),
    ),
    "code of an unknown label": (
        "E410",
        lambda d: _write(
            d / "c_object.csv", (d / "c_object.csv").read_text() + "4,77,ghost,0,0.0\n"
        ),
    ),
    "category without a column": (
        "E501",
        lambda d: _write(
            d / "index.csv",
            "".join(
                line.rsplit(",", 1)[0] + "\n" for line in (d / "index.csv").read_text().splitlines()
            ),
        ),
    ),
    "column without a category": (
        "E502",
        lambda d: _write(
            d / "index.csv",
            "".join(
                line + (",material\n" if i == 0 else ",\n")
                for i, line in enumerate((d / "index.csv").read_text().splitlines())
            ),
        ),
    ),
}


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["validate", *args])
    return res.exit_code, res.output


def test_clean_fixture_passes(mini_broden: Path) -> None:
    code, out = _run(str(mini_broden))
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "0 errors, 0 warnings"
    assert validate(mini_broden) == []


def test_clean_copy_has_no_finding(copy: Path) -> None:
    assert validate(copy) == []


@pytest.mark.parametrize("case", sorted(CORRUPTIONS), ids=lambda c: c.replace(" ", "-"))
def test_each_defect_has_its_code(copy: Path, case: str) -> None:
    want, corrupt = CORRUPTIONS[case]
    corrupt(copy)
    code, out = _run(str(copy), "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert want in doc["counts"], (case, doc["counts"])
    assert doc["errors"] >= 1
    hit = next(f for f in doc["findings"] if f["code"] == want)
    assert hit["name"] == CODES[want][0] and hit["severity"] == "error"
    assert hit["file"] and hit["message"] and hit["hint"]


def test_places_name_file_line_column_and_pixel(copy: Path) -> None:
    _paint(copy, "mini/000003_object.png", 99)
    (copy / "images/mini/000007_object.png").unlink()
    found = {f.code: f for f in validate(copy)}
    f301 = found["E301"]
    assert (f301.file, f301.line, f301.column) == ("images/mini/000003_object.png", 4, "object")
    assert f301.detail == "pixel value 99 at (y=0, x=0), 9 pixels"
    f104 = found["E104"]
    assert (f104.file, f104.line, f104.column) == ("index.csv", 8, "object")
    assert f104.message == "images/mini/000007_object.png is missing"
    # a missing plane makes the recomputed statistics meaningless: compared no further
    assert "W603" in found and "E404" not in found


def test_human_output_lines(copy: Path) -> None:
    (copy / "images/mini/000007_object.png").unlink()
    code, out = _run(str(copy))
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0] == (
        "error E104 index.csv:8 column object: images/mini/000007_object.png is missing"
        " — fix: " + CODES["E104"][2]
    )
    assert lines[-1] == "1 error, 1 warning"


def test_no_netdissect_allows_non_square_and_mixed(copy: Path) -> None:
    _not_square(copy)
    assert _run(str(copy), "--no-netdissect")[0] == 0
    assert {"E204", "E205"} <= set(summary(validate(copy)))


def test_rare_labels_warn_without_failing(copy: Path) -> None:
    code, out = _run(str(copy), "--min-images", "60", "--json")
    doc = json.loads(out)
    assert code == 0
    # dotted (17) is in 50 images; every other label in >= 65
    assert doc["counts"] == {"W601": 1}
    assert doc["findings"][0]["line"] == 18


def test_orphan_file_warns(copy: Path) -> None:
    (copy / "images/mini/stray.png").write_bytes(b"x")
    found = validate(copy)
    assert [(f.code, f.file) for f in found] == [("W602", "images/mini/stray.png")]
    assert _run(str(copy))[0] == 0


def test_findings_capped_per_code(copy: Path) -> None:
    for i in range(1, 6):
        (copy / f"images/mini/00000{i}_object.png").unlink()
    found = validate(copy, max_per_code=2)
    e104 = [f for f in found if f.code == "E104"]
    assert [f.count for f in e104] == [1, 1, 3]
    assert summary(found)["E104"] == 5


def test_parallel_equals_sequential(copy: Path) -> None:
    _paint(copy, "mini/000003_object.png", 99)
    _edit(copy / "c_object.csv", "2,5,triangle,108,", "2,5,triangle,18,")
    seq = validate(copy, jobs=1)
    par = validate(copy, jobs=2)
    assert seq == par and {"E301", "E404"} <= set(summary(seq))


def test_usage_error_exit_2(tmp_path: Path) -> None:
    assert _run(str(tmp_path / "nope"))[0] == 2


def test_human_output_groups_many_findings(copy: Path) -> None:
    text = (copy / "index.csv").read_text().replace(",224,224,112,112,", ",224,224,112,111,")
    _write(copy / "index.csv", text)
    (copy / "images/mini/stray.txt").write_bytes(b"x")
    code, out = _run(str(copy), "--max-findings", "4")
    lines = out.strip().splitlines()
    assert code == 1
    assert [ln.split()[1] for ln in lines[:2]] == ["E203", "E203"]
    assert lines[2] == "  ... 798 more E203 plane-size (see --json)"
    assert lines[3].startswith("warning W602 images/mini/stray.txt: ")
    assert lines[-3:] == [
        "  E203 plane-size: 800",
        "  W602 orphan-file: 1",
        "800 errors, 1 warning",
    ]


def test_progress_reports_rows(mini_broden: Path) -> None:
    calls: list[tuple[int, int]] = []
    assert validate(mini_broden, progress=lambda done, total: calls.append((done, total))) == []
    assert calls[0] == (64, 200) and calls[-1] == (200, 200) and len(calls) == 4


def test_index_not_utf8_mid_file(copy: Path) -> None:
    _write(copy / "index.csv", (copy / "index.csv").read_bytes() + b"mini/\xff.jpg,train\n")
    counts = summary(validate(copy))
    assert counts == {"E102": 1}
