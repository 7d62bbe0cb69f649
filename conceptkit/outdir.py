"""Write a folder atomically: build it beside the target, rename it into place when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conceptkit.errors import UsageError


def check_target(target: str | Path, force: bool) -> Path:
    """Refuse an existing, non-empty target unless ``force``; return the resolved path."""
    path = Path(target)
    if path.exists() and not force:
        if path.is_dir() and not any(path.iterdir()):
            return path
        raise UsageError("exists already; pass --force to replace it", file=path)
    return path


@contextmanager
def atomic_dir(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``.

    On any exception the temporary folder is removed and ``target`` is left as it was.
    """
    path = check_target(target, force)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
        os.rmdir(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
