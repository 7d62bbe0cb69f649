"""The sets that grow with the images, kept on disk: listed images and referenced files.

:class:`RefStore` is a temporary on-disk SQLite database (SQLite removes its file when the
connection closes); use it as a context manager so that it is closed on every path, exceptions
and KeyboardInterrupt included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from types import TracebackType


class RefStore:
    """Image paths of index.csv (with their first line) and every path it references."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> RefStore:
        db = self._db = sqlite3.connect("")  # temporary on-disk database, removed on close
        db.execute("PRAGMA cache_size = -1024")  # 1 MiB page cache; the rest stays on disk
        db.execute("CREATE TABLE img (path TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        db.execute("CREATE TABLE ref (path TEXT PRIMARY KEY) WITHOUT ROWID")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("RefStore used outside its with-block")
        return self._db

    def add_image(self, path: str, line: int) -> int | None:
        """Record image ``path`` listed on ``line``; the line it was first listed on if repeated."""
        first: int | None = None
        try:
            self.db.execute("INSERT INTO img VALUES (?, ?)", (path, line))
        except sqlite3.IntegrityError:
            (first,) = self.db.execute("SELECT line FROM img WHERE path = ?", (path,)).fetchone()
        self.add_ref(path)
        return first

    def add_ref(self, path: str) -> None:
        """Record that index.csv references ``path`` (relative to images/)."""
        self.db.execute("INSERT OR IGNORE INTO ref VALUES (?)", (path,))

    def unreferenced(self, paths: Iterable[str]) -> Iterator[str]:
        """The distinct ``paths`` not referenced, sorted (kept on disk, not in memory)."""
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS orphan (path TEXT PRIMARY KEY) WITHOUT ROWID")
        for rel in paths:
            if not db.execute("SELECT 1 FROM ref WHERE path = ?", (rel,)).fetchone():
                db.execute("INSERT OR IGNORE INTO orphan VALUES (?)", (rel,))
        for (rel,) in db.execute("SELECT path FROM orphan ORDER BY path"):
            yield rel
