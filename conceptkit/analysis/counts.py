"""The counts that follow a dissection, from the tally files: detectors and unique detectors.

Three numbers are easy to confuse; each is named plainly here.

- **Detector units**: units whose best IoU (the tally's ``score``) passes the cut, counted in the
  category of their best label (the tally's ``category``).
- **Unique detectors, official** (Bau et al. 2017 and NetDissect's published counts): per
  category, the number of distinct labels among units whose best label *in that category*
  (``<cat>-label``, ``<cat>-iou``) passes the cut, summed over the categories. A unit can add a
  label to several categories, so this can exceed the number of detector units.
- **Unique detectors, naive**: the distinct best labels (``label``) of detector units, counted
  in the category of the best label.

The cut. conceptkit (results.json, the report, and these functions by default) calls a unit a
detector when its IoU is **strictly greater** than the cut (``IoU > 0.04``), as the Network
Dissection paper defines it; NetDissect-Lite's bar graph and HTML header count
``IoU >= 0.04`` (they skip only ``score < threshold``). ``inclusive=True`` counts
``IoU >= cut``. The two differ only for units whose IoU equals the cut exactly, but counts
quoted elsewhere may also admit units just below it:
NetDissect's published per-unit results for ResNet-18 Places365 ``layer4`` give 434 of 512
units with ``IoU > 0.04`` (265 unique detectors under the official definition, 187 under the
naive one), while 435 (about 85%) is quoted for that layer, one more unit, within 0.0004 of
the cut; 302 of 512 (about 59%) is quoted for the ImageNet ResNet-18. When comparing with a
published number, check which comparison (and which rounding of the IoUs) it used.

Percentages (``*_pc``) are of the layer's units, 0-100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from conceptkit.analysis.runs import Run, RunLayer
from conceptkit.errors import UsageError

DEFINITIONS = ("official", "naive")


def _cut(run: Run, iou_threshold: float | None) -> float:
    cut = run.iou_threshold if iou_threshold is None else float(iou_threshold)
    if not (0.0 <= cut < 1.0):
        raise UsageError(f"the IoU cut must be in [0, 1), got {cut:g}")
    return cut


def passes(ious: pd.Series, cut: float, inclusive: bool = False) -> pd.Series:
    """Boolean mask: ``ious > cut`` (``>=`` with ``inclusive``). An IoU of 0 never passes, so
    ``IoU >= 0`` does not count the "nothing overlaps" entries (label 0) as detectors."""
    hit = ious >= cut if inclusive else ious > cut
    return hit & (ious > 0)


def detector_counts(layer: RunLayer, cut: float, inclusive: bool = False) -> dict[str, int]:
    """Detector units per category of their best label (every category of the layer, zeros kept)."""
    t = layer.tally
    hit = t.loc[passes(t["score"], cut, inclusive), "category"].value_counts()
    return {c: int(hit.get(c, 0)) for c in layer.categories}


def unique_official(layer: RunLayer, cut: float, inclusive: bool = False) -> dict[str, int]:
    """Per category, distinct ``<cat>-label`` among units whose ``<cat>-iou`` passes the cut."""
    t = layer.tally
    out = {}
    for c in layer.categories:
        labels = t.loc[passes(t[f"{c}-iou"], cut, inclusive), f"{c}-label"]
        out[c] = int(labels.nunique())
    return out


def unique_naive(layer: RunLayer, cut: float, inclusive: bool = False) -> dict[str, int]:
    """Per category, distinct best labels of detector units whose best label is in it."""
    t = layer.tally
    hit = t.loc[passes(t["score"], cut, inclusive)]
    per = hit.groupby("category")["label"].nunique()
    return {c: int(per.get(c, 0)) for c in layer.categories}


def unique_counts(
    layer: RunLayer, definition: str, cut: float, inclusive: bool = False
) -> dict[str, int]:
    """:func:`unique_official` or :func:`unique_naive`, by name (one of :data:`DEFINITIONS`)."""
    if definition not in DEFINITIONS:
        raise UsageError(f"unknown definition {definition!r} (official or naive)")
    count = unique_official if definition == "official" else unique_naive
    return count(layer, cut, inclusive)


@dataclass
class LayerSummary:
    """The three counts of one layer of one run, per category of the layer."""

    run: str
    network: str
    dataset: str
    format: str
    path: str
    layer: str
    units: int
    iou_threshold: float
    comparison: str
    detectors: dict[str, int]
    official: dict[str, int]
    naive: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The shape of results.json's layer entry (``detectors`` also per category)."""

        def block(per: dict[str, int]) -> dict[str, Any]:
            return {"total": sum(per.values()), "per_category": dict(per)}

        return {
            "run": self.run,
            "network": self.network,
            "dataset": self.dataset,
            "format": self.format,
            "path": self.path,
            "layer": self.layer,
            "units": self.units,
            "iou_threshold": self.iou_threshold,
            "comparison": self.comparison,
            "detectors": block(self.detectors),
            "unique_detectors": {"official": block(self.official), "naive": block(self.naive)},
        }


def summarize(
    run: Run,
    layer: str | None = None,
    *,
    iou_threshold: float | None = None,
    inclusive: bool = False,
) -> LayerSummary:
    """Detector units and both unique-detector counts of one layer (default: the only one).

    ``iou_threshold`` defaults to the run's own cut (see :class:`~conceptkit.analysis.runs.Run`).
    """
    lay = run.layer(layer)
    cut = _cut(run, iou_threshold)
    return LayerSummary(
        run=run.name,
        network=run.network,
        dataset=run.dataset,
        format=run.format,
        path=str(run.path),
        layer=lay.name,
        units=lay.units,
        iou_threshold=cut,
        comparison=">=" if inclusive else ">",
        detectors=detector_counts(lay, cut, inclusive),
        official=unique_official(lay, cut, inclusive),
        naive=unique_naive(lay, cut, inclusive),
    )


def _layers(run: Run, layers: Sequence[str] | None) -> list[RunLayer]:
    return list(run.layers) if not layers else [run.layer(n) for n in layers]


def _all_categories(runs: Sequence[Run]) -> list[str]:
    cats: list[str] = []
    for run in runs:
        cats += [c for c in run.categories if c not in cats]
    return cats


def _pc(n: float, units: int) -> float:
    return 100.0 * n / units if units else 0.0


def unique_detectors(
    runs: Sequence[Run],
    *,
    layers: Sequence[str] | None = None,
    definition: str = "official",
    iou_threshold: float | None = None,
    inclusive: bool = False,
) -> pd.DataFrame:
    """Unique detectors per category, one row per run and layer (``layers``: default all).

    Columns: ``network_name, dataset, layer, num_units``, then per category ``num_ud_<cat>``
    and ``num_ud_<cat>_pc`` (percent of the units), then ``num_ud`` and ``num_ud_pc``.
    ``definition`` is ``official`` or ``naive`` (see the module docstring).
    """
    cats = _all_categories(runs)
    records = []
    for run in runs:
        cut = _cut(run, iou_threshold)
        for lay in _layers(run, layers):
            per = unique_counts(lay, definition, cut, inclusive)
            rec: dict[str, Any] = {
                "network_name": run.network,
                "dataset": run.dataset,
                "layer": lay.name,
                "num_units": lay.units,
            }
            for c in cats:
                rec[f"num_ud_{c}"] = per.get(c, 0)
                rec[f"num_ud_{c}_pc"] = _pc(per.get(c, 0), lay.units)
            rec["num_ud"] = sum(per.values())
            rec["num_ud_pc"] = _pc(rec["num_ud"], lay.units)
            records.append(rec)
    return pd.DataFrame.from_records(records)


def detectors_per_category(
    runs: Sequence[Run],
    *,
    layers: Sequence[str] | None = None,
    iou_threshold: float | None = None,
    inclusive: bool = False,
) -> pd.DataFrame:
    """Detector units per category, one row per run, layer and category (layers in order).

    Columns: ``network_name, dataset, layer, num_units, category, num_detectors, pc``
    (``pc``: percent of the layer's units).
    """
    cats = _all_categories(runs)
    records = []
    for run in runs:
        cut = _cut(run, iou_threshold)
        for lay in _layers(run, layers):
            per = detector_counts(lay, cut, inclusive)
            for c in cats:
                n = per.get(c, 0)
                records.append(
                    {
                        "network_name": run.network,
                        "dataset": run.dataset,
                        "layer": lay.name,
                        "num_units": lay.units,
                        "category": c,
                        "num_detectors": n,
                        "pc": _pc(n, lay.units),
                    }
                )
    return pd.DataFrame.from_records(records)


def concept_counts(
    run: Run,
    layer: str | None = None,
    *,
    category: str | None = None,
    iou_threshold: float | None = None,
    inclusive: bool = False,
) -> pd.DataFrame:
    """Detector units per best label: columns ``category, label, unit`` (``unit`` = how many
    detector units have that best label), most units first, then category and label by name.
    ``category`` keeps one category."""
    lay = run.layer(layer)
    cut = _cut(run, iou_threshold)
    t = lay.tally
    hit = t.loc[passes(t["score"], cut, inclusive), ["category", "label", "unit"]]
    if category is not None:
        if category not in lay.categories:
            raise UsageError(
                f"has no category {category!r} (categories: {', '.join(lay.categories)})",
                file=lay.file,
            )
        hit = hit[hit["category"] == category]
    counts = hit.groupby(["category", "label"]).size().reset_index(name="unit")
    counts = counts.sort_values(
        ["unit", "category", "label"], ascending=[False, True, True], kind="stable"
    )
    return counts.reset_index(drop=True).astype({"unit": "int64"})
