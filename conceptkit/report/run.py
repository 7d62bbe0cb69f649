"""Read a finished dissection folder (``conceptkit dissect -o OUT``) into records for the report.

Reads ``results.json`` (layers, units, settings), ``quantile_<layer>.npy`` (thresholds) and
``topn_<layer>.npz`` (top images and raw maps) exactly as the dissect contract writes them
(:class:`conceptkit.dissection.results.DissectResult`); the tally CSVs are not needed, since
results.json holds every unit's label and IoU. Nothing here imports matplotlib or torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit.errors import LayoutError

# Category colours (matplotlib's tab10), by category order; pages and plots share them.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def category_colors(categories: list[str]) -> dict[str, str]:
    """Category -> hex colour, cycling :data:`PALETTE` in category order."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(categories)}


@dataclass(frozen=True)
class RunnerUp:
    label: str
    category: str
    iou: float


@dataclass(frozen=True)
class UnitInfo:
    """One unit of a layer; ``unit`` is 0-based (the strip file name uses it)."""

    unit: int
    label: str
    category: str
    iou: float
    threshold: float
    top_images: tuple[int, ...]
    runners_up: tuple[RunnerUp, ...]


@dataclass
class LayerInfo:
    """One dissected layer: counts from results.json and its unit records (0-based order)."""

    name: str
    units: int
    map_size: tuple[int, int]
    detectors: int
    unique_official: dict[str, int]
    unique_naive: dict[str, int]
    unique_official_total: int
    unique_naive_total: int
    files: dict[str, str]
    unit_info: list[UnitInfo] = field(default_factory=list)


@dataclass
class RunInfo:
    """A whole run: where it is, what was probed, with which settings."""

    out: Path
    results: dict[str, Any]
    layers: list[LayerInfo]

    @property
    def categories(self) -> list[str]:
        return list(self.results["data"]["categories"])

    @property
    def iou_threshold(self) -> float:
        return float(self.results["settings"].get("iou_threshold", 0.04))

    @property
    def name(self) -> str:
        """A short name for comparisons: the model description, else spec, else folder name."""
        model = self.results.get("model", {})
        return str(model.get("description") or model.get("spec") or self.out.name)

    def data_root(self) -> Path:
        """The Broden folder of the run (a relative path is tried from the cwd, then from OUT)."""
        raw = Path(self.results["data"]["path"])
        if raw.is_absolute() or raw.is_dir():
            return raw
        return self.out / raw


def _get(obj: dict[str, Any], key: str, file: Path, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise LayoutError(f"{where} has no key {key!r}", file=file, place=where)
    return obj[key]


def _layer_order(results: dict[str, Any]) -> list[str]:
    """The ``--layer`` order: ``results.json`` keeps it in a list (``layer_order`` or
    ``settings.layers``) since its sorted keys lose the order of ``layers``; else key order."""
    for order in (results.get("layer_order"), results.get("settings", {}).get("layers")):
        if isinstance(order, list) and all(isinstance(x, str) for x in order):
            return order
    return list(results.get("layers", {}))


def load_run(out: str | Path) -> RunInfo:
    """Read ``OUT/results.json``; LayoutError (file + JSON path) when a needed key is missing."""
    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise LayoutError(
            "file is missing", file=path, hint="is this the -o folder of `conceptkit dissect`?"
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LayoutError(f"cannot be read as JSON ({exc})", file=path) from None
    for key in ("model", "data", "settings", "layers"):
        _get(results, key, path, "$")
    layers = []
    for name, lay in _get(results, "layers", path, "$").items():
        where = f"$.layers.{name}"
        uniq = _get(lay, "unique_detectors", path, where)
        off = _get(uniq, "official", path, where + ".unique_detectors")
        nai = _get(uniq, "naive", path, where + ".unique_detectors")
        info = LayerInfo(
            name=name,
            units=int(_get(lay, "units", path, where)),
            map_size=tuple(lay.get("map_size", (0, 0))),  # type: ignore[arg-type]
            detectors=int(_get(lay, "detectors", path, where)),
            unique_official={k: int(v) for k, v in off["per_category"].items()},
            unique_naive={k: int(v) for k, v in nai["per_category"].items()},
            unique_official_total=int(off["total"]),
            unique_naive_total=int(nai["total"]),
            files=dict(lay.get("files", {})),
        )
        for i, u in enumerate(_get(lay, "units_detail", path, where)):
            info.unit_info.append(
                UnitInfo(
                    unit=int(_get(u, "unit", path, f"{where}.units_detail[{i}]")),
                    label=str(u.get("label", "")),
                    category=str(u.get("category", "")),
                    iou=float(u.get("iou", 0.0)),
                    threshold=float(u.get("threshold", 0.0)),
                    top_images=tuple(int(r) for r in u.get("top_images", ())),
                    runners_up=tuple(
                        RunnerUp(str(r["label"]), str(r["category"]), float(r["iou"]))
                        for r in u.get("runners_up", ())
                    ),
                )
            )
        info.unit_info.sort(key=lambda x: x.unit)
        layers.append(info)
    order = _layer_order(results)
    layers.sort(key=lambda lay: order.index(lay.name) if lay.name in order else len(order))
    return RunInfo(out=out, results=results, layers=layers)


def layer_file(run: RunInfo, layer: LayerInfo, kind: str) -> Path:
    """Path of a layer's ``tally``/``quantile``/``topn`` file (results.json names it, else default)."""
    default = {"tally": "tally_{}.csv", "quantile": "quantile_{}.npy", "topn": "topn_{}.npz"}[kind]
    name = layer.files.get(kind) or default.format(layer.name)
    return run.out / name


def load_quantile(run: RunInfo, layer: LayerInfo) -> np.ndarray:
    """``(C,) float64`` thresholds of the layer."""
    path = layer_file(run, layer, "quantile")
    if not path.is_file():
        raise LayoutError("file is missing", file=path)
    q = np.load(path)
    if q.shape != (layer.units,):
        raise LayoutError(f"has shape {q.shape}, expected ({layer.units},)", file=path)
    return q.astype(np.float64)


@dataclass
class TopN:
    """``indices (C, N) int64``, ``values (C, N) float32``, ``maps (C, N, h, w) float16``."""

    indices: np.ndarray
    values: np.ndarray
    maps: np.ndarray


def load_topn(run: RunInfo, layer: LayerInfo) -> TopN:
    path = layer_file(run, layer, "topn")
    if not path.is_file():
        raise LayoutError("file is missing", file=path)
    with np.load(path) as z:
        for key in ("indices", "values", "maps"):
            if key not in z:
                raise LayoutError(f"has no array {key!r}", file=path)
        top = TopN(indices=z["indices"], values=z["values"], maps=z["maps"])
    if top.maps.ndim != 4 or top.maps.shape[:2] != top.indices.shape:
        raise LayoutError(
            f"maps {top.maps.shape} do not match indices {top.indices.shape} (C, N, h, w)",
            file=path,
        )
    return top
