"""Compositional explanations of units: the best logical formula over concepts per unit.

Network Dissection names each unit by one concept; here a unit is described by a formula such
as ``(water OR river) AND NOT blue`` (Mu & Andreas, "Compositional Explanations of Neurons",
NeurIPS 2020), found by beam search over AND, OR and AND NOT and scored by the IoU of the
unit's mask (the dissection's threshold and upsampling) with the formula's mask, counted
exactly at the label resolution over every image.

- :mod:`~conceptkit.explain.formulas` the formula tree, its text syntax and parser;
- :mod:`~conceptkit.explain.masks`    bit-packed concept and unit masks, vectorised counts;
- :mod:`~conceptkit.explain.search`   beam search and the exhaustive reference for one unit;
- :mod:`~conceptkit.explain.run`      :func:`explain` on a finished dissection folder;
- :mod:`~conceptkit.explain.files`    ``explain_<layer>.csv``, the plot, ``explain.json``.
"""

from __future__ import annotations

from conceptkit.artefacts import read_rows as read_explain_csv
from conceptkit.explain.files import save
from conceptkit.explain.formulas import AND, ANDNOT, OR, Formula, canonical, parse
from conceptkit.explain.run import ExplainSettings, Explanation, explain
from conceptkit.explain.search import UnitExplanation, UnitSearch, beam_search, exhaustive_search

__all__ = [
    "AND",
    "ANDNOT",
    "OR",
    "ExplainSettings",
    "Explanation",
    "Formula",
    "UnitExplanation",
    "UnitSearch",
    "beam_search",
    "canonical",
    "exhaustive_search",
    "explain",
    "parse",
    "read_explain_csv",
    "save",
]
