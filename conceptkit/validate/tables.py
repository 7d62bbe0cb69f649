"""The small tables (category.csv, label.csv, c_<cat>.csv), typed by their Table Schemas.

The headers, types and constraints come from ``schemas/broden_*.json``
(:func:`conceptkit.schemas.load`); a cell that fails its type is reported and read as None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptkit import broden
from conceptkit.schemas import load as load_schema
from conceptkit.validate.findings import Collector

#: (1-based line, typed values by column) of each data row of a CSV
Rows = list[tuple[int, dict[str, Any]]]

_INTEGER = re.compile(r"^-?[0-9]{1,18}$")
_NON_FINITE = {"nan", "inf", "infinity"}
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def fields(schema_name: str) -> list[dict[str, Any]]:
    """The field specs of the Table Schema ``schema_name``."""
    out: list[dict[str, Any]] = load_schema(schema_name)["fields"]
    return out


def show(text: str, n: int = 200) -> str:
    """``repr(text)``, cut to about ``n`` characters (cells can be 128 KiB long)."""
    return repr(text) if len(text) <= n else repr(text[:n]) + f"... ({len(text):,} characters)"


def _number(kind: str, text: str) -> tuple[Any, str | None]:
    """(value, None) for an integer/number written in ASCII, else (None, the E106 message)."""
    script = "" if text.isascii() else " in ASCII digits"
    if kind == "integer":
        if _INTEGER.match(text):
            return int(text), None
        if re.match(r"^-?[0-9]+$", text):
            return None, f"expected an integer of at most 18 digits, found {len(text)} digits"
        return None, f"expected an integer{script}, found {show(text, 40)}"
    value = float(text) if _NUMBER.match(text) else None
    if value is not None and math.isfinite(value):
        return value, None
    if value is not None or text.strip().lower().lstrip("+-") in _NON_FINITE:
        return None, f"expected a finite number, found {show(text, 40)}"
    return None, f"expected a number{script}, found {show(text, 40)}"


def convert(spec: dict[str, Any], text: str) -> tuple[Any, str | None, str | None]:
    """Typed value of ``text`` under field ``spec``: (value, error code, message).

    Numbers are read strictly: ASCII digits only (no ``²``, ``١٢``, spaces or ``_``), finite
    (no nan, inf, 1e999), integers of at most 18 digits.
    """
    kind = spec.get("type", "string")
    cons = spec.get("constraints", {})
    if text == "" and cons.get("required"):
        return None, "E107", "is empty but required"
    value: Any = text
    if kind in ("integer", "number"):
        value, problem = _number(kind, text)
        if problem is not None:
            return None, "E106", problem
        if "minimum" in cons and value < cons["minimum"]:
            return value, "E107", f"{text} is below the minimum {cons['minimum']}"
        if "maximum" in cons and value > cons["maximum"]:
            return value, "E107", f"{text} is above the maximum {cons['maximum']}"
    elif "pattern" in cons and text and not re.search(cons["pattern"], text):
        return value, "E107", f"{show(text)} does not match the pattern {cons['pattern']}"
    return value, None, None


def typed_row(
    out: Collector,
    rel: str,
    line: int,
    specs: list[dict[str, Any]],
    cells: Sequence[str],
    column_codes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The typed values of one row; each failing cell reported at (``rel``, ``line``, column).

    ``column_codes`` maps a column to the code used for its constraint violations (default E107).
    """
    row: dict[str, Any] = {}
    for spec, text in zip(specs, cells):
        value, code, msg = convert(spec, text)
        if code == "E107" and column_codes and spec["name"] in column_codes:
            code = column_codes[spec["name"]]
            msg = f"{text!r} is not of the form cat(n) or cat(n);cat2(m) NetDissect-Lite needs"
        if code:
            out.emit(code, rel, msg or "", line=line, column=spec["name"])
        row[spec["name"]] = value
    return row


def _read_rows(
    out: Collector,
    path: Path,
    rel: str,
    specs: list[dict[str, Any]],
    column_codes: dict[str, str] | None,
) -> Rows | None:
    """Typed rows of ``path``; None (reported) when the header is wrong. Raises CsvError."""
    names = [f["name"] for f in specs]
    rows: Rows = []
    lines = broden.csv_rows(path)
    _, header = next(lines, (1, []))
    if header != names:
        out.emit(
            "E103",
            rel,
            f"header is {show(','.join(header))}, expected {','.join(names)!r}",
            line=1,
        )
        return None
    for line, cells in lines:
        if len(cells) != len(names):
            out.emit("E108", rel, f"has {len(cells)} cells, the header has {len(names)}", line=line)
            continue
        rows.append((line, typed_row(out, rel, line, specs, cells, column_codes)))
    return rows


def _check_primary_key(out: Collector, rel: str, key: str, rows: Rows) -> None:
    """E109 for every row whose ``key`` repeats an earlier row's."""
    seen: dict[Any, int] = {}
    for line, r in rows:
        k = r.get(key)
        if k is None:
            continue
        if k in seen:
            out.emit(
                "E109",
                rel,
                f"{key} {k} is repeated (first on line {seen[k]})",
                line=line,
                column=key,
            )
        else:
            seen[k] = line


def read_table(
    out: Collector,
    root: Path,
    rel: str,
    schema_name: str,
    column_codes: dict[str, str] | None = None,
) -> Rows | None:
    """Rows of a small CSV as (line, typed values); None when missing/unreadable/bad header."""
    path = root / rel
    if not path.is_file() and not path.is_dir():
        out.emit("E101", rel, f"{rel} is missing")
        return None
    try:
        rows = _read_rows(out, path, rel, fields(schema_name), column_codes)
    except broden.CsvError as exc:
        out.emit("E102", rel, f"{rel} {exc.message}", line=exc.line)
        return None
    key = load_schema(schema_name).get("primaryKey")
    if rows is not None and key:
        _check_primary_key(out, rel, key, rows)
    return rows


def index_columns(root: Path) -> list[str]:
    """The category columns of index.csv's header (empty when unreadable)."""
    try:
        _, header = next(broden.csv_rows(root / "index.csv"), (1, []))
    except broden.CsvError:
        return []
    return header[len(broden.INDEX_FIXED) :]


@dataclass
class Tables:
    """What the small tables say. ``cats_ok`` / ``labels_ok``: the file was usable.

    ``labels`` maps a label number to (line, typed row); ``codes_rows[cat]`` are the rows of
    ``c_<cat>.csv`` (absent when that file is unusable).
    """

    categories: list[str]
    cats_rows: Rows
    cats_ok: bool
    labels: dict[int, tuple[int, dict[str, Any]]]
    labels_ok: bool
    codes_rows: dict[str, Rows]

    def members(self) -> tuple[frozenset[int], dict[str, frozenset[int]]]:
        """(every known label number, the label numbers of each category).

        Known labels are label.csv's, or the union of the c_<cat>.csv files without it; a
        category whose c_<cat>.csv is unusable accepts every known label.
        """
        members = {
            cat: frozenset(r["number"] for _, r in rows if r.get("number") is not None)
            for cat, rows in self.codes_rows.items()
        }
        known = frozenset(self.labels) if self.labels_ok else frozenset().union(*members.values())
        for cat in self.categories:
            members.setdefault(cat, known)
        return known, members


def _file_safe(name: str) -> bool:
    """Whether ``c_<name>.csv`` is a file in the folder itself (no separator, no control)."""
    return "/" not in name and "\\" not in name and name.isprintable()


def read_tables(out: Collector, root: Path) -> Tables:
    """Read category.csv, label.csv and every c_<cat>.csv, reporting what is wrong in each.

    Without a usable category.csv the categories are taken from index.csv's columns, so that
    files and pixels are still checked.
    """
    cats_table = read_table(out, root, "category.csv", "broden_category")
    label_table = read_table(out, root, "label.csv", "broden_label", {"category": "E406"})
    cats_rows = cats_table or []
    if cats_table is not None:
        categories = [r["name"] for _, r in cats_rows if r.get("name")]
    else:
        categories = index_columns(root)
    codes_rows: dict[str, Rows] = {}
    for cat in categories:
        if not _file_safe(cat):
            continue  # E107 (category.csv) or no file to read (index.csv's columns)
        rows = read_table(out, root, f"c_{cat}.csv", "broden_codes")
        if rows is not None:
            codes_rows[cat] = rows
    labels = {r["number"]: (ln, r) for ln, r in label_table or [] if r.get("number") is not None}
    return Tables(
        categories=categories,
        cats_rows=cats_rows,
        cats_ok=cats_table is not None,
        labels=labels,
        labels_ok=label_table is not None,
        codes_rows=codes_rows,
    )
