"""conceptkit.outdir: atomic, owned, apart; and SIGTERM cleans up like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conceptkit.errors import UsageError
from conceptkit.outdir import MARKER, atomic_dir, check_target, refuse_overlap


def _write(root: Path, name: str = "a.txt", text: str = "x") -> None:
    with atomic_dir(root, force=True) as tmp:
        (tmp / name).write_text(text)


def test_atomic_dir_marks_and_replaces_only_its_own(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, text="one")
    assert (out / MARKER).is_file() and (out / "a.txt").read_text() == "one"
    _write(out, text="two")
    assert (out / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .out.tmp-* / .out.old-*


def test_force_refuses_foreign_folder_file_and_symlink(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not written by conceptkit"):
        check_target(foreign, force=True)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_target(file, force=True)
    link = tmp_path / "link"
    link.symlink_to(foreign)
    with pytest.raises(UsageError, match="symbolic link"):
        check_target(link, force=True)
    with pytest.raises(UsageError, match="is not a folder"):
        check_target(file / "out", force=False)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_failure_leaves_existing_out_exactly_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, text="old")
    with pytest.raises(RuntimeError), atomic_dir(out, force=True) as tmp:
        (tmp / "a.txt").write_text("new")
        raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_new_folders_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _write(tmp_path / "out")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_overlap_with_sources_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(src)
    for out, why in (
        (src, "is also an input"),
        (tmp_path / "alias", "is also an input"),
        (src / "sub" / "out", "lies inside"),
        (tmp_path, "contains the input"),
    ):
        with pytest.raises(UsageError, match=why):
            refuse_overlap(out, [src])
    refuse_overlap(tmp_path / "out", [src])


def test_sigterm_removes_the_temporary_folder(tmp_path: Path) -> None:
    """A command killed with SIGTERM while writing leaves nothing behind and exits 143."""
    (tmp_path / "slowcmd.py").write_text(
        "import sys, time\n"
        "import click\n"
        "from conceptkit.outdir import atomic_dir\n"
        "@click.command('slow-write')\n"
        "@click.argument('out')\n"
        "def slow(out: str) -> None:\n"
        "    with atomic_dir(out) as tmp:\n"
        "        (tmp / 'started').write_text('')\n"
        "        time.sleep(60)\n"
    )
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from conceptkit import cli\n"
        "cli.COMMANDS['slow-write'] = ('slowcmd', 'slow', 'test command')\n"
        "cli.main(['slow-write', sys.argv[-1]])\n"
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.tmp-*/started")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Terminated." in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["slowcmd.py"]
