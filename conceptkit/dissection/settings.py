"""The settings of a dissection, in three groups, checked once before any work starts.

- :class:`ScienceSettings`: what decides the numbers (quantile, IoU cut, top-N, union,
  preprocessing, fixed thresholds);
- :class:`CacheSettings`: where pass 1's features wait for pass 2 (memory budget, disk spill);
- :class:`RunSettings`: how the run is carried out and reported (batch size, loader workers,
  device, checkpoints, processes, progress bars, log lines, the model's description).

:class:`DissectSettings` holds one of each; :meth:`DissectSettings.from_options` builds it
from the flat keyword arguments of :func:`conceptkit.dissection.run.dissect`. This module
imports no torch: the types that need it are only named for the type checker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conceptkit.errors import UsageError

if TYPE_CHECKING:
    import torch

    from conceptkit.dissection.distributed import DistContext
    from conceptkit.dissection.preprocess import Preprocess

DEFAULT_CACHE_MEM: int | None = None  # memory for features between the passes (None: auto)
UNIONS = ("category", "global")
SPILL_DTYPES = ("float32", "float16")
SPILL_WHEN = ("faster", "fits")
AUTOCASTS = (None, "bf16", "fp16")
CHANNELS_LAST = ("auto", "on", "off")
FOLD_BN = ("auto", "off")
BASELINES = (None, "random")

ProgressFactory = Callable[[str, int], Any]
"""``progress(desc, total)`` returns a bar with ``update(n)`` and ``close()``."""


@dataclass(frozen=True)
class ScienceSettings:
    """What the statistics depend on.

    ``quantile``: the top fraction that defines each unit's threshold (0.005: the 0.995
    quantile); ``iou_threshold``: a unit is a detector above it; ``top_n``: top images kept
    per unit; ``union``: ``category`` (NetDissect: a unit's activation counts toward a
    category's union only in images that touch it) or ``global``; ``preprocess``:
    ``imagenet``, ``netdissect`` or a :class:`~conceptkit.dissection.preprocess.Preprocess`,
    with ``mean``/``std`` overriding the imagenet constants; ``thresholds``: a mapping
    ``layer -> (C,)`` or a folder of ``quantile_<layer>.npy`` replacing the quantile pass;
    ``input_size``: images resized to N x N for the model; ``grid``: the ``(h, w)`` token grid
    of transformer layers (default: input size / the model's patch size); ``baseline``:
    ``random`` dissects the same architecture with random weights too (the comparison of the
    Network Dissection paper; see :func:`conceptkit.dissection.run.randomized`).
    """

    quantile: float = 0.005
    iou_threshold: float = 0.04
    top_n: int = 10
    union: str = "category"
    preprocess: str | Preprocess = "imagenet"
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    thresholds: Mapping[str, Any] | str | Path | None = None
    input_size: int | None = None
    grid: tuple[int, int] | None = None
    baseline: str | None = None

    def check(self) -> None:
        if not 0.0 < self.quantile < 1.0:
            raise UsageError(f"quantile must lie strictly between 0 and 1, not {self.quantile}")
        if self.top_n < 1:
            raise UsageError(f"--top-n must be at least 1, not {self.top_n}")
        if self.union not in UNIONS:
            raise UsageError(f"union must be 'category' or 'global', not {self.union!r}")
        if self.baseline not in BASELINES:
            raise UsageError(f"baseline must be 'random' or None, not {self.baseline!r}")

    @property
    def thresholds_from(self) -> str | None:
        """Where fixed thresholds came from, for results.json (None: computed)."""
        if self.thresholds is None:
            return None
        return "python" if isinstance(self.thresholds, Mapping) else str(self.thresholds)


@dataclass(frozen=True)
class CacheSettings:
    """The feature cache between the passes.

    ``cache_mem`` bytes of float32 features (None: a safe share of the available memory, see
    :func:`conceptkit.dissection.cache.mem_budget`) stay in memory; past it up to ``cache_disk``
    bytes (None: a safe share of the free space there, see
    :func:`conceptkit.dissection.cache.disk_budget`) go to a temporary folder under
    ``spill_dir`` (default: the system's) as ``spill_dtype`` (``float32``: exact;
    ``float16``: half the disk, pass-2 masks may differ at the threshold); for the layers
    that fit neither (all of them past memory with ``spill=False``) pass 2 re-runs the
    forward, stopped after the last of them (:mod:`conceptkit.dissection.cache`).
    ``spill_when``: ``faster`` (spill a layer only where writing it and reading it back is
    predicted to take less time than re-running the forward up to it) or ``fits`` (spill
    whatever fits the disk budget).
    """

    cache_mem: int | None = DEFAULT_CACHE_MEM
    cache_disk: int | None = None
    spill: bool = True
    spill_dir: str | Path | None = None
    spill_dtype: str = "float32"
    spill_when: str = "faster"

    def check(self) -> None:
        if (self.cache_mem is not None and self.cache_mem < 0) or (
            self.cache_disk is not None and self.cache_disk < 0
        ):
            raise UsageError("cache budgets must be 0 or more bytes")
        if self.spill_dtype not in SPILL_DTYPES:
            raise UsageError(f"spill dtype must be float32 or float16, not {self.spill_dtype!r}")
        if self.spill_when not in SPILL_WHEN:
            raise UsageError(f"spill_when must be faster or fits, not {self.spill_when!r}")


@dataclass(frozen=True)
class RunSettings:
    """How the run is carried out and reported.

    ``batch_size`` images per forward; ``workers`` DataLoader worker processes (None: see
    :func:`default_workers`); ``device`` (None / ``auto``: CUDA when present). With
    ``checkpoint_dir`` this rank's statistics are saved there every ``checkpoint_every``
    batches and at the end of each pass; with ``resume`` a matching checkpoint is continued.
    ``dist_ctx`` (from :func:`conceptkit.dissection.distributed.setup`) makes the run one rank
    of several, taking its ``shard`` of the batches. ``progress`` makes progress bars; ``log``
    receives one-line notes; ``model_info`` gives ``spec``/``description``/``fingerprint``
    for results.json. ``autocast`` (``bf16``/``fp16``, default None: float32) runs the
    forward in reduced precision: faster on GPUs, but it changes the activations and so the
    results. ``channels_last`` (``auto``: for conv nets, whose convolutions hold most
    parameters; ``on``; ``off``) lays tensors out channels-last, faster on CPUs and GPUs (same
    values within float32 rounding; see :mod:`conceptkit.dissection.forward`). ``fold_bn``
    (``auto``: every batch norm that follows a convolution and is not a layer read is folded
    into it, in a copy of the model; ``off``) saves a pass over those activations (same values
    within float32 rounding; see :mod:`conceptkit.dissection.fold`).
    """

    batch_size: int = 64
    workers: int | None = None
    device: str | torch.device | None = None
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 50
    resume: bool = True
    dist_ctx: DistContext | None = None
    shard: str = "strided"
    progress: ProgressFactory | None = None
    log: Callable[[str], None] | None = None
    model_info: Mapping[str, Any] | None = None
    autocast: str | None = None
    channels_last: str = "auto"
    fold_bn: str = "auto"

    def check(self) -> None:
        if self.autocast not in AUTOCASTS:
            raise UsageError(f"--autocast must be bf16 or fp16, not {self.autocast!r}")
        if self.channels_last not in CHANNELS_LAST:
            raise UsageError(f"--channels-last must be auto, on or off, not {self.channels_last!r}")
        if self.fold_bn not in FOLD_BN:
            raise UsageError(f"--fold-bn must be auto or off, not {self.fold_bn!r}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be 0 or more, not {self.workers}")
        if self.checkpoint_every < 1:
            raise UsageError(f"checkpoint_every must be at least 1, not {self.checkpoint_every}")


@dataclass(frozen=True)
class DissectSettings:
    """Every setting of a dissection (see the three groups)."""

    science: ScienceSettings = field(default_factory=ScienceSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    run: RunSettings = field(default_factory=RunSettings)

    @classmethod
    def from_options(cls, **options: Any) -> DissectSettings:
        """Settings from flat keyword arguments (``quantile=``, ``cache_mem=``,
        ``batch_size=``, ...), each routed to its group; the rest keep their defaults."""
        return cls().with_options(**options)

    def with_options(self, **options: Any) -> DissectSettings:
        """A copy with the flat keyword arguments ``options`` replaced in their groups; an
        unknown name is a ``TypeError``, as for any function."""
        groups: dict[str, dict[str, Any]] = {"science": {}, "cache": {}, "run": {}}
        for name, value in options.items():
            group = _GROUP_OF.get(name)
            if group is None:
                raise TypeError(f"dissect() got an unexpected keyword argument {name!r}")
            groups[group][name] = value
        return DissectSettings(
            dataclasses.replace(self.science, **groups["science"]),
            dataclasses.replace(self.cache, **groups["cache"]),
            dataclasses.replace(self.run, **groups["run"]),
        )

    def check(self) -> None:
        """Raise :class:`~conceptkit.errors.UsageError` for the first bad setting."""
        self.science.check()
        self.run.check()
        self.cache.check()


_GROUP_OF = {
    f.name: group
    for group, klass in (
        ("science", ScienceSettings),
        ("cache", CacheSettings),
        ("run", RunSettings),
    )
    for f in dataclasses.fields(klass)
}
