"""Files under images/ that index.csv does not reference (W602)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from conceptkit.validate.findings import Collector
from conceptkit.validate.refs import RefStore


def walk_files(images: Path) -> Iterator[str]:
    """Every file under ``images`` as a '/'-separated path relative to it.

    os.scandir streams a folder's entries (os.walk would list a 60,000-file folder at once).
    Links to folders are not followed (a link to images/ itself would never end); they are
    entries like files. Folders that cannot be listed are skipped.
    """
    todo = [""]
    while todo:
        rel_dir = todo.pop()
        try:
            it = os.scandir(images / rel_dir if rel_dir else images)
        except OSError:
            continue  # an unreadable folder: its files are not listed
        with it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    todo.append(rel)
                else:
                    yield rel


def check_orphans(out: Collector, images: Path, refs: RefStore) -> None:
    """W602 for every file under ``images`` that ``refs`` does not hold, in path order."""
    for rel in refs.unreferenced(walk_files(images)):
        out.emit("W602", f"images/{rel}", "is not referenced by index.csv")
