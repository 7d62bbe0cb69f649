"""Hostile run folders given to `conceptkit report`: one line naming the file and the place,
exit 1, no traceback, and the run folder (its previous html/ and plots/ included) unchanged.

Every case starts from a fabricated run (tests/synthetic_run.py, written by the real writer)
whose report was built once, breaks one file, and runs the real command in a subprocess through
tests/hostile.py (memory and time cap, private TMPDIR that must stay empty, the workspace
checksummed before and after).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import synthetic_run
from hostile import run_hostile, tree_state

import conceptkit
from conceptkit.dissection.results import write_npz


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace holding a dataset (``data``) and a run with its report (``out``)."""
    root = tmp_path / "ws"
    out = synthetic_run.make(root, layers={"l": (4, 2)}, images=6)
    conceptkit.build_report(out, workers=1)
    return root


def _results(ws: Path) -> dict[str, Any]:
    return json.loads((ws / "out" / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _save_results(ws: Path, doc: Any) -> None:
    (ws / "out" / "results.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _report(ws: Path, *names: str) -> str:
    """Run `conceptkit report out` on the broken run; return the error line."""
    proc = run_hostile(["report", "out", "--workers", "1"], ws, names=names)
    return next(line for line in proc.stderr.splitlines() if line.startswith("conceptkit: "))


# ----------------------------------------------------------------------------- results.json


@pytest.mark.parametrize(
    "path,value,place",
    [
        (("layers", "l", "units"), "many", "$.layers.l.units"),
        (("layers", "l", "units"), True, "$.layers.l.units"),
        (("layers", "l", "detectors"), -3, "$.layers.l.detectors"),
        (("layers", "l", "units_detail", 2, "iou"), "high", "$.layers.l.units_detail[2].iou"),
        (("layers", "l", "units_detail", 1, "unit"), 99, "$.layers.l.units_detail[1].unit"),
        (("layers", "l", "units_detail"), {"0": 1}, "$.layers.l.units_detail"),
        (("layers", "l", "unique_detectors", "naive", "per_category"), [1, 2], "per_category"),
        (("layers", "l", "files", "topn"), "../../elsewhere.npz", "$.layers.l.files.topn"),
        (("layers", "l", "map_size"), [2], "$.layers.l.map_size"),
        (("data", "categories"), "object", "$.data.categories"),
        (("data", "path"), 17, "$.data.path"),
        (("data", "path"), "da\u0000ta", "$.data.path"),
        (("data", "image_size"), [100000, 100000], "$.data.image_size"),
        (("settings", "iou_threshold"), None, "$.settings.iou_threshold"),
        (("layers",), [], "$.layers"),
    ],
)
def test_results_with_wrong_types(
    ws: Path, path: tuple[str | int, ...], value: Any, place: str
) -> None:
    doc = _results(ws)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _save_results(ws, doc)
    _report(ws, "results.json", place)


def test_results_unit_missing_a_key(ws: Path) -> None:
    doc = _results(ws)
    del doc["layers"]["l"]["units_detail"][3]["unit"]
    _save_results(ws, doc)
    _report(ws, "results.json", "$.layers.l.units_detail[3]", "'unit'")


def test_results_unit_listed_twice(ws: Path) -> None:
    doc = _results(ws)
    doc["layers"]["l"]["units_detail"][1]["unit"] = 0
    _save_results(ws, doc)
    _report(ws, "results.json", "$.layers.l.units_detail", "each of the layer's 4 units once")


def test_results_not_an_object(ws: Path) -> None:
    _save_results(ws, [1, 2, 3])
    _report(ws, "results.json", "$: is a list, expected an object")


def test_results_nested_100000_deep(ws: Path) -> None:
    (ws / "out" / "results.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    _report(ws, "results.json", "nesting depth")


def test_results_truncated(ws: Path) -> None:
    path = ws / "out" / "results.json"
    path.write_bytes(path.read_bytes()[:300])
    _report(ws, "results.json", "malformed JSON", "line ")


def test_results_infinity(ws: Path) -> None:
    path = ws / "out" / "results.json"
    text = path.read_text(encoding="utf-8").replace(
        '"iou_threshold": 0.04', '"iou_threshold": 1e999'
    )
    path.write_text(text, encoding="utf-8")
    _report(ws, "results.json", "$.settings.iou_threshold", "finite")


# ----------------------------------------------------------------------------- arrays


def test_quantile_corrupt(ws: Path) -> None:
    (ws / "out" / "quantile_l.npy").write_bytes(os.urandom(200))
    _report(ws, "quantile_l.npy", "not a .npy array")


def test_quantile_truncated(ws: Path) -> None:
    path = ws / "out" / "quantile_l.npy"
    path.write_bytes(path.read_bytes()[:-5])
    _report(ws, "quantile_l.npy", "declares shape (4,)")


def test_quantile_object_dtype(ws: Path) -> None:
    np.save(ws / "out" / "quantile_l.npy", np.array([1.0, "x", None, 3], dtype=object))
    _report(ws, "quantile_l.npy", "dtype object")


def test_quantile_wrong_rank(ws: Path) -> None:
    np.save(ws / "out" / "quantile_l.npy", np.zeros((4, 1)))
    _report(ws, "quantile_l.npy", "expected 1 dimensions")


def test_quantile_nan(ws: Path) -> None:
    np.save(ws / "out" / "quantile_l.npy", np.array([0.5, np.nan, 1.0, 1.0]))
    _report(ws, "quantile_l.npy", "not a finite number")


def _topn(ws: Path) -> dict[str, np.ndarray]:
    with np.load(ws / "out" / "topn_l.npz", allow_pickle=False) as z:
        return {k: z[k] for k in ("indices", "values", "maps")}


def test_topn_truncated(ws: Path) -> None:
    path = ws / "out" / "topn_l.npz"
    path.write_bytes(path.read_bytes()[:-40])
    _report(ws, "topn_l.npz", "cannot be read as .npz")


def test_topn_not_a_zip(ws: Path) -> None:
    (ws / "out" / "topn_l.npz").write_bytes(b"PK\x03\x04" + os.urandom(500))
    _report(ws, "topn_l.npz")


def test_topn_object_dtype(ws: Path) -> None:
    arrays = _topn(ws)
    with zipfile.ZipFile(ws / "out" / "topn_l.npz", "w") as zf:
        for key in ("indices", "values"):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[key])
            zf.writestr(f"{key}.npy", buf.getvalue())
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
        zf.writestr("maps.npy", buf.getvalue())
    _report(ws, "topn_l.npz", "array 'maps'", "dtype object")


def test_topn_declares_a_huge_array(ws: Path) -> None:
    """A 200-byte member that declares 40 GB must be refused before anything is allocated."""
    arrays = _topn(ws)
    with zipfile.ZipFile(ws / "out" / "topn_l.npz", "w") as zf:
        for key in ("indices", "values"):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[key])
            zf.writestr(f"{key}.npy", buf.getvalue())
        buf = io.BytesIO()
        header = {"descr": "<f2", "fortran_order": False, "shape": (4, 5, 100_000, 100_000)}
        np.lib.format.write_array_header_1_0(buf, header)
        zf.writestr("maps.npy", buf.getvalue() + b"\0" * 64)
    _report(ws, "topn_l.npz", "array 'maps'", "declares shape (4, 5, 100000, 100000)")


def test_topn_missing_array(ws: Path) -> None:
    arrays = _topn(ws)
    del arrays["values"]
    write_npz(ws / "out" / "topn_l.npz", arrays)
    _report(ws, "topn_l.npz", "has no array 'values'")


def test_topn_row_outside_the_dataset(ws: Path) -> None:
    arrays = _topn(ws)
    arrays["indices"][2, 1] = 6  # the dataset has rows 0..5
    write_npz(ws / "out" / "topn_l.npz", arrays)
    _report(ws, "topn_l.npz", "indices[2, 1]", "6 rows")


def test_topn_maps_of_the_wrong_shape(ws: Path) -> None:
    arrays = _topn(ws)
    arrays["maps"] = arrays["maps"][:, :3]
    write_npz(ws / "out" / "topn_l.npz", arrays)
    _report(ws, "topn_l.npz", "do not match indices")


# ----------------------------------------------------------------------------- the dataset


def test_index_path_outside_the_dataset(ws: Path) -> None:
    index = ws / "data" / "index.csv"
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace("syn/000002.jpg", "../../../../etc/hostname", 1)
    index.write_text("".join(lines), encoding="utf-8")
    _report(ws, "index.csv", "line 4")


def test_dataset_image_corrupt(ws: Path) -> None:
    (ws / "data" / "images" / "syn" / "000003.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    _report(ws, "000003.jpg", "cannot be read")


def test_dataset_missing(ws: Path) -> None:
    doc = _results(ws)
    doc["data"]["path"] = str(ws / "nowhere")
    _save_results(ws, doc)
    _report(ws, "nowhere", "dataset of this run")


def test_tally_with_bad_numbers_is_not_read(ws: Path) -> None:
    """The report needs no tally (results.json holds every unit's label and IoU): a broken
    tally CSV changes nothing, the report is rebuilt to the same bytes."""
    before = tree_state(ws / "out")
    tally = ws / "out" / "tally_l.csv"
    tally.write_text("unit,category,label,score\nx,object,car,not-a-number\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "conceptkit", "report", "out", "--workers", "1", "--force-images"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    after = tree_state(ws / "out")
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {
        "tally_l.csv"
    }


# ----------------------------------------------------------------------------- interrupted


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action. A shell's background job (a CI
    runner's, say) starts with SIGINT ignored, which the child would inherit, and Python then
    installs no KeyboardInterrupt handler: the test would interrupt nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_report_leaves_out_as_it_was(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """A signal while the new report is being drawn: old html/ and plots/ stay, no temp folder."""
    # 400 units: the strips take long enough (about 0.7 s on 2 cores) that the signal lands
    # while they are drawn, not after (120 units took 0.2 s, a window a loaded machine missed)
    out = synthetic_run.make(tmp_path / "ws", layers={"l": (400, 4)}, images=40, size=96)
    conceptkit.build_report(out, workers=2)
    before = tree_state(tmp_path / "ws")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conceptkit", "report", str(out), "--force-images"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not list(out.glob(".report.tmp-*/html/image/*.jpg")):  # strips are being drawn
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the report never started drawing strips"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert list(out.glob(".*tmp*")) == []
    assert tree_state(tmp_path / "ws") == before
