"""The files of an explanation, each written atomically (temporary file, then rename).

- ``explain_<layer>.csv``: one row per unit (0-based, as results.json): ``formula`` in the
  text syntax of :mod:`conceptkit.explain.formulas` (label names), ``labels`` the same formula
  over label numbers, ``iou``, ``score`` (after the length penalty), ``length``, ``label`` /
  ``label_iou`` (the best single concept: the dissection's label and IoU), ``iou_len<k>`` (the
  best formula of length <= k found);
- ``exhaustive_<layer>.csv`` (when asked): per unit the beam's and the exhaustive search's best
  formula, IoU and score, the shortfall (exhaustive score minus the beam's);
- ``explain_gain.png``: mean IoU gain over the single best concept against formula length, one
  line per layer (deterministic bytes);
- ``explain.json``: settings and per-layer means (no timings: the same run gives the same bytes).

The names, the columns and the writers are :mod:`conceptkit.artefacts`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conceptkit import artefacts as af
from conceptkit.explain.run import Explanation, LayerExplanation

__all__ = ["explain_rows", "exhaustive_rows", "gains", "save", "summary"]


def explain_rows(ex: Explanation, layer: LayerExplanation) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of ``explain_<layer>.csv``."""
    names = ex.names
    numbers = [str(n) for n in ex.numbers]
    head = af.explain_columns(ex.settings.max_length)
    rows = []
    for u in layer.units:
        f = u.formula
        rows.append(
            [
                u.unit,
                f.to_text(names) if f else "",
                f.to_text(numbers) if f else "",
                repr(float(u.iou)),
                repr(float(u.score)),
                len(f) if f else 0,
                names[u.label1] if u.label1 >= 0 else "",
                repr(float(u.iou1)),
                *[repr(float(v)) for v in u.best_by_length],
            ]
        )
    return head, rows


def exhaustive_rows(ex: Explanation, layer: LayerExplanation) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of ``exhaustive_<layer>.csv``."""
    names = ex.names
    head = list(af.EXHAUSTIVE_COLUMNS)
    rows = []
    for u in layer.units:
        rows.append(
            [
                u.unit,
                u.formula.to_text(names) if u.formula else "",
                repr(float(u.iou)),
                repr(float(u.score)),
                u.exhaustive.to_text(names) if u.exhaustive else "",
                repr(float(u.exhaustive_iou)),
                repr(float(u.exhaustive_score)),
                u.exhaustive_length,
                repr(float(u.exhaustive_score - u.score)),
                u.exhaustive_formulas,
            ]
        )
    return head, rows


def gains(layer: LayerExplanation, max_length: int) -> list[float]:
    """Mean over units of (best IoU at length <= k) - (single-concept IoU), k = 1..max."""
    if not layer.units:
        return [0.0] * max_length
    by = np.array([u.best_by_length for u in layer.units], dtype=np.float64)
    base = np.array([u.iou1 for u in layer.units], dtype=np.float64)
    return [float(v) for v in (by - base[:, None]).mean(axis=0)]


def _plot_writer(ex: Explanation) -> af.Writer:
    def write(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        k = ex.settings.max_length
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        for name, layer in ex.layers.items():
            ax.plot(range(1, k + 1), gains(layer, k), marker="o", label=name)
        ax.set_xlabel("formula length (concepts)")
        ax.set_ylabel("mean IoU gain over the single best concept")
        ax.set_xticks(range(1, k + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
        plt.close(fig)

    return write


def summary(ex: Explanation) -> dict[str, Any]:
    """``explain.json``: settings and per-layer mean IoUs and gains."""
    o = ex.settings
    layers = {}
    for name, layer in ex.layers.items():
        ious = [u.iou for u in layer.units]
        entry: dict[str, Any] = {
            "units": len(layer.units),
            "mean_iou": float(np.mean(ious)) if ious else 0.0,
            "mean_label_iou": float(np.mean([u.iou1 for u in layer.units])) if ious else 0.0,
            "mean_gain_by_length": gains(layer, o.max_length),
            "files": {"explain": af.explain_csv(name)},
        }
        if o.exhaustive:
            entry["files"]["exhaustive"] = af.exhaustive_csv(name)
            entry["mean_shortfall"] = float(
                np.mean([u.exhaustive_score - u.score for u in layer.units])
            )
        layers[name] = entry
    return {
        "run": str(ex.run.root),
        "settings": {
            "max_length": o.max_length,
            "beam": o.beam,
            "length_penalty": o.length_penalty,
            "exhaustive": o.exhaustive,
            "units": o.units,
            "union": ex.run.settings.get("union", "category"),
            "operators": ["AND", "OR", "AND NOT"],
        },
        "concepts": len(ex.names),
        "duplicated_pixels": ex.duplicates,
        "layers": layers,
        "layer_order": list(ex.layers),
    }


def save(ex: Explanation, out: str | Path, force: bool = False) -> list[Path]:
    """Write every file into ``out`` (created if missing); returns their paths."""
    layers = list(ex.layers.items())
    writers = {af.explain_csv(n): af.csv_writer(*explain_rows(ex, lay)) for n, lay in layers}
    if ex.settings.exhaustive:
        writers |= {
            af.exhaustive_csv(n): af.csv_writer(*exhaustive_rows(ex, lay)) for n, lay in layers
        }
    writers[af.EXPLAIN_GAIN_PNG] = _plot_writer(ex)
    writers[af.EXPLAIN_JSON] = af.json_writer(summary(ex))
    return af.save_all(out, writers, force)
