"""The conversion pipeline: annotation exports -> a Broden-layout folder.

:func:`convert` runs in passes over the readers' annotations (never over pixels, so memory is
bounded by the annotation files, not the images):

1. **check**: every annotation is read once; shapes are checked (too few points, far outside
   the image), names resolved through the :class:`Vocabulary`, and the images each label
   appears in are counted. Image keys seen in more than one SRC mark
   images annotated by several annotators.
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

Everything is written into a temporary folder that replaces ``out`` only when complete.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from conceptkit import broden, images
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.concepts import (
    DROP_CATEGORY,
    IGNORE_CATEGORY,
    Vocabulary,
    category_rank,
)
from conceptkit.errors import ConceptkitError, FormatError, UsageError
from conceptkit.outdir import atomic_dir, check_target
from conceptkit.rasterize import (
    IGNORE,
    check_shape,
    crop_box,
    paint,
    resample_labels,
    self_intersecting,
)

JPEG_QUALITY = 90


@dataclass
class ConvertOptions:
    """Options of ``conceptkit convert`` (see its ``--help``).

    ``size``: output side N (images N x N), None = native size. ``fit``: stretch | crop.
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


# ----------------------------------------------------------------------------- one image


@dataclass
class Job:
    """Everything a worker needs for one image (picklable).

    ``resolved[i]`` is (category, number) of ``ann.shapes[i]``: category None = left out,
    :data:`~conceptkit.rasterize.IGNORE` = clears the planes behind it.
    """

    ann: ImageAnnotation
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


def _load_image(ann: ImageAnnotation, want: int | None) -> tuple[Any, int, int]:
    """Decode the image upright (EXIF orientation applied) as RGB.

    Returns (image, native width, native height); the size is checked against the annotation.
    ``want``: the output side; a JPEG is then decoded at a reduced DCT scale that still has at
    least ``want`` pixels on each side (the caller resizes with a box in native coordinates).
    """
    from PIL import Image, UnidentifiedImageError

    where = ann.image_path if ann.image_data is None else "embedded imageData"
    try:
        stream: Any = io.BytesIO(ann.image_data) if ann.image_data is not None else ann.image_path
        with Image.open(stream) as im:
            orient = images.orientation(im)
            w, h = images.upright_size(im)
            if (w, h) != (ann.width, ann.height):
                raise FormatError(
                    f"image {where} is {w}x{h}, the annotation says {ann.width}x{ann.height}",
                    file=ann.source,
                )
            if want is not None and im.format == "JPEG":
                im.draft("RGB", (want, want))
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise FormatError(f"image {where} not found", file=ann.source) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise FormatError(f"image {where} cannot be read ({exc})", file=ann.source) from None
    return images.make_upright(rgb, orient), w, h


def process(job: Job) -> Result:
    """Rasterise, resize and write one image and its planes into ``job.root/images``."""
    from PIL import Image

    ann = job.ann
    image, w, h = _load_image(ann, job.size)
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
    planes = paint(ann, category_of, number_of, h, w, overlap=job.overlap, convention=conv)
    box = crop_box(h, w) if job.fit == "crop" and job.size is not None else (0, 0, w, h)
    if job.size is None:
        ih, iw = h, w
    else:
        ih = iw = job.size
        sx, sy = image.size[0] / w, image.size[1] / h  # < 1 when decoded at a reduced scale
        fbox = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        image = image.resize((iw, ih), Image.Resampling.BICUBIC, box=fbox)
    sh, sw = max(1, ih // job.plane_scale), max(1, iw // job.plane_scale)
    images = job.root / "images"
    image.save(images / job.name, format="JPEG", quality=JPEG_QUALITY, optimize=False)
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
        small = [resample_labels(p, sh, sw, box) for p in stack]
        small = [p for p in small if p.any()]
        if not small:
            continue
        names = (
            [f"{stem}_{cat}.png"]
            if len(small) == 1
            else [f"{stem}_{cat}_{k + 1}.png" for k in range(len(small))]
        )
        for plane, pname in zip(small, names):
            broden.save_plane(plane, images / pname)
        row.planes[cat] = tuple(names)
        out[cat] = small
    return Result(row=row, planes=out, warnings=warnings)


def _run_jobs(jobs: Iterator[Job], workers: int) -> Iterator[Result | ConceptkitError]:
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
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque[Any] = deque()
        for job in jobs:
            pending.append(pool.submit(_process_in_worker, job))
            if len(pending) >= 4 * workers:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


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


# ----------------------------------------------------------------------------- the passes


def _default_category(shape: Shape) -> str:
    return shape.category or "object"


def _stream(
    fmt_reader: Any, srcs: Sequence[Path], warn: Callable[[str], None], opts: ConvertOptions
) -> Iterator[tuple[int, ImageAnnotation]]:
    from conceptkit.converters import ReadOptions

    extra: dict[str, object] = {}
    if opts.images is not None:
        extra["images"] = Path(opts.images)
    for i, src in enumerate(srcs):
        read_options = ReadOptions(keep_going=opts.keep_going, warn=warn, extra=extra)
        for ann in fmt_reader(src, read_options):
            yield i, ann


def _image_name(key: str) -> str:
    stem = PurePosixPath(key.replace("\\", "/")).stem or "image"
    return f"{stem}.jpg"


def convert(
    fmt: str,
    srcs: Sequence[str | Path],
    out: str | Path | None = None,
    options: ConvertOptions | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Summary:
    """Convert the exports ``srcs`` of format ``fmt`` into the Broden folder ``out``.

    ``out`` defaults to ``<first SRC>_broden``. ``progress(total)`` may return a callable
    ``update(n)`` (e.g. a tqdm bar's ``update``); it is called with the image count once known.
    Raises FormatError / UsageError on bad input; nothing is left at ``out`` then.
    """
    from conceptkit.converters import get_reader

    opts = options or ConvertOptions()
    if not srcs:
        raise UsageError("give at least one SRC")
    paths = [Path(s) for s in srcs]
    for p in paths:
        if not p.exists():
            raise UsageError("does not exist", file=p)
    if opts.size is not None and opts.size < 2:
        raise UsageError(f"--size must be at least 2 or 'native', not {opts.size}")
    if opts.fit not in ("stretch", "crop"):
        raise UsageError(f"--fit must be stretch or crop, not {opts.fit!r}")
    if opts.overlap not in ("front", "planes"):
        raise UsageError(f"--overlap must be front or planes, not {opts.overlap!r}")
    if opts.pixels not in (None, "inclusive", "center"):
        raise UsageError(f"--pixels must be inclusive or center, not {opts.pixels!r}")
    reader = get_reader(fmt)
    target = Path(out) if out is not None else Path(str(paths[0]).rstrip("/\\") + "_broden")
    check_target(target, opts.force)
    vocab = Vocabulary.from_csv(opts.concepts) if opts.concepts else Vocabulary()
    summary = Summary(out=target, fit=opts.fit if opts.size else "none")
    summary.size = f"{opts.size}x{opts.size}" if opts.size else "native size"
    warn = summary.warnings.append

    def resolve_shape(s: Shape) -> tuple[str, str] | None:
        if getattr(s, "ignore", False):  # an ignore region (COCO crowd): clears, never counts
            return (s.label, IGNORE_CATEGORY)
        return vocab.resolve(s.label, _default_category(s))

    def resolve_tag(t: str) -> tuple[str, str] | None:
        return vocab.resolve(t, "scene")

    # pass 1: check every annotation, count label images, find repeated keys
    images_of: dict[str, int] = {}
    cats_of: dict[str, set[str]] = {}
    keys: dict[str, list[int]] = {}
    bad: set[tuple[int, str]] = set()

    def labels_in(ann: ImageAnnotation) -> set[tuple[str, str]]:
        found = set()
        for s in ann.shapes:
            r = resolve_shape(s)
            if r is not None and r[1] != IGNORE_CATEGORY:
                found.add(r)
        for t in ann.tags:
            r = resolve_tag(t)
            if r is not None and r[1] not in (IGNORE_CATEGORY, DROP_CATEGORY):
                found.add(r)
        return found

    def checked(i: int, ann: ImageAnnotation) -> bool:
        try:
            for s in ann.shapes:
                check_shape(s, ann.height, ann.width, intersections=False)
        except FormatError as exc:
            exc.file = exc.file or ann.source
            if not opts.keep_going:
                raise
            warn(f"{exc} (image skipped)")
            bad.add((i, ann.key))
            return False
        return True

    with atomic_dir(target, force=opts.force) as tmp:
        (tmp / "images").mkdir()
        per_image: dict[str, set[tuple[str, str]]] = {}
        for i, ann in _stream(reader, paths, warn, opts):
            if not checked(i, ann):
                continue
            keys.setdefault(ann.key, []).append(i)
            if len(keys[ann.key]) > 1 and keys[ann.key][-1] == keys[ann.key][-2]:
                raise FormatError(f"image {ann.key!r} is annotated twice in one SRC", ann.source)
            per_image[ann.key] = per_image.get(ann.key, set()) | labels_in(ann)

        # pass 2: several annotators of the same image -> agreement report + consensus
        shared = {k for k, v in keys.items() if len(v) > 1}
        merged: dict[str, ImageAnnotation] = {}
        if shared:
            merged = _consensus(reader, paths, shared, bad, vocab, opts, tmp, summary)
            for k, ann in merged.items():
                per_image[k] = labels_in(ann)

        # pass 3: numbering, dropping rare labels
        for found in per_image.values():
            for name, cat in found:
                images_of[name] = images_of.get(name, 0) + 1
                cats_of.setdefault(name, set()).add(cat)
        kept = sorted(
            (n for n in images_of if images_of[n] >= opts.min_images),
            key=lambda n: (min(category_rank(c) for c in cats_of[n]), n),
        )
        summary.dropped = sorted(n for n in images_of if images_of[n] < opts.min_images)
        if summary.dropped:
            warn(
                f"labels seen in fewer than {opts.min_images} images dropped (--min-images): "
                + ", ".join(f"{n} ({images_of[n]})" for n in summary.dropped)
            )
        number = {n: k + 1 for k, n in enumerate(kept)}
        names = {k: n for n, k in number.items()}
        per_image.clear()
        for u in vocab.unknown():
            warn(f"{opts.concepts}: does not list {u!r}; used the default category")

        # pass 4: pixels
        def jobs() -> Iterator[Job]:
            done: set[str] = set()
            used_names: dict[str, str] = {}
            for i, ann in _stream(reader, paths, lambda m: None, opts):
                if (i, ann.key) in bad or ann.key in done:
                    continue
                if ann.key in merged:
                    ann = merged[ann.key]
                done.add(ann.key)
                name = _image_name(ann.key)
                if used_names.setdefault(name, ann.key) != ann.key:
                    raise FormatError(
                        f"images {used_names[name]!r} and {ann.key!r} both become {name}",
                        ann.source,
                    )
                resolved: list[tuple[str | None, int]] = []
                for s in ann.shapes:
                    r = resolve_shape(s)
                    if r is None:
                        resolved.append((None, 0))
                    elif r[1] == IGNORE_CATEGORY:
                        resolved.append((IGNORE, 0))
                    elif r[0] in number:
                        resolved.append((r[1], number[r[0]]))
                    else:
                        resolved.append((None, 0))
                tags: dict[str, list[int]] = {}
                for t in ann.tags:
                    r = resolve_tag(t)
                    if r is not None and r[0] in number and r[1] != IGNORE_CATEGORY:
                        tags.setdefault(r[1], []).append(number[r[0]])
                yield Job(
                    ann=ann,
                    name=name,
                    resolved=resolved,
                    image_labels={c: tuple(sorted(set(v))) for c, v in tags.items()},
                    root=tmp,
                    size=opts.size,
                    fit=opts.fit,
                    overlap=opts.overlap,
                    pixels=opts.pixels,
                    plane_scale=opts.plane_scale,
                )

        total = len(keys)
        update = progress(total) if progress is not None else None
        stats = broden.LabelStats()
        # index rows wait on disk until the category columns are known (memory stays flat)
        spool = tmp / ".rows.jsonl"
        n_rows = 0
        with open(spool, "w", encoding="utf-8") as spool_fh:
            for res in _run_jobs(jobs(), max(1, opts.workers)):
                if update is not None:
                    update(1)
                if isinstance(res, ConceptkitError):
                    if not opts.keep_going:
                        raise res
                    warn(f"{res} (image skipped)")
                    summary.skipped += 1
                    continue
                planes: dict[str, Sequence[np.ndarray]] = dict(res.planes)
                numbers: dict[str, Sequence[int]] = dict(res.row.image_labels)
                stats.add_image(planes, numbers)
                for w in res.warnings:
                    warn(w)
                spool_fh.write(_row_json(res.row) + "\n")
                n_rows += 1
        summary.skipped += len(bad)
        if not n_rows:
            raise FormatError("no image could be converted", file=paths[0])

        # tables
        present = {c for (c, _) in stats.frequency}
        order = sorted(present, key=category_rank)
        categories, labels, codes = broden.build_tables(order, names, stats)
        broden.write_tables(tmp, categories, labels, codes)
        broden.write_index(tmp, _read_rows(spool), order)
        spool.unlink()
        (tmp / "concepts.csv").write_text(vocab.csv_text(), encoding="utf-8")
        missing = sorted(set(kept) - {names[lab.number] for lab in labels})
        if missing:
            warn("labels with no pixel left after resizing: " + ", ".join(missing))
        summary.images = n_rows
        summary.labels = {c.name: [x.name for x in codes[c.name]] for c in categories}
    if opts.validate:
        summary.validation = _validate(target, netdissect=opts.size is not None)
    return summary


def _row_json(row: broden.IndexRow) -> str:
    import json

    return json.dumps(
        [row.image, row.split, row.ih, row.iw, row.sh, row.sw, row.planes, row.image_labels]
    )


def _read_rows(path: Path) -> Iterator[broden.IndexRow]:
    import json

    with open(path, encoding="utf-8") as fh:
        for line in fh:
            image, split, ih, iw, sh, sw, planes, labels = json.loads(line)
            yield broden.IndexRow(
                image=image,
                split=split,
                ih=ih,
                iw=iw,
                sh=sh,
                sw=sw,
                planes={c: tuple(v) for c, v in planes.items()},
                image_labels={c: tuple(v) for c, v in labels.items()},
            )


def _consensus(
    reader: Any,
    paths: Sequence[Path],
    shared: set[str],
    bad: set[tuple[int, str]],
    vocab: Vocabulary,
    opts: ConvertOptions,
    tmp: Path,
    summary: Summary,
) -> dict[str, ImageAnnotation]:
    """Group the annotations of images seen in several SRCs; analyse and merge them."""
    try:
        from conceptkit.consistency import analyse, consensus
    except ImportError:
        raise UsageError(
            "consistency analysis is not available: images are annotated in several SRCs "
            f"({len(shared)} shared, e.g. {sorted(shared)[0]!r})"
        ) from None
    groups: dict[str, list[ImageAnnotation]] = {}
    for i, ann in _stream(reader, paths, lambda m: None, opts):
        if ann.key in shared and (i, ann.key) not in bad:
            if not ann.annotator or ann.annotator in {a.annotator for a in groups.get(ann.key, [])}:
                ann.annotator = f"{paths[i].name}#{i}"
            groups.setdefault(ann.key, []).append(ann)
    groups = {k: groups[k] for k in sorted(groups)}
    report = analyse(groups, vocab, tmp)
    summary.consistency = report.summary()
    return {k: consensus(v, opts.consensus, vocab) for k, v in groups.items()}


def _validate(path: Path, netdissect: bool = True) -> list[str]:
    """Errors ``conceptkit.validate`` finds in the result (empty when it is not installed).

    ``netdissect`` False (``--size native``) skips what only NetDissect-Lite needs (square
    images of one size), which native-size output does not promise.
    """
    try:
        from conceptkit.validate import validate
    except ImportError:
        return []
    try:
        findings = validate(path, netdissect=netdissect)
    except TypeError:
        findings = validate(path)
    return [
        f"{getattr(f, 'code', '')} {getattr(f, 'file', '')}: {getattr(f, 'message', f)}"
        for f in findings
        if getattr(f, "severity", "") == "error"
    ]


def cpu_count() -> int:
    """Usable CPU cores (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
