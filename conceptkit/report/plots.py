"""The standard Network Dissection plots, drawn with matplotlib's Agg canvas (no pyplot state).

Every ``*_figure`` function returns ``(Figure, values)``: ``values`` are the numbers plotted, so
tests and callers can check the content; :func:`save` writes PNG and SVG with deterministic
metadata. Bars carry their category as ``label``, so ``ax.containers`` reads them back.
matplotlib is imported inside the functions (the core never imports it at module level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conceptkit.report.run import LayerInfo, RunInfo, category_colors

SVG_HASHSALT = "conceptkit"
TOP_CONCEPTS = 40


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg``; the same figure gives the same bytes."""
    import matplotlib

    paths = [stem.parent / (stem.name + ".png"), stem.parent / (stem.name + ".svg")]
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path"}):
        fig.savefig(paths[0], format="png", metadata={"Software": None})
        fig.savefig(paths[1], format="svg", metadata={"Date": None, "Creator": None})
    return paths


def _stacked(
    ax: Any, xs: list[str], series: dict[str, list[float]], colors: dict[str, str]
) -> None:
    bottom = [0.0] * len(xs)
    for cat, heights in series.items():
        ax.bar(xs, heights, bottom=bottom, label=cat, color=colors[cat], width=0.6)
        bottom = [b + h for b, h in zip(bottom, heights)]
    top = max(bottom, default=0.0)
    for x, b in zip(xs, bottom):
        ax.annotate(f"{b:g}", (x, b), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)


def unique_detectors_figure(run: RunInfo, layer: LayerInfo) -> tuple[Any, dict[str, Any]]:
    """Unique detectors per category for one layer, both definitions, as stacked bars.

    Left: absolute counts; right: as a percentage of the layer's units.
    ``values = {"official": {cat: n}, "naive": {cat: n}, "units": C}``.
    """
    cats = run.categories
    colors = category_colors(cats)
    defs = {"official": layer.unique_official, "naive": layer.unique_naive}
    xs = ["official", "naive"]
    fig = _figure(7.5, 3.8)
    axes = fig.subplots(1, 2)
    absolute = {c: [float(defs[d].get(c, 0)) for d in xs] for c in cats}
    share = {c: [100.0 * v / max(layer.units, 1) for v in vals] for c, vals in absolute.items()}
    _stacked(axes[0], xs, absolute, colors)
    axes[0].set_ylabel("unique detectors")
    _stacked(axes[1], xs, share, colors)
    for t in axes[1].texts:
        t.set_text(f"{float(t.get_text()):.1f}%")
    axes[1].set_ylabel("% of units")
    axes[0].set_title(f"{layer.name}: unique detectors", fontsize=10)
    axes[1].set_title(f"{layer.name}: share of {layer.units} units", fontsize=10)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    values = {d: {c: int(defs[d].get(c, 0)) for c in cats} for d in xs}
    values["units"] = layer.units  # type: ignore[assignment]
    return fig, values


def _tally(run: RunInfo, layer: LayerInfo) -> Any:
    """The layer's units as :class:`conceptkit.analysis.runs.Run` with one
    :class:`~conceptkit.analysis.runs.RunLayer` (columns ``unit`` 1-based, ``category``,
    ``label``, ``score``), so the counts come from :mod:`conceptkit.analysis.counts`."""
    import pandas as pd

    from conceptkit.analysis.runs import Run, RunLayer

    df = pd.DataFrame(
        {
            "unit": [u.unit + 1 for u in layer.unit_info],
            "category": [u.category for u in layer.unit_info],
            "label": [u.label for u in layer.unit_info],
            "score": [u.iou for u in layer.unit_info],
        }
    )
    lay = RunLayer(layer.name, run.out / "results.json", run.categories, df)
    return Run(run.out, "conceptkit", run.name, "", [lay], run.iou_threshold)


def detectors_by_category(run: RunInfo, layer: LayerInfo) -> dict[str, int]:
    """Detector units (best IoU > cut) per category of their best label
    (:func:`conceptkit.analysis.counts.detector_counts`)."""
    from conceptkit.analysis.counts import detector_counts

    return detector_counts(_tally(run, layer).layers[0], run.iou_threshold)


def category_share_figure(run: RunInfo) -> tuple[Any, dict[str, list[float]]]:
    """Share of units (%) that detect each category, across the layers: one line per category.

    A unit detects the category of its best label when its best IoU passes the cut.
    ``values = {cat: [percent per layer, in layer order]}``.
    """
    cats = run.categories
    colors = category_colors(cats)
    names = [lay.name for lay in run.layers]
    values: dict[str, list[float]] = {c: [] for c in cats}
    for lay in run.layers:
        per = detectors_by_category(run, lay)
        for c in cats:
            values[c].append(100.0 * per[c] / max(lay.units, 1))
    fig = _figure(max(4.5, 1.2 * len(names) + 3), 3.6)
    ax = fig.subplots()
    xs = list(range(len(names)))
    for c in cats:
        ax.plot(xs, values[c], marker="o", label=c, color=colors[c])
    ax.set_xticks(xs, names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("% of units detecting the category")
    ax.set_title(f"Detectors per category (IoU > {run.iou_threshold:g})", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig, values


def concept_counts(run: RunInfo, layer: LayerInfo, category: str) -> dict[str, int]:
    """Detector units per best label within ``category``, most frequent first (ties: name)
    (:func:`conceptkit.analysis.counts.concept_counts`)."""
    from conceptkit.analysis import counts

    df = counts.concept_counts(_tally(run, layer), category=category)
    return {str(k): int(v) for k, v in zip(df["label"], df["unit"])}


def concepts_figure(
    run: RunInfo, layer: LayerInfo, category: str, top: int = TOP_CONCEPTS
) -> tuple[Any, dict[str, int]]:
    """Horizontal bars: detector units per concept of ``category`` (the ``top`` most frequent).

    ``values = {label: units}`` as drawn (at most ``top`` entries, largest first).
    """
    counts = dict(list(concept_counts(run, layer, category).items())[:top])
    color = category_colors(run.categories).get(category, "#1f77b4")
    fig = _figure(6.0, max(1.6, 0.22 * len(counts) + 1.0))
    ax = fig.subplots()
    labels = list(counts)[::-1]
    ax.barh(labels, [counts[k] for k in labels], color=color, label=category)
    ax.set_xlabel("detector units")
    ax.xaxis.get_major_locator().set_params(integer=True)
    more = len(concept_counts(run, layer, category)) - len(counts)
    title = f"{layer.name}: {category} concepts"
    ax.set_title(title + (f" (top {top}, {more} more)" if more > 0 else ""), fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return fig, counts


def iou_histogram_figure(run: RunInfo, bins: int = 40) -> tuple[Any, dict[str, list[int]]]:
    """Distribution of each unit's best IoU, one step histogram per layer, with the cut marked.

    ``values = {layer: [count per bin]}`` over ``bins`` equal bins from 0 to the largest IoU.
    """
    import numpy as np

    ious = {
        lay.name: np.array([u.iou for u in lay.unit_info], dtype=np.float64) for lay in run.layers
    }
    top = max([float(v.max()) for v in ious.values() if v.size] + [run.iou_threshold * 1.5])
    edges = np.linspace(0.0, top, bins + 1)
    fig = _figure(6.5, 3.6)
    ax = fig.subplots()
    values: dict[str, list[int]] = {}
    for name, v in ious.items():
        counts, _ = np.histogram(v, bins=edges)
        values[name] = [int(c) for c in counts]
        ax.stairs(counts, edges, label=name, linewidth=1.5)
    ax.axvline(run.iou_threshold, color="#444", linestyle="--", linewidth=1)
    ax.annotate(
        f"cut {run.iou_threshold:g}",
        (run.iou_threshold, 1.0),
        xycoords=("data", "axes fraction"),
        ha="left",
        va="top",
        fontsize=8,
        xytext=(3, -3),
        textcoords="offset points",
    )
    ax.set_xlabel("best IoU of the unit")
    ax.set_ylabel("units")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Distribution of best IoU per layer", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig, values


def unique_detectors_bars(
    xs: list[str],
    absolute: dict[str, list[float]],
    share: dict[str, list[float]],
    definition: str = "official",
) -> Any:
    """Unique detectors per category, stacked, one bar per name in ``xs`` (a model's layer):
    ``absolute[cat][i]`` counts on the left, ``share[cat][i]`` percent of the units on the
    right, categories in ``absolute``'s order; ``definition`` only labels the axis.

    The drawing of the report's comparison (:func:`compare_figure`) and of
    :func:`conceptkit.analysis.figures.unique_detectors_figure`.
    """
    colors = category_colors(list(absolute))
    fig = _figure(max(7.0, 1.6 * len(xs) + 3.5), 4.2)
    axes = fig.subplots(1, 2)
    _stacked(axes[0], xs, absolute, colors)
    _stacked(axes[1], xs, share, colors)
    for t in axes[1].texts:
        t.set_text(f"{float(t.get_text()):.1f}%")
    axes[0].set_ylabel(f"unique detectors ({definition})")
    axes[1].set_ylabel("% of units")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    axes[0].set_title("Unique detectors per category", fontsize=10)
    axes[1].set_title("As a share of units", fontsize=10)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


def compare_figure(
    runs: list[RunInfo], names: list[str], definition: str = "official"
) -> tuple[Any, dict[str, dict[str, int]]]:
    """Unique detectors per category, one stacked bar per (run, layer), absolute and share
    (:func:`unique_detectors_bars`).

    ``values = {"<name>: <layer>": {cat: n}}`` under ``definition`` ("official" or "naive").
    """
    cats: list[str] = []
    for run in runs:
        cats += [c for c in run.categories if c not in cats]
    xs: list[str] = []
    units: list[int] = []
    values: dict[str, dict[str, int]] = {}
    for run, name in zip(runs, names):
        for lay in run.layers:
            key = f"{name}: {lay.name}" if len(run.layers) > 1 else name
            per = lay.unique_official if definition == "official" else lay.unique_naive
            values[key] = {c: int(per.get(c, 0)) for c in cats}
            xs.append(key)
            units.append(lay.units)
    absolute = {c: [float(values[x][c]) for x in xs] for c in cats}
    share = {
        c: [100.0 * v / max(u, 1) for v, u in zip(vals, units)] for c, vals in absolute.items()
    }
    return unique_detectors_bars(xs, absolute, share, definition), values
