"""The feature cache between the two passes of a dissection.

Pass 1 puts each batch's features (``{layer: (B, C, h, w)}``) here so that pass 2 needs no
second forward: in memory up to a byte budget (float32, exact), then as ``torch.save`` files
in a temporary folder (``conceptkit-features-*``) that :meth:`FeatureCache.close` deletes. The
first batch that fits nowhere (or a disk error) closes the cache; batches not in it are
recomputed in pass 2.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from conceptkit.dissection.settings import CacheSettings
from conceptkit.errors import ConceptkitError


class FeatureCache:
    """Pass-1 features of this rank's batches, keyed by batch number (see the module)."""

    def __init__(self, settings: CacheSettings) -> None:
        self.mem = max(0, settings.cache_mem)
        self.spill = settings.spill
        self.spill_dir = settings.spill_dir
        self.spill_dtype = torch.float16 if settings.spill_dtype == "float16" else torch.float32
        self.used = 0
        self.disk = 0
        self.batches: dict[int, dict[str, torch.Tensor] | Path] = {}
        self.open = True
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def put(self, key: int, feats: dict[str, torch.Tensor]) -> None:
        """Keep batch ``key``'s features (copied), in memory or on disk, while there is room."""
        if not self.open:
            return
        size = sum(f.numel() * 4 for f in feats.values())
        if self.used + size <= self.mem:
            self.batches[key] = {n: f.to("cpu", torch.float32, copy=True) for n, f in feats.items()}
            self.used += size
            return
        if not self.spill:
            self.open = False
            return
        try:
            self._save(key, feats)
        except (OSError, RuntimeError):  # disk full, unwritable: recompute the rest
            self.open = False

    def _vanished(self, folder: Path) -> ConceptkitError:
        return ConceptkitError(
            "the feature spill folder vanished during the run (a temporary-file cleaner?); "
            "rerun with --spill-dir on another disk, or --no-spill",
            file=folder,
        )

    def _save(self, key: int, feats: dict[str, torch.Tensor]) -> None:
        if self._tmp is not None and not Path(self._tmp.name).is_dir():
            raise self._vanished(Path(self._tmp.name))
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(
                prefix="conceptkit-features-", dir=self.spill_dir, ignore_cleanup_errors=True
            )
        path = Path(self._tmp.name) / f"{key:06d}.pt"
        torch.save({n: f.to("cpu", self.spill_dtype) for n, f in feats.items()}, path)
        self.batches[key] = path
        self.disk += path.stat().st_size

    def __len__(self) -> int:
        return len(self.batches)

    def __contains__(self, key: int) -> bool:
        return key in self.batches

    def in_memory(self, key: int) -> bool:
        return key in self.batches and not isinstance(self.batches[key], Path)

    def take(self, key: int) -> dict[str, torch.Tensor]:
        """Batch ``key``'s features (float32), released from the cache."""
        item = self.batches.pop(key)
        if isinstance(item, Path):
            try:
                feats: dict[str, torch.Tensor] = torch.load(item, weights_only=True)
                item.unlink()
            except FileNotFoundError:
                raise self._vanished(item.parent) from None
            return {n: f.to(torch.float32) for n, f in feats.items()}
        return item

    def close(self) -> None:
        """Drop every batch and delete the spill folder."""
        self.batches = {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
