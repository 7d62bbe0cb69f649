"""The hostile-input harness: run one `conceptkit` command on bad input and check the promise.

The promise, for every command and every bad input: exit 1 for bad input (2 for usage errors),
exactly one error line that names the file and the place, no traceback, no temporary file or
folder left anywhere, nothing in the workspace changed (an existing OUT included), within a
memory cap and a time cap.

Use::

    from hostile import run_hostile

    def test_bad_rle(tmp_path):
        src = tmp_path / "src"; ...write the hostile export into src...
        run_hostile(["convert", "coco", src, "-o", tmp_path / "out"], tmp_path,
                    names=["instances.json", "annotations[0]"])

``workspace`` is a folder holding everything the command reads and writes (SRC, OUT's parent):
its whole tree is checksummed before and after. The command gets a private ``TMPDIR`` (inside
the test's own temp folder, outside the workspace) that must be empty afterwards, which also
catches multiprocessing's ``pymp-*`` folders and spill folders.

Memory: the cap is RLIMIT_DATA (private writable memory: heap and anonymous maps), 2 GiB by
default. RLIMIT_AS cannot be used: torch's shared libraries alone map more than 2 GiB of
address space, so `import torch` fails under it.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

MEM_CAP = 2 << 30
TIME_CAP = 120.0
ERROR_LINE = re.compile(r"^(conceptkit: |Error: )")


def tree_state(root: Path) -> dict[str, str]:
    """``{relative path: kind and content hash}`` of every entry under ``root`` (symlinks not followed)."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                state[rel] = f"dir:{oct(path.stat().st_mode & 0o7777)}"
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = f"file:{oct(path.stat().st_mode & 0o7777)}:{digest}"
            else:
                state[rel] = "other"
    return state


def _limit(mem: int) -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))


def _diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    keys = sorted(before.keys() | after.keys())
    return [k for k in keys if before.get(k) != after.get(k)]


def run_hostile(
    args: Sequence[str | Path],
    workspace: Path,
    *,
    code: int = 1,
    names: Sequence[str] = (),
    mem: int = MEM_CAP,
    timeout: float = TIME_CAP,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``conceptkit ARGS`` in ``workspace`` and assert the promise; return the process.

    ``code``: the exit status expected (1 bad input, 2 usage). ``names``: strings the single
    error line must contain (the file's name, the place: line, JSON path, XML element).
    """
    tmp = Path(tempfile.mkdtemp(prefix="hostile-tmp-", dir=workspace.parent))
    # torch keeps its own persistent compile cache (torchinductor_<user>/) in TMPDIR: not ours
    inductor = workspace.parent / "hostile-torchinductor"
    full_env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
        "TORCHINDUCTOR_CACHE_DIR": str(inductor),
        **(env or {}),
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        full_env.pop(key, None)
    before = tree_state(workspace)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "conceptkit", *map(str, args)],
            cwd=workspace,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=lambda: _limit(mem),
            input=input,
        )
        after = tree_state(workspace)
        left = sorted(p.name for p in tmp.iterdir())
    finally:
        _rmtree(tmp)
    shown = f"$ conceptkit {' '.join(map(str, args))}\n--- stderr:\n{proc.stderr}--- stdout:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr + proc.stdout, f"traceback\n{shown}"
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\n{shown}"
    errors = [line for line in proc.stderr.splitlines() if ERROR_LINE.match(line)]
    assert len(errors) == 1, f"{len(errors)} error lines, expected exactly 1\n{shown}"
    for name in names:
        assert name in errors[0], f"the error line does not name {name!r}\n{shown}"
    assert not left, f"temporary files left in TMPDIR: {left}\n{shown}"
    changed = _diff(before, after)
    assert not changed, f"the workspace changed: {changed[:10]}\n{shown}"
    return proc


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a finished :func:`run_hostile`."""
    return next(line for line in proc.stderr.splitlines() if ERROR_LINE.match(line))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
