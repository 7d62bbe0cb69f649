"""Run Network Dissection on a model: two passes over a Broden folder, results in memory.

Pass 1 forwards every image once, hooks the requested layers, and feeds the exact quantile and
the top-N statistics; it also keeps the layers' raw features (float32, exact) for pass 2: in
memory up to ``cache_mem`` bytes, then spilled to a temporary folder on disk (``spill_dir``;
``spill=False`` turns that off). Pass 2 reads the label planes and tallies IoUs, taking features
from that cache and re-running the forward only for images that were not cached. With
``thresholds`` given there is no quantile to wait for, so one pass does everything.

Batches are the single-process batches ``[b * batch_size, (b + 1) * batch_size)``; under
torchrun each rank takes its share of them (:mod:`conceptkit.dissection.distributed`) and the
statistics are merged exactly at the end of each pass. With a checkpoint folder each rank's
statistics are saved every few batches and a rerun resumes (:mod:`conceptkit.dissection.checkpoint`).

Use :func:`dissect`; it returns a :class:`~conceptkit.dissection.results.DissectResult`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from conceptkit.broden import decode_plane
from conceptkit.dissection.checkpoint import Checkpoints, Fingerprint, to_cpu
from conceptkit.dissection.data import BrodenDataset
from conceptkit.dissection.distributed import (
    DistContext,
    merge_quantile,
    merge_tally,
    merge_top_images,
    shard_batches,
)
from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.models import fingerprint
from conceptkit.dissection.preprocess import Preprocess, get_preprocess
from conceptkit.dissection.results import DissectResult, LayerResult
from conceptkit.dissection.stats import IoUTally, TopImages, TopQuantile
from conceptkit.errors import LayoutError, UsageError

DEFAULT_CACHE_MEM = 256 << 20  # features kept in memory between the passes; the rest spill to disk
ProgressFactory = Callable[[str, int], Any]


# ----------------------------------------------------------------------------- data


class _Items(torch.utils.data.Dataset):
    """Map-style dataset over a Broden folder yielding what a pass needs, as tensors.

    Item ``i`` -> ``(i, image (3, ih, iw) uint8 | None, planes (P, sh, sw) int32 | None,
    image_labels (M,) int64 | None)``; planes and image-level labels of every category are
    pooled (each plane and label still counts on its own). Images are not loaded for the rows
    in ``no_image`` (their features come from the feature cache).
    """

    def __init__(
        self, ds: BrodenDataset, images: bool, labels: bool, no_image: Container[int] = ()
    ) -> None:
        self.ds = ds
        self.images = images
        self.labels = labels
        self.no_image = no_image

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[int, Any, Any, Any]:
        row = self.ds.rows[i]
        image = None
        if self.images and i not in self.no_image:
            image = torch.from_numpy(np.ascontiguousarray(self.ds.load_image(i).transpose(2, 0, 1)))
            if tuple(image.shape[1:]) != (row.ih, row.iw):
                raise LayoutError(
                    f"image is {image.shape[2]}x{image.shape[1]}, index.csv says {row.iw}x{row.ih}",
                    file=self.ds.image_path(i),
                )
        planes = labels = None
        if self.labels:
            arrays = []
            for cat in self.ds.categories:
                for p in row.planes.get(cat, ()):
                    arr = decode_plane(self.ds.root / "images" / p)
                    if arr.shape != (row.sh, row.sw):
                        raise LayoutError(
                            f"plane is {arr.shape[1]}x{arr.shape[0]}, expected {row.sw}x{row.sh}",
                            file=self.ds.root / "images" / p,
                        )
                    arrays.append(arr)
            planes = (
                torch.from_numpy(np.stack(arrays))
                if arrays
                else torch.zeros((0, row.sh, row.sw), dtype=torch.int32)
            )
            nums = [n for cat in self.ds.categories for n in row.image_labels.get(cat, ())]
            labels = torch.tensor(nums, dtype=torch.int64)
        return i, image, planes, labels


def _collate(items: Sequence[tuple[int, Any, Any, Any]]) -> dict[str, Any]:
    """Batch :class:`_Items` items: ``rows (B,)``, ``images (B', 3, ih, iw)`` (only the rows
    that loaded one), ``planes (B, Pmax, sh, sw)`` and ``labels (B, Mmax)`` zero padded."""
    rows = torch.tensor([it[0] for it in items], dtype=torch.int64)
    imgs = [it[1] for it in items if it[1] is not None]
    out: dict[str, Any] = {"rows": rows, "images": torch.stack(imgs) if imgs else None}
    if items[0][2] is not None:
        pmax = max(it[2].shape[0] for it in items)
        sh, sw = items[0][2].shape[-2:]
        planes = torch.zeros((len(items), max(pmax, 1), sh, sw), dtype=torch.int32)
        mmax = max(it[3].shape[0] for it in items)
        labels = torch.zeros((len(items), max(mmax, 1)), dtype=torch.int64)
        for b, it in enumerate(items):
            planes[b, : it[2].shape[0]] = it[2]
            labels[b, : it[3].shape[0]] = it[3]
        out["planes"] = planes
        out["labels"] = labels
    return out


def _loader(
    items: _Items, batch_size: int, workers: int, batches: Sequence[tuple[int, int]] | None = None
) -> Any:
    """Batches of ``batch_size`` in row order, or exactly the row ranges ``batches``."""
    if batches is not None:
        return torch.utils.data.DataLoader(
            items,
            batch_sampler=[list(range(a, b)) for a, b in batches],
            num_workers=workers,
            collate_fn=_collate,
            persistent_workers=False,
        )
    return torch.utils.data.DataLoader(
        items,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
    )


def _check_sizes(ds: BrodenDataset) -> tuple[tuple[int, int], tuple[int, int]]:
    if not ds.rows:
        raise LayoutError("index.csv has no images", file=ds.root / "index.csv")
    first = ds.rows[0]
    for ln, row in enumerate(ds.rows, start=2):
        if (row.ih, row.iw, row.sh, row.sw) != (first.ih, first.iw, first.sh, first.sw):
            raise LayoutError(
                f"image size {row.ih}x{row.iw} / label size {row.sh}x{row.sw} differ from the "
                f"first row's {first.ih}x{first.iw} / {first.sh}x{first.sw}; dissection needs "
                "one size (resize the dataset)",
                file=ds.root / "index.csv",
                place=f"line {ln}",
            )
    return (first.ih, first.iw), (first.sh, first.sw)


def data_fingerprint(root: Path) -> str:
    """sha256 over the CSV files of a Broden folder (index, category, label, c_*)."""
    h = hashlib.sha256()
    names = ["index.csv", "category.csv", "label.csv"]
    names += sorted(p.name for p in root.glob("c_*.csv"))
    for name in names:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()


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
            path = Path(thresholds) / f"quantile_{layer}.npy"
            if not path.is_file():
                raise UsageError("file is missing (needed by --thresholds)", file=path)
            out[layer] = np.load(path).astype(np.float64).reshape(-1)
    return out


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_workers() -> int:
    return min(4, max(0, (os.cpu_count() or 1) - 1))


# ----------------------------------------------------------------------------- feature cache


class _FeatureCache:
    """Pass-1 features of this rank's batches, keyed by batch number: in memory up to ``mem``
    bytes (float32), then as ``torch.save`` files (``spill_dtype``: float32, exact, or float16,
    half the disk) in a temporary folder under ``spill_dir`` (``spill=False``: no disk). The
    first batch that fits nowhere (or a disk error) closes the cache; batches not in it are
    recomputed in pass 2."""

    def __init__(
        self,
        mem: int,
        spill: bool,
        spill_dir: str | Path | None,
        spill_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.mem = max(0, mem)
        self.used = 0
        self.disk = 0
        self.batches: dict[int, dict[str, torch.Tensor] | Path] = {}
        self.open = True
        self.spill = spill
        self.spill_dir = spill_dir
        self.spill_dtype = spill_dtype
        self.in_memory = 0
        self.on_disk = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def put(self, key: int, feats: dict[str, torch.Tensor]) -> None:
        if not self.open:
            return
        size = sum(f.numel() * 4 for f in feats.values())
        if self.used + size <= self.mem:
            self.batches[key] = {n: f.to("cpu", torch.float32, copy=True) for n, f in feats.items()}
            self.used += size
            self.in_memory += 1
            return
        if not self.spill:
            self.open = False
            return
        try:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(
                    prefix="conceptkit-features-", dir=self.spill_dir
                )
            path = Path(self._tmp.name) / f"{key:06d}.pt"
            torch.save({n: f.to("cpu", self.spill_dtype) for n, f in feats.items()}, path)
            self.batches[key] = path
            self.disk += path.stat().st_size
            self.on_disk += 1
        except OSError:
            self.open = False

    def __len__(self) -> int:
        return len(self.batches)

    def __contains__(self, key: int) -> bool:
        return key in self.batches

    def take(self, key: int) -> dict[str, torch.Tensor]:
        """Batch ``key``'s features (float32), released from the cache."""
        item = self.batches.pop(key)
        if isinstance(item, Path):
            feats: dict[str, torch.Tensor] = torch.load(item, weights_only=True)
            item.unlink()
            return {n: f.to(torch.float32) for n, f in feats.items()}
        return item

    def close(self) -> None:
        self.batches = {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# ----------------------------------------------------------------------------- the run


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def dissect(
    model: nn.Module,
    dataset: BrodenDataset | str | Path,
    layers: Sequence[str],
    quantile: float = 0.005,
    iou_threshold: float = 0.04,
    top_n: int = 10,
    union: str = "category",
    preprocess: str | Preprocess = "imagenet",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    device: str | torch.device | None = None,
    thresholds: Mapping[str, Any] | str | Path | None = None,
    cache_mem: int = DEFAULT_CACHE_MEM,
    spill: bool = True,
    spill_dir: str | Path | None = None,
    progress: ProgressFactory | None = None,
    model_info: Mapping[str, Any] | None = None,
    spill_dtype: str = "float32",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 50,
    resume: bool = True,
    dist_ctx: DistContext | None = None,
    shard: str = "strided",
    log: Callable[[str], None] | None = None,
) -> DissectResult:
    """Dissect ``layers`` of ``model`` (any ``nn.Module``) against a Broden folder.

    ``dataset`` is a :class:`~conceptkit.broden.BrodenDataset` or its folder. ``preprocess``
    is ``imagenet``, ``netdissect`` or a :class:`Preprocess`. ``thresholds`` (a mapping
    ``layer -> (C,)`` or a folder of ``quantile_<layer>.npy``) replaces the quantile pass.
    ``cache_mem`` bounds the bytes of features kept in memory between the passes (float32);
    past it they go to a temporary folder in ``spill_dir`` (default: the system's) as
    ``spill_dtype`` (``float32``: exact; ``float16``: half the disk, pass-2 masks may differ
    at the threshold), or, with ``spill=False``, pass 2 re-runs the forward for the rest.
    ``progress(desc, total)`` returns a bar with ``update(n)``/``close()``.
    ``model_info`` gives ``spec``/``description``/``fingerprint`` for results.json.

    ``checkpoint_dir``: save this rank's statistics there every ``checkpoint_every`` batches
    and at the end of each pass (:mod:`conceptkit.dissection.checkpoint`); with ``resume`` a
    matching checkpoint is continued, a stale one is reported and ignored. ``dist_ctx`` (from
    :func:`conceptkit.dissection.distributed.setup`) makes this one rank of several: it processes
    its ``shard`` of the batches and the statistics are merged across ranks (every rank gets
    the merged result). ``log`` receives one-line notes (cache choice, resume, work done).
    """
    from conceptkit import __version__

    layers = list(layers)
    if not layers:
        raise UsageError("no layers to dissect")
    if len(set(layers)) != len(layers):
        raise UsageError("a layer is named twice")
    if not 0.0 < quantile < 1.0:
        raise UsageError(f"quantile must lie strictly between 0 and 1, not {quantile}")
    if top_n < 1 or batch_size < 1:
        raise UsageError("--top-n and --batch-size must be at least 1")
    if union not in ("category", "global"):
        raise UsageError(f"union must be 'category' or 'global', not {union!r}")
    if spill_dtype not in ("float32", "float16"):
        raise UsageError(f"spill dtype must be float32 or float16, not {spill_dtype!r}")
    ds = dataset if isinstance(dataset, BrodenDataset) else BrodenDataset(dataset)
    image_size, seg_size = _check_sizes(ds)
    prep = (
        preprocess if isinstance(preprocess, Preprocess) else get_preprocess(preprocess, mean, std)
    )
    dev = resolve_device(device)
    workers = default_workers() if workers is None else workers
    bar_factory: ProgressFactory = progress or (lambda desc, total: _NoBar())
    say: Callable[[str], None] = log or (lambda msg: None)
    fixed = load_thresholds(thresholds, layers) if thresholds is not None else None
    ctx = dist_ctx or DistContext()

    meta = ds.meta
    categories = list(ds.categories)
    names = meta.label_names()
    nlab = max(names) + 1
    label_names = [names.get(i, "") for i in range(nlab)]
    primary = meta.primary_category()
    label_category = torch.full((nlab,), -1, dtype=torch.int64)
    for num, cat in primary.items():
        if 0 < num < nlab and cat in categories:
            label_category[num] = categories.index(cat)

    model = model.to(dev).eval()
    n_images = len(ds)
    batches = shard_batches(n_images, batch_size, ctx.rank, ctx.world, shard)
    my_rows = sum(b - a for a, b in batches)
    quant: dict[str, TopQuantile] = {}
    tops: dict[str, TopImages] = {}
    tallies: dict[str, IoUTally] = {}
    thr_t: dict[str, torch.Tensor] = {}
    map_sizes: dict[str, tuple[int, int]] = {}
    shapes: dict[str, tuple[int, int, int]] = {}
    half = spill_dtype == "float16"
    cache = _FeatureCache(cache_mem, spill, spill_dir, torch.float16 if half else torch.float32)
    one_pass = fixed is not None
    info = dict(model_info or {})
    model_fp = info.get("fingerprint") or fingerprint(model)
    data_fp = data_fingerprint(ds.root)
    work = {"pass1": 0, "pass2": 0, "forward": 0}

    thresholds_from = None
    if thresholds is not None:
        thresholds_from = "python" if isinstance(thresholds, Mapping) else str(thresholds)
    ckpts = None
    if checkpoint_dir is not None:
        run_settings: dict[str, Any] = {
            "layers": layers,
            "quantile": quantile,
            "top_n": top_n,
            "union": union,
            "preprocess": [prep.name, list(prep.mean), list(prep.std)],
            "batch_size": batch_size,
            "thresholds": None
            if fixed is None
            else hashlib.sha256(b"".join(fixed[n].tobytes() for n in layers)).hexdigest(),
            "world_size": ctx.world,
            "shard": shard,
            "device": dev.type,
            "spill_dtype": spill_dtype,
        }
        ckpts = Checkpoints(
            checkpoint_dir,
            Fingerprint(model_fp, data_fp, run_settings),
            rank=ctx.rank,
            every=checkpoint_every,
        )
        if not resume:
            ckpts.discard(1)
            ckpts.discard(2)

    def setup(shape_of: Mapping[str, Sequence[int]]) -> None:
        for name in layers:
            c, h, w = (int(v) for v in shape_of[name])
            shapes[name] = (c, h, w)
            map_sizes[name] = (h, w)
            tops[name] = TopImages(c, min(top_n, n_images), (h, w), device=dev)
            tallies[name] = IoUTally(c, label_category, len(categories), union, device=dev)
            if fixed is None:
                quant[name] = TopQuantile(c, n_images * h * w, quantile, device=dev)
            else:
                if fixed[name].shape[0] != c:
                    raise UsageError(
                        f"{fixed[name].shape[0]} thresholds given for layer {name!r}, "
                        f"which has {c} units"
                    )
                thr_t[name] = torch.from_numpy(fixed[name]).to(dev)

    def state(pass_no: int) -> dict[str, Any]:
        st: dict[str, Any] = {"shapes": {n: list(s) for n, s in shapes.items()}}
        for name in layers:
            layer: dict[str, Any] = {}
            if pass_no == 1:
                layer["tops"] = tops[name].state_dict()
                if one_pass:
                    layer["tally"] = tallies[name].state_dict()
                else:
                    layer["quant"] = quant[name].state_dict()
            else:
                layer["tally"] = tallies[name].state_dict()
                layer["thresholds"] = thr_t[name]
            st[name] = layer
        return to_cpu(st)

    def restore(pass_no: int, st: dict[str, Any]) -> bool:
        if not tops:
            setup(st["shapes"])
        if pass_no == 2:
            same = all(torch.equal(st[n]["thresholds"].cpu(), thr_t[n].cpu()) for n in layers)
            if not same:
                return False
        for name in layers:
            if "tops" in st[name]:
                tops[name].load_state_dict(st[name]["tops"])
            if "quant" in st[name]:
                quant[name].load_state_dict(st[name]["quant"])
            if "tally" in st[name]:
                tallies[name].load_state_dict(st[name]["tally"])
        return True

    def resume_from(pass_no: int) -> int:
        if ckpts is None:
            return 0
        ck, msg = ckpts.load(pass_no)
        if msg:
            say(msg)
        if ck is None:
            return 0
        if not restore(pass_no, ck["state"]):
            say(f"checkpoint {ckpts.path(pass_no)} ignored: thresholds differ; starting pass 2")
            return 0
        done = int(ck["done"])
        say(f"resuming pass {pass_no} after batch {done} of {len(batches)}")
        return done

    def checkpoint(pass_no: int, done: int) -> None:
        if ckpts is not None and (done == len(batches) or ckpts.due(done)):
            ckpts.save(pass_no, done, done == len(batches), state(pass_no))

    def forward(images: torch.Tensor, hooks: FeatureHooks) -> dict[str, torch.Tensor]:
        work["forward"] += 1
        with torch.inference_mode():
            return hooks.run(model, prep(images.to(dev, non_blocking=True)))

    with FeatureHooks(model, layers) as hooks:
        # ---- pass 1: forward, quantile, top-N (and the tally too when thresholds are fixed)
        start = resume_from(1)
        items = _Items(ds, images=True, labels=one_pass)
        bar = bar_factory("pass 1/2 forward" if not one_pass else "dissect", my_rows)
        bar.update(sum(b - a for a, b in batches[:start]))
        try:
            loader = _loader(items, batch_size, workers, batches[start:])
            for j, batch in enumerate(loader, start=start):
                feats = forward(batch["images"], hooks)
                if not tops:
                    setup({n: f.shape[1:] for n, f in feats.items()})
                rows = batch["rows"]
                if one_pass:
                    lb = tallies[layers[0]].prepare(batch["planes"], batch["labels"])
                for name, f in feats.items():
                    tops[name].add(f, rows)
                    if one_pass:
                        tallies[name].add(f, thr_t[name], lb)
                    else:
                        quant[name].add(f)
                if not one_pass:
                    cache.put(j, feats)
                work["pass1"] += 1
                checkpoint(1, j + 1)
                bar.update(len(rows))
        finally:
            bar.close()
        if ctx.active:
            for name in layers:
                merge_top_images(tops[name])
                if one_pass:
                    merge_tally(tallies[name])
                else:
                    merge_quantile(quant[name])

        # ---- pass 2: tally from the cache, re-running the forward for the rest
        if not one_pass:
            for name, q in quant.items():
                thr_t[name] = torch.from_numpy(q.result()).to(dev)
            start = resume_from(2)
            todo = batches[start:]
            cached = [j for j in range(start, len(batches)) if j in cache]
            mem_b = sum(1 for j in cached if not isinstance(cache.batches[j], Path))
            say(
                f"feature cache: {mem_b} of {len(todo)} batches in memory "
                f"({cache.used / 2**20:.0f} MiB of --cache-mem {cache.mem / 2**20:.0f} MiB), "
                f"{len(cached) - mem_b} on disk as {spill_dtype} ({cache.disk / 2**20:.0f} MiB), "
                f"{len(todo) - len(cached)} recomputed in pass 2"
            )
            no_image = {r for j in cached for r in range(*batches[j])}
            items = _Items(ds, images=True, labels=True, no_image=no_image)
            bar = bar_factory("pass 2/2 tally", my_rows)
            bar.update(sum(b - a for a, b in batches[:start]))
            try:
                for j, batch in enumerate(_loader(items, batch_size, workers, todo), start=start):
                    feats = cache.take(j) if j in cache else forward(batch["images"], hooks)
                    lb = tallies[layers[0]].prepare(batch["planes"], batch["labels"])
                    for name, f in feats.items():
                        tallies[name].add(f, thr_t[name], lb)
                    work["pass2"] += 1
                    checkpoint(2, j + 1)
                    bar.update(len(batch["rows"]))
            finally:
                bar.close()
                cache.close()
            if ctx.active:
                for name in layers:
                    merge_tally(tallies[name])
    say(
        f"work done: pass 1 {work['pass1']} batches, "
        f"pass 2 {work['pass2']} batches, {work['forward']} forwards "
        f"(this rank has {len(batches)} batches per pass)"
    )

    result_layers = {}
    for name in layers:
        t = tallies[name]
        tp = tops[name]
        result_layers[name] = LayerResult(
            name=name,
            map_size=map_sizes[name],
            thresholds=thr_t[name].cpu().numpy().astype(np.float64),
            inter=t.inter.cpu().numpy(),
            truth=t.truth.cpu().numpy(),
            act_cat=t.act_cat.cpu().numpy(),
            act_total=t.act_total.cpu().numpy(),
            iou=t.iou().cpu().numpy(),
            top_indices=tp.indices.cpu().numpy(),
            top_values=tp.values.cpu().numpy(),
            top_maps=tp.maps.cpu().numpy(),
        )

    model_json = {
        "spec": info.get("spec"),
        "description": info.get("description") or type(model).__name__,
        "fingerprint": model_fp,
    }
    settings = {
        "quantile": quantile,
        "iou_threshold": iou_threshold,
        "top_n": top_n,
        "union": union,
        "preprocess": prep.name,
        "mean": list(prep.mean),
        "std": list(prep.std),
        "batch_size": batch_size,
        "thresholds_from": thresholds_from,
    }
    data_json = {
        "path": str(ds.root.resolve()),
        "fingerprint": data_fp,
        "images": n_images,
        "categories": categories,
        "image_size": list(image_size),
        "seg_size": list(seg_size),
    }
    return DissectResult(
        layers=result_layers,
        categories=categories,
        label_names=label_names,
        label_category=label_category.numpy(),
        settings=settings,
        model=model_json,
        data=data_json,
        version=__version__,
    )
