"""Checkpoints of a dissection's statistics, so an interrupted run resumes where it stopped.

A checkpoint folder (the CLI uses ``OUT.partial/`` beside ``OUT``; it is removed once ``OUT`` is
written) holds one file per rank and pass, ``rank<r>-pass<p>.pt``: the ``torch.save`` of
``{"fingerprint", "done", "complete", "state"}`` where ``done`` counts this rank's batches
already in ``state`` (each statistic's ``state_dict``). Files are written atomically (a
temporary file renamed into place), so a kill at any moment leaves the previous checkpoint.

The :class:`Fingerprint` names what the statistics depend on: the model weights, the dataset
(sha256 of index.csv, category.csv, label.csv, c_*.csv) and the settings (layers, quantile,
top-N, union, preprocessing, batch size, thresholds, world size, sharding, device type). A
checkpoint is used only when all three match; otherwise :meth:`Checkpoints.load` reports which
one changed, in one line, and the run starts fresh.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from conceptkit.errors import UsageError


@dataclass(frozen=True)
class Fingerprint:
    """What a checkpoint's statistics were computed from."""

    model: str
    data: str
    settings: dict[str, Any]

    def changed(self, other: dict[str, Any]) -> list[str]:
        """The parts (``model``, ``data``, ``settings: a, b``) that differ from ``other``."""
        out = []
        if other.get("model") != self.model:
            out.append("model (weights changed)")
        if other.get("data") != self.data:
            out.append("dataset (index.csv/label.csv/category.csv changed)")
        theirs = other.get("settings") or {}
        keys = sorted(set(theirs) | set(self.settings))
        diff = [k for k in keys if theirs.get(k) != self.settings.get(k)]
        if diff:
            out.append(f"settings ({', '.join(diff)})")
        return out


class Checkpoints:
    """The checkpoint files of one rank in ``folder``; ``every`` batches between saves."""

    def __init__(
        self, folder: str | Path, fingerprint: Fingerprint, rank: int = 0, every: int = 50
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise UsageError(
                "is not a folder: the checkpoints of this run go there (move it away)",
                file=self.folder,
            )
        self.fingerprint = fingerprint
        self.rank = rank
        self.every = max(1, int(every))
        self.saves = 0

    def path(self, pass_no: int) -> Path:
        return self.folder / f"rank{self.rank}-pass{pass_no}.pt"

    def load(self, pass_no: int) -> tuple[dict[str, Any] | None, str | None]:
        """``(checkpoint, None)`` when a matching one exists; ``(None, message)`` when one
        exists but is stale or unreadable (one line naming what changed); ``(None, None)``
        when there is none."""
        path = self.path(pass_no)
        if not path.is_file():
            return None, None
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
            fp = ck["fingerprint"]
        except Exception as exc:  # any unreadable file means "start fresh"
            return None, f"checkpoint {path} is unreadable ({type(exc).__name__}); starting fresh"
        changed = self.fingerprint.changed(fp)
        if changed:
            return None, (
                f"checkpoint {path} ignored: the {'; '.join(changed)} differ from the "
                "interrupted run; starting fresh"
            )
        return ck, None

    def due(self, done: int) -> bool:
        """Whether to save after ``done`` batches of a pass."""
        return done % self.every == 0

    def save(self, pass_no: int, done: int, complete: bool, state: dict[str, Any]) -> None:
        """Write this rank's checkpoint of ``pass_no`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "fingerprint": asdict(self.fingerprint),
            "done": int(done),
            "complete": bool(complete),
            "state": state,
        }
        fd, tmp = tempfile.mkstemp(prefix=f".rank{self.rank}-", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(pass_no))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.saves += 1

    def discard(self, pass_no: int) -> None:
        self.path(pass_no).unlink(missing_ok=True)


def partial_dir(out: str | Path) -> Path:
    """Where the CLI keeps the checkpoints of a run writing ``out``: ``OUT.partial`` beside it."""
    p = Path(out)
    return p.with_name(p.name + ".partial")


def remove(folder: str | Path) -> None:
    """Delete a checkpoint folder (after the outputs are written)."""
    shutil.rmtree(folder, ignore_errors=True)


def to_cpu(state: Any) -> Any:
    """A copy of nested dicts of tensors with every tensor on the CPU (for saving)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu")
    if isinstance(state, dict):
        return {k: to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_cpu(v) for v in state)
    return state
