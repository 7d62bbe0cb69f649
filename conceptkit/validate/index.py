"""Stream index.csv: header and columns, row syntax and sizes, then files and pixels per chunk.

Rows are parsed here, in the main process (types, E108, E201 duplicates, E204/E205 sizes,
references recorded in a :class:`~conceptkit.validate.refs.RefStore`); their files and pixels are
checked chunk by chunk by :func:`~conceptkit.validate.pool.run_chunks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptkit import broden, limits
from conceptkit.validate.findings import Collector
from conceptkit.validate.pool import Progress, Tally, default_jobs, run_chunks
from conceptkit.validate.refs import RefStore
from conceptkit.validate.rows import RowCheck, RowContext
from conceptkit.validate.tables import fields, show, typed_row

CHUNK = 64  # rows per chunk handed to check_chunk
MAX_SIZES = 1000  # distinct (ih, iw, sh, sw) tracked for E205
REL = "index.csv"
_LIMITED = ("image_side", "image_pixels", "label_number")


def count_rows(path: str | Path) -> int:
    """Number of data lines of a CSV (newlines minus the header), read in 1 MiB blocks."""
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        n += 1
    return max(n - 1, 0)


@dataclass
class RowParser:
    """Turns index.csv's cells into :class:`RowCheck` records, reporting what is wrong in them.

    ``sizes`` maps (ih, iw, sh, sw) to [rows, first line] (for E205, at most MAX_SIZES kept);
    ``bad_rows`` counts rows that could not be parsed.
    """

    out: Collector
    refs: RefStore
    netdissect: bool
    header: list[str]
    specs: list[dict[str, Any]] = field(default_factory=lambda: fields("broden_index"))
    sizes: dict[tuple[int, int, int, int], list[int]] = field(default_factory=dict)
    bad_rows: int = 0
    limit: dict[str, int] = field(default_factory=lambda: {n: limits.get(n) for n in _LIMITED})

    def rows(self, lines: Iterator[tuple[int, list[str]]]) -> Iterator[RowCheck]:
        """The parsed rows of ``lines`` ((line, cells) past the header)."""
        for line, cells in lines:
            row = self.parse(cells, line)
            if row is not None:
                yield row

    def parse(self, cells: list[str], line: int) -> RowCheck | None:
        """The row of ``cells`` on ``line``; None (E108 reported) when it has the wrong length."""
        header, nfixed = self.header, len(self.specs)
        if len(cells) != len(header):
            self.out.emit(
                "E108", REL, f"has {len(cells)} cells, the header has {len(header)}", line=line
            )
            self.bad_rows += 1
            return None
        t = typed_row(self.out, REL, line, self.specs, cells[:nfixed])
        self._check_limits(t, line)
        image = t["image"] or ""
        duplicate = False
        if image:
            first = self.refs.add_image(image, line)
            if first is not None:
                duplicate = True
                self.out.emit(
                    "E201",
                    REL,
                    f"images/{image} is listed again (first on line {first})",
                    line=line,
                    column="image",
                )
        self._note_size(image, line, t["ih"], t["iw"], t["sh"], t["sw"])
        parsed: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
        for col, text in zip(header[nfixed:], cells[nfixed:]):
            planes, numbers = parsed[col] = self._cell(col, text, line)
            for p in planes:
                self.refs.add_ref(p)
        return RowCheck(line, image, t["ih"], t["iw"], t["sh"], t["sw"], parsed, duplicate)

    def _over(self, name: str, value: int, line: int, column: str, what: str) -> bool:
        """E111 when ``value`` is over the limit ``name``."""
        limit = self.limit[name]
        if value <= limit:
            return False
        self.out.emit(
            "E111",
            REL,
            f"{what} is over the limit of {limit:,} (CONCEPTKIT_LIMIT_{name.upper()})",
            line=line,
            column=column,
        )
        return True

    def _check_limits(self, t: dict[str, Any], line: int) -> None:
        """E111 for sizes over ``image_side``/``image_pixels``; such sizes are dropped (None)."""
        for col in ("ih", "iw", "sh", "sw"):
            v = t[col]
            if v is not None and self._over("image_side", v, line, col, f"{col} = {v:,}"):
                t[col] = None
        for h, w in (("ih", "iw"), ("sh", "sw")):
            if t[h] is None or t[w] is None:
                continue
            what = f"{h} x {w} = {t[h] * t[w]:,} pixels"
            if self._over("image_pixels", t[h] * t[w], line, f"{h},{w}", what):
                t[h] = t[w] = None

    def _cell(self, col: str, text: str, line: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(plane paths, image-level numbers) of a category cell; E106 for a malformed item
        (the cell is then empty), E111 for numbers over ``label_number`` (left out)."""
        try:
            planes, numbers = broden.parse_index_cell(text)
        except ValueError as exc:
            self.out.emit("E106", REL, str(exc), line=line, column=col)
            return (), ()
        over = [n for n in numbers if self._over("label_number", n, line, col, f"label {n:,}")]
        return planes, tuple(n for n in numbers if n not in over)

    def _note_size(
        self, image: str, line: int, ih: int | None, iw: int | None, sh: int | None, sw: int | None
    ) -> None:
        """E204 (not square) now; the size tallied for E205 (see :meth:`check_sizes`)."""
        if not self.netdissect or ih is None or iw is None:
            return
        if ih != iw:
            self.out.emit(
                "E204",
                REL,
                f"images/{image} is {ih}x{iw} (HxW); NetDissect-Lite needs square images",
                line=line,
                column="ih,iw",
            )
        if sh is None or sw is None:
            return
        key = (ih, iw, sh, sw)
        if key in self.sizes:
            self.sizes[key][0] += 1
        elif len(self.sizes) < MAX_SIZES:
            self.sizes[key] = [1, line]

    def check_sizes(self) -> None:
        """E205: every size other than the most common one, once, at its first row."""
        if len(self.sizes) < 2:
            return
        ranked = sorted(self.sizes.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        (main, (n_main, line_main)) = ranked[0]
        for size, (n, line) in ranked[1:]:
            self.out.emit(
                "E205",
                REL,
                f"{n} {'row has' if n == 1 else 'rows have'} ih,iw,sh,sw = "
                f"{','.join(map(str, size))}, but {n_main} rows "
                f"(first on line {line_main}) have {','.join(map(str, main))}; "
                "NetDissect-Lite never resizes",
                line=line,
                detail=f"first of {n} rows",
            )


def _chunks(rows: Iterator[RowCheck]) -> Iterator[list[RowCheck]]:
    buf: list[RowCheck] = []
    for r in rows:
        buf.append(r)
        if len(buf) == CHUNK:
            yield buf
            buf = []
    if buf:
        yield buf


def _check_columns(out: Collector, categories: list[str], columns: list[str]) -> None:
    """E501 (a category without a column), E502 (a column without a category)."""
    for c in categories:
        if c not in columns:
            out.emit("E501", REL, f"category {c!r} has no column in index.csv", line=1)
    for c in columns:
        if c not in categories:
            out.emit(
                "E502", REL, f"column {c!r} is not a category of category.csv", line=1, column=c
            )


@dataclass
class IndexOutcome:
    """What streaming index.csv gave.

    ``streamed``: every row was read (the file exists, is readable, has the fixed header);
    ``columns``: the category columns of the header; ``bad_rows``: rows that could not be
    parsed; ``tally``: the pixel statistics (None when no row was reached).
    """

    streamed: bool = False
    columns: list[str] = field(default_factory=list)
    bad_rows: int = 0
    tally: Tally | None = None


def check_index(
    out: Collector,
    root: Path,
    categories: list[str],
    ctx: RowContext,
    refs: RefStore,
    *,
    netdissect: bool,
    jobs: int | None,
    progress: Progress | None,
    check_columns: bool,
) -> IndexOutcome:
    """Stream ``root``/index.csv; ``check_columns``: compare its columns with ``categories``."""
    path = root / REL
    fixed = [f["name"] for f in fields("broden_index")]
    res = IndexOutcome()
    if not path.is_file() and not path.is_dir():
        out.emit("E101", REL, "index.csv is missing")
        return res
    try:
        lines = broden.csv_rows(path)
        _, header = next(lines, (1, []))
        if header[: len(fixed)] != fixed:
            out.emit(
                "E103",
                REL,
                f"header starts {show(','.join(header[: len(fixed)]))}, "
                f"expected {','.join(fixed)!r} then one column per category",
                line=1,
            )
            return res
        total = count_rows(path)
        res.columns = header[len(fixed) :]
        if check_columns:
            _check_columns(out, categories, res.columns)
        parser = RowParser(out, refs, netdissect, header)
        res.tally = Tally(out, total, progress)
        n_jobs = default_jobs(total) if jobs is None else jobs
        run_chunks(_chunks(parser.rows(lines)), ctx, n_jobs, res.tally)
        res.bad_rows = parser.bad_rows
        parser.check_sizes()
    except broden.CsvError as exc:
        out.emit("E102", REL, f"index.csv {exc.message}", line=exc.line)
        res.bad_rows += 1  # the rest of the index is unknown
        return res
    except OSError as exc:
        out.emit("E102", REL, f"index.csv cannot be read ({exc.strerror})")
        res.bad_rows += 1
        return res
    res.streamed = True
    return res
