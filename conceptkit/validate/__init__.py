"""Check a Broden-layout folder and return findings (errors and warnings), each with a stable code.

:func:`validate` is pure: it prints nothing and returns a list of :class:`Finding`. It streams:
``index.csv`` is read row by row, images are only opened for their header (size), label planes
are decoded one at a time (optionally in a small process pool fed a bounded window of rows), and
the statistics live in dicts keyed by (category, label), so memory depends on the number of
labels, not of images. The sets that would grow with the images (image paths for duplicates,
referenced files for orphans) are kept in a temporary on-disk SQLite database.

The headers, types and constraints of the CSV files come from the Table Schemas in
``schemas/broden_*.json`` (:func:`conceptkit.schemas.load`). :data:`CODES` lists every code.

The parts, in the order they run:

- :mod:`.findings`  the :class:`Finding` record, :data:`CODES`, the per-code cap;
- :mod:`.tables`    category.csv, label.csv, c_<cat>.csv typed by their schemas (E1xx);
- :mod:`.declared`  the tables against each other (E401, E406-E410);
- :mod:`.index`     index.csv streamed: header, columns, row syntax, sizes (E1xx, E2xx, E5xx);
- :mod:`.rows`      one row's image and planes: files, sizes, pixel labels (E104-E105, E3xx);
- :mod:`.pool`      rows checked in chunks, in this process or a process pool;
- :mod:`.refs`      the on-disk sets of listed images and referenced files;
- :mod:`.stats`     the tables against the pixels' statistics (E401-E405, W601, W603);
- :mod:`.orphans`   files under images/ nothing references (W602).
"""

from __future__ import annotations

from pathlib import Path

from conceptkit.errors import UsageError
from conceptkit.validate.declared import check_declared
from conceptkit.validate.findings import CODES, Collector, Finding, summary
from conceptkit.validate.index import IndexOutcome, check_index, count_rows
from conceptkit.validate.orphans import check_orphans
from conceptkit.validate.pool import Progress
from conceptkit.validate.refs import RefStore
from conceptkit.validate.rows import RowContext
from conceptkit.validate.stats import COVERAGE_ABS_TOL, COVERAGE_REL_TOL, check_stats
from conceptkit.validate.tables import Tables, read_tables

__all__ = [
    "CODES",
    "COVERAGE_ABS_TOL",
    "COVERAGE_REL_TOL",
    "Finding",
    "count_rows",
    "summary",
    "validate",
]


def _compare_stats(
    out: Collector,
    t: Tables,
    idx: IndexOutcome,
    members: dict[str, frozenset[int]],
    images_ok: bool,
    min_images: int,
) -> None:
    """The tables against the pixels, when both the tables and the index could be read."""
    missing = [n for n, ok in (("category.csv", t.cats_ok), ("label.csv", t.labels_ok)) if not ok]
    if missing:
        out.emit(
            "W603",
            missing[0],
            f"{' and '.join(missing)} unusable; frequencies and coverages were not compared",
        )
    elif idx.streamed and idx.tally is not None:
        check_stats(
            out,
            t,
            idx.tally,
            bad_rows=idx.bad_rows,
            columns=idx.columns,
            members=members,
            images_ok=images_ok,
            min_images=min_images,
        )


def validate(
    root: str | Path,
    *,
    netdissect: bool = True,
    progress: Progress | None = None,
    min_images: int = 10,
    jobs: int | None = None,
    max_per_code: int = 200,
) -> list[Finding]:
    """Check the Broden folder ``root``; return its findings, errors first, sorted by code.

    ``netdissect``: also require what NetDissect-Lite needs (square images, one size for all).
    ``progress(rows_done, rows_total)`` is called as index.csv is processed. ``min_images``:
    labels in fewer images are warned about (W601). ``jobs``: processes decoding planes (None:
    up to 4, one per spare core, when the index has >= 2000 rows and there are >= 3 cores).
    At most ``max_per_code`` findings of one code are listed; the rest are summed into one
    finding with ``count`` > 1.
    """
    path = Path(root)
    if not path.is_dir():
        raise UsageError("is not a folder", file=path, hint="give the Broden folder to check")
    out = Collector(max_per_code)
    t = read_tables(out, path)
    images = path / "images"
    images_ok = images.is_dir()
    if not images_ok:
        out.emit("E101", "images/", "the images/ folder is missing")
    check_declared(out, t)
    known, members = t.members()
    ctx = RowContext(str(images), known, members, files=images_ok, max_per_code=max_per_code)
    with RefStore() as refs:
        idx = check_index(
            out,
            path,
            t.categories,
            ctx,
            refs,
            netdissect=netdissect,
            jobs=jobs,
            progress=progress,
            check_columns=t.cats_ok,
        )
        _compare_stats(out, t, idx, members, images_ok, min_images)
        if idx.streamed and not idx.bad_rows and images_ok:
            check_orphans(out, images, refs)
    return out.result()
