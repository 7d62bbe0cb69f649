"""Explain a finished dissection: recompute the unit masks, search formulas, write the files.

:func:`explain` reads a run folder written by ``conceptkit dissect`` (``results.json`` for the
model, data, layers, preprocessing, batch size and union; ``quantile_<layer>.npy`` for the
thresholds), packs every concept of the run's dataset (:mod:`conceptkit.explain.masks`),
recomputes the probed layers' features with one forward pass over the dataset (float32, in
memory up to ``cache_mem`` bytes, else in a temporary memory-mapped file), and searches each
unit's formula (:mod:`conceptkit.explain.search`) in ``workers`` forked processes. Then it
writes, each file atomically (:mod:`conceptkit.explain.files`): ``explain_<layer>.csv``,
``exhaustive_<layer>.csv`` (with ``exhaustive``), ``explain_gain.png`` and ``explain.json``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptkit import limits
from conceptkit.broden import read_index, read_meta
from conceptkit.errors import LayoutError, UsageError
from conceptkit.explain.formulas import Key
from conceptkit.explain.masks import (
    ConceptMasks,
    ImageLabels,
    build_concept_masks,
    unit_mask,
)
from conceptkit.explain.search import UnitExplanation, UnitSearch, explain_unit
from conceptkit.workers import reset_signals

DEFAULT_CACHE_MEM = 2 << 30
_LAYER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")  # a dotted module name: safe in file names
Log = Callable[[str], None]


@dataclass
class ExplainSettings:
    """The search: ``max_length`` leaves at most, ``beam`` formulas kept per length, scores
    ``IoU * (1 - length_penalty) ** (length - 1)``; ``exhaustive`` (0, 1, 2 or 3): also the
    exact best formula up to that length; ``units``: only these (0-based; None: all)."""

    max_length: int = 3
    beam: int = 5
    length_penalty: float = 0.0
    exhaustive: int = 0
    units: list[int] | None = None
    workers: int = 1
    batch_size: int | None = None
    device: str = "cpu"
    cache_mem: int = DEFAULT_CACHE_MEM
    spill_dir: Path | None = None

    def check(self) -> None:
        if self.max_length < 1:
            raise UsageError("--max-length must be at least 1")
        if self.beam < 1:
            raise UsageError("--beam must be at least 1")
        if not 0.0 <= self.length_penalty < 1.0:
            raise UsageError("--length-penalty must lie in [0, 1)")
        if self.exhaustive not in (0, 1, 2, 3):
            raise UsageError("the exhaustive search goes up to length 3")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")


@dataclass
class RunInfo:
    """What explain needs from a run folder's results.json."""

    root: Path
    layers: list[str]
    data: Path
    data_fingerprint: str
    images: int
    seg_size: tuple[int, int]
    model_spec: str
    model_fingerprint: str
    settings: dict[str, Any]


@dataclass
class LayerExplanation:
    """One layer's answers (``units`` in unit order) and the concept names they refer to."""

    layer: str
    units: list[UnitExplanation]
    seconds: float


@dataclass
class Explanation:
    """Everything :func:`explain` found; ``names[c]`` / ``numbers[c]``: concept c's label name
    and number; ``categories[c]`` its category name."""

    run: RunInfo
    settings: ExplainSettings
    names: list[str]
    numbers: list[int]
    categories: list[str]
    layers: dict[str, LayerExplanation] = field(default_factory=dict)
    duplicates: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the run folder


def read_run(run: str | Path, data: str | Path | None = None) -> RunInfo:
    """Read ``run/results.json`` (``data`` replaces the dataset folder it names)."""
    root = Path(run)
    path = root / "results.json"
    if not path.is_file():
        raise LayoutError("results.json is missing (is this a `conceptkit dissect` folder?)",
                          file=root)  # fmt: skip
    limits.check("file_bytes", path.stat().st_size, file=path, error=LayoutError)
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
        layers = list(res.get("layer_order") or res["layers"])
        info = RunInfo(
            root=root,
            layers=layers,
            data=Path(data) if data is not None else Path(res["data"]["path"]),
            data_fingerprint=str(res["data"]["fingerprint"]),
            images=int(res["data"]["images"]),
            seg_size=(int(res["data"]["seg_size"][0]), int(res["data"]["seg_size"][1])),
            model_spec=str(res["model"]["spec"]),
            model_fingerprint=str(res["model"]["fingerprint"]),
            settings=dict(res["settings"]),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise LayoutError(f"is not a dissection's results.json ({exc!r})", file=path) from None
    for layer in layers:
        if not isinstance(layer, str) or not _LAYER.match(layer):
            raise LayoutError(f"layer name {layer!r} is not a module name", file=path,
                              place="layer_order")  # fmt: skip
        if not (root / f"quantile_{layer}.npy").is_file():
            raise LayoutError(f"quantile_{layer}.npy is missing", file=root)
    return info


def thresholds(run: RunInfo, layer: str) -> np.ndarray:
    """``(C,) float64`` the run's thresholds of ``layer`` (finite numbers, one per unit)."""
    path = run.root / f"quantile_{layer}.npy"
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise LayoutError(f"cannot be read ({exc})", file=path) from None
    if arr.ndim != 1 or arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
        raise LayoutError(
            f"holds {arr.dtype} of shape {arr.shape}; expected finite numbers, one per unit",
            file=path,
        )
    return arr.astype(np.float64)


def _data_fingerprint(root: Path) -> str:
    """sha256 over index.csv, category.csv, label.csv and c_*.csv (as the dissection)."""
    h = hashlib.sha256()
    names = ["index.csv", "category.csv", "label.csv"]
    names += sorted(p.name for p in root.glob("c_*.csv"))
    for name in names:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()


def check_data(run: RunInfo) -> None:
    """The run's dataset is there, unchanged, and of the size results.json says."""
    if not run.data.is_dir():
        raise UsageError("the run's dataset folder is missing (pass --data)", file=run.data)
    if _data_fingerprint(run.data) != run.data_fingerprint:
        raise UsageError(
            "the dataset's CSV files differ from the ones the run dissected", file=run.data
        )
    index = run.data / "index.csv"
    rows = read_index(run.data)
    if len(rows) != run.images:
        raise LayoutError(f"has {len(rows)} images, results.json says {run.images}", file=index)
    for ln, row in enumerate(rows, start=2):
        if (row.sh, row.sw) != run.seg_size:
            raise LayoutError(
                f"label size {row.sh}x{row.sw}, results.json says "
                f"{run.seg_size[0]}x{run.seg_size[1]}",
                file=index,
                place=f"line {ln}",
            )
    limits.check(
        "image_pixels", run.seg_size[0] * run.seg_size[1], file=index, place="sh x sw",
        error=LayoutError,
    )  # fmt: skip


# ----------------------------------------------------------------------------- concepts


def concept_table(data: Path) -> tuple[list[int], list[int], list[str], list[str], int]:
    """The searchable concepts: every label of label.csv with a primary category, sorted by
    (category, number) (the dissection's tie order). Returns numbers, category indices,
    names, category names and one more than the largest label number."""
    meta = read_meta(data)
    cats = list(meta.category_names)
    names = meta.label_names()
    primary = meta.primary_category()
    rows = sorted((cats.index(cat), num) for num, cat in primary.items() if num > 0 and cat in cats)
    numbers = [num for _, num in rows]
    return (
        numbers,
        [k for k, _ in rows],
        [names.get(n, str(n)) for n in numbers],
        cats,
        (max(names) + 1),
    )


def _label_items(data: Path, workers: int) -> Iterator[ImageLabels]:
    from conceptkit.dissection.data import BrodenDataset

    ds = BrodenDataset(data, load_images=False, load_planes=True)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=16, num_workers=workers, collate_fn=list, shuffle=False
    )
    for samples in loader:
        for s in samples:
            assert s.planes is not None and s.image_labels is not None
            yield ImageLabels(s.planes.numpy(), s.image_labels.numpy())


# ----------------------------------------------------------------------------- features


class FeatureStore:
    """``(C, N, h, w) float32`` features of one layer, unit-major, in memory or memory-mapped
    in a temporary folder (removed by :meth:`close`)."""

    def __init__(self, shape: tuple[int, int, int, int], in_memory: bool, spill: Path | None):
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if in_memory:
            self.array: np.ndarray = np.empty(shape, dtype=np.float32)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="conceptkit-explain-", dir=spill)
            path = Path(self._tmp.name) / "features.f32"
            self.array = np.lib.format.open_memmap(path, "w+", np.float32, shape)

    def close(self) -> None:
        self.array = np.empty((0, 0, 0, 0), dtype=np.float32)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def compute_features(
    model: torch.nn.Module,
    run: RunInfo,
    layers: Sequence[str],
    opts: ExplainSettings,
    log: Log,
) -> dict[str, FeatureStore]:
    """One forward pass over the run's dataset in its batch size and preprocessing."""
    from conceptkit.dissection.data import BrodenDataset, collate
    from conceptkit.dissection.forward import Forward
    from conceptkit.dissection.preprocess import get_preprocess

    st = run.settings
    if st.get("preprocess") == "netdissect":
        prep = get_preprocess("netdissect")
    else:
        prep = get_preprocess("imagenet", st.get("mean"), st.get("std"))
    bs = int(opts.batch_size or st.get("batch_size", 64))
    ds = BrodenDataset(run.data, load_images=True, load_planes=False)
    n = len(ds)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_sampler=[list(range(a, min(a + bs, n))) for a in range(0, n, bs)],
        num_workers=min(4, max(0, (os.cpu_count() or 1) - 1)),
        collate_fn=collate,
    )
    dev = torch.device(opts.device)
    fwd = Forward.of_run(model, dev, st)  # the run's own layout and precision
    stores: dict[str, FeatureStore] = {}
    used = 0
    with fwd.hooks(layers) as hooks:
        for batch in loader:
            assert batch.images is not None
            feats = fwd(hooks, prep(batch.images.to(dev)))
            a = int(batch.rows[0])
            for name, f in feats.items():
                if name not in stores:
                    C, h, w = f.shape[1:]
                    size = C * n * h * w * 4
                    used += size
                    stores[name] = FeatureStore((C, n, h, w), used <= opts.cache_mem,
                                                opts.spill_dir)  # fmt: skip
                    where = "memory" if used <= opts.cache_mem else "a temporary file"
                    log(f"{name}: features {C}x{h}x{w} per image, {size >> 20} MiB in {where}")
                arr = f.to("cpu", torch.float32).numpy()
                stores[name].array[:, a : a + arr.shape[0]] = arr.transpose(1, 0, 2, 3)
    return stores


# ----------------------------------------------------------------------------- the search

_WORK: dict[str, Any] = {}


def _init_worker() -> None:
    reset_signals()
    torch.set_num_threads(1)  # a forked process: one thread each, no inherited pool


def _search_one(unit: int) -> UnitExplanation:
    """Mask and search one unit of the layer in ``_WORK`` (inherited by forked workers)."""
    w = _WORK
    opts: ExplainSettings = w["opts"]
    cm: ConceptMasks = w["cm"]
    um = unit_mask(unit, w["features"][unit], float(w["thresholds"][unit]), cm.size)
    cache: dict[Key, np.ndarray] = w.setdefault("fc_cache", {})
    s = UnitSearch(cm, um, w["union"], opts.length_penalty, cache)
    return explain_unit(s, opts.max_length, opts.beam, opts.exhaustive)


def explain_layer(
    cm: ConceptMasks,
    features: np.ndarray,
    thresh: np.ndarray,
    union: str,
    opts: ExplainSettings,
    progress: Callable[[int], None] | None = None,
) -> list[UnitExplanation]:
    """``features: (C, N, h, w) float32``, ``thresh: (C,) float64`` -> one answer per unit
    (all, or ``opts.units``), searched in ``opts.workers`` forked processes."""
    C = features.shape[0]
    if thresh.shape != (C,):
        raise LayoutError(f"{thresh.shape[0]} thresholds for a layer of {C} units")
    units = list(range(C)) if opts.units is None else sorted(set(opts.units))
    bad = [u for u in units if not 0 <= u < C]
    if bad:
        raise UsageError(f"--units {bad[0]}: the layer has units 0..{C - 1}")
    _WORK.update(cm=cm, features=features, thresholds=thresh, union=union, opts=opts)
    _WORK["fc_cache"] = {}
    out: list[UnitExplanation] = []
    try:
        if opts.workers == 1 or len(units) <= 1:
            for u in units:
                out.append(_search_one(u))
                if progress is not None:
                    progress(1)
            return out
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(opts.workers, len(units)), initializer=_init_worker) as pool:
            for res in pool.imap(_search_one, units, chunksize=4):
                out.append(res)
                if progress is not None:
                    progress(1)
            pool.close()  # the workers end on the queue's sentinels, not on SIGTERM
            pool.join()
        return out
    finally:
        _WORK.clear()


def load_run_model(run: RunInfo, model_opts: dict[str, Any]) -> torch.nn.Module:
    from conceptkit.dissection.models import load_model

    spec = model_opts.get("model") or run.model_spec
    loaded = load_model(
        spec,
        arch=model_opts.get("arch"),
        num_classes=model_opts.get("num_classes"),
        trust_pickle=bool(model_opts.get("trust_pickle")),
    )
    if loaded.fingerprint != run.model_fingerprint:
        raise UsageError(
            "the model's weights differ from the dissected model's (fingerprint)", file=spec
        )
    return loaded.module


def explain(
    run: str | Path,
    settings: ExplainSettings | None = None,
    layers: Sequence[str] | None = None,
    data: str | Path | None = None,
    model: torch.nn.Module | None = None,
    model_opts: dict[str, Any] | None = None,
    log: Log | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> Explanation:
    """Compositional explanations of the units of a finished dissection (see the module
    docstring). ``model`` replaces loading the run's model (``model_opts``: ``model``, ``arch``,
    ``num_classes``, ``trust_pickle`` as for ``conceptkit dissect``); ``layers`` defaults to
    every dissected layer. ``progress(desc, total)`` returns a bar with ``update(n)``/``close()``.
    """
    opts = settings or ExplainSettings()
    opts.check()
    say: Log = log or (lambda msg: None)
    info = read_run(run, data)
    chosen = list(layers) if layers else list(info.layers)
    for layer in chosen:
        if layer not in info.layers:
            raise UsageError(f"layer {layer!r} was not dissected in this run ({info.layers})")
    check_data(info)
    thresh = {layer: thresholds(info, layer) for layer in chosen}
    union = str(info.settings.get("union", "category"))
    if union not in ("category", "global"):
        raise LayoutError(f"settings.union is {union!r}", file=info.root / "results.json")
    numbers, cats, names, cat_names, nlab = concept_table(info.data)
    t0 = time.perf_counter()
    bar = progress("concepts", info.images) if progress else None
    cm = build_concept_masks(
        _label_items(info.data, min(4, max(0, (os.cpu_count() or 1) - 1))),
        info.images,
        info.seg_size,
        numbers,
        cats,
        nlab,
        bar.update if bar else None,
    )
    if bar:
        bar.close()
    result = Explanation(info, opts, names, numbers, [cat_names[k] for k in cats])
    result.duplicates = cm.duplicates
    result.seconds["concepts"] = time.perf_counter() - t0
    say(f"{cm.concepts} concepts packed: {cm.blocks.nbytes >> 20} MiB")
    if cm.duplicates:
        say(f"note: {cm.duplicates} pixels carry the same label twice; formulas count them once")
    t0 = time.perf_counter()
    net = model if model is not None else load_run_model(info, model_opts or {})
    stores = compute_features(net, info, chosen, opts, say)
    result.seconds["forward"] = time.perf_counter() - t0
    try:
        for layer in chosen:
            t0 = time.perf_counter()
            feats = stores[layer].array
            if thresh[layer].shape[0] != feats.shape[0]:
                raise LayoutError(
                    f"holds {thresh[layer].shape[0]} thresholds, the layer has "
                    f"{feats.shape[0]} units",
                    file=info.root / f"quantile_{layer}.npy",
                )
            n_units = feats.shape[0] if opts.units is None else len(opts.units)
            bar = progress(f"explain {layer}", n_units) if progress else None
            units = explain_layer(
                cm, feats, thresh[layer], union, opts, bar.update if bar else None
            )
            if bar:
                bar.close()
            result.layers[layer] = LayerExplanation(layer, units, time.perf_counter() - t0)
    finally:
        for st in stores.values():
            st.close()
    return result
