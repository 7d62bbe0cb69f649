"""The analyses that follow a dissection, on conceptkit runs and on the reference's results.

Reads a conceptkit run, a NetDissect-Lite result folder (``result/pytorch_<net>_<data>/``) or a
NetDissect one (:func:`load`), and returns pandas DataFrames:

- :func:`unique_detectors`: one row per run and layer, ``network_name, dataset, layer,
  num_units, num_ud_<cat>, num_ud_<cat>_pc, ..., num_ud, num_ud_pc``;
- :func:`detectors_per_category`: detector units per category, per run and layer;
- :func:`concept_counts`: ``category, label, unit`` (detector units per best label);
- :func:`unit_strips` / :func:`unit_strip`: a unit's label, category, IoU and image strip.

:func:`summarize` gives one layer's three counts (detector units, unique detectors official and
naive) as ``conceptkit summary`` prints them. The figures are in
:mod:`conceptkit.analysis.figures`. The definitions and the cut (``IoU > T``, or ``>=`` with
``inclusive=True``) are explained in :mod:`conceptkit.analysis.counts`.
"""

from __future__ import annotations

from conceptkit.analysis.counts import (
    LayerSummary,
    concept_counts,
    detectors_per_category,
    summarize,
    unique_detectors,
)
from conceptkit.analysis.runs import Run, RunLayer, load, read_tally
from conceptkit.analysis.units import UnitStrip, unit_strip, unit_strips

__all__ = [
    "LayerSummary",
    "Run",
    "RunLayer",
    "UnitStrip",
    "concept_counts",
    "detectors_per_category",
    "load",
    "read_tally",
    "summarize",
    "unique_detectors",
    "unit_strip",
    "unit_strips",
]
