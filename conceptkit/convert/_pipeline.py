"""The phases of :func:`conceptkit.convert.convert`, each a function of its own.

The readers run once (the scan, :class:`Inputs`); the annotations it accepts wait in a
:class:`Spool` on disk for the later passes, never held in memory, so memory is bounded by one
annotation file plus the per-image label sets, and no image's annotation (a mask PNG, say) is
read or decoded twice.
"""

from __future__ import annotations

import json
import pickle
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from conceptkit import broden, images, sources
from conceptkit.annotations import ImageAnnotation
from conceptkit.concepts import (
    DROP_CATEGORY,
    IGNORE_CATEGORY,
    RENAME_HINT,
    Vocabulary,
    category_rank,
    name_problem,
    valid_category,
)
from conceptkit.convert._image import Job, run_jobs
from conceptkit.convert._options import ConvertOptions, Summary
from conceptkit.converters import Reader, ReadOptions, _parallel
from conceptkit.errors import ConceptkitError, FormatError
from conceptkit.rasterize import IGNORE, check_shape
from conceptkit.validate import validate

Concept = tuple[str, str]  # (canonical name, category)


@dataclass
class Inputs:
    """The SRCs of one format, read again on every pass."""

    fmt: str
    reader: Reader
    paths: list[Path]
    opts: ConvertOptions

    def stream(self, warn: Callable[[str], None]) -> Iterator[tuple[int, ImageAnnotation]]:
        """(SRC index, annotation) for every annotation of every SRC, in order."""
        extra: dict[str, object] = {}
        if self.opts.images is not None:
            extra["images"] = Path(self.opts.images)
        for i, src in enumerate(self.paths):
            read_options = ReadOptions(
                keep_going=self.opts.keep_going, warn=warn, extra=extra, workers=self.opts.workers
            )
            for ann in self.reader(src, read_options):
                yield i, ann

    def sources(self) -> list[sources.Source]:
        """The SRCs as :class:`conceptkit.sources.Source` records."""
        return [sources.Source(fmt=self.fmt, path=p, text=str(p)) for p in self.paths]


@dataclass
class Concepts:
    """The vocabulary as the pipeline asks it: concepts of an annotation, and of its shapes."""

    vocab: Vocabulary

    def found_in(self, ann: ImageAnnotation) -> set[Concept]:
        """The labelled concepts of ``ann`` (shapes and tags; ignore regions and drops left out)."""
        found = set()
        for s in ann.shapes:
            r = self.vocab.resolve_shape(s)
            if r is not None and r[1] != IGNORE_CATEGORY:
                found.add(r)
        for t in ann.tags:
            r = self.vocab.resolve(t, "scene")
            if r is not None and r[1] not in (IGNORE_CATEGORY, DROP_CATEGORY):
                found.add(r)
        return found

    def shapes(self, ann: ImageAnnotation, number: dict[str, int]) -> list[tuple[str | None, int]]:
        """(category, number) per shape for :class:`Job`: None = left out, IGNORE = clears."""
        resolved: list[tuple[str | None, int]] = []
        for s in ann.shapes:
            r = self.vocab.resolve_shape(s)
            if r is not None and r[1] == IGNORE_CATEGORY:
                resolved.append((IGNORE, 0))
            elif r is not None and r[0] in number:
                resolved.append((r[1], number[r[0]]))
            else:
                resolved.append((None, 0))
        return resolved

    def tags(self, ann: ImageAnnotation, number: dict[str, int]) -> dict[str, tuple[int, ...]]:
        """category -> the sorted label numbers of the image-level tags of ``ann``."""
        tags: dict[str, list[int]] = {}
        for t in ann.tags:
            r = self.vocab.resolve(t, "scene")
            if r is not None and r[0] in number and r[1] != IGNORE_CATEGORY:
                tags.setdefault(r[1], []).append(number[r[0]])
        return {c: tuple(sorted(set(v))) for c, v in tags.items()}


# ----------------------------------------------------------------------------- the spool


@dataclass
class Spool:
    """The annotations the scan accepted, in reading order, as (SRC index, annotation) records
    in the file ``path``: each record is its length (8 bytes, little-endian) then the
    zlib-compressed pickle of the SRC index and the :func:`~conceptkit.converters._parallel.pack`-ed
    annotation (masks as bits: a mask patch shrinks about 50 times).

    The file is written and read by this process only, inside the conversion's own temporary
    folder (never a file from outside), so unpickling it loads nothing a stranger wrote.
    """

    path: Path

    def write(self, records: Iterator[tuple[int, ImageAnnotation]]) -> None:
        """Write ``records`` (consumed as they come, one in memory at a time)."""
        with open(self.path, "wb") as fh:
            for i, ann in records:
                record = (i, _parallel.pack(ann))
                data = zlib.compress(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), 1)
                fh.write(len(data).to_bytes(8, "little"))
                fh.write(data)

    def read(self) -> Iterator[tuple[int, ImageAnnotation]]:
        """The records in the order written."""
        for i, packed in self.read_packed():
            yield i, _parallel.unpack(packed)

    def read_packed(self) -> Iterator[tuple[int, _parallel.Packed]]:
        """The records in the order written, their masks left as bits."""
        with open(self.path, "rb") as fh:
            while head := fh.read(8):
                record: tuple[int, _parallel.Packed] = pickle.loads(
                    zlib.decompress(fh.read(int.from_bytes(head, "little")))
                )
                yield record

    def remove(self) -> None:
        """Delete the file (once the last pass is done)."""
        self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- pass 1: check


@dataclass
class Scan:
    """What the first pass found.

    ``per_image[key]``: the concepts of the image (all its SRCs). ``keys[key]``: the SRC indices
    annotating it. ``bad``: (SRC index, key) skipped with --keep-going. ``annotators[i]``: the
    annotator names SRC i's reader gave. ``spool``: the annotations accepted, for the later
    passes.
    """

    spool: Spool

    per_image: dict[str, set[Concept]] = field(default_factory=dict)
    keys: dict[str, list[int]] = field(default_factory=dict)
    bad: set[tuple[int, str]] = field(default_factory=set)
    annotators: list[set[str]] = field(default_factory=list)

    def shared(self) -> set[str]:
        """Keys of images annotated in several SRCs."""
        return {k for k, v in self.keys.items() if len(v) > 1}


def _shapes_ok(ann: ImageAnnotation, keep_going: bool, warn: Callable[[str], None]) -> bool:
    """Check the declared image size against the limits and every shape's geometry; False
    (warned) when one is bad and ``keep_going``."""
    try:
        images.check_size(ann.width, ann.height, file=ann.source or None, place=f"image {ann.key}")
        for s in ann.shapes:
            check_shape(s, ann.height, ann.width, intersections=False)
    except FormatError as exc:
        exc.file = exc.file or ann.source
        if not keep_going:
            raise
        warn(f"{exc} (image skipped)")
        return False
    return True


def check_names(ann: ImageAnnotation, vocab: Vocabulary) -> None:
    """FormatError for a label name the output cannot hold (:func:`~conceptkit.concepts.name_problem`).

    The name checked is the one written: the canonical name after the vocabulary. ``;`` and
    control characters cannot be given as a synonym either, so those are to be renamed in the
    export; a formula-like name can be renamed through ``--concepts``.
    """
    named = [
        (s.place, vocab.lookup(s.label, s.category or "object")) for s in ann.shapes if not s.ignore
    ]
    named += [(f"image tag {t!r}", vocab.lookup(t, "scene")) for t in ann.tags]
    for place, got in named:
        if got is None or got[1] == IGNORE_CATEGORY:
            continue
        if not valid_category(got[1]):
            raise FormatError(
                f"category {got[1]!r} must be letters, digits, '_' or '-'",
                file=ann.source or None,
                place=place,
            )
        problem = name_problem(got[0])
        if problem:
            hint = RENAME_HINT if problem.startswith("starts with") else "rename it in the export"
            raise FormatError(
                f"label {got[0]!r} {problem}", file=ann.source or None, place=place, hint=hint
            )


def scan(inputs: Inputs, concepts: Concepts, warn: Callable[[str], None], spool: Path) -> Scan:
    """Pass 1: read every annotation once, check it, collect its concepts and its SRC; the
    annotations accepted go to the :class:`Spool` at ``spool``."""
    found = Scan(spool=Spool(spool), annotators=[set() for _ in inputs.paths])
    found.spool.write(_accepted(inputs, concepts, warn, found))
    return found


def _accepted(
    inputs: Inputs, concepts: Concepts, warn: Callable[[str], None], found: Scan
) -> Iterator[tuple[int, ImageAnnotation]]:
    """The checked (SRC index, annotation) pairs of the scan, recorded in ``found``."""
    seen: list[set[str]] = [set() for _ in inputs.paths]
    options = ReadOptions(keep_going=inputs.opts.keep_going, warn=warn)
    for i, ann in inputs.stream(warn):
        if not _shapes_ok(ann, inputs.opts.keep_going, warn):
            found.bad.add((i, ann.key))
            continue
        if not sources.first_in_source(ann, seen[i], options):
            continue
        check_names(ann, concepts.vocab)
        found.annotators[i].add(ann.annotator)
        found.keys.setdefault(ann.key, []).append(i)
        found.per_image[ann.key] = found.per_image.get(ann.key, set()) | concepts.found_in(ann)
        yield i, ann


# ----------------------------------------------------------------------------- pass 2: consensus


def merge_shared(
    inputs: Inputs, found: Scan, concepts: Concepts, tmp: Path, summary: Summary
) -> dict[str, ImageAnnotation]:
    """Pass 2: group the images several SRCs annotate; report agreement; merge each group.

    The agreement report goes to ``tmp/consistency/``; returns key -> consensus annotation.
    """
    shared = found.shared()
    if not shared:
        return {}
    # imported here: only images annotated in several SRCs need it (15 ms of CPU at start-up)
    from conceptkit.consistency import analyse, consensus

    names = sources.annotator_names(inputs.sources(), found.annotators)
    groups = sources.group_by_image(
        found.spool.read(),
        names,
        ReadOptions(keep_going=True),
        keep=lambda i, ann: ann.key in shared and (i, ann.key) not in found.bad,
    )
    groups = {k: groups[k] for k in sorted(groups)}
    report = analyse(groups, concepts.vocab, tmp)
    summary.consistency = report.summary()
    merged = {k: consensus(v, inputs.opts.consensus, concepts.vocab) for k, v in groups.items()}
    for k, ann in merged.items():
        found.per_image[k] = concepts.found_in(ann)
    return merged


# ----------------------------------------------------------------------------- pass 3: numbers


@dataclass
class Numbering:
    """The labels kept, numbered 1..N by category (Broden's order) then name."""

    kept: list[str]
    number: dict[str, int]
    names: dict[int, str]


def number_labels(
    per_image: dict[str, set[Concept]], min_images: int, summary: Summary
) -> Numbering:
    """Pass 3: count each label's images, drop those in fewer than ``min_images``, number."""
    images_of: dict[str, int] = {}
    cats_of: dict[str, set[str]] = {}
    for concepts in per_image.values():
        for name, cat in concepts:
            images_of[name] = images_of.get(name, 0) + 1
            cats_of.setdefault(name, set()).add(cat)
    kept = sorted(
        (n for n in images_of if images_of[n] >= min_images),
        key=lambda n: (min(category_rank(c) for c in cats_of[n]), n),
    )
    summary.dropped = sorted(n for n in images_of if images_of[n] < min_images)
    if summary.dropped:
        summary.warnings.append(
            f"labels seen in fewer than {min_images} images dropped (--min-images): "
            + ", ".join(f"{n} ({images_of[n]})" for n in summary.dropped)
        )
    number = {n: k + 1 for k, n in enumerate(kept)}
    return Numbering(kept=kept, number=number, names={k: n for n, k in number.items()})


# ----------------------------------------------------------------------------- pass 4: pixels


#: characters of an image's name that the layout cannot hold: ``;`` separates the planes of an
#: index.csv cell, control characters (newlines included) break CSV rows and file names
_UNSAFE = re.compile(r"[;\x00-\x1f\x7f]")


def image_name(key: str, qualified: bool = False) -> str:
    """The output file name of an image: its key's stem (any folders dropped) + ``.jpg``.

    ``qualified``: keep the key's folders in the name (``Train/img0`` -> ``Train_img0.jpg``),
    for keys whose bare stems collide (CVAT project subsets reusing file names).
    Every ``;`` and control character (newline, tab, ...) of the stem becomes ``_``, so the
    image's planes (``<stem>_<category>.png``) stay one item each in index.csv; two images whose
    names still become the same are refused (:func:`make_jobs`).
    """
    path = PurePosixPath(key.replace("\\", "/"))
    stem = path.stem or "image"
    if qualified:
        stem = "_".join([*path.parent.parts, stem])
    return f"{_UNSAFE.sub('_', stem)}.jpg"


def make_jobs(
    inputs: Inputs,
    found: Scan,
    merged: dict[str, ImageAnnotation],
    concepts: Concepts,
    numbering: Numbering,
    root: Path,
) -> Iterator[Job]:
    """One :class:`Job` per image, in input order (a merged image once, at its first SRC).

    The annotations come from the scan's spool; a (SRC, key) the scan skipped as bad is left
    out even where a later repeat of it in that SRC passed (as when the SRC is read again).
    """
    opts = inputs.opts
    done: set[str] = set()
    used_names: dict[str, str] = {}
    for i, packed in found.spool.read_packed():
        if (i, packed.ann.key) in found.bad or packed.ann.key in done:
            continue
        if packed.ann.key in merged:
            packed = _parallel.pack(merged[packed.ann.key])
        ann = packed.ann  # its shapes' masks are bits in ``packed``: only names are read here
        key = ann.key
        done.add(key)
        name = image_name(key)
        if used_names.get(name, key) != key:
            name = image_name(key, qualified=True)
        if used_names.setdefault(name, key) != key:
            raise FormatError(
                f"images {used_names[name]!r} and {key!r} both become {name}", ann.source
            )
        yield Job(
            packed=packed,
            name=name,
            resolved=concepts.shapes(ann, numbering.number),
            image_labels=concepts.tags(ann, numbering.number),
            root=root,
            size=opts.size,
            fit=opts.fit,
            overlap=opts.overlap,
            pixels=opts.pixels,
            plane_scale=opts.plane_scale,
        )


def write_images(
    jobs: Iterator[Job],
    opts: ConvertOptions,
    spool: Path,
    update: Callable[[int], Any] | None,
    summary: Summary,
) -> tuple[broden.LabelStats, int]:
    """Run the jobs; their index rows wait in ``spool`` (JSON lines) until the category
    columns are known, so memory stays flat. Returns (label statistics, rows written)."""
    stats = broden.LabelStats()
    n_rows = 0
    with open(spool, "w", encoding="utf-8") as spool_fh:
        for res in run_jobs(jobs, max(1, opts.workers)):
            if update is not None:
                update(1)
            if isinstance(res, ConceptkitError):
                if not opts.keep_going:
                    raise res
                summary.warnings.append(f"{res} (image skipped)")
                summary.skipped += 1
                continue
            planes: dict[str, Sequence[np.ndarray]] = dict(res.planes)
            numbers: dict[str, Sequence[int]] = dict(res.row.image_labels)
            stats.add_image(planes, numbers)
            summary.warnings.extend(res.warnings)
            spool_fh.write(_row_json(res.row) + "\n")
            n_rows += 1
    return stats, n_rows


def _row_json(row: broden.IndexRow) -> str:
    return json.dumps(
        [row.image, row.split, row.ih, row.iw, row.sh, row.sw, row.planes, row.image_labels]
    )


def _read_rows(path: Path) -> Iterator[broden.IndexRow]:
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


# ----------------------------------------------------------------------------- tables, checks


def write_tables(
    root: Path,
    stats: broden.LabelStats,
    numbering: Numbering,
    spool: Path,
    vocab: Vocabulary,
    summary: Summary,
) -> None:
    """category.csv, label.csv, c_<cat>.csv, index.csv (from the spool) and concepts.csv."""
    present = {c for (c, _) in stats.frequency}
    order = sorted(present, key=category_rank)
    categories, labels, codes = broden.build_tables(order, numbering.names, stats)
    broden.write_tables(root, categories, labels, codes)
    broden.write_index(root, _read_rows(spool), order)
    spool.unlink()
    (root / "concepts.csv").write_text(vocab.csv_text(), encoding="utf-8")
    missing = sorted(set(numbering.kept) - {numbering.names[lab.number] for lab in labels})
    if missing:
        summary.warnings.append("labels with no pixel left after resizing: " + ", ".join(missing))
    summary.labels = {c.name: [x.name for x in codes[c.name]] for c in categories}


def validation_errors(path: Path, netdissect: bool) -> list[str]:
    """The errors :func:`conceptkit.validate.validate` finds in the result, one line each.

    ``netdissect`` False (``--size native``) skips what only NetDissect-Lite needs (square
    images of one size), which native-size output does not promise.
    """
    return [
        f"{f.code} {f.file}: {f.message}"
        for f in validate(path, netdissect=netdissect)
        if f.severity == "error"
    ]
