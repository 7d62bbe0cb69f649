"""Readers of annotation exports: one module per format, one contract for all.

A reader is a function ``read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]``.
``src`` is what the user named on the command line (a folder, a file, a .zip, as the format
allows). The reader yields one :class:`~conceptkit.annotations.ImageAnnotation` per image, in a
deterministic order (sorted file names / document order), and never decodes image pixels
itself: it only records ``image_path`` (checked to lie inside ``src``) or ``image_data``.

Errors in the input raise :class:`~conceptkit.errors.FormatError` naming the file and the place
(JSON path, XML element and line); no other exception leaves a reader, whatever the input.
Declared sizes are checked against :mod:`conceptkit.limits` before anything is allocated:
image sizes with :func:`conceptkit.images.check_size`, coordinates with :func:`check_points`. Per-image problems that the reader can skip (when
``options.keep_going``) are reported through ``options.warn`` instead, and the image is left out.
Non-fatal remarks (a repaired polygon, a skipped ``points`` prompt) go through ``options.warn``
as well, as one line naming the file and place.

:data:`READERS` maps a format name (the FORMAT argument of ``conceptkit convert``) to the
reader, as ``"module:function"`` strings imported on first use by :func:`get_reader`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from conceptkit import limits
from conceptkit.annotations import ImageAnnotation
from conceptkit.errors import FormatError, UsageError


def _ignore(message: str) -> None:
    """The default ``warn``: drop the message."""


@dataclass
class ReadOptions:
    """What every reader is told.

    ``keep_going``: skip images with errors (report them through ``warn``) instead of raising.
    ``warn``: called with one line per warning (file and place first).
    ``check_paths``: refuse image paths that lead outside ``src`` (``../``, absolute).
    ``extra``: format-specific options (free form, documented by the reader).
    """

    keep_going: bool = False
    warn: Callable[[str], None] = _ignore
    check_paths: bool = True
    extra: dict[str, object] = field(default_factory=dict)


class Reader(Protocol):
    def __call__(self, src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]: ...


#: format name -> "module:function" of its reader.
READERS: dict[str, str] = {
    "labelme": "conceptkit.converters.labelme:read",
    "labelme-xml": "conceptkit.converters.labelme_xml:read",
    "cvat": "conceptkit.converters.cvat:read",
    "coco": "conceptkit.converters.coco:read",
    # annotation tools' exports (issue 14)
    "labelstudio": "conceptkit.converters.labelstudio:read",
    "via": "conceptkit.converters.via:read",
    "vott": "conceptkit.converters.vott:read",
    "labelbox": "conceptkit.converters.labelbox:read",
    "sagemaker": "conceptkit.converters.sagemaker:read",
    "vertex": "conceptkit.converters.vertex:read",
    "azure": "conceptkit.converters.azure:read",
    # segmentation datasets (issue 14)
    "voc": "conceptkit.converters.voc:read",
    "ade20k": "conceptkit.converters.ade20k:read",
    "cityscapes": "conceptkit.converters.cityscapes:read",
    "supervisely": "conceptkit.converters.supervisely:read",
    "camvid": "conceptkit.converters.camvid:read",
}


def get_reader(name: str) -> Reader:
    """The reader registered for format ``name``; UsageError for an unknown format."""
    target = READERS.get(name.lower())
    if target is None:
        raise UsageError(f"unknown FORMAT {name!r}; expected one of: {', '.join(sorted(READERS))}")
    module, attr = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise UsageError(f"the {name!r} reader is not available in this install") from None
        raise
    reader: Reader = getattr(mod, attr)
    return reader


def inside(src: Path, path: Path) -> bool:
    """True when ``path`` (resolved) lies inside the folder ``src`` (resolved)."""
    try:
        path.resolve().relative_to(src.resolve())
    except (ValueError, OSError, RuntimeError):  # outside; a NUL in the name; a symlink loop
        return False
    return True


def within(src: Path, files: list[Path]) -> list[Path]:
    """``files`` (found by searching the folder ``src``), each checked to lie inside it.

    A file that is a symbolic link leading outside ``src`` raises FormatError: a reader reads
    only what lies in the folder it was given.
    """
    for path in files:
        if not inside(src, path):
            raise FormatError(f"is a symbolic link leading outside SRC ({src})", path)
    return files


def check_points(points: np.ndarray, file: str | Path, place: str) -> None:
    """FormatError unless every coordinate of ``points`` ``(K, 2)`` is finite and within bounds.

    A coordinate's size is bounded by the limit ``image_side`` (a point that far out lies
    outside any image within the limits; larger values overflow the rasterisers), the vertex
    count by ``points``.
    """
    limits.check("points", len(points), file=file, place=place, what="the vertex count")
    if not np.isfinite(points).all():
        raise FormatError("a coordinate is not a finite number (NaN or infinity)", file, place)
    if points.size:
        largest = float(np.abs(points).max())
        limits.check("image_side", largest, file=file, place=place, what="a coordinate")
