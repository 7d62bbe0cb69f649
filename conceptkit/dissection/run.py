"""Run Network Dissection on a model: two passes over a Broden folder, results in memory.

Pass 1 forwards every image once, hooks the requested layers, and feeds the exact quantile and
the top-N statistics; it also keeps the layers' raw features for pass 2 in a
:class:`~conceptkit.dissection.cache.FeatureCache`. Pass 2 reads the label planes and tallies
IoUs, taking features from that cache and re-running the forward only for images that were
not cached. With fixed thresholds there is no quantile to wait for, so one pass does everything.
Beside the IoU tally, each layer counts the chance level of every unit and label from the
same per-image counts (:class:`~conceptkit.dissection.chance.ChanceTally`). With
``baseline="random"`` the same layers of :func:`randomized` weights are dissected afterwards
(``result.baseline``).

Batches are the single-process batches ``[b * batch_size, (b + 1) * batch_size)``; under
torchrun each rank takes its share of them (:mod:`conceptkit.dissection.distributed`) and the
statistics are merged exactly at the end of each pass. With a checkpoint folder each rank's
statistics are saved every few batches and a rerun resumes (:mod:`conceptkit.dissection.checkpoint`).

Use :func:`dissect` (keyword options) or :class:`Dissection` with a
:class:`~conceptkit.dissection.settings.DissectSettings`; both give a
:class:`~conceptkit.dissection.results.DissectResult`.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from conceptkit.dissection.cache import FeatureCache
from conceptkit.dissection.chance import ChanceTally, merge_chance
from conceptkit.dissection.checkpoint import Checkpoints, Fingerprint, to_cpu
from conceptkit.dissection.data import (
    Batch,
    BrodenDataset,
    check_sizes,
    data_fingerprint,
    loader,
)
from conceptkit.dissection.distributed import (
    DistContext,
    merge_quantile,
    merge_tally,
    merge_top_images,
    parse_device,
    shard_batches,
)
from conceptkit.dissection.forward import Forward
from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.models import fingerprint
from conceptkit.dissection.preprocess import Preprocess, get_preprocess
from conceptkit.dissection.results import DissectResult, LayerResult
from conceptkit.dissection.settings import DEFAULT_CACHE_MEM, DissectSettings, ScienceSettings
from conceptkit.dissection.stats import IoUTally, LabelBatch, TopImages, TopQuantile
from conceptkit.errors import FormatError, ModelLoadError, UsageError

__all__ = [
    "BASELINE_SEED",
    "DEFAULT_CACHE_MEM",
    "Dissection",
    "LayerStats",
    "default_workers",
    "dissect",
    "randomized",
]

#: the seed of the random weights of ``baseline="random"``
BASELINE_SEED = 0


# ----------------------------------------------------------------------------- inputs


def load_thresholds(
    thresholds: Mapping[str, Any] | str | Path, layers: Sequence[str]
) -> dict[str, np.ndarray]:
    """``{layer: (C,) float64}`` from a mapping or a folder of ``quantile_<layer>.npy``."""
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        if isinstance(thresholds, Mapping):
            if layer not in thresholds:
                raise UsageError(f"no thresholds given for layer {layer!r}")
            out[layer] = np.asarray(thresholds[layer], dtype=np.float64).reshape(-1)
        else:
            out[layer] = _read_thresholds(Path(thresholds) / f"quantile_{layer}.npy")
    return out


def _read_thresholds(path: Path) -> np.ndarray:
    """A ``quantile_<layer>.npy`` as ``(C,) float64``; FormatError naming it when it is not
    a 1-D array of real numbers (never unpickled)."""
    if not path.is_file():
        raise UsageError("file is missing (needed by --thresholds)", file=path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(f"not a readable .npy array ({exc})", file=path) from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise FormatError("holds several arrays (an .npz), not one .npy array", file=path)
    if arr.dtype.kind not in "fiu" or arr.ndim != 1:
        raise FormatError(
            f"holds a {arr.ndim}-D {arr.dtype} array; expected one number per unit", file=path
        )
    return arr.astype(np.float64)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None: CUDA when present, else the CPU; otherwise ``torch.device(device)``."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return parse_device(device)


def default_workers() -> int:
    """DataLoader workers when none are asked for: ``min(4, cores - 1)``."""
    return min(4, max(0, (os.cpu_count() or 1) - 1))


def resolve_preprocess(science: ScienceSettings) -> Preprocess:
    if isinstance(science.preprocess, Preprocess):
        return science.preprocess
    return get_preprocess(science.preprocess, science.mean, science.std, science.input_size)


@dataclass(frozen=True)
class LabelSpace:
    """The dataset's labels as the tally sees them: L columns, one per label number listed in
    label.csv (ascending, 0 first), K categories.

    ``numbers: (L,) int64`` the label number of each column; ``label_category: (L,) int64``
    each column's primary category index, -1 for none. Arrays are sized by the labels
    label.csv lists, never by the size of a number in it or in a plane: a plane value
    that label.csv does not list counts as unlabelled (:meth:`encode`).
    """

    categories: list[str]
    numbers: torch.Tensor
    label_names: list[str]
    label_category: torch.Tensor

    @classmethod
    def of(cls, ds: BrodenDataset) -> LabelSpace:
        categories = list(ds.categories)
        names = ds.meta.label_names()
        numbers = sorted(set(names) | {0})
        column = {num: i for i, num in enumerate(numbers)}
        label_category = torch.full((len(numbers),), -1, dtype=torch.int64)
        for num, cat in ds.meta.primary_category().items():
            if num > 0 and num in column and cat in categories:
                label_category[column[num]] = categories.index(cat)
        return cls(
            categories,
            torch.tensor(numbers, dtype=torch.int64),
            [names[n] for n in numbers],
            label_category,
        )

    @property
    def dense(self) -> bool:
        """Whether column ``i`` is label number ``i`` (Broden's numbering): no encoding."""
        return int(self.numbers[-1]) == len(self.numbers) - 1

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        """Label numbers (any shape, any integer dtype) -> their columns, 0 where label.csv
        does not list the number."""
        if self.dense:
            return labels
        lab = labels.to(torch.int64)
        col = torch.searchsorted(self.numbers, lab).clamp_(max=len(self.numbers) - 1)
        return torch.where(self.numbers[col] == lab, col, torch.zeros_like(col))


# ----------------------------------------------------------------------------- one layer


@dataclass
class LayerStats:
    """One layer's statistics: top images, IoU tally and its chance levels, and either the
    running quantile (pass 1 of a two-pass run) or fixed ``thresholds: (C,) float64``.
    ``shape``: ``(C, h, w)``."""

    name: str
    shape: tuple[int, int, int]
    tops: TopImages
    tally: IoUTally
    chance: ChanceTally
    quant: TopQuantile | None
    thresholds: torch.Tensor | None

    @property
    def map_size(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]

    def add_pass1(self, feats: torch.Tensor, rows: torch.Tensor, lb: LabelBatch | None) -> None:
        """``feats: (B, C, h, w)`` of rows ``rows: (B,)``; tallied at once when ``lb`` is
        given (fixed thresholds), else fed to the quantile."""
        self.tops.add(feats, rows)
        if lb is not None:
            self.add_tally(feats, lb)
        elif self.quant is not None:
            self.quant.add(feats)

    def add_tally(self, feats: torch.Tensor, lb: LabelBatch) -> None:
        """Tally ``feats: (B, C, h, w)`` against the batch's labels, with the chance sums."""
        self.chance.add(self.tally.add(feats, self.fixed(), lb), lb)

    def fixed(self) -> torch.Tensor:
        if self.thresholds is None:
            raise RuntimeError(f"layer {self.name!r} has no thresholds yet")
        return self.thresholds

    def finish_quantile(self) -> None:
        """Pass 1 is over: the quantile's result becomes the thresholds."""
        if self.quant is not None:
            self.thresholds = torch.from_numpy(self.quant.result()).to(self.tally.truth.device)

    def state(self, pass_no: int) -> dict[str, Any]:
        tally = {"tally": self.tally.state_dict(), "chance": self.chance.state_dict()}
        if pass_no == 2:
            return {**tally, "thresholds": self.fixed()}
        if self.quant is None:
            return {"tops": self.tops.state_dict(), **tally}
        return {"tops": self.tops.state_dict(), "quant": self.quant.state_dict()}

    def load(self, state: Mapping[str, Any]) -> None:
        if "tops" in state:
            self.tops.load_state_dict(state["tops"])
        if "quant" in state and self.quant is not None:
            self.quant.load_state_dict(state["quant"])
        if "tally" in state:
            self.tally.load_state_dict(state["tally"])
            self.chance.load_state_dict(state["chance"])

    def merge(self, pass_no: int) -> None:
        """Merge this pass's statistics across the ranks (every rank gets the sum)."""
        if pass_no == 1:
            merge_top_images(self.tops)
        if pass_no == 2 or self.quant is None:
            merge_tally(self.tally)
            merge_chance(self.chance)
        else:
            merge_quantile(self.quant)

    def result(self) -> LayerResult:
        t, tp = self.tally, self.tops
        levels = self.chance.result(t)
        return LayerResult(
            name=self.name,
            map_size=self.map_size,
            thresholds=self.fixed().cpu().numpy().astype(np.float64),
            inter=t.inter.cpu().numpy(),
            truth=t.truth.cpu().numpy(),
            act_cat=t.act_cat.cpu().numpy(),
            act_total=t.act_total.cpu().numpy(),
            iou=t.iou().cpu().numpy(),
            top_indices=tp.indices.cpu().numpy(),
            top_values=tp.values.cpu().numpy(),
            top_maps=tp.maps.cpu().numpy(),
            iou_chance=levels.iou_chance,
            z=levels.z,
            support=levels.support,
        )


# ----------------------------------------------------------------------------- baseline


def randomized(model: nn.Module, seed: int = BASELINE_SEED) -> nn.Module:
    """A copy of ``model`` (on the CPU) with random weights: ``torch.manual_seed(seed)`` (the
    caller's random state is kept), then every module's own ``reset_parameters()`` in
    ``model.modules()`` order (PyTorch's default initialisation; batch-norm statistics
    reset too); a parameter no such method covers (a ViT's class token and position
    embedding, a TorchScript module's weights) is drawn from ``N(0, 0.02^2)``."""
    net = copy.deepcopy(model).cpu()
    covered: set[int] = set()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in net.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in m.parameters(recurse=False))
        for p in net.parameters():
            if id(p) not in covered:
                nn.init.normal_(p, std=0.02)
    return net


# ----------------------------------------------------------------------------- the run


def _check_finite(feats: Mapping[str, torch.Tensor], model_file: str | None) -> None:
    """ModelLoadError naming the first layer whose activations ``(B, C, ...)`` hold NaN or
    infinity (corrupt weights would otherwise fail only at the very end)."""
    for name, f in feats.items():
        bad = ~torch.isfinite(f)
        if bool(bad.any()):
            unit = int(torch.nonzero(bad.transpose(0, 1).reshape(f.shape[1], -1).any(1))[0, 0])
            raise ModelLoadError(
                f"layer {name!r} gives non-finite activations (NaN or infinity) on the first "
                f"batch, first in unit {unit}; the weights may be corrupt",
                file=model_file,
            )


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _no_log(msg: str) -> None:
    pass


class Dissection:
    """One dissection of ``layers`` of ``model`` against a Broden folder; :meth:`run` it once.

    The phases: :meth:`pass1` (forward, quantile, top-N, feature cache; the tally too with
    fixed thresholds), :meth:`pass2` (IoU tally from the cache), :meth:`result`. Statistics
    live in one :class:`LayerStats` per layer, created from the first batch's feature shapes
    (or a checkpoint's).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: BrodenDataset | str | Path,
        layers: Sequence[str],
        settings: DissectSettings,
    ) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise UsageError("no layers to dissect")
        if len(set(self.layers)) != len(self.layers):
            raise UsageError("a layer is named twice")
        settings.check()
        self.settings = settings
        sci, run = settings.science, settings.run
        self.ds = dataset if isinstance(dataset, BrodenDataset) else BrodenDataset(dataset)
        self.image_size, self.seg_size = check_sizes(self.ds)
        self.prep = resolve_preprocess(sci)
        self.dev = resolve_device(run.device)
        self.workers = default_workers() if run.workers is None else run.workers
        self.say = run.log or _no_log
        self.fixed = (
            None if sci.thresholds is None else load_thresholds(sci.thresholds, self.layers)
        )
        self.ctx = run.dist_ctx or DistContext()
        self.labels = LabelSpace.of(self.ds)
        self.fwd = Forward.choose(
            model, self.dev, run.channels_last, run.autocast, run.fold_bn, self.layers
        )
        self.model = self.fwd.model
        self.order: list[str] = list(self.layers)  # the order the forward reaches them
        self.batches = shard_batches(
            len(self.ds), run.batch_size, self.ctx.rank, self.ctx.world, run.shard
        )
        self.stats: dict[str, LayerStats] = {}
        self.cache = FeatureCache(settings.cache, self.say)
        self.model_fp = (run.model_info or {}).get("fingerprint") or fingerprint(self.model)
        self.data_fp = data_fingerprint(self.ds.root)
        self.work = {"pass1": 0, "pass2": 0, "forward": 0}
        self.ckpts = self._checkpoints()

    @property
    def one_pass(self) -> bool:
        return self.fixed is not None

    # ------------------------------------------------------------------ setup

    def _checkpoints(self) -> Checkpoints | None:
        run = self.settings.run
        if run.checkpoint_dir is None:
            return None
        fp = Fingerprint(self.model_fp, self.data_fp, self._checkpoint_settings())
        ckpts = Checkpoints(run.checkpoint_dir, fp, rank=self.ctx.rank, every=run.checkpoint_every)
        if not run.resume:
            ckpts.discard(1)
            ckpts.discard(2)
        return ckpts

    def _checkpoint_settings(self) -> dict[str, Any]:
        """What a checkpoint's statistics depend on besides the model and the data."""
        sci, run = self.settings.science, self.settings.run
        thresholds = None
        if self.fixed is not None:
            blob = b"".join(self.fixed[n].tobytes() for n in self.layers)
            thresholds = hashlib.sha256(blob).hexdigest()
        return {
            "layers": self.layers,
            "chance": 1,  # checkpoints before the chance sums lack them: start afresh
            "quantile": sci.quantile,
            "top_n": sci.top_n,
            "union": sci.union,
            "preprocess": [self.prep.name, list(self.prep.mean), list(self.prep.std)],
            **self._reading(),
            "batch_size": run.batch_size,
            **self.fwd.describe(),
            "thresholds": thresholds,
            "world_size": self.ctx.world,
            "shard": run.shard,
            "device": self.dev.type,
            "spill_dtype": self.settings.cache.spill_dtype,
        }

    def _plan_cache(
        self, shape_of: Mapping[str, Sequence[int]], batch: Batch, hooks: FeatureHooks
    ) -> None:
        """Plan the feature cache for this rank's images, layers in the forward's order
        (``batch``, the first, timed again if the plan has a choice to weigh)."""
        rows = sum(b - a for a, b in self.batches)
        plan = self.cache.plan(
            {n: shape_of[n] for n in self.order},
            rows,
            self.settings.run.batch_size,
            lambda: self._recompute_costs(batch, hooks),
        )
        self.say(plan.line())

    def _clock(self) -> float:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        return time.perf_counter()

    def _recompute_costs(self, batch: Batch, hooks: FeatureHooks) -> list[float]:
        """Seconds per batch that pass 2 would take to load ``batch``'s images again and
        re-run the forward up to each layer of :attr:`order`, measured on ``batch``: a few of
        its images decoded again (as if loading were not overlapped with compute) and one
        more forward of it (counted in the run's forwards), warm, timed at each layer's hook
        (the whole forward for every layer where the forward cannot stop early)."""
        rows = [int(r) for r in batch.rows[:4]]
        images = self.ds.with_options(load_images=True, load_planes=False)
        t0 = time.perf_counter()
        for r in rows:
            images[r]
        load = (time.perf_counter() - t0) / max(1, len(rows)) * len(batch.rows)
        hooks.fired_at = {}
        hooks.clock = self._clock
        try:
            start = self._clock()
            self._forward(batch.images, hooks)
            end = self._clock()
        finally:
            hooks.clock = None
        stops = hooks.stoppable and hooks.extractor is None
        return [load + ((hooks.fired_at.get(n, end) if stops else end) - start) for n in self.order]

    def _reading(self) -> dict[str, Any]:
        """``input_size`` and ``grid`` where set (absent otherwise: outputs stay as they were)."""
        grid = self.settings.science.grid
        out: dict[str, Any] = {}
        if self.prep.input_size is not None:
            out["input_size"] = self.prep.input_size
        if grid is not None:
            out["grid"] = list(grid)
        return out

    def _setup(self, shape_of: Mapping[str, Sequence[int]]) -> None:
        """Create every layer's statistics from its feature shape ``(C, h, w)``."""
        sci = self.settings.science
        n_images = len(self.ds)
        for name in self.layers:
            c, h, w = (int(v) for v in shape_of[name])
            quant = thresholds = None
            if self.fixed is None:
                quant = TopQuantile(c, n_images * h * w, sci.quantile, device=self.dev)
            else:
                if self.fixed[name].shape[0] != c:
                    raise UsageError(
                        f"{self.fixed[name].shape[0]} thresholds given for layer {name!r}, "
                        f"which has {c} units"
                    )
                thresholds = torch.from_numpy(self.fixed[name]).to(self.dev)
            lab = (c, self.labels.label_category, len(self.labels.categories), sci.union)
            self.stats[name] = LayerStats(
                name,
                (c, h, w),
                TopImages(c, min(sci.top_n, n_images), (h, w), device=self.dev),
                IoUTally(*lab, device=self.dev),
                ChanceTally(*lab, device=self.dev),
                quant,
                thresholds,
            )

    # ------------------------------------------------------------------ checkpoints

    def _state(self, pass_no: int) -> dict[str, Any]:
        st: dict[str, Any] = {"shapes": {n: list(s.shape) for n, s in self.stats.items()}}
        for name in self.layers:
            st[name] = self.stats[name].state(pass_no)
        state: dict[str, Any] = to_cpu(st)
        return state

    def _restore(self, pass_no: int, st: dict[str, Any]) -> bool:
        """Load a checkpoint's state; False when pass 2's thresholds differ from ours."""
        if not self.stats:
            self._setup(st["shapes"])
        if pass_no == 2:
            for name in self.layers:
                if not torch.equal(st[name]["thresholds"].cpu(), self.stats[name].fixed().cpu()):
                    return False
        for name in self.layers:
            self.stats[name].load(st[name])
        return True

    def _resume(self, pass_no: int) -> int:
        """Batches of pass ``pass_no`` already done according to a matching checkpoint."""
        if self.ckpts is None:
            return 0
        ck, msg = self.ckpts.load(pass_no)
        if msg:
            self.say(msg)
        if ck is None:
            return 0
        if not self._restore(pass_no, ck["state"]):
            self.say(
                f"checkpoint {self.ckpts.path(pass_no)} ignored: thresholds differ; starting pass 2"
            )
            return 0
        done = int(ck["done"])
        self.say(f"resuming pass {pass_no} after batch {done} of {len(self.batches)}")
        return done

    def _checkpoint(self, pass_no: int, done: int) -> None:
        if self.ckpts is None:
            return
        if done == len(self.batches) or self.ckpts.due(done):
            self.ckpts.save(pass_no, done, done == len(self.batches), self._state(pass_no))

    # ------------------------------------------------------------------ passes

    @contextmanager
    def _bar(self, desc: str, start: int) -> Iterator[Any]:
        """A progress bar over this rank's rows, advanced past the ``start`` batches done."""
        factory = self.settings.run.progress
        bar = factory(desc, sum(b - a for a, b in self.batches)) if factory else _NoBar()
        bar.update(sum(b - a for a, b in self.batches[:start]))
        try:
            yield bar
        finally:
            bar.close()

    def _forward(
        self, images: torch.Tensor | None, hooks: FeatureHooks, only: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """``{layer: (B, C, h, w) float32}``; with ``only``, those layers, the forward stopped
        after the last of them where the layers are modules (see ``FeatureHooks.run``)."""
        if images is None:
            raise RuntimeError("a batch without images reached the forward pass")
        self.work["forward"] += 1
        feats = self.fwd(hooks, self.prep(images.to(self.dev, non_blocking=True)), only)
        if sorted(hooks.order) == sorted(self.layers):
            self.order = hooks.order
        return feats

    def _label_batch(self, batch: Batch) -> LabelBatch:
        if batch.planes is None or batch.image_labels is None:
            raise RuntimeError("a batch without label planes reached the tally")
        tally = self.stats[self.layers[0]].tally
        return tally.prepare(
            self.labels.encode(batch.planes), self.labels.encode(batch.image_labels)
        )

    def pass1(self, hooks: FeatureHooks) -> None:
        """Forward every batch of this rank: top-N, and the quantile (features cached for
        pass 2) or, with fixed thresholds, the tally."""
        start = self._resume(1)
        ds = self.ds.with_options(load_images=True, load_planes=self.one_pass)
        desc = "dissect" if self.one_pass else "pass 1/2 forward"
        with self._bar(desc, start) as bar:
            for j, batch in enumerate(self._loader(ds, start), start):
                feats = self._forward(batch.images, hooks)
                if j == start:
                    _check_finite(feats, (self.settings.run.model_info or {}).get("spec"))
                if not self.stats:
                    self._setup({n: f.shape[1:] for n, f in feats.items()})
                if j == start and not self.one_pass:
                    self._plan_cache({n: f.shape[1:] for n, f in feats.items()}, batch, hooks)
                lb = self._label_batch(batch) if self.one_pass else None
                for name, f in feats.items():
                    self.stats[name].add_pass1(f, batch.rows, lb)
                if not self.one_pass:
                    self.cache.put(j, feats)
                self.work["pass1"] += 1
                self._checkpoint(1, j + 1)
                bar.update(len(batch.rows))
        if self.ctx.active:
            for name in self.layers:
                self.stats[name].merge(1)

    def pass2(self, hooks: FeatureHooks) -> None:
        """Tally every batch of this rank from the feature cache (forward for the rest)."""
        for name in self.layers:
            self.stats[name].finish_quantile()
        start = self._resume(2)
        self._note_cache(start)
        cached = [j for j in range(start, len(self.batches)) if self.cache.complete(j, self.layers)]
        skip = {r for j in cached for r in range(*self.batches[j])}
        ds = self.ds.with_options(load_images=True, load_planes=True, skip_images=skip)
        with self._bar("pass 2/2 tally", start) as bar:
            for j, batch in enumerate(self._loader(ds, start), start):
                feats = self.cache.take(j)
                missing = [n for n in self.order if n not in feats]
                if missing:
                    feats.update(self._forward(batch.images, hooks, missing))
                lb = self._label_batch(batch)
                for name in self.layers:
                    self.stats[name].add_tally(feats[name], lb)
                self.work["pass2"] += 1
                self._checkpoint(2, j + 1)
                bar.update(len(batch.rows))
        self.cache.close()
        if self.ctx.active:
            for name in self.layers:
                self.stats[name].merge(2)

    def _note_cache(self, start: int) -> None:
        cache = self.cache
        keys = list(range(start, len(self.batches)))
        parts = []
        for name in self.order:
            mem, disk = cache.counts(keys, name)
            parts.append(f"{name} {mem} memory / {disk} disk / {len(keys) - mem - disk} recompute")
        self.say(
            f"feature cache (batches): {', '.join(parts)}; "
            f"{cache.used / 2**20:.0f} MiB of --cache-mem {cache.mem / 2**20:.0f} MiB, "
            f"{cache.disk / 2**20:.0f} MiB on disk as {self.settings.cache.spill_dtype} "
            f"(budget {cache.disk_budget / 2**20:.0f} MiB)"
        )

    def _loader(self, ds: BrodenDataset, start: int) -> Iterator[Batch]:
        return loader(ds, self.batches[start:], self.workers, pin_memory=self.dev.type == "cuda")

    def run(self) -> DissectResult:
        """Both passes (one with fixed thresholds), then the result."""
        threads = torch.get_num_threads()
        if self.workers > 0 and self.dev.type == "cpu":
            torch.set_num_threads(_available_cores())  # decoding is in the worker processes
        try:
            with self.fwd.hooks(self.layers, grid=self.settings.science.grid) as hooks:
                self.pass1(hooks)
                if not self.one_pass:
                    self.pass2(hooks)
        finally:
            self.cache.close()
            torch.set_num_threads(threads)
        w = self.work
        self.say(
            f"work done: pass 1 {w['pass1']} batches, "
            f"pass 2 {w['pass2']} batches, {w['forward']} forwards "
            f"(this rank has {len(self.batches)} batches per pass)"
        )
        result = self.result()
        if self.settings.science.baseline == "random":
            result.baseline = self._baseline()
        return result

    def _baseline(self) -> DissectResult:
        """The same dissection of :func:`randomized` weights: thresholds of their own (fixed
        ones belong to the trained weights), checkpoints in ``checkpoint_dir/baseline``."""
        run = self.settings.run
        info = dict(run.model_info or {})
        desc = info.get("description") or type(self.model).__name__
        self.say(f"baseline: the same layers with random weights (seed {BASELINE_SEED})")
        ck = None if run.checkpoint_dir is None else Path(run.checkpoint_dir) / "baseline"
        settings = self.settings.with_options(
            baseline=None,
            thresholds=None,
            checkpoint_dir=ck,
            model_info={
                "spec": info.get("spec"),
                "description": f"{desc} (random weights, seed {BASELINE_SEED})",
            },
        )
        net = randomized(self.model)
        res = Dissection(net, self.ds, self.layers, settings).run()
        res.model["random_weights_seed"] = BASELINE_SEED
        return res

    # ------------------------------------------------------------------ result

    def result(self) -> DissectResult:
        from conceptkit import __version__

        sci, run = self.settings.science, self.settings.run
        info = dict(run.model_info or {})
        return DissectResult(
            layers={name: self.stats[name].result() for name in self.layers},
            categories=self.labels.categories,
            label_names=self.labels.label_names,
            label_category=self.labels.label_category.numpy(),
            label_numbers=self.labels.numbers.numpy(),
            settings={
                "quantile": sci.quantile,
                "iou_threshold": sci.iou_threshold,
                "top_n": sci.top_n,
                "union": sci.union,
                "preprocess": self.prep.name,
                "mean": list(self.prep.mean),
                "std": list(self.prep.std),
                **self._reading(),
                "batch_size": run.batch_size,
                **self.fwd.describe(),
                "thresholds_from": sci.thresholds_from,
            },
            model={
                "spec": info.get("spec"),
                "description": info.get("description") or type(self.model).__name__,
                "fingerprint": self.model_fp,
            },
            data={
                "path": str(self.ds.root.resolve()),
                "fingerprint": self.data_fp,
                "images": len(self.ds),
                "categories": self.labels.categories,
                "image_size": list(self.image_size),
                "seg_size": list(self.seg_size),
            },
            version=__version__,
        )


def dissect(
    model: nn.Module,
    dataset: BrodenDataset | str | Path,
    layers: Sequence[str],
    *,
    settings: DissectSettings | None = None,
    **options: Any,
) -> DissectResult:
    """Dissect ``layers`` of ``model`` (any ``nn.Module``) against a Broden folder.

    ``dataset`` is a :class:`~conceptkit.dissection.data.BrodenDataset` or its folder.
    ``options`` are the settings by name, with their defaults (see
    :mod:`conceptkit.dissection.settings`): ``quantile=0.005``, ``iou_threshold=0.04``,
    ``top_n=10``, ``union="category"``, ``preprocess="imagenet"`` (or ``netdissect``, or a
    :class:`~conceptkit.dissection.preprocess.Preprocess`), ``mean``, ``std``,
    ``thresholds`` (a mapping ``layer -> (C,)`` or a folder of ``quantile_<layer>.npy``:
    one pass, no quantile); ``cache_mem`` (None: auto), ``cache_disk`` (None: auto),
    ``spill=True``, ``spill_dir``, ``spill_dtype="float32"``, ``spill_when="faster"`` (or
    ``fits``); ``batch_size=64``, ``workers``,
    ``device``, ``checkpoint_dir``, ``checkpoint_every=50``, ``resume=True``, ``dist_ctx``,
    ``shard="strided"``, ``progress``, ``log``, ``model_info``, ``autocast`` (None, ``bf16``,
    ``fp16``: changes the activations), ``channels_last="auto"``, ``fold_bn="auto"``; ``baseline="random"``: the
    same layers of :func:`randomized` weights dissected too (``result.baseline``, saved into
    ``OUT/baseline/``, compared in results.json). ``settings`` gives them as a
    :class:`~conceptkit.dissection.settings.DissectSettings` (``options`` then override it).
    """
    base = settings if settings is not None else DissectSettings()
    return Dissection(model, dataset, layers, base.with_options(**options)).run()
