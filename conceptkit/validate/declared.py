"""Checks between the tables alone: codes dense, names, membership, category counts."""

from __future__ import annotations

from typing import Any

from conceptkit import broden
from conceptkit.validate.findings import Collector
from conceptkit.validate.tables import Rows, Tables

Labels = dict[int, tuple[int, dict[str, Any]]]


def _check_codes(
    out: Collector, codes_rows: dict[str, Rows], labels: Labels | None
) -> dict[int, set[str]]:
    """E407 (codes not 1..n), E410 (unknown label), E408 (name differs); label -> its categories."""
    in_codes: dict[int, set[str]] = {}
    for cat, rows in codes_rows.items():
        rel = f"c_{cat}.csv"
        for i, (ln, r) in enumerate(rows, start=1):
            if r.get("code") is not None and r["code"] != i:
                out.emit(
                    "E407",
                    rel,
                    f"code is {r['code']}, expected {i} (codes run 1..{len(rows)} in row order)",
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
                out.emit("E410", rel, f"label {num} is not in label.csv", line=ln, column="number")
            elif r.get("name") != labels[num][1].get("name"):
                out.emit(
                    "E408",
                    rel,
                    f"name {r.get('name')!r} differs from label.csv's "
                    f"{labels[num][1].get('name')!r} for label {num}",
                    line=ln,
                    column="name",
                )
    return in_codes


def _line_of(rows: Rows, name: str) -> int | None:
    """Line of the first row named ``name``."""
    return next((ln for ln, r in rows if r.get("name") == name), None)


def _check_category_counts(out: Collector, cats_rows: Rows, codes_rows: dict[str, Rows]) -> None:
    """E401: category.csv's count, first and last against its c_<cat>.csv."""
    for _, r in cats_rows:
        cname = r.get("name")
        if cname not in codes_rows:
            continue
        rows = codes_rows[cname]
        nums = [x["number"] for _, x in rows if x.get("number") is not None]
        expect = {"count": len(rows), "first": min(nums, default=0), "last": max(nums, default=0)}
        for col, val in expect.items():
            if r.get(col) is not None and r[col] != val:
                out.emit(
                    "E401",
                    "category.csv",
                    f"{col} of {cname!r} is {r[col]}, c_{cname}.csv gives {val}",
                    line=_line_of(cats_rows, cname),
                    column=col,
                )


def _check_label_field(
    out: Collector,
    num: int,
    ln: int,
    text: str,
    cat_names: set[str],
    codes_rows: dict[str, Rows],
    held: set[str],
) -> None:
    """E409: the categories label ``num``'s field names against those whose codes hold it."""
    try:
        parsed = broden.parse_category_field(text)
    except ValueError:
        return  # already reported as E406 by the schema pattern
    listed = {c for c, _ in parsed}
    for c in sorted(listed - cat_names if cat_names else ()):
        out.emit(
            "E409",
            "label.csv",
            f"label {num} names category {c!r}, which is not in category.csv",
            line=ln,
            column="category",
        )
    for c in sorted((listed & cat_names) - held):
        if c in codes_rows:
            out.emit(
                "E409",
                "label.csv",
                f"label {num} names category {c!r} but c_{c}.csv does not hold it",
                line=ln,
                column="category",
            )
    for c in sorted(held - listed):
        out.emit(
            "E409",
            "label.csv",
            f"c_{c}.csv holds label {num} but its category field {text!r} does not name {c!r}",
            line=ln,
            column="category",
        )


def check_declared(out: Collector, t: Tables) -> None:
    """Check the tables against each other; checks against an unusable label.csv are skipped."""
    labels = t.labels if t.labels_ok else None
    cat_names = {r["name"] for _, r in t.cats_rows if r.get("name")}
    in_codes = _check_codes(out, t.codes_rows, labels)
    _check_category_counts(out, t.cats_rows, t.codes_rows)
    for num, (ln, r) in (labels or {}).items():
        if num == 0:
            continue
        text = r.get("category")
        if not text:
            out.emit(
                "E406",
                "label.csv",
                "category is empty; NetDissect-Lite needs cat(n)",
                line=ln,
                column="category",
            )
            continue
        _check_label_field(out, num, ln, text, cat_names, t.codes_rows, in_codes.get(num, set()))
