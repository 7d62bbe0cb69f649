"""Compare category.csv, label.csv and c_<cat>.csv with the statistics recomputed from the pixels.

Coverages are compared with an absolute plus relative tolerance (:data:`COVERAGE_ABS_TOL`,
:data:`COVERAGE_REL_TOL`): the tables hold them with six decimals.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from conceptkit import broden
from conceptkit.validate.findings import Collector
from conceptkit.validate.pool import Tally
from conceptkit.validate.tables import Rows, Tables

COVERAGE_ABS_TOL = 1e-3
COVERAGE_REL_TOL = 1e-5


def _close(declared: float, computed: float) -> bool:
    return abs(declared - computed) <= COVERAGE_ABS_TOL + COVERAGE_REL_TOL * abs(computed)


def _skipped(out: Collector, t: Tables, tally: Tally, bad_rows: int, min_images: int) -> None:
    """W603 saying why the statistics were not compared; W601 from label.csv's own counts."""
    why = []
    if tally.bad_planes:
        why.append(f"{tally.bad_planes} label plane(s) could not be read")
    if bad_rows:
        why.append(f"{bad_rows} index row(s) could not be parsed")
    if not why:
        why.append("images/ is missing")
    out.emit(
        "W603", "index.csv", f"{' and '.join(why)}; frequencies and coverages were not compared"
    )
    for num, (ln, r) in sorted(t.labels.items()):
        if num and r.get("frequency") is not None and r["frequency"] < min_images:
            out.emit(
                "W601",
                "label.csv",
                f"label {num} {r.get('name')!r} is in {r['frequency']} images (label.csv), "
                f"fewer than {min_images}",
                line=ln,
                column="frequency",
            )


def _compare_categories(
    out: Collector, cats_rows: Rows, cats: list[broden.Category], absent: set[str]
) -> None:
    """E401: first, last, count and frequency of each category."""
    got = {c.name: c for c in cats}
    for ln, r in cats_rows:
        c = got.get(r.get("name") or "")
        if c is None or c.name in absent:
            continue
        for col in ("first", "last", "count", "frequency"):
            if r.get(col) is not None and r[col] != getattr(c, col):
                out.emit(
                    "E401",
                    "category.csv",
                    f"{col} of {c.name!r} is {r[col]}, the pixels give {getattr(c, col)}",
                    line=ln,
                    column=col,
                )


def _compare_label(
    out: Collector, num: int, ln: int, r: dict[str, Any], g: broden.Label | None, min_images: int
) -> None:
    """E402/E403 (frequency, coverage, category field) and W601 for label ``num``."""
    freq = g.frequency if g else 0
    cov = g.coverage if g else 0.0
    if r.get("frequency") is not None and r["frequency"] != freq:
        out.emit(
            "E402",
            "label.csv",
            f"frequency of label {num} is {r['frequency']}, the pixels give {freq}",
            line=ln,
            column="frequency",
        )
    if r.get("coverage") is not None and not _close(r["coverage"], cov):
        out.emit(
            "E403",
            "label.csv",
            f"coverage of label {num} is {r['coverage']:f}, the pixels give {cov:f}",
            line=ln,
            column="coverage",
        )
    text = r.get("category")
    want = g.category_field if g else ""
    if text and want and text != want and _parses(text):
        out.emit(
            "E402",
            "label.csv",
            f"category field of label {num} is {text!r}, the pixels give {want!r}",
            line=ln,
            column="category",
        )
    if freq < min_images:
        out.emit(
            "W601",
            "label.csv",
            f"label {num} {r.get('name')!r} is in {freq} images, fewer than {min_images}",
            line=ln,
            column="frequency",
        )


def _parses(text: str) -> bool:
    """Whether ``text`` is a well-formed category field (malformed ones are E406 already)."""
    try:
        broden.parse_category_field(text)
    except ValueError:
        return False
    return True


def _compare_codes(
    out: Collector,
    codes_rows: dict[str, Rows],
    codes: dict[str, list[broden.CategoryCode]],
    absent: set[str],
) -> None:
    """E404/E405: frequency and coverage of every row of every c_<cat>.csv."""
    for cat, rows in codes_rows.items():
        if cat in absent:
            continue
        got = {c.number: c for c in codes.get(cat, [])}
        rel = f"c_{cat}.csv"
        for ln, r in rows:
            cnum = r.get("number")
            if cnum is None:
                continue
            g = got.get(cnum)
            freq = g.frequency if g else 0
            cov = g.coverage if g else 0.0
            if r.get("frequency") is not None and r["frequency"] != freq:
                out.emit(
                    "E404",
                    rel,
                    f"frequency of label {cnum} is {r['frequency']}, the pixels give {freq}",
                    line=ln,
                    column="frequency",
                )
            if r.get("coverage") is not None and not _close(r["coverage"], cov):
                out.emit(
                    "E405",
                    rel,
                    f"coverage of label {cnum} is {r['coverage']:f}, the pixels give {cov:f}",
                    line=ln,
                    column="coverage",
                )


def check_stats(
    out: Collector,
    t: Tables,
    tally: Tally,
    *,
    bad_rows: int,
    columns: Collection[str],
    members: dict[str, frozenset[int]],
    images_ok: bool,
    min_images: int,
) -> None:
    """Compare the tables with ``tally``; only W603 (and W601) when the pixels are incomplete.

    Pixels already reported as E301/E302/E303 are left out; categories without an index column
    (E501) are not compared.
    """
    if tally.bad_planes or bad_rows or not images_ok:
        _skipped(out, t, tally, bad_rows, min_images)
        return
    keep = {k for k in tally.frequency if k[1] in members.get(k[0], frozenset())}
    stats = broden.LabelStats(
        frequency={k: v for k, v in tally.frequency.items() if k in keep},
        coverage={k: v for k, v in tally.coverage.items() if k in keep},
    )
    names = {n: str(r.get("name")) for n, (_, r) in t.labels.items()}
    for _, n in stats.frequency:
        names.setdefault(n, f"?{n}")
    cats, labs, codes = broden.build_tables(t.categories, names, stats)
    absent = set(t.categories) - set(columns)
    _compare_categories(out, t.cats_rows, cats, absent)
    got = {x.number: x for x in labs}
    for num, (ln, r) in sorted(t.labels.items()):
        if num == 0 or any(num in members.get(c, ()) for c in absent):
            continue
        _compare_label(out, num, ln, r, got.get(num), min_images)
    _compare_codes(out, t.codes_rows, codes, absent)
