"""Check a Broden-layout folder and return findings (errors and warnings), each with a stable code.

:func:`validate` is pure: it prints nothing and returns a list of :class:`Finding`. It streams:
``index.csv`` is read row by row, images are only opened for their header (size), label planes
are decoded one at a time (optionally in a small process pool fed a bounded window of rows), and
the statistics live in dicts keyed by (category, label), so memory depends on the number of
labels, not of images. The sets that would grow with the images (image paths for duplicates,
referenced files for orphans) are kept in a temporary on-disk SQLite database.

The headers, types and constraints of the CSV files come from the Table Schemas in
``schemas/broden_*.json`` (:func:`conceptkit.schemas.load`). :data:`CODES` lists every code.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit import broden
from conceptkit.errors import UsageError
from conceptkit.schemas import load as load_schema

# code -> (name, severity, default one-line fix)
CODES: dict[str, tuple[str, str, str]] = {
    "E101": ("missing-file", "error", "create the file (conceptkit convert writes every file)"),
    "E102": ("unreadable-file", "error", "make the file readable and UTF-8 encoded CSV"),
    "E103": ("bad-header", "error", "make the first line exactly the header the schema names"),
    "E104": ("missing-reference", "error", "add the file or fix the path (relative to images/)"),
    "E105": ("unreadable-reference", "error", "re-export the file as a valid PNG/JPEG"),
    "E106": ("bad-type", "error", "write a value of the column's type"),
    "E107": ("bad-value", "error", "write a value within the column's constraints"),
    "E108": ("bad-row", "error", "give the row exactly one cell per header column"),
    "E109": ("duplicate-key", "error", "keep one row per key"),
    "E201": ("duplicate-image", "error", "list each image once in index.csv"),
    "E202": ("image-size", "error", "set ih/iw to the image's real size"),
    "E203": ("plane-size", "error", "set sh/sw to the plane's real size or resize the plane"),
    "E204": ("not-square", "error", "crop/resize images to a square (or pass --no-netdissect)"),
    "E205": ("mixed-sizes", "error", "resize every image (and plane) to one size"),
    "E301": ("unknown-label", "error", "add the label to label.csv or fix the pixel value"),
    "E302": ("wrong-category", "error", "add the label to c_<cat>.csv or fix the plane"),
    "E303": ("image-label-category", "error", "use a label number of this category"),
    "E401": ("category-stats", "error", "rewrite category.csv from c_<cat>.csv and the pixels"),
    "E402": ("label-frequency", "error", "rewrite label.csv frequencies from the pixels"),
    "E403": ("label-coverage", "error", "rewrite label.csv coverages from the pixels"),
    "E404": ("code-frequency", "error", "rewrite c_<cat>.csv frequencies from the pixels"),
    "E405": ("code-coverage", "error", "rewrite c_<cat>.csv coverages from the pixels"),
    "E406": ("category-field", "error", "write the category field as cat(n) or cat(n);cat2(m)"),
    "E407": ("codes-not-dense", "error", "number the codes 1..count in order"),
    "E408": ("code-name", "error", "use the same name as label.csv"),
    "E409": (
        "label-category",
        "error",
        "make label.csv's category field list exactly the "
        "categories whose c_<cat>.csv holds the label",
    ),
    "E410": ("code-unknown-label", "error", "add the label to label.csv or drop the row"),
    "E501": ("category-without-column", "error", "add the category's column to index.csv"),
    "E502": ("column-without-category", "error", "add the category to category.csv"),
    "W601": (
        "rare-label",
        "warning",
        "merge or drop the label (Broden kept labels in >= 10 images)",
    ),
    "W602": ("orphan-file", "warning", "delete the file or reference it from index.csv"),
    "W603": ("stats-skipped", "warning", "fix the unreadable planes, then validate again"),
}

COVERAGE_ABS_TOL = 1e-3
COVERAGE_REL_TOL = 1e-5
_CHUNK = 64
_MAX_SIZES = 1000  # distinct (ih, iw, sh, sw) tracked for E205


@dataclass
class Finding:
    """One problem found in a Broden folder.

    ``code`` is stable (``E104``), ``name`` its slug (``missing-reference``); ``file`` is relative
    to the folder; ``line`` is the 1-based CSV line, ``column`` the CSV column, ``detail`` a pixel
    position/value or other locator; ``count`` > 1 marks a summary of findings not listed one by
    one.
    """

    code: str
    severity: str
    file: str
    message: str
    hint: str
    line: int | None = None
    column: str | None = None
    detail: str | None = None
    count: int = 1
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name:
            self.name = CODES[self.code][0]

    @property
    def place(self) -> str:
        """Human text of where: ``line 12, column object, pixel (y=3, x=7)``."""
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["place"] = self.place
        return d


def _finding(code: str, file: str, message: str, **kw: Any) -> Finding:
    name, severity, hint = CODES[code]
    return Finding(
        code=code, severity=severity, file=file, message=message, hint=kw.pop("hint", hint), **kw
    )


# ----------------------------------------------------------------------------- schema-driven CSV


def _fields(schema_name: str) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = load_schema(schema_name)["fields"]
    return fields


_TYPE_WORD = {"integer": "an integer", "number": "a number"}


def _convert(spec: dict[str, Any], text: str) -> tuple[Any, str | None, str | None]:
    """Typed value of ``text`` under field ``spec``: (value, error code, message)."""
    kind = spec.get("type", "string")
    cons = spec.get("constraints", {})
    if text == "" and cons.get("required"):
        return None, "E107", "is empty but required"
    value: Any = text
    if kind in ("integer", "number"):
        try:
            value = int(text) if kind == "integer" else float(text)
        except ValueError:
            return None, "E106", f"expected {_TYPE_WORD[kind]}, found {text!r}"
        if kind == "number" and not math.isfinite(value):
            return None, "E106", f"expected a finite number, found {text!r}"
        if "minimum" in cons and value < cons["minimum"]:
            return value, "E107", f"{text} is below the minimum {cons['minimum']}"
        if "maximum" in cons and value > cons["maximum"]:
            return value, "E107", f"{text} is above the maximum {cons['maximum']}"
    elif "pattern" in cons and text and not re.search(cons["pattern"], text):
        return value, "E107", f"{text!r} does not match the pattern {cons['pattern']}"
    return value, None, None


# ----------------------------------------------------------------------------- per-row worker


@dataclass
class _Ctx:
    """What a worker needs to check index rows (small: label-sized)."""

    images: str
    known: frozenset[int]
    members: dict[str, frozenset[int]]
    files: bool = True  # False when images/ is missing (reported once, E101)


@dataclass
class _Row:
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
class _ChunkResult:
    findings: list[Finding]
    frequency: dict[tuple[str, int], int]
    coverage: dict[tuple[str, int], float]
    bad_planes: int


def _image_size(path: str) -> tuple[int, int]:
    """(height, width) read from the header; OSError/ValueError/SyntaxError when unreadable."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    return h, w


def _check_row(ctx: _Ctx, row: _Row, out: _ChunkResult) -> None:
    """Check one row's files and pixels; accumulate its statistics into ``out``."""
    f = out.findings
    if not ctx.files:
        return
    ipath = os.path.join(ctx.images, row.image)
    if row.image:
        if not os.path.isfile(ipath):
            f.append(
                _finding(
                    "E104",
                    "index.csv",
                    f"images/{row.image} is missing",
                    line=row.line,
                    column="image",
                )
            )
        else:
            try:
                h, w = _image_size(ipath)
            except (OSError, ValueError, SyntaxError) as exc:
                f.append(
                    _finding(
                        "E105",
                        "index.csv",
                        f"images/{row.image} cannot be read ({exc})",
                        line=row.line,
                        column="image",
                    )
                )
            else:
                if row.ih is not None and row.iw is not None and (h, w) != (row.ih, row.iw):
                    f.append(
                        _finding(
                            "E202",
                            "index.csv",
                            f"images/{row.image} is {h}x{w} (HxW), the row says ih={row.ih} iw={row.iw}",
                            line=row.line,
                            column="ih,iw",
                        )
                    )
    planes: dict[str, Sequence[np.ndarray]] = {}
    image_labels: dict[str, Sequence[int]] = {}
    for cat, (paths, numbers) in row.cells.items():
        members = ctx.members.get(cat)
        arrays: list[np.ndarray] = []
        for p in paths:
            ppath = os.path.join(ctx.images, p)
            if not os.path.isfile(ppath):
                f.append(
                    _finding(
                        "E104", "index.csv", f"images/{p} is missing", line=row.line, column=cat
                    )
                )
                out.bad_planes += 1
                continue
            try:
                arr = broden.decode_plane(ppath)
            except (OSError, ValueError, SyntaxError) as exc:
                f.append(
                    _finding(
                        "E105",
                        "index.csv",
                        f"images/{p} cannot be read ({exc})",
                        line=row.line,
                        column=cat,
                    )
                )
                out.bad_planes += 1
                continue
            if row.sh is not None and row.sw is not None and arr.shape != (row.sh, row.sw):
                f.append(
                    _finding(
                        "E203",
                        "index.csv",
                        f"images/{p} is {arr.shape[0]}x{arr.shape[1]} (HxW), "
                        f"the row says sh={row.sh} sw={row.sw}",
                        line=row.line,
                        column=cat,
                    )
                )
            if members is None:
                continue  # column without a category: reported once as E502
            values = np.unique(arr)
            for v in values.tolist():
                if v == 0 or v in members:
                    continue
                y, x = (int(t) for t in np.argwhere(arr == v)[0])
                npx = int(np.count_nonzero(arr == v))
                detail = f"pixel value {v} at (y={y}, x={x}), {npx} pixels"
                if v not in ctx.known:
                    f.append(
                        _finding(
                            "E301",
                            f"images/{p}",
                            f"label {v} is not in label.csv",
                            line=row.line,
                            column=cat,
                            detail=detail,
                        )
                    )
                else:
                    f.append(
                        _finding(
                            "E302",
                            f"images/{p}",
                            f"label {v} is not a label of category {cat!r} (not in c_{cat}.csv)",
                            line=row.line,
                            column=cat,
                            detail=detail,
                        )
                    )
            arrays.append(arr)
        if members is None:
            continue
        for n in numbers:
            if n == 0 or n in members:
                continue
            what = "is not in label.csv" if n not in ctx.known else f"is not in c_{cat}.csv"
            f.append(
                _finding(
                    "E301" if n not in ctx.known else "E303",
                    "index.csv",
                    f"image-level label {n} {what}",
                    line=row.line,
                    column=cat,
                    detail=f"item {n}",
                )
            )
        if arrays:
            planes[cat] = arrays
        if numbers:
            image_labels[cat] = numbers
    if row.duplicate:
        return
    stats = broden.LabelStats()
    stats.add_image(planes, image_labels)
    for k, v in stats.frequency.items():
        out.frequency[k] = out.frequency.get(k, 0) + v
    for k, c in stats.coverage.items():
        out.coverage[k] = out.coverage.get(k, 0.0) + c


def _check_chunk(ctx: _Ctx, rows: Sequence[_Row]) -> _ChunkResult:
    """Check a chunk of rows. Per-image coverages are added in row order, as LabelStats does."""
    out = _ChunkResult([], {}, {}, 0)
    for row in rows:
        _check_row(ctx, row, out)
    return out


_WORKER_CTX: _Ctx | None = None


def _init_worker(ctx: _Ctx) -> None:
    global _WORKER_CTX
    _WORKER_CTX = ctx


def _check_chunk_in_worker(rows: Sequence[_Row]) -> _ChunkResult:
    assert _WORKER_CTX is not None
    return _check_chunk(_WORKER_CTX, rows)


# ----------------------------------------------------------------------------- the validator


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


class _Validator:
    def __init__(
        self,
        root: Path,
        netdissect: bool,
        progress: Callable[[int, int], None] | None,
        min_images: int,
        jobs: int | None,
        max_per_code: int,
    ) -> None:
        self.root = root
        self.netdissect = netdissect
        self.progress = progress
        self.min_images = min_images
        self.jobs = jobs
        self.max_per_code = max_per_code
        self.findings: list[Finding] = []
        self.overflow: dict[str, int] = {}
        self.per_code: dict[str, int] = {}
        self.freq: dict[tuple[str, int], int] = {}
        self.cov: dict[tuple[str, int], float] = {}
        self.bad_planes = 0
        self.bad_rows = 0
        self.sizes: dict[tuple[int, int, int, int], list[int]] = {}
        self.columns: list[str] = []
        self.members: dict[str, frozenset[int]] = {}
        self.rows_seen = 0

    # -- bookkeeping

    def add(self, f: Finding) -> None:
        n = self.per_code.get(f.code, 0)
        self.per_code[f.code] = n + 1
        if n < self.max_per_code:
            self.findings.append(f)
        else:
            self.overflow[f.code] = self.overflow.get(f.code, 0) + 1

    def emit(self, code: str, file: str, message: str, **kw: Any) -> None:
        self.add(_finding(code, file, message, **kw))

    # -- small tables

    def read_table(
        self, rel: str, schema_name: str, column_codes: dict[str, str] | None = None
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Rows of a small CSV as (line, typed values); None when missing/unreadable/bad header.

        Values that fail their type are None. ``column_codes`` maps a column to the code used for
        its constraint violations (default E107).
        """
        path = self.root / rel
        fields = _fields(schema_name)
        names = [f["name"] for f in fields]
        if not path.is_file():
            self.emit("E101", rel, f"{rel} is missing")
            return None
        out: list[tuple[int, dict[str, Any]]] = []
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header != names:
                    self.emit(
                        "E103",
                        rel,
                        f"header is {','.join(header or [])!r}, expected {','.join(names)!r}",
                        line=1,
                    )
                    return None
                for cells in reader:
                    line = reader.line_num
                    if not cells:
                        continue
                    if len(cells) != len(names):
                        self.emit(
                            "E108",
                            rel,
                            f"has {len(cells)} cells, the header has {len(names)}",
                            line=line,
                        )
                        continue
                    out.append((line, self._typed(rel, line, fields, cells, column_codes)))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            self.emit("E102", rel, f"{rel} cannot be read ({exc})")
            return None
        key = load_schema(schema_name).get("primaryKey")
        if key:
            seen: dict[Any, int] = {}
            for line, r in out:
                k = r.get(key)
                if k is None:
                    continue
                if k in seen:
                    self.emit(
                        "E109",
                        rel,
                        f"{key} {k} is repeated (first on line {seen[k]})",
                        line=line,
                        column=key,
                    )
                else:
                    seen[k] = line
        return out

    def _typed(
        self,
        rel: str,
        line: int,
        fields: list[dict[str, Any]],
        cells: Sequence[str],
        column_codes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for spec, text in zip(fields, cells):
            value, code, msg = _convert(spec, text)
            if code == "E107" and column_codes and spec["name"] in column_codes:
                code = column_codes[spec["name"]]
                msg = f"{text!r} is not of the form cat(n) or cat(n);cat2(m) NetDissect-Lite needs"
            if code:
                self.emit(code, rel, msg or "", line=line, column=spec["name"])
            row[spec["name"]] = value
        return row

    # -- run

    def run(self) -> list[Finding]:
        root = self.root
        cats_table = self.read_table("category.csv", "broden_category")
        label_table = self.read_table("label.csv", "broden_label", {"category": "E406"})
        cats_rows = cats_table or []
        if cats_table is not None:
            categories = [r["name"] for _, r in cats_rows if r.get("name")]
        else:  # fall back on the index columns to still check files and pixels
            categories = self.index_columns()
        codes_rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for cat in categories:
            rows = self.read_table(f"c_{cat}.csv", "broden_codes")
            if rows is not None:
                codes_rows[cat] = rows
        if not (root / "images").is_dir():
            self.emit("E101", "images/", "the images/ folder is missing")
        labels = {
            r["number"]: (ln, r) for ln, r in label_table or [] if r.get("number") is not None
        }
        self.check_declared(cats_rows, labels if label_table is not None else None, codes_rows)
        members = {
            cat: frozenset(r["number"] for _, r in rows if r.get("number") is not None)
            for cat, rows in codes_rows.items()
        }
        if label_table is not None:
            known = frozenset(labels)
        else:
            known = frozenset().union(*members.values())
        # a category whose c_<cat>.csv is missing: no membership known, accept its labels
        for cat in categories:
            members.setdefault(cat, known)
        self.members = members
        files = (root / "images").is_dir()
        ctx = _Ctx(images=str(root / "images"), known=known, members=members, files=files)
        index_ok = self.check_index(categories, ctx, check_columns=cats_table is not None)
        missing = [
            n for n, t in (("category.csv", cats_table), ("label.csv", label_table)) if t is None
        ]
        if missing:
            self.emit(
                "W603",
                missing[0],
                f"{' and '.join(missing)} unusable; frequencies and coverages were not compared",
            )
        elif index_ok:
            self.check_stats(cats_rows, labels, codes_rows, categories)
        self.check_orphans()
        for code, n in sorted(self.overflow.items()):
            name, severity, hint = CODES[code]
            self.findings.append(
                Finding(
                    code=code,
                    severity=severity,
                    file="(several)",
                    message=f"{n} more {code} {name} findings not listed",
                    hint=hint,
                    count=n,
                )
            )
        order = {"error": 0, "warning": 1}
        self.findings.sort(
            key=lambda f: (order[f.severity], f.code, f.count > 1, f.file, f.line or 0)
        )
        return self.findings

    def check_declared(
        self,
        cats_rows: list[tuple[int, dict[str, Any]]],
        labels: dict[int, tuple[int, dict[str, Any]]] | None,
        codes_rows: dict[str, list[tuple[int, dict[str, Any]]]],
    ) -> None:
        """Checks between the tables alone: codes dense, names, membership, category counts.

        ``labels`` is None when label.csv is unusable: the checks against it are skipped.
        """
        cat_names = {r["name"] for _, r in cats_rows if r.get("name")}
        in_codes: dict[int, set[str]] = {}
        for cat, rows in codes_rows.items():
            rel = f"c_{cat}.csv"
            for i, (ln, r) in enumerate(rows, start=1):
                if r.get("code") is not None and r["code"] != i:
                    self.emit(
                        "E407",
                        rel,
                        f"code is {r['code']}, expected {i} (codes run "
                        f"1..{len(rows)} in row order)",
                        line=ln,
                        column="code",
                    )
                num = r.get("number")
                if num is None:
                    continue
                in_codes.setdefault(num, set()).add(cat)
                if labels is None:
                    continue
                if num not in labels:
                    self.emit(
                        "E410", rel, f"label {num} is not in label.csv", line=ln, column="number"
                    )
                elif r.get("name") != labels[num][1].get("name"):
                    self.emit(
                        "E408",
                        rel,
                        f"name {r.get('name')!r} differs from label.csv's "
                        f"{labels[num][1].get('name')!r} for label {num}",
                        line=ln,
                        column="name",
                    )
        for _, r in cats_rows:
            cname = r.get("name")
            if cname not in codes_rows:
                continue
            rows = codes_rows[cname]
            nums = [x["number"] for _, x in rows if x.get("number") is not None]
            expect = {
                "count": len(rows),
                "first": min(nums, default=0),
                "last": max(nums, default=0),
            }
            for col, val in expect.items():
                if r.get(col) is not None and r[col] != val:
                    self.emit(
                        "E401",
                        "category.csv",
                        f"{col} of {cname!r} is {r[col]}, c_{cname}.csv gives {val}",
                        line=_line_of(cats_rows, cname),
                        column=col,
                    )
        for num, (ln, r) in (labels or {}).items():
            if num == 0:
                continue
            text = r.get("category")
            if not text:
                self.emit(
                    "E406",
                    "label.csv",
                    "category is empty; NetDissect-Lite needs cat(n)",
                    line=ln,
                    column="category",
                )
                continue
            try:
                parsed = broden.parse_category_field(text)
            except ValueError:
                continue  # already reported as E406 by the schema pattern
            listed = {c for c, _ in parsed}
            for c in sorted(listed - cat_names if cat_names else ()):
                self.emit(
                    "E409",
                    "label.csv",
                    f"label {num} names category {c!r}, which is not in category.csv",
                    line=ln,
                    column="category",
                )
            held = in_codes.get(num, set())
            for c in sorted((listed & cat_names) - held):
                if c in codes_rows:
                    self.emit(
                        "E409",
                        "label.csv",
                        f"label {num} names category {c!r} but c_{c}.csv does not hold it",
                        line=ln,
                        column="category",
                    )
            for c in sorted(held - listed):
                self.emit(
                    "E409",
                    "label.csv",
                    f"c_{c}.csv holds label {num} but its category "
                    f"field {text!r} does not name {c!r}",
                    line=ln,
                    column="category",
                )

    def index_columns(self) -> list[str]:
        """The category columns of index.csv's header (empty when unreadable)."""
        try:
            with open(self.root / "index.csv", newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            return []
        return header[len(broden.INDEX_FIXED) :]

    def check_index(self, categories: list[str], ctx: _Ctx, check_columns: bool = True) -> bool:
        """Stream index.csv; False when it cannot be read at all."""
        rel = "index.csv"
        path = self.root / rel
        fields = _fields("broden_index")
        fixed = [f["name"] for f in fields]
        if not path.is_file():
            self.emit("E101", rel, "index.csv is missing")
            return False
        try:
            total = count_rows(path)
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None) or []
                if header[: len(fixed)] != fixed:
                    self.emit(
                        "E103",
                        rel,
                        f"header starts {','.join(header[: len(fixed)])!r}, "
                        f"expected {','.join(fixed)!r} then one column per category",
                        line=1,
                    )
                    return False
                columns = header[len(fixed) :]
                self.columns = columns
                for c in categories:
                    if check_columns and c not in columns:
                        self.emit("E501", rel, f"category {c!r} has no column in index.csv", line=1)
                for c in columns:
                    if check_columns and c not in categories:
                        self.emit(
                            "E502",
                            rel,
                            f"column {c!r} is not a category of category.csv",
                            line=1,
                            column=c,
                        )
                self._stream(reader, fields, header, columns, ctx, total)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            self.emit("E102", rel, f"index.csv cannot be read ({exc})")
            self.bad_rows += 1  # the rest of the index is unknown: no orphan check
            return False
        return True

    def _stream(
        self,
        reader: Any,
        fields: list[dict[str, Any]],
        header: list[str],
        columns: list[str],
        ctx: _Ctx,
        total: int,
    ) -> None:
        db = self.db = sqlite3.connect("")  # temporary on-disk database, removed on close
        db.execute("PRAGMA cache_size = -1024")  # 1 MiB page cache; the rest stays on disk
        db.execute("CREATE TABLE img (path TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        db.execute("CREATE TABLE ref (path TEXT PRIMARY KEY) WITHOUT ROWID")
        jobs = self.jobs
        if jobs is None:
            # the main process parses and merges: workers only pay off with a core to spare
            cpus = os.cpu_count() or 1
            jobs = min(4, cpus - 1) if total >= 2000 and cpus >= 3 else 1
        sizes = self.sizes
        nfixed = len(fields)

        def rows() -> Iterator[_Row]:
            for cells in reader:
                line = reader.line_num
                if not cells:
                    continue
                if len(cells) != len(header):
                    self.emit(
                        "E108",
                        "index.csv",
                        f"has {len(cells)} cells, the header has {len(header)}",
                        line=line,
                    )
                    self.bad_rows += 1
                    continue
                t = self._typed("index.csv", line, fields, cells[:nfixed])
                image = t["image"] or ""
                duplicate = False
                if image:
                    try:
                        db.execute("INSERT INTO img VALUES (?, ?)", (image, line))
                    except sqlite3.IntegrityError:
                        (first,) = db.execute(
                            "SELECT line FROM img WHERE path = ?", (image,)
                        ).fetchone()
                        duplicate = True
                        self.emit(
                            "E201",
                            "index.csv",
                            f"images/{image} is listed again (first on line {first})",
                            line=line,
                            column="image",
                        )
                    db.execute("INSERT OR IGNORE INTO ref VALUES (?)", (image,))
                ih, iw, sh, sw = t["ih"], t["iw"], t["sh"], t["sw"]
                if self.netdissect and ih is not None and iw is not None:
                    if ih != iw:
                        self.emit(
                            "E204",
                            "index.csv",
                            f"images/{image} is {ih}x{iw} (HxW); "
                            "NetDissect-Lite needs square images",
                            line=line,
                            column="ih,iw",
                        )
                    if None not in (sh, sw):
                        key = (ih, iw, sh, sw)
                        if key in sizes:
                            sizes[key][0] += 1
                        elif len(sizes) < _MAX_SIZES:
                            sizes[key] = [1, line]
                parsed: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
                for col, text in zip(columns, cells[nfixed:]):
                    planes, numbers = broden.parse_index_cell(text)
                    parsed[col] = (planes, numbers)
                    for p in planes:
                        db.execute("INSERT OR IGNORE INTO ref VALUES (?)", (p,))
                yield _Row(line, image, ih, iw, sh, sw, parsed, duplicate)

        def chunks() -> Iterator[list[_Row]]:
            buf: list[_Row] = []
            for r in rows():
                buf.append(r)
                if len(buf) == _CHUNK:
                    yield buf
                    buf = []
            if buf:
                yield buf

        if jobs <= 1:
            for chunk in chunks():
                self._merge(_check_chunk(ctx, chunk), len(chunk), total)
        else:
            with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(ctx,)) as ex:
                pending: deque[tuple[Future[_ChunkResult], int]] = deque()
                for chunk in chunks():
                    pending.append((ex.submit(_check_chunk_in_worker, chunk), len(chunk)))
                    if len(pending) >= 4 * jobs:
                        fut, n = pending.popleft()
                        self._merge(fut.result(), n, total)
                while pending:
                    fut, n = pending.popleft()
                    self._merge(fut.result(), n, total)
        db.commit()
        self.check_sizes()

    def check_sizes(self) -> None:
        """E205: every size other than the most common one, once, at its first row."""
        if len(self.sizes) < 2:
            return
        ranked = sorted(self.sizes.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        (main, (n_main, line_main)) = ranked[0]
        for size, (n, line) in ranked[1:]:
            self.emit(
                "E205",
                "index.csv",
                f"{n} {'row has' if n == 1 else 'rows have'} ih,iw,sh,sw = {','.join(map(str, size))}, but {n_main} rows "
                f"(first on line {line_main}) have {','.join(map(str, main))}; "
                "NetDissect-Lite never resizes",
                line=line,
                detail=f"first of {n} rows",
            )

    def _merge(self, res: _ChunkResult, n: int, total: int) -> None:
        for f in res.findings:
            self.add(f)
        for k, v in res.frequency.items():
            self.freq[k] = self.freq.get(k, 0) + v
        for k, c in res.coverage.items():
            self.cov[k] = self.cov.get(k, 0.0) + c
        self.bad_planes += res.bad_planes
        self.rows_seen += n
        if self.progress is not None:
            self.progress(self.rows_seen, total)

    def check_stats(
        self,
        cats_rows: list[tuple[int, dict[str, Any]]],
        labels: dict[int, tuple[int, dict[str, Any]]],
        codes_rows: dict[str, list[tuple[int, dict[str, Any]]]],
        categories: list[str],
    ) -> None:
        """Compare category.csv, label.csv and c_<cat>.csv with statistics from the pixels."""
        if self.bad_planes or self.bad_rows or not (self.root / "images").is_dir():
            why = []
            if self.bad_planes:
                why.append(f"{self.bad_planes} label plane(s) could not be read")
            if self.bad_rows:
                why.append(f"{self.bad_rows} index row(s) could not be parsed")
            if not why:
                why.append("images/ is missing")
            self.emit(
                "W603",
                "index.csv",
                f"{' and '.join(why)}; frequencies and coverages were not compared",
            )
            for num, (ln, r) in sorted(labels.items()):
                if num and r.get("frequency") is not None and r["frequency"] < self.min_images:
                    self.emit(
                        "W601",
                        "label.csv",
                        f"label {num} {r.get('name')!r} is in "
                        f"{r['frequency']} images (label.csv), fewer than "
                        f"{self.min_images}",
                        line=ln,
                        column="frequency",
                    )
            return
        # pixels already reported as E301/E302/E303 are left out; categories without an index
        # column (E501) are not compared
        keep = {k for k in self.freq if k[1] in self.members.get(k[0], frozenset())}
        stats = broden.LabelStats(
            frequency={k: v for k, v in self.freq.items() if k in keep},
            coverage={k: v for k, v in self.cov.items() if k in keep},
        )
        names = {n: str(r.get("name")) for n, (_, r) in labels.items()}
        for _, n in stats.frequency:
            names.setdefault(n, f"?{n}")
        cats, labs, codes = broden.build_tables(categories, names, stats)
        absent = set(categories) - set(self.columns)
        got_cat = {c.name: c for c in cats}
        for ln, r in cats_rows:
            c = got_cat.get(r.get("name") or "")
            if c is None or c.name in absent:
                continue
            for col in ("first", "last", "count", "frequency"):
                if r.get(col) is not None and r[col] != getattr(c, col):
                    self.emit(
                        "E401",
                        "category.csv",
                        f"{col} of {c.name!r} is {r[col]}, the pixels give {getattr(c, col)}",
                        line=ln,
                        column=col,
                    )
        got_lab = {x.number: x for x in labs}
        for num, (ln, r) in sorted(labels.items()):
            if num == 0 or any(num in self.members.get(c, ()) for c in absent):
                continue
            g = got_lab.get(num)
            freq = g.frequency if g else 0
            cov = g.coverage if g else 0.0
            if r.get("frequency") is not None and r["frequency"] != freq:
                self.emit(
                    "E402",
                    "label.csv",
                    f"frequency of label {num} is {r['frequency']}, the pixels give {freq}",
                    line=ln,
                    column="frequency",
                )
            if r.get("coverage") is not None and not _close(r["coverage"], cov):
                self.emit(
                    "E403",
                    "label.csv",
                    f"coverage of label {num} is {r['coverage']:f}, the pixels give {cov:f}",
                    line=ln,
                    column="coverage",
                )
            text = r.get("category")
            want = g.category_field if g else ""
            if text and want and text != want:
                try:
                    broden.parse_category_field(text)
                except ValueError:
                    pass
                else:
                    self.emit(
                        "E402",
                        "label.csv",
                        f"category field of label {num} is {text!r}, the pixels give {want!r}",
                        line=ln,
                        column="category",
                    )
            if freq < self.min_images:
                self.emit(
                    "W601",
                    "label.csv",
                    f"label {num} {r.get('name')!r} is in {freq} "
                    f"images, fewer than {self.min_images}",
                    line=ln,
                    column="frequency",
                )
        for cat, rows in codes_rows.items():
            if cat in absent:
                continue
            got = {c.number: c for c in codes.get(cat, [])}
            rel = f"c_{cat}.csv"
            for ln, r in rows:
                cnum = r.get("number")
                if cnum is None:
                    continue
                g2 = got.get(cnum)
                freq = g2.frequency if g2 else 0
                cov = g2.coverage if g2 else 0.0
                if r.get("frequency") is not None and r["frequency"] != freq:
                    self.emit(
                        "E404",
                        rel,
                        f"frequency of label {cnum} is {r['frequency']}, the pixels give {freq}",
                        line=ln,
                        column="frequency",
                    )
                if r.get("coverage") is not None and not _close(r["coverage"], cov):
                    self.emit(
                        "E405",
                        rel,
                        f"coverage of label {cnum} is {r['coverage']:f}, the pixels give {cov:f}",
                        line=ln,
                        column="coverage",
                    )

    def check_orphans(self) -> None:
        """Files under images/ that index.csv does not reference (warning)."""
        images = self.root / "images"
        db: sqlite3.Connection | None = getattr(self, "db", None)
        if db is None or not images.is_dir() or self.bad_rows:
            return  # rows that could not be parsed would make their files look orphaned
        db.execute("CREATE TABLE orphan (path TEXT PRIMARY KEY) WITHOUT ROWID")
        # os.scandir streams a folder's entries (os.walk would list a 60,000-file folder at once)
        todo = [""]
        while todo:
            rel_dir = todo.pop()
            with os.scandir(images / rel_dir if rel_dir else images) as it:
                for entry in it:
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    if entry.is_dir():
                        todo.append(rel)
                    elif not db.execute("SELECT 1 FROM ref WHERE path = ?", (rel,)).fetchone():
                        db.execute("INSERT OR IGNORE INTO orphan VALUES (?)", (rel,))
        cur = db.execute("SELECT path FROM orphan ORDER BY path")
        for (rel,) in cur:
            self.emit("W602", f"images/{rel}", "is not referenced by index.csv")
        db.close()


def _line_of(rows: list[tuple[int, dict[str, Any]]], name: str) -> int | None:
    for ln, r in rows:
        if r.get("name") == name:
            return ln
    return None


def _close(declared: float, computed: float) -> bool:
    return abs(declared - computed) <= COVERAGE_ABS_TOL + COVERAGE_REL_TOL * abs(computed)


def validate(
    root: str | Path,
    *,
    netdissect: bool = True,
    progress: Callable[[int, int], None] | None = None,
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
    return _Validator(path, netdissect, progress, min_images, jobs, max_per_code).run()


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """Finding count per code (summaries counted by their ``count``)."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.code] = out.get(f.code, 0) + f.count
    return out
