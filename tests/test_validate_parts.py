"""The parts of conceptkit.validate on their own: typing, the finding cap, the on-disk store,
and cleanup (database closed, pool joined, no temp file) when a run is interrupted."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conceptkit import broden
from conceptkit.validate import refs as refs_module
from conceptkit.validate import summary, validate
from conceptkit.validate.findings import Collector, finding
from conceptkit.validate.refs import RefStore
from conceptkit.validate.tables import convert

INT_MIN1 = {"name": "ih", "type": "integer", "constraints": {"minimum": 1}}
NUMBER = {"name": "coverage", "type": "number", "constraints": {"minimum": 0}}
REQUIRED = {"name": "name", "type": "string", "constraints": {"required": True}}
PATTERN = {"name": "category", "type": "string", "constraints": {"pattern": r"^\w+\(\d+\)$"}}


@pytest.mark.parametrize(
    ("spec", "text", "want"),
    [
        (INT_MIN1, "224", (224, None)),
        (INT_MIN1, "2x0", (None, "E106")),
        (INT_MIN1, "0", (0, "E107")),
        (NUMBER, "0.5", (0.5, None)),
        (NUMBER, "nan", (None, "E106")),
        (NUMBER, "-1", (-1.0, "E107")),
        (REQUIRED, "", (None, "E107")),
        (REQUIRED, "car", ("car", None)),
        (PATTERN, "object(3)", ("object(3)", None)),
        (PATTERN, "object", ("object", "E107")),
        (PATTERN, "", ("", None)),
    ],
)
def test_convert_types_and_constraints(spec: dict[str, Any], text: str, want: tuple) -> None:
    value, code, message = convert(spec, text)
    assert (value, code) == want
    assert (message is None) == (code is None)


def test_collector_caps_per_code_and_sorts() -> None:
    out = Collector(max_per_code=2)
    for line in (9, 3, 7, 5, 4):
        out.emit("E104", "index.csv", "missing", line=line)
    out.emit("W602", "images/a.png", "not referenced")
    out.emit("E101", "label.csv", "missing")
    got = [(f.code, f.line, f.count) for f in out.result()]
    # first two E104 by emission order listed (sorted by line), the other three summed
    assert got == [
        ("E101", None, 1),
        ("E104", 3, 1),
        ("E104", 9, 1),
        ("E104", None, 3),
        ("W602", None, 1),
    ]
    assert out.result()[3].message == "3 more E104 missing-reference findings not listed"


def test_finding_place_text() -> None:
    f = finding("E301", "images/a.png", "label 9", line=4, column="object", detail="pixel (y=0)")
    assert f.place == "line 4, column object, pixel (y=0)"
    assert f.to_dict()["name"] == "unknown-label" and f.severity == "error"


def test_ref_store_records_and_closes() -> None:
    with RefStore() as store:
        assert store.add_image("a.jpg", 2) is None
        assert store.add_image("b.jpg", 3) is None
        assert store.add_image("a.jpg", 5) == 2
        store.add_ref("a_object.png")
        assert list(store.unreferenced(["z.png", "a.jpg", "a_object.png", "c.png", "z.png"])) == [
            "c.png",
            "z.png",
        ]
    with pytest.raises(RuntimeError, match="outside its with-block"):
        store.add_ref("x")


def test_ref_store_closed_on_exception() -> None:
    with pytest.raises(ValueError), RefStore() as store:
        db = store.db
        raise ValueError("boom")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.execute("SELECT 1")


class _Interrupt:
    """A progress callback that raises KeyboardInterrupt at its second call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, done: int, total: int) -> None:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupt_closes_database_and_pool(
    mini_broden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    opened: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kw: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kw)
        opened.append(conn)
        return conn

    monkeypatch.setattr(refs_module.sqlite3, "connect", connect)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    progress = _Interrupt()
    with pytest.raises(KeyboardInterrupt):
        validate(mini_broden, progress=progress, jobs=jobs)
    assert progress.calls == 2 and len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")
    assert multiprocessing.active_children() == []
    assert list(temp.iterdir()) == []


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, forked by any of its threads."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action. A shell's background job (a CI
    runner's, say) starts with SIGINT ignored, which the child would inherit, and Python then
    installs no KeyboardInterrupt handler: the test would interrupt nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_with_workers_exits_130_cleanly(mini_broden: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group) during `validate --jobs 2`: exit 130, no
    traceback from the workers or the main process, no temporary file, no process left."""
    data = tmp_path / "data"
    data.mkdir()
    for p in mini_broden.glob("*.csv"):
        (data / p.name).write_bytes(p.read_bytes())
    (data / "images").symlink_to(mini_broden / "images", target_is_directory=True)
    header, *rows = (mini_broden / "index.csv").read_text().splitlines(keepends=True)
    (data / "index.csv").write_text(header + "".join(rows) * 100)  # 20,000 rows: ~12 s
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "conceptkit", "validate", str(data), "--jobs", "2"],
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2 and proc.poll() is None, "the workers never started"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err + out, err
    assert list(temp.iterdir()) == []
    assert len(workers) >= 2 and not any(Path(f"/proc/{w}").exists() for w in workers)


def test_orphan_scan_does_not_follow_a_link_loop(mini_broden: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(mini_broden, data, copy_function=os.link)
    (data / "images" / "mini" / "loop").symlink_to(data / "images", target_is_directory=True)
    found = validate(data)
    assert [(f.code, f.file) for f in found] == [("W602", "images/mini/loop")]


def test_plane_of_many_stray_values_is_counted_not_listed(
    mini_broden: Path, tmp_path: Path
) -> None:
    """12,544 distinct unknown values in one plane: each counted once (first pixel, count),
    200 listed, the rest summed; found by one sort, not one scan per value."""
    data = tmp_path / "data"
    shutil.copytree(mini_broden, data, copy_function=os.link)
    plane = data / "images" / "mini" / "000003_object.png"
    plane.unlink()
    values = (1000 + np.arange(112 * 112, dtype=np.int32)).reshape(112, 112)
    values[5, 7] = 1000  # 1000 twice, first at (0, 0); the value that was at (5, 7) is gone
    broden.save_plane(values, plane)
    found = validate(data, max_per_code=200)
    e301 = [f for f in found if f.code == "E301"]
    assert summary(found)["E301"] == 112 * 112 - 1
    assert len(e301) == 201 and e301[-1].count == 112 * 112 - 1 - 200
    first = next(f for f in e301 if f.detail and f.detail.startswith("pixel value 1000 "))
    assert first.detail == "pixel value 1000 at (y=0, x=0), 2 pixels"
    assert (first.file, first.line, first.column) == ("images/mini/000003_object.png", 4, "object")
