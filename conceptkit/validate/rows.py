"""Check one index.csv row's files and pixels; runs in the main process or in pool workers.

Everything here is picklable and label-sized: a worker gets a :class:`RowContext` once and
then chunks of :class:`RowCheck`, and returns a :class:`ChunkResult` per chunk.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conceptkit import broden, images
from conceptkit.errors import ConceptkitError
from conceptkit.validate.findings import Finding, finding
from conceptkit.workers import reset_signals


@dataclass
class RowContext:
    """What a worker needs to check index rows (small: label-sized)."""

    images: str
    known: frozenset[int]
    members: dict[str, frozenset[int]]
    files: bool = True  # False when images/ is missing (reported once, E101)
    max_per_code: int = 200  # findings of one code the collector lists (see ChunkResult)


@dataclass
class RowCheck:
    """A parsed index.csv row handed to a worker."""

    line: int
    image: str
    ih: int | None
    iw: int | None
    sh: int | None
    sw: int | None
    cells: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]
    duplicate: bool = False  # a repeated image (E201): checked, but not counted twice


@dataclass
class ChunkResult:
    """Findings and pixel statistics of a chunk of rows.

    At most ``cap`` findings of a code are kept (the collector would list no more of them);
    the rest are only counted in ``overflow``, so a plane with a million stray values costs a
    count, not a million records.
    """

    cap: int = 200
    findings: list[Finding] = field(default_factory=list)
    overflow: dict[str, int] = field(default_factory=dict)
    frequency: dict[tuple[str, int], int] = field(default_factory=dict)
    coverage: dict[tuple[str, int], float] = field(default_factory=dict)
    bad_planes: int = 0
    _kept: dict[str, int] = field(default_factory=dict)

    def full(self, code: str) -> bool:
        """Whether no more findings of ``code`` are kept (count them with :meth:`skip`)."""
        return self._kept.get(code, 0) >= self.cap

    def skip(self, code: str, n: int = 1) -> None:
        self.overflow[code] = self.overflow.get(code, 0) + n

    def add(self, f: Finding) -> None:
        if self.full(f.code):
            self.skip(f.code)
        else:
            self._kept[f.code] = self._kept.get(f.code, 0) + 1
            self.findings.append(f)


def _locate(ctx: RowContext, line: int, column: str, rel: str) -> str | Finding:
    """The file ``rel`` of index.csv as a path, or the finding why there is none.

    E110 when the path leaves images/ (absolute, ``..``, a symbolic link out), E104 when the
    file is not there.
    """
    why = broden.outside_reason(Path(ctx.images), rel)
    if why is not None:
        message = f"path {rel[:200]!r} {why}"
        return finding("E110", "index.csv", message, line=line, column=column)
    path = os.path.join(ctx.images, rel)
    if not os.path.isfile(path):
        message = f"images/{rel} is missing"
        return finding("E104", "index.csv", message, line=line, column=column)
    return path


def _unreadable(exc: ConceptkitError, line: int, column: str) -> Finding:
    """E105 from the error of :func:`images.open_image` (unreadable, or over a size limit)."""
    message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    return finding("E105", "index.csv", message, line=line, column=column)


def _image_size(path: str, what: str) -> tuple[int, int]:
    """(height, width) read from the header, checked against the size limits."""
    with images.open_image(Path(path), file=path, place=None, what=what) as im:
        w, h = im.size
    return h, w


def _check_image(ctx: RowContext, row: RowCheck, out: ChunkResult) -> None:
    """E110/E104/E105/E202 for the row's image."""
    if not row.image:
        return
    ipath = _locate(ctx, row.line, "image", row.image)
    if isinstance(ipath, Finding):
        out.add(ipath)
        return
    rel = f"images/{row.image}"
    try:
        h, w = _image_size(ipath, rel)
    except ConceptkitError as exc:
        out.add(_unreadable(exc, row.line, "image"))
        return
    if row.ih is not None and row.iw is not None and (h, w) != (row.ih, row.iw):
        out.add(
            finding(
                "E202",
                "index.csv",
                f"{rel} is {h}x{w} (HxW), the row says ih={row.ih} iw={row.iw}",
                line=row.line,
                column="ih,iw",
            )
        )


def _read_plane(
    ctx: RowContext, row: RowCheck, cat: str, p: str, out: ChunkResult
) -> np.ndarray | None:
    """The decoded plane ``p``, or None (E110/E104/E105 reported, counted as a bad plane)."""
    ppath = _locate(ctx, row.line, cat, p)
    if isinstance(ppath, Finding):
        out.add(ppath)
        out.bad_planes += 1
        return None
    try:
        arr = broden.decode_plane(ppath, what=f"images/{p}")
    except ConceptkitError as exc:
        out.add(_unreadable(exc, row.line, cat))
        out.bad_planes += 1
        return None
    if row.sh is not None and row.sw is not None and arr.shape != (row.sh, row.sw):
        out.add(
            finding(
                "E203",
                "index.csv",
                f"images/{p} is {arr.shape[0]}x{arr.shape[1]} (HxW), "
                f"the row says sh={row.sh} sw={row.sw}",
                line=row.line,
                column=cat,
            )
        )
    return arr


def _check_pixels(
    ctx: RowContext,
    row: RowCheck,
    cat: str,
    p: str,
    arr: np.ndarray,
    members: frozenset[int],
    out: ChunkResult,
) -> None:
    """E301/E302 for every pixel value of plane ``p`` (``arr``: (sh, sw) int) outside ``cat``.

    Each finding names the value's first pixel (row-major) and its pixel count; one sort of the
    plane gives them all, however many distinct values it holds.
    """
    values = np.unique(arr)
    if all(v == 0 or v in members for v in values.tolist()):
        return
    values, first, counts = np.unique(arr, return_index=True, return_counts=True)
    width = arr.shape[1]
    for v, i, npx in zip(values.tolist(), first.tolist(), counts.tolist()):
        if v == 0 or v in members:
            continue
        code = "E301" if v not in ctx.known else "E302"
        if out.full(code):
            out.skip(code)
            continue
        y, x = divmod(i, width)
        detail = f"pixel value {v} at (y={y}, x={x}), {npx} pixels"
        if code == "E301":
            message = f"label {v} is not in label.csv"
        else:
            message = f"label {v} is not a label of category {cat!r} (not in c_{cat}.csv)"
        out.add(finding(code, f"images/{p}", message, line=row.line, column=cat, detail=detail))


def _check_image_labels(
    ctx: RowContext, row: RowCheck, cat: str, numbers: Sequence[int], members: frozenset[int]
) -> list[Finding]:
    """E301/E303 for image-level label numbers outside ``cat``."""
    f: list[Finding] = []
    for n in numbers:
        if n == 0 or n in members:
            continue
        unknown = n not in ctx.known
        what = "is not in label.csv" if unknown else f"is not in c_{cat}.csv"
        f.append(
            finding(
                "E301" if unknown else "E303",
                "index.csv",
                f"image-level label {n} {what}",
                line=row.line,
                column=cat,
                detail=f"item {n}",
            )
        )
    return f


def _add_stats(
    ctx: RowContext,
    out: ChunkResult,
    planes: dict[str, list[np.ndarray]],
    image_labels: dict[str, Sequence[int]],
) -> None:
    """Add one image's statistics to ``out``, as :class:`broden.LabelStats` counts them.

    Only labels of their category are kept: the others are E301/E302/E303 findings and are
    never compared, and a plane of a million stray values must not grow the tallies.
    """
    stats = broden.LabelStats()
    stats.add_image(planes, image_labels)
    for (cat, n), v in stats.frequency.items():
        if n in ctx.members.get(cat, ()):
            out.frequency[cat, n] = out.frequency.get((cat, n), 0) + v
            out.coverage[cat, n] = out.coverage.get((cat, n), 0.0) + stats.coverage[cat, n]


def check_row(ctx: RowContext, row: RowCheck, out: ChunkResult) -> None:
    """Check one row's files and pixels; accumulate its statistics into ``out``."""
    if not ctx.files:
        return
    _check_image(ctx, row, out)
    planes: dict[str, list[np.ndarray]] = {}
    image_labels: dict[str, Sequence[int]] = {}
    for cat, (paths, numbers) in row.cells.items():
        members = ctx.members.get(cat)
        arrays: list[np.ndarray] = []
        for p in paths:
            arr = _read_plane(ctx, row, cat, p, out)
            if arr is None or members is None:
                continue  # a column without a category is reported once as E502
            _check_pixels(ctx, row, cat, p, arr, members, out)
            arrays.append(arr)
        if members is None:
            continue
        for f in _check_image_labels(ctx, row, cat, numbers, members):
            out.add(f)
        if arrays:
            planes[cat] = arrays
        if numbers:
            image_labels[cat] = numbers
    if not row.duplicate:
        _add_stats(ctx, out, planes, image_labels)


def check_chunk(ctx: RowContext, rows: Sequence[RowCheck]) -> ChunkResult:
    """Check a chunk of rows. Per-image coverages are added in row order, as LabelStats does."""
    out = ChunkResult(cap=ctx.max_per_code)
    for row in rows:
        check_row(ctx, row, out)
    return out


_WORKER_CTX: RowContext | None = None


def init_worker(ctx: RowContext) -> None:
    """Pool initializer: keep ``ctx`` for every chunk this worker checks.

    Ctrl-C reaches every process of the terminal's group: workers ignore it and the main
    process, which gets it too, cancels the queued chunks and joins them.
    """
    global _WORKER_CTX
    reset_signals()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_CTX = ctx


def check_chunk_in_worker(rows: Sequence[RowCheck]) -> ChunkResult:
    """:func:`check_chunk` with the context :func:`init_worker` kept."""
    assert _WORKER_CTX is not None
    return check_chunk(_WORKER_CTX, rows)
