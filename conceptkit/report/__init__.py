"""The dissection report: HTML pages with image strips (``OUT/html``) and plots (``OUT/plots``).

``build(OUT)`` rebuilds a finished run's report from the files ``conceptkit dissect`` wrote,
without the model; ``compare([OUT1, OUT2, ...], DIR)`` draws the comparison of several runs;
``build_foreign(FOLDER, DIR)`` the report of a NetDissect-Lite or NetDissect result folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["build", "build_foreign", "compare", "is_foreign"]


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


def is_foreign(path: str | Path) -> bool:
    """Whether ``path`` is a NetDissect-Lite or NetDissect result folder: no results.json, and
    ``tally_<layer>.csv``, ``tally.csv`` or ``<layer>-result.csv`` (anything else is read, and
    refused, as a conceptkit run)."""
    path = Path(path)
    if not path.is_dir() or (path / "results.json").exists():
        return False
    return (
        any(path.glob("tally_*.csv"))
        or (path / "tally.csv").is_file()
        or any(path.glob("*-result.csv"))
    )


def build_foreign(src: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """The report of a foreign folder into ``out``; see :mod:`conceptkit.report.foreign`."""
    from conceptkit.report.foreign import build_foreign as _build

    return _build(src, out, force=force)


def compare(runs: list[Path], out: Path, *, force: bool = False) -> Path:
    """Comparison plots of several runs; see :func:`conceptkit.report.builder.compare`."""
    from conceptkit.report.builder import compare as _compare

    return _compare(runs, out, force=force)
