"""What later commands left in a run folder, shown on the report's unit cards.

- ``explain_<layer>.csv`` (``conceptkit explain``; columns ``unit`` 0-based, ``formula``,
  ``iou``, ...): the unit's best formula and its IoU;
- ``chance_<layer>.csv`` (``conceptkit chance``; columns ``unit`` 0-based, ``iou_chance``,
  ``z``, ``support``, ``detector``, ``flags`` ``;``-separated): the IoU expected by chance, the
  z score, the images the label occurs in, and the flags ``near_chance`` / ``few_images``.

A run without these files gets no extras (its report is unchanged). A file that is there but
breaks its format is a LayoutError naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from conceptkit import limits
from conceptkit.errors import LayoutError
from conceptkit.report.pages import esc, fmt_iou
from conceptkit.report.run import LayerInfo, RunInfo

EXPLAIN_COLUMNS = ("unit", "formula", "iou")
CHANCE_COLUMNS = ("unit", "iou_chance", "z", "support", "detector", "flags")
SHOWN_FLAGS = ("near_chance", "few_images")


@dataclass(frozen=True)
class Chance:
    iou_chance: float
    z: float
    support: int
    detector: bool
    flags: tuple[str, ...]


@dataclass
class LayerExtras:
    """Per unit (0-based): ``formulas`` ``(formula, iou)``, ``chance`` :class:`Chance`."""

    formulas: dict[int, tuple[str, float]] = field(default_factory=dict)
    chance: dict[int, Chance] = field(default_factory=dict)

    def flagged(self) -> dict[str, int]:
        """Detectors carrying each shown flag, and ``any`` (at least one of them)."""
        out = {f: 0 for f in SHOWN_FLAGS} | {"any": 0}
        for c in self.chance.values():
            hit = [f for f in SHOWN_FLAGS if f in c.flags]
            if c.detector and hit:
                out["any"] += 1
                for f in hit:
                    out[f] += 1
        return out


def _rows(path: Path, columns: tuple[str, ...], units: int) -> list[tuple[int, int, dict]]:
    """``(line, unit, row)`` of a per-unit CSV, the columns and the unit checked."""
    limits.check("file_bytes", path.stat().st_size, file=path, error=LayoutError)
    out = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise LayoutError(f"has no column {missing[0]!r}", file=path, place="line 1")
            for row in reader:
                line = reader.line_num
                text = row["unit"] or ""
                if not (text.isascii() and text.isdigit()) or int(text) >= units:
                    raise LayoutError(
                        f"unit {text!r} is not one of the layer's {units} units (0-based)",
                        file=path,
                        place=f"line {line}, column unit",
                    )
                out.append((line, int(text), row))
    except UnicodeDecodeError as exc:
        raise LayoutError(f"is not UTF-8 text ({exc.reason})", file=path) from None
    except csv.Error as exc:
        raise LayoutError(f"is not a readable CSV ({exc})", file=path) from None
    return out


def _number(row: dict, key: str, path: Path, line: int) -> float:
    try:
        value = float(row[key] or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LayoutError(
            f"{row[key]!r} is not a finite number", file=path, place=f"line {line}, column {key}"
        )
    return value


def load_extras(run: RunInfo, lay: LayerInfo) -> LayerExtras:
    """The layer's extras from ``explain_<layer>.csv`` and ``chance_<layer>.csv`` (each if there)."""
    ex = LayerExtras()
    path = run.out / f"explain_{lay.name}.csv"
    if path.is_file():
        for line, unit, row in _rows(path, EXPLAIN_COLUMNS, lay.units):
            if row["formula"]:
                ex.formulas[unit] = (row["formula"], _number(row, "iou", path, line))
    path = run.out / f"chance_{lay.name}.csv"
    if path.is_file():
        for line, unit, row in _rows(path, CHANCE_COLUMNS, lay.units):
            support = _number(row, "support", path, line)
            ex.chance[unit] = Chance(
                iou_chance=_number(row, "iou_chance", path, line),
                z=_number(row, "z", path, line),
                support=int(support),
                detector=_number(row, "detector", path, line) > 0,
                flags=tuple(f for f in (row["flags"] or "").split(";") if f),
            )
    return ex


def card_html(ex: LayerExtras) -> dict[int, str]:
    """Unit -> the HTML its card gets (units without extras left out)."""
    out: dict[int, str] = {}
    for unit, (formula, iou) in ex.formulas.items():
        out[unit] = (
            f'<div class="runners formula">formula <code>{esc(formula)}</code> '
            f"IoU {fmt_iou(iou)}</div>\n"
        )
    for unit, c in ex.chance.items():
        flags = "".join(f' <b class="flag">{esc(f)}</b>' for f in c.flags)
        out[unit] = out.get(unit, "") + (
            f'<div class="runners chance">chance IoU {fmt_iou(c.iou_chance)} · z {c.z:.2f} · '
            f"support {c.support} images{flags}</div>\n"
        )
    return out


def index_html(run: RunInfo, extras: dict[str, LayerExtras]) -> str:
    """The index's panel on the chance check (empty when no layer has ``chance_<layer>.csv``)."""
    rows = ""
    for lay in run.layers:
        ex = extras.get(lay.name)
        if ex is None or not ex.chance:
            continue
        n = ex.flagged()
        detectors = sum(1 for c in ex.chance.values() if c.detector)
        rows += (
            f"<tr><td>{esc(lay.name)}</td><td>{detectors}</td><td>{n['any']}</td>"
            f"<td>{n['near_chance']}</td><td>{n['few_images']}</td></tr>\n"
        )
    if not rows:
        return ""
    head = (
        "<tr><th>layer</th><th>detectors</th><th>flagged</th><th>near_chance</th>"
        "<th>few_images</th></tr>"
    )
    return (
        f'<h2>Chance check</h2>\n<table class="grid">\n{head}\n{rows}</table>\n'
        '<p class="note">From chance_&lt;layer&gt;.csv (<code>conceptkit chance</code>): '
        "detectors whose IoU is near what chance gives, or whose label occurs in few images."
        "</p>"
    )
