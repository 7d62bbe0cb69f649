"""Output folders that never hurt the user's data.

- Atomic: a folder is built beside its target and renamed into place when complete; on any
  failure (an exception, Ctrl-C, SIGTERM) the temporary folder is removed and an existing target
  is left exactly as it was.
- Owned: every folder conceptkit writes holds a marker file (:data:`MARKER`). ``--force``
  replaces only such a folder (or one inside a folder conceptkit wrote); a file, a symlink or a
  foreign folder is refused with one line, whatever the flags.
- Apart: an output that equals, contains or lies inside one of the command's inputs (after
  resolving symlinks) is refused (:func:`refuse_overlap`).
- New folders get the user's umask (``mkdtemp`` alone would make them 0700).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from conceptkit.errors import UsageError

#: the file that marks a folder as written by conceptkit
MARKER = ".conceptkit"
_MARKER_TEXT = "written by conceptkit; `--force` may replace this folder\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_owned(path: Path) -> bool:
    """True when ``path`` (or the folder it lies in) was written by conceptkit."""
    return (path / MARKER).is_file() or (path.parent / MARKER).is_file()


def mark(path: str | Path) -> None:
    """Write the ownership marker into the folder ``path``."""
    (Path(path) / MARKER).write_text(_MARKER_TEXT)


def _check_parent(path: Path) -> None:
    parent = path.parent
    for p in (parent, *parent.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise UsageError("is not a folder, so OUT cannot be created in it", file=p)
            if not os.access(p, os.W_OK | os.X_OK):
                raise UsageError("cannot be written (no permission)", file=p)
            return


def check_target(target: str | Path, force: bool) -> Path:
    """Check that ``target`` may be written; return it as a Path.

    Allowed: a target that does not exist (its parent folders are created), an empty folder,
    or with ``force`` a folder conceptkit wrote. Refused with a :class:`UsageError`: a symlink,
    a file, a non-empty folder without ``force``, a foreign folder even with ``force``, a
    target whose parent is a file or cannot be written.
    """
    path = Path(target)
    if path.is_symlink():
        raise UsageError("is a symbolic link; conceptkit writes only real folders", file=path)
    if path.exists():
        if not path.is_dir():
            raise UsageError("is a file, not a folder; choose another OUT", file=path)
        if not any(path.iterdir()):
            return path
        if not force:
            raise UsageError("exists already; pass --force to replace it", file=path)
        if not is_owned(path):
            raise UsageError(
                f"was not written by conceptkit (no {MARKER} marker), so --force will not "
                "replace it; remove it yourself or choose another OUT",
                file=path,
            )
        return path
    _check_parent(path)
    return path


def refuse_overlap(out: str | Path, sources: Iterable[str | Path]) -> None:
    """Refuse an ``out`` that equals, contains or lies inside any of ``sources``."""
    target = Path(out).resolve()
    for src in sources:
        source = Path(src).resolve()
        if target == source:
            raise UsageError("is also an input; choose an OUT outside the inputs", file=out)
        if target.is_relative_to(source):
            raise UsageError(f"lies inside the input {src}; choose an OUT outside it", file=out)
        if source.is_relative_to(target):
            raise UsageError(f"contains the input {src}; choose an OUT outside it", file=out)


def _make_parent(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot be created ({exc.strerror or exc})", file=parent) from None
    return parent


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (delivered afterwards) in the main thread while renaming."""
    held = {signal.SIGINT, signal.SIGTERM}
    main = threading.current_thread() is threading.main_thread()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_in(tmp: Path, path: Path, parent: Path) -> None:
    """Rename ``tmp`` to ``path``; an old ``path`` is moved aside first and restored on failure."""
    with signals_held():
        if not path.exists():
            os.replace(tmp, path)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
        os.rmdir(old)
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path, force: bool = False, owned: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``.

    On any exception (Ctrl-C and SIGTERM included) the temporary folder is removed and
    ``target`` is left as it was. ``owned``: write the :data:`MARKER` into the result (False
    for folders inside a folder that already carries it, such as a run's html/).
    """
    path = check_target(target, force)
    parent = _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    except OSError as exc:
        raise UsageError(f"cannot be written ({exc.strerror or exc})", file=parent) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if owned:
            mark(tmp)
        _swap_in(tmp, path, parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
