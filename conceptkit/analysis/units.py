"""Units one at a time: a unit's best label, category, IoU and its image strip.

Units are 1-based, as in the tally's ``unit`` column and the pages of NetDissect-Lite and
conceptkit ("unit 12"); the strip file is 0-based, ``html/image/<layer>-0011.jpg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from conceptkit.analysis.runs import Run
from conceptkit.errors import UsageError


@dataclass(frozen=True)
class UnitStrip:
    """One unit of one layer: its best label and category, its IoU, and where its strip is
    (``image``: ``html/image/<layer>-<unit - 1:04d>.jpg``, whether or not the file exists)."""

    run: str
    layer: str
    unit: int
    category: str
    label: str
    iou: float
    image: Path

    @property
    def has_image(self) -> bool:
        return self.image.is_file()


def unit_strip(run: Run, layer: str | None, unit: int) -> UnitStrip:
    """The record of ``unit`` (1-based) of ``layer`` (None: the run's only layer)."""
    lay = run.layer(layer)
    rows = lay.tally[lay.tally["unit"] == unit]
    if rows.empty:
        raise UsageError(
            f"no unit {unit} (units are 1-based; the layer has {lay.units}: "
            f"{int(lay.tally['unit'].min())}..{int(lay.tally['unit'].max())})",
            file=lay.file,
        )
    row = rows.iloc[0]
    return UnitStrip(
        run=run.name,
        layer=lay.name,
        unit=int(unit),
        category=str(row["category"]),
        label=str(row["label"]),
        iou=float(row["score"]),
        image=run.strip_file(lay.name, int(unit)),
    )


def unit_strips(
    run: Run, layer: str | None = None, units: Sequence[int] | None = None
) -> pd.DataFrame:
    """One row per unit (all of the layer's, or ``units`` in that order).

    Columns: ``unit`` (1-based), ``category``, ``label``, ``iou`` (the best IoU), ``image`` (the
    strip's path as a string, empty when the folder has no strip for the unit).
    """
    lay = run.layer(layer)
    wanted = [int(u) for u in lay.tally["unit"]] if units is None else list(units)
    recs = []
    for u in wanted:
        s = unit_strip(run, lay.name, u)
        recs.append(
            {
                "unit": s.unit,
                "category": s.category,
                "label": s.label,
                "iou": s.iou,
                "image": str(s.image) if s.has_image else "",
            }
        )
    return pd.DataFrame.from_records(recs, columns=["unit", "category", "label", "iou", "image"])
