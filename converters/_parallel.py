"""Building a reader's records in worker processes (``ReadOptions.workers`` > 1).

:func:`outcomes` runs ``build(item)`` for each item in ``workers`` forked processes, at most
``4 * workers`` items in flight (memory stays bounded), and yields the outcomes in input order,
so what a reader yields does not depend on ``workers``. ``build`` reaches the workers through
the fork (it may be a closure: nothing of it is pickled); the items and the records travel
pickled. The lines ``build`` gives through ``options.warn`` in a worker come back with its
outcome, to be given in the main process in order; a FormatError comes back as its fields
(pickling an exception drops them). An error raised while iterating the items is raised after
the outcomes of the items before it, as when they are built one by one.

Records travel :func:`pack`-ed: each ``bool`` mask as its bits (:class:`Packed`), an eighth of
its bytes, so a mask format's records cost little to send (this is also what
:mod:`conceptkit.convert` sends its own workers and keeps in its spool).

Workers call :func:`conceptkit.heap.steady_heap` first: each image allocates and frees arrays
of a few hundred kB to a few MB, and glibc's default thresholds hand most of them back to the
kernel and fault them in again for the next image.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptkit.annotations import ImageAnnotation
from conceptkit.errors import FormatError
from conceptkit.workers import start_image_worker

#: what a worker holds: the ``build`` function and the reader's options (set once per worker)
_WORKER: dict[str, Any] = {}

#: a FormatError as (type, message, file, place, hint)
_Fields = tuple[type[FormatError], str, str | None, str | None, str | None]


@dataclass
class Outcome:
    """What building one item gave: its record (None: nothing to yield) or its error, and the
    warnings given while building it."""

    record: ImageAnnotation | None
    error: FormatError | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Packed:
    """An annotation to send or keep: ``ann`` with its ``bool`` masks taken out, and
    ``masks``: (shape index, ``np.packbits`` of the mask ``(ceil(h * w / 8),) uint8``, (h, w))."""

    ann: ImageAnnotation
    masks: list[tuple[int, np.ndarray, tuple[int, int]]]


def pack(ann: ImageAnnotation) -> Packed:
    """``ann`` as a :class:`Packed` (``ann`` itself is left as it is)."""
    shapes = []
    masks: list[tuple[int, np.ndarray, tuple[int, int]]] = []
    for i, shape in enumerate(ann.shapes):
        mask = shape.mask
        if mask is not None and mask.dtype == np.bool_ and mask.ndim == 2:
            masks.append((i, np.packbits(mask), (mask.shape[0], mask.shape[1])))
            shape = dataclasses.replace(shape, mask=None)
        shapes.append(shape)
    return Packed(dataclasses.replace(ann, shapes=shapes), masks)


def unpack(packed: Packed) -> ImageAnnotation:
    """The annotation :func:`pack` was given (masks ``(h, w) bool``, C-contiguous)."""
    ann = packed.ann
    for i, bits, (h, w) in packed.masks:
        ann.shapes[i].mask = np.unpackbits(bits, count=h * w).reshape(h, w).view(np.bool_)
    return ann


def can_fork() -> bool:
    """True where worker processes can be forked (``build`` need not be picklable)."""
    return "fork" in mp.get_all_start_methods()


def _start(build: Callable[[Any], ImageAnnotation | None], options: Any) -> None:
    """Worker initialiser: keep ``build`` and ``options`` (a worker reads on its own)."""
    start_image_worker()
    options.workers = 1
    _WORKER["build"], _WORKER["options"] = build, options


def _build_one(item: Any) -> tuple[Packed | None, _Fields | None, list[str]]:
    """In a worker: (packed record, error fields, warnings) of ``build(item)``."""
    said: list[str] = []
    _WORKER["options"].warn = said.append
    try:
        record = _WORKER["build"](item)
        return (None if record is None else pack(record)), None, said
    except FormatError as exc:
        return None, (type(exc), exc.message, exc.file, exc.place, exc.hint), said


def _outcome(future: Future[Any]) -> Outcome:
    packed, fields, said = future.result()
    if fields is None:
        return Outcome(None if packed is None else unpack(packed), None, said)
    kind, message, file, place, hint = fields
    return Outcome(None, kind(message, file=file, place=place, hint=hint), said)


def outcomes(
    items: Iterable[Any],
    build: Callable[[Any], ImageAnnotation | None],
    options: Any,
    workers: int,
) -> Iterator[Outcome]:
    """The :class:`Outcome` of ``build(item)`` for each of ``items``, in order, built in
    ``workers`` forked processes (``options``: the reader's ReadOptions, whose ``warn`` the
    workers replace by a collector)."""
    ctx = mp.get_context("fork")
    failure: Exception | None = None
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_start, initargs=(build, options)
    ) as pool:
        pending: deque[Future[Any]] = deque()
        it = iter(items)
        while True:
            try:
                item = next(it)
            except StopIteration:
                break
            except Exception as exc:  # raised once the items before it are out
                failure = exc
                break
            pending.append(pool.submit(_build_one, item))
            if len(pending) >= 4 * workers:
                yield _outcome(pending.popleft())
        while pending:
            yield _outcome(pending.popleft())
    if failure is not None:
        raise failure
