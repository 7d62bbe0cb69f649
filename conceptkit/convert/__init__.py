"""The conversion pipeline: annotation exports -> a Broden-layout folder.

:func:`convert` runs in passes over the readers' annotations (never over pixels, so memory is
bounded by the annotation files, not the images):

1. **check**: every annotation is read once (the only read: the annotations accepted wait in a
   spool file on disk for the passes below); shapes are checked (too few points, far outside
   the image), names resolved through the :class:`Vocabulary`, and the images each label
   appears in are counted. Image keys seen in more than one SRC mark
   images annotated by several annotators; an image annotated twice in one SRC is an error
   (see :mod:`conceptkit.sources`).
2. **consensus** (only with several annotators): those images' annotations are grouped,
   :func:`conceptkit.consistency.analyse` reports agreement and
   :func:`conceptkit.consistency.consensus` merges each group into one annotation.
3. **labels**: labels seen in fewer than ``min_images`` images are dropped (warned); the rest are
   numbered 1..N by category (Broden's order) then name.
4. **pixels**: images are processed one at a time (``workers`` processes, results taken in input
   order so the output does not depend on ``workers``): check the size against the annotation
   (after EXIF orientation), decode upright (a JPEG at the smallest DCT scale that keeps at least
   N pixels a side), warn about self-intersecting polygons, rasterise every category at native
   size (:func:`conceptkit.rasterize.paint`), resize the image (``fit`` stretch or centre crop,
   bicubic, the box given in native coordinates) and resample the planes to half the output size
   by nearest neighbour, write a JPEG (quality 90) and PNG planes.

Then the tables are written (``category.csv``, ``label.csv``, ``c_<cat>.csv``, ``index.csv``,
``concepts.csv``) and the result is checked with :func:`conceptkit.validate.validate`.
Everything is written into a temporary folder that replaces ``out`` only when complete.

The phases live in ``_pipeline`` (one function each), one image's work in ``_image``, the
options in ``_options``; this module holds :func:`convert`, which runs them in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conceptkit.concepts import Vocabulary
from conceptkit.convert._image import JPEG_QUALITY, Job, Result, process
from conceptkit.convert._options import ConvertOptions, Summary, check_options
from conceptkit.convert._pipeline import (
    Concepts,
    Inputs,
    make_jobs,
    merge_shared,
    number_labels,
    scan,
    validation_errors,
    write_images,
    write_tables,
)
from conceptkit.converters import get_reader
from conceptkit.errors import FormatError, UsageError
from conceptkit.outdir import atomic_dir, check_target, refuse_overlap
from conceptkit.sources import choose_format

__all__ = [
    "JPEG_QUALITY",
    "ConvertOptions",
    "Job",
    "Result",
    "Summary",
    "convert",
    "process",
]


def _inputs(fmt: str, srcs: Sequence[str | Path], opts: ConvertOptions) -> Inputs:
    """The SRCs, checked to exist, with their reader; UsageError for bad options."""
    if not srcs:
        raise UsageError("give at least one SRC")
    paths = [Path(s) for s in srcs]
    for p in paths:
        if not p.exists():
            raise UsageError("does not exist", file=p)
    check_options(opts)
    fmt, _ = choose_format(fmt, paths)
    return Inputs(fmt=fmt, reader=get_reader(fmt), paths=paths, opts=opts)


def convert(
    fmt: str,
    srcs: Sequence[str | Path],
    out: str | Path | None = None,
    options: ConvertOptions | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Summary:
    """Convert the exports ``srcs`` of format ``fmt`` into the Broden folder ``out``.

    ``out`` defaults to ``<first SRC>_broden``; an ``out`` that equals, contains or lies
    inside a SRC, the ``images`` folder or the ``concepts`` file is refused, and ``force`` replaces only a folder
    conceptkit wrote (:mod:`conceptkit.outdir`). Label names the layout cannot hold are refused
    (:func:`conceptkit.concepts.name_problem`); ``;`` and control characters in image names
    become ``_``. ``progress(total)`` may return a callable
    ``update(n)`` (e.g. a tqdm bar's ``update``); it is called with the image count once known.
    Raises FormatError / UsageError on bad input; nothing is left at ``out`` then.
    """
    opts = options or ConvertOptions()
    inputs = _inputs(fmt, srcs, opts)
    target = Path(out) if out is not None else Path(str(inputs.paths[0]).rstrip("/\\") + "_broden")
    extra = [p for p in (opts.images, opts.concepts) if p is not None]
    refuse_overlap(target, [*inputs.paths, *extra])
    check_target(target, opts.force)
    concepts = Concepts(Vocabulary.from_csv(opts.concepts) if opts.concepts else Vocabulary())
    summary = Summary(out=target, fit=opts.fit if opts.size else "none")
    summary.size = f"{opts.size}x{opts.size}" if opts.size else "native size"
    with atomic_dir(target, force=opts.force) as tmp:
        (tmp / "images").mkdir()
        found = scan(inputs, concepts, summary.warnings.append, tmp / ".annotations.spool")
        merged = merge_shared(inputs, found, concepts, tmp, summary)
        numbering = number_labels(found.per_image, opts.min_images, summary)
        found.per_image.clear()
        for u in concepts.vocab.unknown():
            summary.warnings.append(
                f"{opts.concepts}: does not list {u!r}; used the default category"
            )
        jobs = make_jobs(inputs, found, merged, concepts, numbering, tmp)
        update = progress(len(found.keys)) if progress is not None else None
        spool = tmp / ".rows.jsonl"
        stats, n_rows = write_images(jobs, opts, spool, update, summary)
        found.spool.remove()
        summary.skipped += len(found.bad)
        if not n_rows:
            raise FormatError("no image could be converted", file=inputs.paths[0])
        write_tables(tmp, stats, numbering, spool, concepts.vocab, summary)
        summary.images = n_rows
    if opts.validate:
        summary.validation = validation_errors(target, netdissect=opts.size is not None)
    return summary
