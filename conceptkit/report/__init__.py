"""The dissection report: HTML pages with image strips (``OUT/html``) and plots (``OUT/plots``).

``build(OUT)`` rebuilds a finished run's report from the files ``conceptkit dissect`` wrote,
without the model; ``compare([OUT1, OUT2, ...], DIR)`` draws the comparison of several runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["build", "compare"]


def build(
    out_dir: str | Path,
    *,
    force_images: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Rebuild ``OUT/html`` and ``OUT/plots``; see :func:`conceptkit.report.builder.build`."""
    from conceptkit.report.builder import build as _build

    return _build(out_dir, force_images=force_images, workers=workers, progress=progress)


def compare(runs: list[Path], out: Path, *, force: bool = False) -> Path:
    """Comparison plots of several runs; see :func:`conceptkit.report.builder.compare`."""
    from conceptkit.report.builder import compare as _compare

    return _compare(runs, out, force=force)
