"""Hostile input to `convert`, `consistency` and `demo`: one line, exit 1/2, nothing changed.

Every case runs the real command in a subprocess through tests/hostile.py (memory and time cap,
private TMPDIR that must stay empty, the workspace checksummed before and after).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile import run_hostile
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def _export(root: Path, labels: dict[str, str] | None = None) -> Path:
    """A LabelMe export of images ``name -> label`` (default one image 'a' with a car)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, label in (labels or {"a": "car"}).items():
        Image.new("RGB", (16, 12), (90, 30, 200)).save(root / f"{name}.jpg")
        doc = {
            "version": "5.5.0",
            "flags": {},
            "shapes": [
                {"label": label, "points": [[1, 1], [8, 8]], "shape_type": "rectangle"},
            ],
            "imagePath": f"{name}.jpg",
            "imageData": None,
            "imageHeight": 12,
            "imageWidth": 16,
        }
        (root / f"{name}.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """The workspace: everything a command reads and writes lies in it."""
    root = tmp_path / "ws"
    root.mkdir()
    return root


# ----------------------------------------------------------------------------- OUT vs inputs


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_convert_out_overlapping_a_src_is_refused(ws: Path, where: str) -> None:
    """`convert ... -o SRC --force` used to delete the user's own export."""
    src = _export(ws / "proj" / "exp")
    out = {"same": src, "inside": src / "broden", "contains": ws / "proj"}[where]
    run_hostile(
        ["convert", "labelme", src, "-o", out, "--force", "--min-images", "1"],
        ws,
        code=2,
        names=[str(out), "choose an OUT outside"],
    )


def test_convert_out_through_a_symlink_to_the_src_is_refused(ws: Path) -> None:
    src = _export(ws / "exp")
    (ws / "alias").symlink_to(src)
    run_hostile(
        ["convert", "labelme", ws / "alias", "-o", src / "out", "--force"],
        ws,
        code=2,
        names=["choose an OUT outside"],
    )


def test_convert_out_inside_the_images_folder_is_refused(ws: Path) -> None:
    src = _export(ws / "exp")
    (ws / "imgs").mkdir()
    run_hostile(
        ["convert", "labelme", src, "--images", ws / "imgs", "-o", ws / "imgs" / "out"],
        ws,
        code=2,
        names=["lies inside the input", "imgs"],
    )


def test_convert_out_holding_the_vocabulary_is_refused(ws: Path) -> None:
    """`-o data --force --concepts data/concepts.csv` would replace the user's edited file."""
    src = _export(ws / "exp")
    (ws / "data").mkdir()
    (ws / "data" / "concepts.csv").write_text("name,category,synonyms\ncar,object,auto\n")
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "data", "--force", "--concepts"]
        + [ws / "data" / "concepts.csv"],
        ws,
        code=2,
        names=["contains the input", "concepts.csv"],
    )


def test_convert_force_does_not_replace_a_foreign_folder(ws: Path) -> None:
    src = _export(ws / "exp")
    (ws / "mine").mkdir()
    (ws / "mine" / "thesis.tex").write_text("keep")
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "mine", "--force"],
        ws,
        code=2,
        names=["mine", "not written by conceptkit"],
    )


def test_consistency_out_inside_a_source_is_refused(ws: Path) -> None:
    a = _export(ws / "alice")
    b = _export(ws / "bob")
    run_hostile(
        ["consistency", a, f"labelme:{b}", "-o", b / "report", "--force"],
        ws,
        code=2,
        names=["report", "lies inside the input"],
    )


def test_demo_out_equal_to_the_examples_is_refused(ws: Path) -> None:
    import shutil

    data = ws / "data"
    for name in ("labelme", "labelme_annotator2"):
        shutil.copytree(EXAMPLES / name, data / name)
    shutil.copy(EXAMPLES / "concepts.csv", data / "concepts.csv")
    run_hostile(
        ["demo", data, "--examples", data, "--force"],
        ws,
        code=2,
        names=["data", "is also an input"],
    )


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("=HYPERLINK(1)", "a spreadsheet runs as a formula"),
        ("+1+1", "a spreadsheet runs as a formula"),
        ("@sum", "a spreadsheet runs as a formula"),
        ("-x", "a spreadsheet runs as a formula"),
        ("-", "a spreadsheet runs as a formula"),
        ("car;tree", "holds ';'"),
        ("car\x07", "holds a control character"),
    ],
)
def test_label_names_the_layout_cannot_hold_are_refused(ws: Path, label: str, why: str) -> None:
    src = _export(ws / "exp", {"a": label})
    proc = run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--min-images", "1"],
        ws,
        names=["a.json", "$.shapes[0]", why],
    )
    if "formula" in why:
        assert "--concepts" in proc.stderr  # the hint: rename through the vocabulary


def test_formula_label_renamed_through_concepts_converts(ws: Path) -> None:
    import subprocess
    import sys

    src = _export(ws / "exp", {"a": "=cmd", "b": "-5"})
    (ws / "v.csv").write_text('name,category,synonyms\ncommand,object,"=cmd"\n')
    out = ws / "out"
    args = ["convert", "labelme", str(src), "-o", str(out), "--min-images", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "conceptkit", *args, "--concepts", str(ws / "v.csv")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    names = [line.split(",")[1] for line in (out / "label.csv").read_text().splitlines()[1:]]
    assert names == ["-5", "command"]  # '-5' is a number, not a formula


def test_two_images_that_become_one_name_are_refused(ws: Path) -> None:
    """';' in an image name becomes '_' (index.csv cells split on ';'): a clash is an error."""
    src = _export(ws / "exp", {"a;b": "car", "a_b": "car"})
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--min-images", "1"],
        ws,
        names=["'a;b.jpg'", "'a_b.jpg'", "both become a_b.jpg"],
    )


# ----------------------------------------------------------------------------- vocabulary CSV


@pytest.mark.parametrize(
    ("text", "place", "why"),
    [
        ("name,category,synonyms,plural\ncar,object,,nan\n", "line 2, column plural", "nan"),
        ("name,category,synonyms,plural\ncar,object,,-1\n", "line 2, column plural", "-1"),
        ("name,category,synonyms\n=cmd,object,\n", "line 2, column name", "formula"),
        ("name,category,synonyms\ncar,-object,\n", "line 2, column category", "-object"),
        ("name,category,synonyms\ncar,object,\n\x00bus,object,\n", "line 3", "control character"),
        ('name,category,synonyms\ncar,object,"auto\n', "line 2", "not a valid CSV"),
        ('name,category,synonyms\ncar,object,"a"b\n', "line 2", "not a valid CSV"),
        ("name,category\ncar,object\n", "line 1", "header must be"),
    ],
)
def test_bad_vocabulary_is_one_line(ws: Path, text: str, place: str, why: str) -> None:
    src = _export(ws / "exp")
    (ws / "v.csv").write_text(text, encoding="utf-8")
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--concepts", ws / "v.csv"],
        ws,
        names=["v.csv", place, why],
    )


def test_vocabulary_not_utf8_or_with_a_huge_field(ws: Path) -> None:
    src = _export(ws / "exp")
    (ws / "v.csv").write_bytes(b"name,category,synonyms\ncar,object,\xff\xfe\n")
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--concepts", ws / "v.csv"],
        ws,
        names=["v.csv", "not UTF-8"],
    )
    (ws / "v.csv").write_text("name,category,synonyms\ncar,object," + "x" * 500 + "\n")
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--concepts", ws / "v.csv"],
        ws,
        names=["v.csv", "line 2", "over the limit of 100"],
        env={"CONCEPTKIT_LIMIT_CSV_FIELD_CHARS": "100"},
    )


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("option", "why"),
    [
        (["--size", "100000"], "from 2 to 4096"),
        (["--size", "1"], "from 2 to 4096"),
        (["--size", "nan"], "'nan'"),
        (["--size", "-224"], "'-224'"),
        (["--size", "2_24"], "'2_24'"),
        (["--workers", "-1"], "'-1'"),
        (["--workers", "0"], "range 1 to 256"),
        (["--workers", "100000"], "range 1 to 256"),
        (["--min-images", "inf"], "'inf'"),
        (["--min-images", "0"], "range 1 to"),
    ],
)
def test_convert_numbers_are_strict_usage_errors(ws: Path, option: list[str], why: str) -> None:
    src = _export(ws / "exp")
    run_hostile(["convert", "labelme", src, "-o", ws / "out", *option], ws, code=2, names=[why])


@pytest.mark.parametrize(
    "option",
    [
        ["--fail-under", "nan"],
        ["--fail-under", "inf"],
        ["--fail-under", "-0.5"],
        ["--iou-threshold", "nan"],
        ["--iou-threshold", "0"],
        ["--iou-threshold", "1e400"],
    ],
)
def test_consistency_numbers_are_strict_usage_errors(ws: Path, option: list[str]) -> None:
    a = _export(ws / "alice")
    b = _export(ws / "bob")
    run_hostile(["consistency", a, b, *option], ws, code=2, names=[option[0]])


def test_image_twice_in_one_export_is_one_line(ws: Path) -> None:
    src = _export(ws / "exp")
    (src / "sub").mkdir()
    doc = json.loads((src / "a.json").read_text())
    doc["imagePath"] = "../a.jpg"
    (src / "sub" / "a.json").write_text(json.dumps(doc))
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--min-images", "1"],
        ws,
        names=["a.json", "'a.jpg' is annotated twice in one export", "--keep-going"],
    )


# ----------------------------------------------------------------------------- declared sizes


def _png_header(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes that declares ``width x height`` pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_annotation_declaring_a_huge_image_is_refused_before_painting(ws: Path) -> None:
    src = _export(ws / "exp")
    doc = json.loads((src / "a.json").read_text())
    doc["imageHeight"] = doc["imageWidth"] = 60_000  # 3.6 G pixels
    (src / "a.json").write_text(json.dumps(doc))
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--min-images", "1"],
        ws,
        names=["a.json", "over the limit"],
    )
    run_hostile(["consistency", src, f"labelme:{src}"], ws, names=["a.json", "over the limit"])


def test_image_file_declaring_a_huge_size_is_refused(ws: Path) -> None:
    src = _export(ws / "exp")
    (src / "a.png").write_bytes(_png_header(60_000, 60_000))
    doc = json.loads((src / "a.json").read_text())
    doc["imagePath"] = "a.png"
    (src / "a.json").write_text(json.dumps(doc))
    (src / "a.jpg").unlink()
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--min-images", "1", "--workers", "2"],
        ws,
        names=["a.json", "over the limit"],
    )


def test_missing_image_with_workers_leaves_nothing(ws: Path) -> None:
    src = _export(ws / "exp", {f"i{k}": "car" for k in range(6)})
    (src / "i3.jpg").unlink()
    run_hostile(
        ["convert", "labelme", src, "-o", ws / "out", "--min-images", "1", "--workers", "3"],
        ws,
        names=["i3.json", "not found"],
    )
