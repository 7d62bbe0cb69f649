"""What later commands left in a run folder, shown on the report's unit cards.

- ``explain_<layer>.csv`` (``conceptkit explain``; columns ``unit`` 0-based, ``formula``,
  ``iou``, ...): the unit's best formula and its IoU;
- ``chance_<layer>.csv`` (``conceptkit chance``; columns ``unit`` 0-based, ``iou_chance``,
  ``z``, ``support``, ``detector``, ``flags`` ``;``-separated): the IoU expected by chance, the
  z score, the images the label occurs in, and the flags ``near_chance`` / ``few_images``.

A run without these files gets no extras (its report is unchanged). A file that is there but
breaks its format is a LayoutError naming the file, the line and the column. The names, the
columns and the readers are :mod:`conceptkit.artefacts`'s (the writers' too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conceptkit import artefacts as af
from conceptkit.artefacts import Chance
from conceptkit.report.pages import esc, fmt_iou
from conceptkit.report.run import LayerInfo, RunInfo

SHOWN_FLAGS = ("near_chance", "few_images")


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


def load_extras(run: RunInfo, lay: LayerInfo) -> LayerExtras:
    """The layer's extras from ``explain_<layer>.csv`` and ``chance_<layer>.csv`` (each if there;
    without the CSV, the chance check the dissection itself wrote into results.json)."""
    ex = LayerExtras()
    path = run.out / af.explain_csv(lay.name)
    if path.is_file():
        ex.formulas = af.read_formulas(path, lay.units)
    path = run.out / af.chance_csv(lay.name)
    if path.is_file():
        ex.chance = af.read_chance(path, lay.units)
    else:
        cut = float(run.results["settings"].get("iou_threshold", 0.04))
        ex.chance = {
            u.unit: af.Chance(
                u.chance.iou_chance, u.chance.z, u.chance.support, u.iou > cut, u.chance.flags
            )  # fmt: skip
            for u in lay.unit_info
            if u.chance is not None
        }
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
        '<p class="note">From the dissection (or chance_&lt;layer&gt;.csv of '
        "<code>conceptkit chance</code>): detectors whose IoU is near what chance gives, or "
        "whose label occurs in few images.</p>"
    )
