"""Read a finished dissection folder (``conceptkit dissect -o OUT``) into records for the report.

Reads ``results.json`` (layers, units, settings), ``quantile_<layer>.npy`` (thresholds) and
``topn_<layer>.npz`` (top images and raw maps) exactly as the dissect contract writes them
(:class:`conceptkit.dissection.results.DissectResult`); the tally CSVs are not needed, since
results.json holds every unit's label and IoU. Nothing here imports matplotlib or torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit.errors import LayoutError
from conceptkit.images import check_size
from conceptkit.jsonfile import load as load_json
from conceptkit.report.arrays import load_npy, load_npz

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
    #: the best label's chance check from results.json (a run made with chance levels)
    chance: UnitChance | None = None


@dataclass(frozen=True)
class UnitChance:
    """``support`` images with the best label, its chance IoU, ``z`` and ``flags``."""

    support: int
    iou_chance: float
    z: float
    flags: tuple[str, ...]


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
    source: str = ""  # a foreign folder's kind ("NetDissect-Lite result"); "" for conceptkit's

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


def _kind(value: Any) -> str:
    """The JSON kind of a parsed value, for messages."""
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    for kind, name in ((dict, "an object"), (list, "a list"), (str, "a string")):
        if isinstance(value, kind):
            return name
    return "a number"


def _child(where: str, key: str | int) -> str:
    """The JSON path of a member: ``$.layers['features.7'].units``, ``...units_detail[3]``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if key.isidentifier() else f"{where}[{json.dumps(key)}]"


@dataclass(frozen=True)
class _Doc:
    """Typed access to a parsed results.json: each getter raises LayoutError (file + JSON path)."""

    path: Path

    def fail(self, where: str, message: str) -> LayoutError:
        return LayoutError(message, file=self.path, place=where)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"is {_kind(value)}, expected an object")
        return value

    def get(self, obj: dict[str, Any], key: str, where: str) -> tuple[Any, str]:
        """``(obj[key], its path)``; a missing key is an error."""
        if key not in obj:
            raise self.fail(where, f"has no key {key!r}")
        return obj[key], _child(where, key)

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"is {_kind(value)}, expected a string")
        return value

    def whole(self, value: Any, where: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"is {_kind(value)}, expected a whole number")
        if value < minimum:
            raise self.fail(where, f"is {value}, expected at least {minimum}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"is {_kind(value)}, expected a number")
        if not math.isfinite(value):
            raise self.fail(where, f"is {value}, expected a finite number")
        return float(value)

    def items(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"is {_kind(value)}, expected a list")
        return value

    def texts(self, value: Any, where: str) -> list[str]:
        return [self.text(v, _child(where, i)) for i, v in enumerate(self.items(value, where))]

    def counts(self, value: Any, where: str, keys: list[str]) -> dict[str, int]:
        """``{category: count}``; every key must be one of ``keys``."""
        out = {}
        for k, v in self.obj(value, where).items():
            if k not in keys:
                raise self.fail(where, f"names the category {k!r}, not one of the run's")
            out[k] = self.whole(v, _child(where, k))
        return out

    def size(self, value: Any, where: str) -> tuple[int, int]:
        """A ``[height, width]`` pair of whole numbers."""
        pair = self.items(value, where)
        if len(pair) != 2:
            raise self.fail(where, f"has {len(pair)} entries, expected [height, width]")
        return self.whole(pair[0], _child(where, 0)), self.whole(pair[1], _child(where, 1))


def _layer_order(results: dict[str, Any]) -> list[str]:
    """The ``--layer`` order: ``results.json`` keeps it in a list (``layer_order`` or
    ``settings.layers``) since its sorted keys lose the order of ``layers``; else key order."""
    for order in (results.get("layer_order"), results["settings"].get("layers")):
        if isinstance(order, list) and all(isinstance(x, str) for x in order):
            return order
    return list(results["layers"])


def _file_name(doc: _Doc, value: Any, where: str) -> str:
    """A file of the run: a plain name inside OUT (no folders, never ``..``)."""
    name = doc.text(value, where)
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise doc.fail(where, f"names {name!r}, expected a file name inside the run folder")
    return name


def _unit(doc: _Doc, value: Any, where: str, units: int, cats: list[str]) -> UnitInfo:
    u = doc.obj(value, where)
    unit = doc.whole(doc.get(u, "unit", where)[0], _child(where, "unit"))
    if unit >= units:
        raise doc.fail(_child(where, "unit"), f"is {unit}, the layer has {units} units")
    category = doc.text(u.get("category", ""), _child(where, "category"))
    if category not in cats:
        raise doc.fail(_child(where, "category"), f"is {category!r}, not one of the run's")
    runners = []
    for i, r in enumerate(doc.items(u.get("runners_up", []), _child(where, "runners_up"))):
        at = _child(_child(where, "runners_up"), i)
        r = doc.obj(r, at)
        runners.append(
            RunnerUp(
                doc.text(doc.get(r, "label", at)[0], _child(at, "label")),
                doc.text(doc.get(r, "category", at)[0], _child(at, "category")),
                doc.number(doc.get(r, "iou", at)[0], _child(at, "iou")),
            )
        )
    tops = doc.items(u.get("top_images", []), _child(where, "top_images"))
    chance = None
    if all(k in u for k in ("support", "iou_chance", "z")):
        chance = UnitChance(
            support=doc.whole(u["support"], _child(where, "support")),
            iou_chance=doc.number(u["iou_chance"], _child(where, "iou_chance")),
            z=doc.number(u["z"], _child(where, "z")),
            flags=tuple(doc.texts(u.get("flags", []), _child(where, "flags"))),
        )
    return UnitInfo(
        unit=unit,
        label=doc.text(u.get("label", ""), _child(where, "label")),
        category=category,
        iou=doc.number(u.get("iou", 0.0), _child(where, "iou")),
        threshold=doc.number(u.get("threshold", 0.0), _child(where, "threshold")),
        top_images=tuple(
            doc.whole(t, _child(_child(where, "top_images"), i), minimum=-1)
            for i, t in enumerate(tops)
        ),
        runners_up=tuple(runners),
        chance=chance,
    )


def _unique(doc: _Doc, lay: dict[str, Any], where: str, cats: list[str]) -> dict[str, Any]:
    """``{"official"/"naive": (total, per_category)}`` of a layer's ``unique_detectors``."""
    uniq, at = doc.get(lay, "unique_detectors", where)
    uniq = doc.obj(uniq, at)
    out = {}
    for definition in ("official", "naive"):
        part, here = doc.get(uniq, definition, at)
        part = doc.obj(part, here)
        total, total_at = doc.get(part, "total", here)
        per, per_at = doc.get(part, "per_category", here)
        out[definition] = (doc.whole(total, total_at), doc.counts(per, per_at, cats))
    return out


def _layer(doc: _Doc, name: str, value: Any, cats: list[str]) -> LayerInfo:
    where = _child("$.layers", name)
    lay = doc.obj(value, where)
    units = doc.whole(doc.get(lay, "units", where)[0], _child(where, "units"))
    uniq = _unique(doc, lay, where, cats)
    files_at = _child(where, "files")
    files = {
        k: _file_name(doc, v, _child(files_at, k))
        for k, v in doc.obj(lay.get("files", {}), files_at).items()
    }
    info = LayerInfo(
        name=name,
        units=units,
        map_size=doc.size(lay["map_size"], _child(where, "map_size"))
        if "map_size" in lay
        else (0, 0),
        detectors=doc.whole(doc.get(lay, "detectors", where)[0], _child(where, "detectors")),
        unique_official=uniq["official"][1],
        unique_naive=uniq["naive"][1],
        unique_official_total=uniq["official"][0],
        unique_naive_total=uniq["naive"][0],
        files=files,
    )
    detail, at = doc.get(lay, "units_detail", where)
    for i, u in enumerate(doc.items(detail, at)):
        info.unit_info.append(_unit(doc, u, _child(at, i), units, cats))
    info.unit_info.sort(key=lambda x: x.unit)
    if [u.unit for u in info.unit_info] != list(range(units)):
        raise doc.fail(at, f"does not list each of the layer's {units} units once")
    return info


def _check_data(doc: _Doc, data: dict[str, Any]) -> list[str]:
    """The run's categories; ``data.path`` and ``data.image_size`` checked on the way."""
    if "\0" in doc.text(doc.get(data, "path", "$.data")[0], "$.data.path"):
        raise doc.fail("$.data.path", "holds a NUL character, expected a folder path")
    cats = doc.texts(doc.get(data, "categories", "$.data")[0], "$.data.categories")
    if "image_size" in data:
        h, w = doc.size(data["image_size"], "$.data.image_size")
        check_size(w, h, file=doc.path, place="$.data.image_size", what="image_size")
    return cats


def load_run(out: str | Path) -> RunInfo:
    """Read ``OUT/results.json``; LayoutError (file + JSON path) for a missing key or a value of
    the wrong type, FormatError for a file that is not JSON (or nested past the depth limit)."""
    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise LayoutError(
            "file is missing", file=path, hint="is this the -o folder of `conceptkit dissect`?"
        )
    doc = _Doc(path)
    results = doc.obj(load_json(path, "results.json"), "$")
    for key in ("model", "data", "settings", "layers"):
        doc.obj(doc.get(results, key, "$")[0], _child("$", key))
    settings = results["settings"]
    if "iou_threshold" in settings:
        doc.number(settings["iou_threshold"], "$.settings.iou_threshold")
    cats = _check_data(doc, results["data"])
    layers = [_layer(doc, name, lay, cats) for name, lay in results["layers"].items()]
    order = _layer_order(results)
    layers.sort(key=lambda lay: order.index(lay.name) if lay.name in order else len(order))
    return RunInfo(out=out, results=results, layers=layers)


def layer_file(run: RunInfo, layer: LayerInfo, kind: str) -> Path:
    """Path of a layer's ``tally``/``quantile``/``topn`` file (results.json names it, else default)."""
    default = {"tally": "tally_{}.csv", "quantile": "quantile_{}.npy", "topn": "topn_{}.npz"}[kind]
    name = layer.files.get(kind) or default.format(layer.name)
    if Path(name).name != name or name in ("", ".", ".."):
        raise LayoutError(
            f"layer {layer.name!r}: {kind} file {name!r} is not a file name inside the run folder",
            file=run.out / "results.json",
        )
    return run.out / name


def load_quantile(run: RunInfo, layer: LayerInfo) -> np.ndarray:
    """``(C,) float64`` thresholds of the layer."""
    path = layer_file(run, layer, "quantile")
    q = load_npy(path, "f", 1)
    if q.shape != (layer.units,):
        raise LayoutError(f"has shape {q.shape}, expected ({layer.units},)", file=path)
    if not np.isfinite(q).all():
        raise LayoutError("holds a threshold that is not a finite number", file=path)
    return q.astype(np.float64)


@dataclass
class TopN:
    """``indices (C, N) int64``, ``values (C, N) float32``, ``maps (C, N, h, w) float16``."""

    indices: np.ndarray
    values: np.ndarray
    maps: np.ndarray


def load_topn(run: RunInfo, layer: LayerInfo) -> TopN:
    path = layer_file(run, layer, "topn")
    z = load_npz(path, {"indices": ("iu", 2), "values": ("f", 2), "maps": ("f", 4)})
    top = TopN(indices=z["indices"].astype(np.int64), values=z["values"], maps=z["maps"])
    if top.maps.shape[:2] != top.indices.shape:
        raise LayoutError(
            f"maps {top.maps.shape} do not match indices {top.indices.shape} (C, N, h, w)",
            file=path,
        )
    return top
