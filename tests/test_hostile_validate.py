"""Hostile Broden folders: `conceptkit validate` reports each defect as its finding (exit 1, no
traceback), and the readers behind `dissect` and `report` refuse the same folders with one line
naming the file and the line (tests/hostile.py: memory and time caps, private TMPDIR left empty,
workspace unchanged).

Defects: paths leaving images/ (absolute, ``..``, a symbolic link out), declared sizes and label
numbers over conceptkit.limits, numbers that are not plain ASCII (nan, inf, 1e999, ², negative
or zero sizes), a non-UTF-8 index.csv, a field over 128 KiB, a folder where index.csv should
be, a byte-order mark, and PNG headers that claim 50000 x 50000 pixels in 300 bytes.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import synthetic_run
from conftest import resnet18_weights
from hostile import MEM_CAP, error_line, run_hostile, tree_state

import conceptkit

# torch's own compiler cache, not a conceptkit temporary file (see test_hostile_dissect.py)
ENV = {"TORCHINDUCTOR_CACHE_DIR": str(Path(tempfile.gettempdir()) / "ck-test-inductor")}
ROW = 3  # the index.csv line every row defect is put on (image syn/000001.jpg)


def huge_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG of a few dozen bytes whose header declares ``width x height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace holding a clean 6-image Broden folder ``data`` (0 errors)."""
    root = tmp_path / "ws"
    synthetic_run.make_broden(root / "data", images=6)
    return root


def edit_row(data: Path, old: str, new: str, line: int = ROW) -> None:
    """Replace ``old`` by ``new`` on one line of index.csv."""
    index = data / "index.csv"
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    index.write_text("".join(lines), encoding="utf-8")


def run_validate(ws: Path) -> dict:
    """`conceptkit validate data --json` under the harness's memory cap; the JSON document.

    Asserts exit 1, no traceback, an empty private TMPDIR and an unchanged workspace.
    """
    tmp = Path(tempfile.mkdtemp(prefix="hostile-tmp-", dir=ws.parent))
    before = tree_state(ws)
    proc = subprocess.run(
        [sys.executable, "-m", "conceptkit", "validate", "data", "--json", "--min-images", "0"],
        cwd=ws,
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (MEM_CAP, MEM_CAP)),
    )
    shown = f"--- stderr:\n{proc.stderr}--- stdout:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.returncode == 1, shown
    assert list(tmp.iterdir()) == [], shown
    tmp.rmdir()
    assert tree_state(ws) == before
    doc: dict = json.loads(proc.stdout)
    return doc


def the_finding(doc: dict, code: str) -> dict:
    hits = [f for f in doc["findings"] if f["code"] == code]
    assert hits, (code, doc["counts"])
    return hits[0]


# ----------------------------------------------------------------------------- the defects

Defect = Callable[[Path], None]


def _symlinked_plane(data: Path) -> None:
    outside = data.parent / "secret.png"
    plane = data / "images" / "syn" / "000001_object.png"
    outside.write_bytes(plane.read_bytes())
    plane.unlink()
    plane.symlink_to(outside)


def _field_over_limit(data: Path) -> None:
    edit_row(data, ",train,", "," + "x" * (129 << 10) + ",")


def _bom(data: Path) -> None:
    index = data / "index.csv"
    index.write_bytes(b"\xef\xbb\xbf" + index.read_bytes())


def _not_utf8(data: Path) -> None:
    index = data / "index.csv"
    lines = index.read_bytes().splitlines(keepends=True)
    lines[ROW - 1] = lines[ROW - 1].replace(b"train", b"tr\xe9in")
    index.write_bytes(b"".join(lines))


def _folder_index(data: Path) -> None:
    (data / "index.csv").unlink()
    (data / "index.csv").mkdir()


def _huge_image(data: Path) -> None:
    (data / "images" / "syn" / "000001.jpg").write_bytes(huge_png())


def _huge_plane(data: Path) -> None:
    (data / "images" / "syn" / "000001_part.png").write_bytes(huge_png())


def _label_number(value: str) -> Defect:
    def edit(data: Path) -> None:
        label = data / "label.csv"
        text = label.read_text(encoding="utf-8")
        label.write_text(text.replace("\n14,blue,", f"\n{value},blue,"), encoding="utf-8")

    return edit


def _replace_in(name: str, old: str, new: str) -> Defect:
    def edit(data: Path) -> None:
        text = (data / name).read_text(encoding="utf-8")
        assert old in text, (name, old)
        (data / name).write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def _row(old: str, new: str) -> Defect:
    return lambda data: edit_row(data, old, new)


# name -> (defect, validate's code, words in its message, line of the finding)
VALIDATE: dict[str, tuple[Defect, str, str, int | None]] = {
    "absolute image": (
        _row("syn/000001.jpg", "/etc/hostname"),
        "E110",
        "is an absolute path",
        ROW,
    ),
    "image climbing out": (
        _row("syn/000001.jpg", "../../label.csv"),
        "E110",
        "climbs out",
        ROW,
    ),
    "windows absolute plane": (
        _row("syn/000001_object.png", "C:\\Windows\\x.png"),
        "E110",
        "is an absolute path",
        ROW,
    ),
    "plane linked outside": (_symlinked_plane, "E110", "symbolic link", ROW),
    "ih over image_side": (_row(",32,32,16,16,", ",70000,32,16,16,"), "E111", "ih = 70,000", ROW),
    "plane pixels over image_pixels": (
        _row(",32,32,16,16,", ",32,32,60000,60000,"),
        "E111",
        "3,600,000,000 pixels",
        ROW,
    ),
    "image-level label over label_number": (
        _row(",11,", ",99999999999,"),
        "E111",
        "label 99,999,999,999",
        ROW,
    ),
    "zero sh": (_row(",32,32,16,16,", ",32,32,0,16,"), "E107", "below the minimum 1", ROW),
    "negative iw": (_row(",32,32,16,16,", ",32,-32,16,16,"), "E107", "below the minimum 1", ROW),
    "nan size": (_row(",32,32,16,16,", ",nan,32,16,16,"), "E106", "expected an integer", ROW),
    "superscript size": (_row(",32,32,16,16,", ",³²,32,16,16,"), "E106", "ASCII digits", ROW),
    "1e999 coverage": (
        _replace_in("label.csv", ",0.214844,", ",1e999,"),
        "E106",
        "finite number",
        2,
    ),
    "superscript image-level label": (_row(",11,", ",²,"), "E106", "not ASCII 0-9", ROW),
    "label number 2**31": (_label_number(str(2**31)), "E107", "above the maximum 65535", 15),
    "huge image header": (_huge_image, "E105", "over the limit", ROW),
    "huge plane header": (_huge_plane, "E105", "over the limit", ROW),
    "index not UTF-8": (_not_utf8, "E102", "not UTF-8", ROW),
    "field over 128 KiB": (_field_over_limit, "E102", "field larger than field limit", ROW),
    "index.csv is a folder": (_folder_index, "E102", "is a folder", None),
    "byte-order mark": (_bom, "E102", "byte-order mark", 1),
    "category name with a path": (
        _replace_in("category.csv", "color,", "../../color,"),
        "E107",
        "does not match the pattern",
        5,
    ),
}


@pytest.mark.parametrize("case", sorted(VALIDATE), ids=lambda c: c.replace(" ", "-"))
def test_validate_reports_the_defect(ws: Path, case: str) -> None:
    defect, code, words, line = VALIDATE[case]
    defect(ws / "data")
    doc = run_validate(ws)
    hit = the_finding(doc, code)
    assert words in hit["message"], hit
    assert hit["line"] == line, hit
    assert hit["severity"] == "error"


def test_validate_clean_workspace_has_no_error(ws: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conceptkit", "validate", "data", "--min-images", "0"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0 errors, 0 warnings", proc.stdout


def test_validate_never_reads_a_codes_file_outside(ws: Path) -> None:
    """A category named ``../x`` must not make validate open ``c_../x.csv`` outside the folder."""
    (ws / "c_").mkdir()
    (ws / "c_" / "color.csv").write_text("not,the,header\n")  # what c_../../color.csv would hit
    VALIDATE["category name with a path"][0](ws / "data")
    doc = run_validate(ws)
    assert all(f["file"] != "c_../../color.csv" for f in doc["findings"])


# ----------------------------------------------------------------------------- dissect, report

# name -> (defect, the words the single error line must contain)
READERS: dict[str, tuple[Defect, list[str]]] = {
    "absolute image": (_row("syn/000001.jpg", "/etc/hostname"), ["index.csv", f"line {ROW}"]),
    "plane linked outside": (_symlinked_plane, ["index.csv", f"line {ROW}", "symbolic link"]),
    "ih over image_side": (
        _row(",32,32,16,16,", ",70000,32,16,16,"),
        ["index.csv", f"line {ROW}", "column ih", "CONCEPTKIT_LIMIT_IMAGE_SIDE"],
    ),
    "zero sh": (_row(",32,32,16,16,", ",32,32,0,16,"), ["index.csv", f"line {ROW}", "column sh"]),
    "superscript image-level label": (
        _row(",11,", ",²,"),
        ["index.csv", f"line {ROW}", "column scene"],
    ),
    "label number 2**31": (_label_number(str(2**31)), ["label.csv", "line 15", "column number"]),
    "1e999 coverage": (VALIDATE["1e999 coverage"][0], ["label.csv", "line 2", "column coverage"]),
    "index not UTF-8": (_not_utf8, ["index.csv", f"line {ROW}", "not UTF-8"]),
    "field over 128 KiB": (_field_over_limit, ["index.csv", f"line {ROW}", "field limit"]),
    "index.csv is a folder": (_folder_index, ["index.csv", "is a folder"]),
    "byte-order mark": (_bom, ["index.csv", "line 1", "byte-order mark"]),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resnet18_weights(tmp_path_factory.mktemp("weights") / "r18.pth")


@pytest.mark.parametrize(
    "case",
    ["plane linked outside", "ih over image_side", "label number 2**31", "index not UTF-8"],
    ids=lambda c: c.replace(" ", "-"),
)
def test_dissect_refuses_in_one_line(ws: Path, weights: Path, case: str) -> None:
    defect, names = READERS[case]
    defect(ws / "data")
    args: list[str | Path] = [
        "dissect", "--model", weights, "--arch", "resnet18", "--data", "data", "--layer",
        "layer2", "--batch-size", "2", "--workers", "0", "--no-report", "-o", "out",
    ]  # fmt: skip
    proc = run_hostile(args, ws, names=names, env=ENV)
    assert "layout error" in error_line(proc)


@pytest.fixture
def run_ws(ws: Path) -> Path:
    """``ws`` with a finished (fabricated) run ``out`` of ``data`` and its report built."""
    synthetic_run.make_run(ws / "out", ws / "data", {"l": (4, 2)})
    conceptkit.build_report(ws / "out", workers=1)
    return ws


# the report reads only index.csv of the dataset (a folder there is its own "dataset not there")
REPORT = sorted(
    c for c in READERS if "label" not in c and "coverage" not in c and "folder" not in c
)


@pytest.mark.parametrize("case", REPORT, ids=lambda c: c.replace(" ", "-"))
def test_report_refuses_in_one_line(run_ws: Path, case: str) -> None:
    defect, names = READERS[case]
    defect(run_ws / "data")
    proc = run_hostile(["report", "out", "--workers", "1"], run_ws, names=names)
    assert "layout error" in error_line(proc)
