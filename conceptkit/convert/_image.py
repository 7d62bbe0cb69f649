"""One image of a conversion: decode upright, rasterise, resize, write (in worker processes).

:func:`process` turns a :class:`Job` into the image's JPEG and PNG planes under
``job.root/images`` and a :class:`Result` (its index row and planes); :func:`run_jobs` runs
jobs in ``workers`` processes and yields results in input order, so the output does not depend
on ``workers``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from conceptkit import broden, images
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.converters import _parallel
from conceptkit.errors import ConceptkitError, FormatError
from conceptkit.rasterize import crop_box, paint, sample_grid, self_intersecting
from conceptkit.workers import start_image_worker

JPEG_QUALITY = 90


@dataclass
class Job:
    """Everything a worker needs for one image (picklable).

    ``packed``: the annotation with its masks as bits (:func:`~conceptkit.converters._parallel.pack`,
    as the scan's spool keeps it: sent as it is, unpacked by :func:`process`).
    ``resolved[i]`` is (category, number) of shape i: category None = left out,
    :data:`~conceptkit.rasterize.IGNORE` = clears the planes behind it.
    """

    packed: _parallel.Packed
    name: str
    resolved: list[tuple[str | None, int]]
    image_labels: dict[str, tuple[int, ...]]
    root: Path
    size: int | None
    fit: str
    overlap: str
    pixels: str | None
    plane_scale: int


@dataclass
class Result:
    """A processed image: its index row and its planes (for statistics)."""

    row: broden.IndexRow
    planes: dict[str, list[np.ndarray]]
    warnings: list[str] = field(default_factory=list)


def load_image(ann: ImageAnnotation, want: int | None) -> tuple[Any, int, int]:
    """Decode the image upright (EXIF orientation applied) as RGB.

    Returns (image, native width, native height); the size is checked against the limits
    (:func:`conceptkit.images.open_image`) and against the annotation. ``want``: the output
    side; a JPEG is then decoded at a reduced DCT scale that still has at least ``want`` pixels
    on each side (the caller resizes with a box in native coordinates).
    """
    where = ann.image_path if ann.image_data is None else "embedded imageData"
    source: Path | bytes | None = ann.image_data if ann.image_data is not None else ann.image_path
    if source is None:
        raise FormatError("names no image file", file=ann.source or None, place=f"image {ann.key}")
    with images.open_image(
        source, file=ann.source or None, place=None, what=f"image {where}"
    ) as im:
        orient = images.orientation(im)
        w, h = images.upright_size(im)
        if (w, h) != (ann.width, ann.height):
            raise FormatError(
                f"image {where} is {w}x{h}, the annotation says {ann.width}x{ann.height}",
                file=ann.source,
            )
        if want is not None and im.format == "JPEG":
            im.draft("RGB", (want, want))
        im.load()
        if im.mode == "RGB" and not im.readonly:
            # the decoded pixels themselves, in an image that outlives closing the file
            # (convert("RGB") of an RGB image is a copy of them, with the same info)
            rgb = im._new(im.im)
        else:
            rgb = im.convert("RGB")
    return images.make_upright(rgb, orient), w, h


def process(job: Job) -> Result:
    """Rasterise, resize and write one image and its planes into ``job.root/images``."""
    from PIL import Image

    ann = _parallel.unpack(job.packed)
    image, w, h = load_image(ann, job.size)
    warnings = [
        f"{ann.source}: {s.place}: self-intersecting polygon, filled even-odd"
        for s, bad in zip(ann.shapes, self_intersecting(ann.shapes))
        if bad
    ]
    lookup = {id(s): r for s, r in zip(ann.shapes, job.resolved)}

    def category_of(s: Shape) -> str | None:
        return lookup[id(s)][0]

    def number_of(s: Shape) -> int:
        return lookup[id(s)][1]

    conv: Any = job.pixels
    box = crop_box(h, w) if job.fit == "crop" and job.size is not None else (0, 0, w, h)
    ih, iw = (h, w) if job.size is None else (job.size, job.size)
    sh, sw = max(1, ih // job.plane_scale), max(1, iw // job.plane_scale)
    # the planes are painted at their output pixels only (the nearest-neighbour samples)
    grid = sample_grid(h, w, sh, sw, box)
    planes = paint(
        ann, category_of, number_of, h, w, overlap=job.overlap, convention=conv, grid=grid
    )
    if job.size is not None:
        sx, sy = image.size[0] / w, image.size[1] / h  # < 1 when decoded at a reduced scale
        fbox = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        image = image.resize((iw, ih), Image.Resampling.BICUBIC, box=fbox)
    folder = job.root / "images"
    image.save(folder / job.name, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    stem = PurePosixPath(job.name).stem
    row = broden.IndexRow(
        image=job.name,
        split=ann.split,
        ih=ih,
        iw=iw,
        sh=sh,
        sw=sw,
        image_labels=dict(job.image_labels),
    )
    out: dict[str, list[np.ndarray]] = {}
    for cat, stack in planes.items():
        small = [p for p in stack if p.any()]
        if not small:
            continue
        names = (
            [f"{stem}_{cat}.png"]
            if len(small) == 1
            else [f"{stem}_{cat}_{k + 1}.png" for k in range(len(small))]
        )
        for plane, pname in zip(small, names):
            broden.save_plane(plane, folder / pname)
        row.planes[cat] = tuple(names)
        out[cat] = small
    return Result(row=row, planes=out, warnings=warnings)


def run_jobs(jobs: Iterator[Job], workers: int) -> Iterator[Result | ConceptkitError]:
    """Results in input order; at most ``4 * workers`` jobs in flight (bounded memory)."""
    if workers <= 1:
        for job in jobs:
            try:
                yield process(job)
            except ConceptkitError as exc:
                yield exc
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_start_worker
    ) as pool:
        pending: deque[Any] = deque()
        for job in jobs:
            pending.append(pool.submit(_process_in_worker, job))
            if len(pending) >= 4 * workers:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _start_worker() -> None:
    start_image_worker()


def _process_in_worker(job: Job) -> Result | tuple[type, str, str | None, str | None]:
    """:func:`process`, returning an input error as a tuple (its pickling drops file/place)."""
    try:
        return process(job)
    except ConceptkitError as exc:
        return (type(exc), exc.message, exc.file, exc.place)


def _result(future: Any) -> Result | ConceptkitError:
    result = future.result()
    if isinstance(result, tuple):
        kind, message, file, place = result
        error: ConceptkitError = kind(message, file=file, place=place)
        return error
    out: Result = result
    return out
