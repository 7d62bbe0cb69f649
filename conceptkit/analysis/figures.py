"""The figures that follow a dissection, drawn from :mod:`conceptkit.analysis`'s DataFrames.

- :func:`unique_detectors_figure`: unique detectors per category, one stacked bar per model
  (and layer), absolute counts beside their share of the units;
- :func:`detector_share_figure`: share of units detecting each category across the layers,
  one panel per model;
- :func:`concepts_figure`: detector units per concept of one category, models side by side,
  the ``top`` most frequent with the totals in the titles;
- :func:`unit_figure`: a unit's strip of top images titled "Unit, Label, Category, IoU".

Every function returns ``(Figure, values)``, ``values`` being the numbers drawn, so callers and
tests can check the content. Figures use matplotlib's Agg canvas (no pyplot state) and the
report's category colours; :func:`save` (the report's) writes PNG and SVG with deterministic
bytes. matplotlib is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from conceptkit import limits
from conceptkit.analysis.counts import concept_counts
from conceptkit.analysis.runs import Run
from conceptkit.analysis.units import UnitStrip
from conceptkit.errors import LayoutError
from conceptkit.report.plots import save, unique_detectors_bars
from conceptkit.report.run import category_colors

__all__ = [
    "concepts_figure",
    "detector_share_figure",
    "save",
    "unique_detectors_figure",
    "unit_figure",
]

TOP_CONCEPTS = 40


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _model(row: pd.Series) -> str:
    return f"{row['network_name']}_{row['dataset']}" if row["dataset"] else str(row["network_name"])


def _ud_categories(df: pd.DataFrame) -> list[str]:
    """Categories of a :func:`~conceptkit.analysis.counts.unique_detectors` frame, in its order."""
    return [
        c[len("num_ud_") :]
        for c in df.columns
        if c.startswith("num_ud_") and not c.endswith("_pc") and c != "num_ud_pc"
    ]


def _bar_names(df: pd.DataFrame) -> list[str]:
    """One name per row: the model, with the layer when a model has several rows."""
    models = [_model(r) for _, r in df.iterrows()]
    several = {m for m in models if models.count(m) > 1}
    return [f"{m}: {lay}" if m in several else m for m, lay in zip(models, df["layer"].astype(str))]


def unique_detectors_figure(
    df: pd.DataFrame, *, definition: str = "official"
) -> tuple[Any, dict[str, dict[str, dict[str, float]]]]:
    """Unique detectors per category, stacked, one bar per row of ``df`` (a model's layer).

    ``df`` is :func:`~conceptkit.analysis.counts.unique_detectors`'s frame; ``definition``
    only labels the axis. Left: absolute counts; right: percent of the layer's units. Drawn by
    :func:`conceptkit.report.plots.unique_detectors_bars`, as the report's comparison.
    ``values = {"absolute": {bar: {cat: n}}, "share": {bar: {cat: percent}}}``.
    """
    cats = _ud_categories(df)
    xs = _bar_names(df)
    absolute = {c: [float(v) for v in df[f"num_ud_{c}"]] for c in cats}
    share = {c: [float(v) for v in df[f"num_ud_{c}_pc"]] for c in cats}
    fig = unique_detectors_bars(xs, absolute, share, definition)
    values = {
        "absolute": {x: {c: absolute[c][i] for c in cats} for i, x in enumerate(xs)},
        "share": {x: {c: share[c][i] for c in cats} for i, x in enumerate(xs)},
    }
    return fig, values


def detector_share_figure(df: pd.DataFrame) -> tuple[Any, dict[str, dict[str, list[float]]]]:
    """Percent of units detecting each category across the layers, one panel per model.

    ``df`` is :func:`~conceptkit.analysis.counts.detectors_per_category`'s frame (layers in
    its row order). ``values = {model: {category: [percent per layer]}}``.
    """
    models = list(dict.fromkeys(_model(r) for _, r in df.iterrows()))
    names = [_model(r) for _, r in df.iterrows()]
    cats = list(dict.fromkeys(df["category"]))
    colors = category_colors(cats)
    fig = _figure(max(5.0, 4.2 * len(models) + 1.5), 3.8)
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
    values: dict[str, dict[str, list[float]]] = {}
    for ax, model in zip(axes, models):
        sub = df[[n == model for n in names]]
        layers = list(dict.fromkeys(sub["layer"]))
        xs = list(range(len(layers)))
        values[model] = {}
        for c in cats:
            pcs = [
                float(sub[(sub["layer"] == lay) & (sub["category"] == c)]["pc"].sum())
                for lay in layers
            ]
            values[model][c] = pcs
            ax.plot(xs, pcs, marker="o", label=c, color=colors[c])
        ax.set_xticks(xs, layers)
        ax.set_xlim(-0.5, len(layers) - 0.5)
        ax.set_title(model, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("% of units detecting the category")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig, values


def concepts_figure(
    runs: Sequence[Run],
    category: str,
    *,
    layer: str | None = None,
    top: int = TOP_CONCEPTS,
    iou_threshold: float | None = None,
    inclusive: bool = False,
) -> tuple[Any, dict[str, dict[str, int]]]:
    """Detector units per concept of ``category``, one panel per run (side by side).

    Each panel shows the ``top`` concepts with the most detector units (largest at the top) and
    titles the run with its totals: detector units of the category and distinct concepts.
    ``values = {run name: {label: units}}`` as drawn (at most ``top`` labels each).
    """
    counts = [
        concept_counts(
            r, layer, category=category, iou_threshold=iou_threshold, inclusive=inclusive
        )
        for r in runs
    ]
    longest = max([min(len(c), top) for c in counts] + [1])
    fig = _figure(4.2 * len(runs) + 0.5, max(2.0, 0.2 * longest + 1.2))
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    color = category_colors(runs[0].categories if runs else []).get(category, "#1f77b4")
    values: dict[str, dict[str, int]] = {}
    for ax, run, cc in zip(axes, runs, counts):
        shown = cc.head(top)
        labels = list(shown["label"])[::-1]
        widths = [int(v) for v in shown["unit"]][::-1]
        ax.barh(labels, widths, color=color, label=category)
        ax.set_xlabel("detector units")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(axis="y", labelsize=7)
        lay = run.layer(layer).name
        more = f", top {top} shown" if len(cc) > top else ""
        ax.set_title(
            f"{run.name} {lay}: {int(cc['unit'].sum())} {category} detectors, "
            f"{len(cc)} concept{'' if len(cc) == 1 else 's'}{more}",
            fontsize=9,
        )
        values[run.name] = dict(zip(shown["label"], (int(v) for v in shown["unit"])))
    return fig, values


def _read_strip(strip: UnitStrip) -> Any:
    import numpy as np
    from PIL import Image

    if not strip.has_image:
        raise LayoutError(
            "image strip is missing",
            file=strip.image,
            place=f"layer {strip.layer}, unit {strip.unit}",
            hint="`conceptkit report RUN` draws a conceptkit run's strips",
        )
    try:
        with Image.open(strip.image) as im:
            limits.check("image_pixels", im.width * im.height, file=strip.image, error=LayoutError)
            return np.asarray(im.convert("RGB"))
    except (OSError, Image.DecompressionBombError) as exc:
        raise LayoutError(f"cannot be read as an image ({exc})", file=strip.image) from None


def unit_title(strip: UnitStrip) -> str:
    """``Unit 12, Label: house, Category: object, IoU: 0.13`` (1-based unit)."""
    return (
        f"Unit {strip.unit}, Label: {strip.label}, Category: {strip.category}, IoU: {strip.iou:.2f}"
    )


def unit_figure(strip: UnitStrip) -> tuple[Any, dict[str, Any]]:
    """A unit's strip of top images with "Unit, Label, Category, IoU" in the title.

    ``values = {"title": str, "image": path, "shape": (H, W, 3)}``; the strip is shown as read
    (``(H, W, 3) uint8``), without resampling.
    """
    pixels = _read_strip(strip)
    h, w = pixels.shape[:2]
    fig = _figure(min(14.0, max(4.0, w / 100)), h / 100 + 0.6)
    ax = fig.subplots()
    ax.imshow(pixels, interpolation="nearest")
    ax.set_axis_off()
    title = unit_title(strip)
    ax.set_title(title, fontsize=10)
    return fig, {"title": title, "image": str(strip.image), "shape": tuple(pixels.shape)}
