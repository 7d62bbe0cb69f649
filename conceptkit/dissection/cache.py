"""The feature cache between the two passes of a dissection, and the policy that sizes it.

Pass 1 puts each batch's features (``{layer: (B, C, h, w)}``) here so that pass 2 needs no
second forward for them. :func:`plan_cache` decides, per layer, where its features wait:
``memory`` (float32, exact, within the memory budget: by default a safe share of the memory
available when the run plans its cache, see :func:`mem_budget`), ``split`` (the first layer
that does not fit whole: as many of its batches in memory as fit, the rest on disk),
``disk`` (raw files in a temporary folder ``conceptkit-features-*`` that
:meth:`FeatureCache.close` deletes, within the disk budget) or ``recompute`` (pass 2 re-runs
the forward, stopped after the last such layer). The layers the forward reaches first are the
ones recomputed: re-running the forward up to them is the cheapest part of it, and they are
the largest.

How many layers are recomputed is chosen by predicted cost (``spill_when="faster"``, the
default): when the layers do not all fit in memory, each possible prefix is weighed, the
seconds pass 2 would take to load the images again and re-run the forward up to its last
layer (timed on the first batch, :class:`Costs`) against the seconds to write the spilled
bytes and read them back (at the disk speed measured where the spill goes,
:func:`disk_speed`), and the cheapest wins. With ``spill_when="fits"`` only the layers that fit
nowhere are recomputed. The probe is short, and a long spill can run slower than it
(the system's write-back throttles a writer of many GB): every :data:`RECHECK_BYTES` spilled,
the cache weighs the remaining batches again with the write speed its own spill has measured
so far, and changes the plan for them when another is now cheaper (logged too).

The plan is a prediction; the cache keeps to the budgets batch by batch: a batch whose layer
fits neither in memory nor on disk (budget spent, the disk's free space below the reserve,
a write error) is recomputed for that layer in pass 2.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from conceptkit.dissection.settings import CacheSettings
from conceptkit.errors import ConceptkitError

DISK_SHARE = 0.5
"""``--cache-disk auto``: at most this share of the free space where the spill goes ..."""
DISK_RESERVE = 2 << 30
"""... and never closer than this to a full disk (checked again as the spill grows)."""
RECHECK_BYTES = 256 << 20
"""The free space is checked again after this many bytes written."""

MEM_SHARE = 0.25
"""``--cache-mem auto``: at most this share of the memory available (the system's
``MemAvailable``, or what the process's cgroup still allows if that is less). Not more: at
Broden's scale the rest of the run takes several GB too (the quantile's buffers above all),
and free memory is also where the system keeps the spilled files it has just written (in one
63,305-image bench/scale run, half the available memory gave a peak RSS of 16.9 GB of 23 GB and
8.3 ms per image; a quarter ...) ..."""
MEM_RESERVE = 4 << 30
"""... never taking the available memory below this (the rest of the run, the loader
workers, other programs) ..."""
MEM_FLOOR = 256 << 20
"""... and never less than this (the budget the cache had before ``auto``). With ``auto``
the available memory is checked again every :data:`RECHECK_BYTES` kept; once it falls
below the reserve (another program grew), the rest goes to disk or is recomputed."""

_clock = time.perf_counter  # times the spill's writes (a test slows it)

PROBE_BYTES = 64 << 20
"""The most bytes :func:`disk_speed` writes and reads back to time the disk."""

WHERE = ("memory", "disk", "recompute", "split")


@dataclass(frozen=True)
class Costs:
    """What a cache plan by predicted cost weighs.

    ``recompute[i]``: seconds per batch for pass 2 to load a batch's images again and re-run
    the forward up to layer ``i`` (layers in the forward's order); ``write_bps`` and
    ``read_bps``: the disk's bytes per second where the spill goes; ``batches``: the batches
    of the run (of this rank)."""

    recompute: tuple[float, ...]
    write_bps: float
    read_bps: float
    batches: int

    def of(self, layers: Sequence[LayerPlan]) -> tuple[float, float]:
        """``(recompute seconds, disk seconds)`` that ``layers`` (a plan) would cost."""
        k = sum(1 for p in layers if p.where == "recompute")
        forward = self.batches * self.recompute[k - 1] if k else 0.0
        spilled = spilled_bytes(layers)
        return forward, spilled / self.write_bps + spilled / self.read_bps


def spilled_bytes(layers: Sequence[LayerPlan]) -> int:
    """Bytes a plan's ``layers`` put on disk (a split layer's disk part)."""
    return sum(p.nbytes - p.mem_bytes for p in layers if p.where in ("disk", "split"))


@dataclass(frozen=True)
class LayerPlan:
    """Where one layer's features wait for pass 2 (``memory``, ``disk``, ``recompute``, or
    ``split``: its first batches in memory, the rest on disk), how many bytes that takes in
    all, and how many of them in memory."""

    name: str
    where: str
    nbytes: int
    mem_bytes: int = 0


@dataclass(frozen=True)
class CachePlan:
    """One :class:`LayerPlan` per layer, in the forward's order, and the budgets it met."""

    layers: tuple[LayerPlan, ...]
    mem_budget: int
    disk_budget: int
    #: when chosen by predicted cost: what was weighed, and the predicted seconds of the
    #: plan with the fewest layers recomputed (what ``spill_when="fits"`` would have chosen)
    costs: Costs | None = None
    fewest: tuple[float, float] | None = None

    def layer(self, name: str) -> LayerPlan:
        return next(p for p in self.layers if p.name == name)

    def where(self, name: str) -> str:
        return self.layer(name).where

    def line(self) -> str:
        """The plan in one log line, e.g. ``cache: layer1 recompute (802 MB > disk budget
        20 MB), layer2 disk 401 MB, layer3 memory 100 MB + disk 100 MB, layer4 memory
        100 MB``."""
        parts: list[str] = []
        for where in ("recompute", "disk", "split", "memory"):
            group = [p for p in self.layers if p.where == where]
            if not group:
                continue
            names = "+".join(p.name for p in group)
            size = _fmt(sum(p.nbytes for p in group))
            if where == "split":
                parts += [
                    f"{p.name} memory {_fmt(p.mem_bytes)} + disk {_fmt(p.nbytes - p.mem_bytes)}"
                    for p in group
                ]
            elif where == "recompute" and self.costs is not None:
                parts.append(f"{names} recompute ({size}; pass 2 forwards up to {group[-1].name})")
            elif where == "recompute":
                parts.append(
                    f"{names} recompute ({size} > memory budget {_fmt(self.mem_budget)} + "
                    f"disk budget {_fmt(self.disk_budget)}; pass 2 forwards up to "
                    f"{group[-1].name})"
                )
            else:
                parts.append(f"{names} {where} {size}")
        return "cache: " + ", ".join(parts) + self._prediction()

    def _prediction(self) -> str:
        """``; predicted pass 2 extra: 12.0 s forward + 3.1 s disk (write 510 MB/s, read
        1.9 GB/s; fewest recomputed: 41.2 s)`` when chosen by cost, else nothing."""
        if self.costs is None or self.fewest is None:
            return ""
        forward, disk = self.costs.of(self.layers)
        c = self.costs
        return (
            f"; predicted pass 2 extra: {forward:.1f} s forward + {disk:.1f} s disk (write "
            f"{_fmt(int(c.write_bps))}/s, read {_fmt(int(c.read_bps))}/s; fewest recomputed: "
            f"{sum(self.fewest):.1f} s)"
        )


def _fmt(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _assign(
    sizes: Sequence[tuple[str, int]],
    mem: int,
    disk: int,
    disk_ratio: float,
    grain: Mapping[str, int],
) -> list[LayerPlan] | None:
    """Every layer of ``sizes`` (name, float32 bytes) in memory or on disk, the last ones
    (the smallest, usually) first into memory; the first that does not fit whole keeps as
    many whole batches (``grain``: a batch's bytes) in memory as are left, the rest on disk.
    None when they do not all fit."""
    plans: list[LayerPlan] = []
    for name, nbytes in reversed(sizes):
        on_disk = int(nbytes * disk_ratio)
        step = max(1, grain.get(name, 1))
        part = min(nbytes, mem // step * step)
        if nbytes <= mem:
            mem -= nbytes
            plans.append(LayerPlan(name, "memory", nbytes, nbytes))
        elif part > 0 and int((nbytes - part) * disk_ratio) <= disk:
            rest = int((nbytes - part) * disk_ratio)
            mem, disk = mem - part, disk - rest
            plans.append(LayerPlan(name, "split", part + rest, part))
        elif on_disk <= disk:
            disk -= on_disk
            plans.append(LayerPlan(name, "disk", on_disk))
        else:
            return None
    return plans[::-1]


def plan_cache(
    sizes: Sequence[tuple[str, int]],
    mem_budget: int,
    disk_budget: int,
    disk_ratio: float = 1.0,
    grain: Mapping[str, int] | None = None,
    costs: Costs | None = None,
) -> CachePlan:
    """Where each layer's features wait for pass 2.

    ``sizes``: ``(layer, float32 bytes of its features over the whole run)`` in the order the
    forward reaches the layers; ``disk_ratio``: bytes on disk per float32 byte (0.5 for a
    float16 spill); ``grain``: a batch's float32 bytes per layer (default 1 byte). A prefix
    of layers is recomputed and all the others fit: each of them, last first, in memory
    while the memory budget lasts (the first that does not fit whole ``split``: the whole
    batches that fit in memory, the rest on disk), else on disk while the disk budget lasts.
    Without ``costs`` the prefix is the shortest that lets the rest fit; with them, the one
    of least predicted cost (:meth:`Costs.of`; a tie goes to the shorter). Pure: sizes and
    costs in, choice out.
    """
    options: list[tuple[float, list[LayerPlan]]] = []
    for k in range(len(sizes) + 1):
        rest = _assign(sizes[k:], max(0, mem_budget), max(0, disk_budget), disk_ratio, grain or {})
        if rest is None:
            continue
        layers = [LayerPlan(name, "recompute", n) for name, n in sizes[:k]] + rest
        if costs is None:
            return CachePlan(tuple(layers), mem_budget, disk_budget)
        options.append((sum(costs.of(layers)), layers))
    if costs is None:
        raise AssertionError("an empty suffix always fits")
    best = min(options, key=lambda o: o[0])[1]  # min keeps the first (shortest) of a tie
    return CachePlan(tuple(best), mem_budget, disk_budget, costs, costs.of(options[0][1]))


def disk_speed(root: Path, nbytes: int = PROBE_BYTES) -> tuple[float, float] | None:
    """``(write, read)`` bytes per second of the disk under ``root``: ``nbytes`` written to a
    temporary file and synced, dropped from the page cache, read back (the spill's own way of
    writing and reading); None when that fails. Takes about ``nbytes`` / 300 MB/s."""
    block = np.random.default_rng(0).integers(0, 256, min(nbytes, 8 << 20), dtype=np.uint8)
    try:
        with tempfile.TemporaryDirectory(prefix="conceptkit-probe-", dir=root) as tmp:
            path = Path(tmp) / "probe.raw"
            t0 = time.perf_counter()
            with open(path, "wb") as fh:
                for _ in range(max(1, nbytes // block.size)):
                    block.tofile(fh)
                fh.flush()
                os.fsync(fh.fileno())
                written = fh.tell()
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            t1 = time.perf_counter()
            np.fromfile(path, dtype=np.uint8)
            t2 = time.perf_counter()
    except (OSError, ValueError):
        return None
    return written / max(t1 - t0, 1e-6), written / max(t2 - t1, 1e-6)


def disk_budget(settings: CacheSettings) -> int:
    """Bytes the spill may take: 0 without spill, ``cache_disk`` when given, else
    :data:`DISK_SHARE` of the free space where the spill goes, less :data:`DISK_RESERVE`,
    shared among this machine's ranks."""
    if not settings.spill:
        return 0
    if settings.cache_disk is not None:
        return max(0, settings.cache_disk)
    free = shutil.disk_usage(spill_root(settings)).free
    return max(0, min(int(free * DISK_SHARE), free - DISK_RESERVE) // local_ranks())


def local_ranks() -> int:
    """Processes of this run on this machine (torchrun's ``LOCAL_WORLD_SIZE``, else 1): the
    automatic budgets are shared among them."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """What the cgroup (v2) still lets this process take: its limit less its usage, the
    reclaimable file cache counted as free; None without a limit."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text())
        inactive = 0
        for line in (root / "memory.stat").read_text().splitlines():
            if line.startswith("inactive_file "):
                inactive = int(line.split()[1])
        return max(0, int(limit) - used + inactive)
    except (OSError, ValueError, IndexError):
        return None


def available_memory() -> int | None:
    """Bytes of memory this process could still take without swapping (None: unknown)."""
    known = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if not known and hasattr(os, "sysconf"):
        try:
            known.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(known) if known else None


def mem_budget(settings: CacheSettings) -> int:
    """Bytes of features kept in memory: ``cache_mem`` when given, else :data:`MEM_SHARE` of
    the available memory less :data:`MEM_RESERVE`, shared among this machine's ranks, at
    least :data:`MEM_FLOOR`."""
    if settings.cache_mem is not None:
        return max(0, settings.cache_mem)
    avail = available_memory()
    if avail is None:
        return MEM_FLOOR
    share = min(int(avail * MEM_SHARE), avail - MEM_RESERVE) // local_ranks()
    return max(MEM_FLOOR, share)


def spill_root(settings: CacheSettings) -> Path:
    return (
        Path(settings.spill_dir) if settings.spill_dir is not None else Path(tempfile.gettempdir())
    )


@dataclass(frozen=True)
class Spilled:
    """One layer of one batch on disk: its elements' bytes in memory order, nothing else (the
    file is this process's own, in its own temporary folder; no zip container, checksum or
    pickle to pay for: about 3x faster to write than ``torch.save``). ``order``: the
    tensor's dimensions from outermost to innermost in memory (channels-last stays so)."""

    path: Path
    shape: tuple[int, ...]
    order: tuple[int, ...]
    dtype: torch.dtype

    @classmethod
    def write(cls, path: Path, f: torch.Tensor, dtype: torch.dtype) -> Spilled:
        f = f.to("cpu", dtype)
        order = tuple(int(d) for d in f.dim_order()) if f.dim() else ()
        dense = f.permute(order).contiguous()  # no copy when f is dense
        with open(path, "wb") as fh:
            dense.reshape(-1).view(torch.uint8).numpy().tofile(fh)
        return cls(path, tuple(f.shape), order, dtype)

    def read(self) -> torch.Tensor:
        raw = torch.from_numpy(np.fromfile(self.path, dtype=np.uint8))
        dense = raw.view(self.dtype).reshape([self.shape[d] for d in self.order])
        inverse = sorted(range(len(self.order)), key=self.order.__getitem__)
        return dense.permute(inverse)


class FeatureCache:
    """Pass-1 features of this rank's batches, keyed by batch number and layer (see the
    module). :meth:`plan` it once the feature shapes are known, before the first :meth:`put`."""

    def __init__(self, settings: CacheSettings, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.log = log
        self.mem = 0  # set by plan()
        self.mem_ok = True
        self._mem_since_check = 0
        self.spill_dtype = torch.float16 if settings.spill_dtype == "float16" else torch.float32
        self.disk_budget = 0
        self.used = 0
        self.disk = 0
        self.layout: CachePlan | None = None
        self.batches: dict[int, dict[str, torch.Tensor | Spilled]] = {}
        self.disk_ok = True
        self._since_check = 0
        self._order: list[str] = []
        self._split_used: dict[str, int] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        # what a plan by cost weighs again as the spill grows (see review())
        self._grain: dict[str, int] = {}
        self._batches = 0
        self._put = 0
        self._write_secs = 0.0
        self._next_review = RECHECK_BYTES

    def plan(
        self,
        shapes: Mapping[str, Sequence[int]],
        n_images: int,
        batch_size: int = 1,
        recompute_costs: Callable[[], Sequence[float]] | None = None,
    ) -> CachePlan:
        """Decide each layer's place from its feature shape ``(C, h, w)`` (``shapes`` in the
        forward's order), this rank's image count and the images per batch.

        ``recompute_costs``: measures :attr:`Costs.recompute` (seconds per batch to load and
        forward up to each layer); called, and the disk timed, only when the plan has a
        choice to weigh (``spill_when="faster"`` and a spill in the plan that recomputes
        least). Without it the fewest layers are recomputed."""
        sizes = [(n, n_images * 4 * _numel(s)) for n, s in shapes.items()]
        grain = {n: batch_size * 4 * _numel(s) for n, s in shapes.items()}
        self._grain = grain
        self._batches = -(-n_images // max(1, batch_size))
        self.mem = mem_budget(self.settings)
        self.disk_budget = disk_budget(self.settings)
        ratio = self._disk_ratio
        self.layout = plan_cache(sizes, self.mem, self.disk_budget, ratio, grain)
        spilled = spilled_bytes(self.layout.layers)
        if spilled and recompute_costs is not None and self.settings.spill_when == "faster":
            speed = disk_speed(spill_root(self.settings), min(PROBE_BYTES, max(4 << 20, spilled)))
            if speed is not None:
                costs = Costs(tuple(recompute_costs()), speed[0], speed[1], self._batches)
                self.layout = plan_cache(sizes, self.mem, self.disk_budget, ratio, grain, costs)
        self._split_used = dict.fromkeys(shapes, 0)
        self._order = [n for n, _ in sizes]
        return self.layout

    def put(self, key: int, feats: Mapping[str, torch.Tensor]) -> None:
        """Keep batch ``key``'s features (copied) where the plan says, while there is room."""
        if self.layout is None:
            raise RuntimeError("the feature cache was not planned")
        slot: dict[str, torch.Tensor | Spilled] = {}
        for name, f in feats.items():
            layer = self.layout.layer(name)
            where = layer.where
            size = f.numel() * 4
            share = where == "memory" or (
                where == "split" and self._split_used[name] + size <= layer.mem_bytes
            )
            if share and self._mem_room(size):
                slot[name] = f.to("cpu", torch.float32, copy=True)
                self.used += size
                self._split_used[name] += size
            elif where != "recompute":
                path = self._save(key, name, f)
                if path is not None:
                    slot[name] = path
        if slot:
            self.batches[key] = slot
        self._put += 1
        if self.layout.costs is not None and self.disk >= self._next_review:
            self._next_review = self.disk + RECHECK_BYTES
            self.review()

    @property
    def _disk_ratio(self) -> float:
        """Bytes on disk per float32 byte of features."""
        return self.spill_dtype.itemsize / 4

    def review(self) -> CachePlan | None:
        """Weigh the batches not yet put again (a plan by cost only), with the write speed
        measured on this run's spill so far and what is left of both budgets; adopt and log
        the new plan if it differs. The batches already cached stay where they are (pass 2
        recomputes per batch what it lacks). Returns the new plan, or None when unchanged."""
        old = self.layout
        left = self._batches - self._put
        if old is None or old.costs is None or left <= 0 or self._write_secs <= 0:
            return None
        costs = replace(old.costs, write_bps=self.disk / self._write_secs, batches=left)
        new = plan_cache(
            [(n, g * left) for n, g in self._grain.items()],
            max(0, self.mem - self.used),
            max(0, self.disk_budget - self.disk),
            self._disk_ratio,
            self._grain,
            costs,
        )
        self.layout = replace(old, costs=costs)
        if [(p.where, p.mem_bytes > 0) for p in new.layers] == [
            (p.where, p.mem_bytes > 0) for p in old.layers
        ]:
            return None
        self.layout = new
        self._split_used = dict.fromkeys(self._grain, 0)
        if self.log is not None:
            self.log(
                f"cache, batch {self._put + 1} on (spill writes measured at "
                f"{_fmt(int(costs.write_bps))}/s): {new.line()[len('cache: ') :]}"
            )
        return new

    def _vanished(self, folder: Path) -> ConceptkitError:
        return ConceptkitError(
            "the feature spill folder vanished during the run (a temporary-file cleaner?); "
            "rerun with --spill-dir on another disk, or --no-spill",
            file=folder,
        )

    def _mem_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit the memory budget; with an automatic budget, also
        whether the machine still has :data:`MEM_RESERVE` available (checked again every
        :data:`RECHECK_BYTES`)."""
        if not self.mem_ok or self.used + size > self.mem:
            return False
        if self.settings.cache_mem is None:
            self._mem_since_check += size
            if self._mem_since_check >= RECHECK_BYTES:
                self._mem_since_check = 0
                avail = available_memory()
                self.mem_ok = avail is None or avail - size >= MEM_RESERVE
        return self.mem_ok

    def _room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit the disk budget and leave the reserve free."""
        if not self.disk_ok or self.disk + size > self.disk_budget:
            return False
        self._since_check += size
        if self._tmp is None or self._since_check >= RECHECK_BYTES:
            self._since_check = 0
            free = shutil.disk_usage(spill_root(self.settings)).free
            self.disk_ok = free - size >= DISK_RESERVE
        return self.disk_ok

    def _save(self, key: int, name: str, f: torch.Tensor) -> Spilled | None:
        """One layer of one batch on disk; None when it does not fit (recomputed instead)."""
        if not self._room(f.numel() * self.spill_dtype.itemsize):
            return None
        if self._tmp is not None and not Path(self._tmp.name).is_dir():
            raise self._vanished(Path(self._tmp.name))
        try:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(
                    prefix="conceptkit-features-",
                    dir=self.settings.spill_dir,
                    ignore_cleanup_errors=True,
                )
            index = self._order.index(name)
            t0 = _clock()
            item = Spilled.write(
                Path(self._tmp.name) / f"{key:06d}-{index:03d}.raw", f, self.spill_dtype
            )
            self._write_secs += _clock() - t0
        except (OSError, RuntimeError):  # disk full, unwritable: recompute the rest
            self.disk_ok = False
            return None
        self.disk += item.path.stat().st_size
        return item

    def __len__(self) -> int:
        return len(self.batches)

    def __contains__(self, key: int) -> bool:
        return key in self.batches

    def complete(self, key: int, layers: Sequence[str]) -> bool:
        """Whether every layer of batch ``key`` is cached (pass 2 needs no forward for it)."""
        return key in self.batches and all(n in self.batches[key] for n in layers)

    def counts(self, keys: Sequence[int], name: str) -> tuple[int, int]:
        """``(in memory, on disk)`` among batches ``keys`` for layer ``name``."""
        items = [self.batches[k][name] for k in keys if name in self.batches.get(k, {})]
        disk = sum(1 for it in items if isinstance(it, Spilled))
        return len(items) - disk, disk

    def take(self, key: int) -> dict[str, torch.Tensor]:
        """Batch ``key``'s cached layers (float32; possibly not all), released from the cache."""
        out: dict[str, torch.Tensor] = {}
        for name, item in self.batches.pop(key, {}).items():
            if isinstance(item, Spilled):
                try:
                    f = item.read()
                    item.path.unlink()
                except FileNotFoundError:
                    raise self._vanished(item.path.parent) from None
                out[name] = f.to(torch.float32)
            else:
                out[name] = item
        return out

    def close(self) -> None:
        """Drop every batch and delete the spill folder."""
        self.batches = {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n
