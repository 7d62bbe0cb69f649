"""The options of a conversion, their checks, and the summary it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conceptkit.errors import UsageError

FITS = ("stretch", "crop")
OVERLAPS = ("front", "planes")
PIXELS = (None, "inclusive", "center")
CONSENSUS = ("majority", "staple", "first")
#: the largest ``--size`` (a 4096 x 4096 image is 48 MiB decoded; Broden uses 224 and 227)
MAX_SIZE = 4096
#: the most ``--workers`` (processes)
MAX_WORKERS = 256


@dataclass
class ConvertOptions:
    """Options of ``conceptkit convert`` (see its ``--help``).

    ``size``: output side N (images N x N), 2..:data:`MAX_SIZE`, None = native size.
    ``workers``: 1..:data:`MAX_WORKERS` processes. ``fit``: stretch | crop.
    ``overlap``: front | planes. ``pixels``: None (each format's own) | inclusive | center.
    ``plane_scale``: planes are the image size divided by this, rounded down (2 = Broden:
    224 -> 112, 227 -> 113).
    ``consensus``: majority | staple | first, for images several annotators labelled.
    ``images``: an image folder for formats whose export does not hold the images (COCO);
    passed to readers as ``ReadOptions.extra["images"]``.
    """

    size: int | None = 224
    fit: str = "stretch"
    overlap: str = "front"
    pixels: str | None = None
    concepts: Path | None = None
    min_images: int = 10
    keep_going: bool = False
    workers: int = 1
    force: bool = False
    consensus: str = "majority"
    plane_scale: int = 2
    validate: bool = True
    images: Path | None = None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_options(opts: ConvertOptions) -> None:
    """UsageError (one line) for an option outside what the pipeline takes.

    ``size``: None or 2..:data:`MAX_SIZE`; ``workers``: 1..:data:`MAX_WORKERS`;
    ``min_images`` >= 1; ``plane_scale`` 1..size (whole numbers, never bools).
    """
    size = opts.size
    if size is not None and not (_whole(size) and 2 <= size <= MAX_SIZE):
        raise UsageError(
            f"--size must be a whole number from 2 to {MAX_SIZE} or 'native', not {size!r}"
        )
    if not (_whole(opts.workers) and 1 <= opts.workers <= MAX_WORKERS):
        raise UsageError(
            f"--workers must be a whole number from 1 to {MAX_WORKERS}, not {opts.workers!r}"
        )
    if not (_whole(opts.min_images) and opts.min_images >= 1):
        raise UsageError(
            f"--min-images must be a whole number of at least 1, not {opts.min_images!r}"
        )
    top = size if size is not None else MAX_SIZE
    if not (_whole(opts.plane_scale) and 1 <= opts.plane_scale <= top):
        raise UsageError(
            f"plane_scale must be a whole number from 1 to {top}, not {opts.plane_scale!r}"
        )
    if opts.fit not in FITS:
        raise UsageError(f"--fit must be stretch or crop, not {opts.fit!r}")
    if opts.overlap not in OVERLAPS:
        raise UsageError(f"--overlap must be front or planes, not {opts.overlap!r}")
    if opts.pixels not in PIXELS:
        raise UsageError(f"--pixels must be inclusive or center, not {opts.pixels!r}")
    if opts.consensus not in CONSENSUS:
        raise UsageError(f"--consensus must be majority, staple or first, not {opts.consensus!r}")


@dataclass
class Summary:
    """What a conversion did, for the user."""

    out: Path
    images: int = 0
    skipped: int = 0
    labels: dict[str, list[str]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size: str = ""
    fit: str = ""
    consistency: str = ""
    validation: list[str] = field(default_factory=list)

    def text(self, max_warnings: int = 20) -> str:
        """The summary as the command prints it."""
        lines = [f"wrote {self.out}: {self.images} images ({self.size}, fit {self.fit})"]
        if self.skipped:
            lines.append(f"skipped {self.skipped} images with errors (--keep-going)")
        for cat, names in self.labels.items():
            lines.append(f"  {cat}: {len(names)} labels")
        if self.dropped:
            lines.append(f"dropped {len(self.dropped)} rare labels: {', '.join(self.dropped)}")
        if self.consistency:
            lines.append(self.consistency)
        if self.warnings:
            lines.append(f"{len(self.warnings)} warnings:")
            lines += [f"  {w}" for w in self.warnings[:max_warnings]]
            if len(self.warnings) > max_warnings:
                lines.append(f"  ... and {len(self.warnings) - max_warnings} more")
        for v in self.validation:
            lines.append(f"validate: {v}")
        return "\n".join(lines)
