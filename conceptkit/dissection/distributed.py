"""Dissection across processes: rank detection, batch sharding, and exact merges of statistics.

A run started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment)
joins a process group (gloo on CPU, nccl on CUDA). The dataset is cut into the SAME batches a
single process would use (rows ``[b * batch_size, (b + 1) * batch_size)``) and each rank takes
whole batches (strided: batch ``b`` goes to rank ``b % world``; or contiguous blocks), so every
image is forwarded in exactly the batch it would be in alone and its features are bit-identical.
The statistics are then merged exactly:

- :class:`~conceptkit.dissection.stats.TopQuantile`: all-gather of each rank's top-k buffer
  (padded to the largest k), then exact re-selection of the top ``need`` values;
- :class:`~conceptkit.dissection.stats.IoUTally`: all-reduce sum of the int64 counts;
- :class:`~conceptkit.dissection.stats.TopImages`: all-gather of values / rows / maps, then the
  deterministic selection (value descending, ties by lower row).

Every rank ends with the merged statistics; only rank 0 writes outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from conceptkit.dissection.stats import IoUTally, TopImages, TopQuantile
from conceptkit.errors import UsageError

SHARD_MODES = ("strided", "contiguous")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` (``world == 1``: no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def detect() -> DistContext:
    """Rank, world size and local rank from torchrun's environment (1 process without it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise UsageError(f"bad torchrun environment: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return DistContext(rank, world, local)


def parse_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, refused with a UsageError when it is not a device this
    machine has (``bogus``, ``cuda`` without CUDA, ``cuda:3`` on a 2-GPU machine, ``meta``)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(
            f"--device {str(device)!r} is not a device (auto, cpu, cuda, cuda:1, ...)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {dev}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {dev}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
    elif dev.type == "meta":
        raise UsageError("--device meta holds no data; use cpu or cuda")
    elif dev.type != "cpu":
        try:
            torch.empty(1, device=dev)
        except (RuntimeError, AssertionError):
            raise UsageError(f"--device {dev}: not available on this machine") from None
    return dev


def setup(device: str | torch.device | None) -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun; return the context and the device.

    ``device`` ``auto``/None picks ``cuda:LOCAL_RANK`` when CUDA is present, else CPU; the
    backend follows the device (nccl for CUDA, gloo for CPU).
    """
    ctx = detect()
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            dev = torch.device("cuda", ctx.local_rank % max(1, torch.cuda.device_count()))
        else:
            dev = torch.device("cpu")
    else:
        dev = parse_device(device)
        if dev.type == "cuda" and dev.index is None and ctx.active:
            dev = torch.device("cuda", ctx.local_rank % max(1, torch.cuda.device_count()))
    if not ctx.active:
        return ctx, dev
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(ctx.rank, ctx.world, ctx.local_rank, backend), dev


def teardown(ctx: DistContext) -> None:
    """Leave the process group (after a barrier, so no rank exits while others still talk)."""
    if ctx.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def batch_ranges(n_rows: int, batch_size: int) -> list[tuple[int, int]]:
    """The single-process batches: ``[(start, stop), ...]`` covering ``range(n_rows)``."""
    return [(s, min(s + batch_size, n_rows)) for s in range(0, n_rows, batch_size)]


def shard_batches(
    n_rows: int, batch_size: int, rank: int = 0, world: int = 1, mode: str = "strided"
) -> list[tuple[int, int]]:
    """This rank's batches (row ranges), a deterministic partition of :func:`batch_ranges`.

    ``strided``: batches ``rank, rank + world, ...``; ``contiguous``: one block of
    ``ceil(n_batches / world)`` batches per rank (the last ranks may get fewer).
    """
    if mode not in SHARD_MODES:
        raise UsageError(f"shard mode must be one of {', '.join(SHARD_MODES)}, not {mode!r}")
    batches = batch_ranges(n_rows, batch_size)
    if world > len(batches):
        raise UsageError(
            f"{world} processes but only {len(batches)} batches of {batch_size}; "
            "use fewer processes or a smaller --batch-size"
        )
    if mode == "strided":
        return batches[rank::world]
    per = -(-len(batches) // world)
    return batches[rank * per : (rank + 1) * per]


# ----------------------------------------------------------------------------- collectives


def _gather_padded(t: torch.Tensor, dim: int, fill: float) -> list[torch.Tensor]:
    """All-gather tensors that agree except in size along ``dim``; each rank's own slice."""
    size = torch.tensor([t.shape[dim]], dtype=torch.int64, device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    most = int(max(int(s.item()) for s in sizes))
    pad_shape = list(t.shape)
    pad_shape[dim] = most - t.shape[dim]
    padded = torch.cat([t, torch.full(pad_shape, fill, dtype=t.dtype, device=t.device)], dim)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return [p.narrow(dim, 0, int(s.item())) for p, s in zip(parts, sizes, strict=True)]


def merge_quantile(q: TopQuantile) -> None:
    """Replace ``q`` by the exact statistic over every rank's values (all ranks agree)."""
    count = torch.tensor([q.count], dtype=torch.int64, device=q.top.device)
    dist.all_reduce(count, op=dist.ReduceOp.SUM)
    parts = _gather_padded(q.top.contiguous(), 1, float("-inf"))
    merged = TopQuantile(q.units, q.total, q.quantile, device=q.top.device)
    merged.count = 0
    merged._keep(torch.cat(parts, dim=1))
    q.top = merged.top
    q.count = int(count.item())


def merge_tally(t: IoUTally) -> None:
    """Sum the integer counts of every rank into ``t`` (all-reduce)."""
    for name in ("inter", "truth", "act_cat", "act_total"):
        dist.all_reduce(getattr(t, name), op=dist.ReduceOp.SUM)
    images = torch.tensor([t.images], dtype=torch.int64, device=t.truth.device)
    dist.all_reduce(images, op=dist.ReduceOp.SUM)
    t.images = int(images.item())


def merge_top_images(top: TopImages) -> None:
    """Re-select each unit's top images over every rank's candidates (ties: lower row)."""
    values = _gather_padded(top.values.contiguous(), 1, float("-inf"))
    indices = _gather_padded(top.indices.contiguous(), 1, -1)
    maps = _gather_padded(top.maps.contiguous(), 1, 0.0)
    top._select(torch.cat(values, 1), torch.cat(indices, 1), torch.cat(maps, 1))
