"""Annotation sources: which reader an export needs, who annotated it, and images grouped by key.

A *source* is one annotator's export (a folder, a ``.zip`` or a file), written as ``PATH`` or
``FORMAT:PATH``. Both ``convert`` (several SRCs) and ``consistency`` use the same rules:

- **format**: given, or recognised from the contents (:func:`detect_format`).
- **annotator names**: one per source, the reader's ``ImageAnnotation.annotator`` when the source
  gives exactly one (the folder's or zip's name), else the path's last part; when two sources
  would share a name, every source is named by its text as typed (:func:`annotator_names`).
- **images** are matched across sources by ``ImageAnnotation.key`` (the file name).
- **an image annotated twice in one source** is an error (FormatError naming the source and the
  image): which of the two is right cannot be known. With ``keep_going`` the first one is kept
  and the repeat skipped with a warning (:func:`first_in_source`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conceptkit.annotations import ImageAnnotation
from conceptkit.converters import READERS, ReadOptions, detection, get_reader
from conceptkit.errors import FormatError, UsageError


@dataclass
class Source:
    """One source: its format, its path, and the text the user typed."""

    fmt: str
    path: Path
    text: str


def parse_source(text: str) -> tuple[str | None, Path]:
    """``fmt:path`` -> (fmt, path) when fmt is a known format, else (None, path)."""
    head, sep, tail = text.partition(":")
    if sep and head.lower() in READERS:
        return head.lower(), Path(tail)
    return None, Path(text)


def detect_format(path: Path) -> str:
    """The format of the export at ``path``, from its contents (:func:`conceptkit.converters.detection`)."""
    return detection(path)[0]


def choose_format(fmt: str, paths: Sequence[Path]) -> tuple[str, str | None]:
    """``(format, why)``: FORMAT as given (why None), or for ``auto`` the one every SRC has.

    UsageError when the SRCs are of different formats or one cannot be told.
    """
    if fmt.lower() != "auto":
        return fmt, None
    found = [detection(p) for p in paths]
    kinds = sorted({f for f, _ in found})
    if len(kinds) != 1:
        raise UsageError(f"the SRCs are of different formats ({', '.join(kinds)}); name FORMAT")
    return kinds[0], found[0][1]


def resolve_sources(texts: Sequence[str], formats: Sequence[str] = ()) -> list[Source]:
    """The sources typed as ``texts``; ``formats``: none (auto), one for all, or one per text.

    A ``FORMAT:PATH`` text wins over ``formats``; ``auto`` or no format -> :func:`detect_format`.
    """
    if formats and len(formats) not in (1, len(texts)):
        raise UsageError(
            f"--format given {len(formats)} times for {len(texts)} sources; give it once "
            "(for all) or once per source"
        )
    out = []
    for i, text in enumerate(texts):
        fmt, path = parse_source(text)
        if fmt is None and formats:
            given = formats[0] if len(formats) == 1 else formats[i]
            fmt = None if given == "auto" else given
        out.append(Source(fmt or detect_format(path), path, text))
    return out


def annotator_names(sources: Sequence[Source], found: Sequence[set[str]]) -> list[str]:
    """One name per source; ``found[i]``: the annotator names source i's reader gave.

    See the module docstring for the rule.
    """
    names = []
    for src, seen in zip(sources, found):
        given = sorted(n for n in seen if n)
        names.append(given[0] if len(given) == 1 else src.path.name or str(src.path))
    if len(set(names)) < len(names):
        names = [src.text for src in sources]
    return names


def first_in_source(ann: ImageAnnotation, seen: set[str], options: ReadOptions) -> bool:
    """True the first time ``ann.key`` is met in a source (``seen``: the keys met so far).

    A repeat raises FormatError, or with ``options.keep_going`` is warned about and False is
    returned: the first annotation of the image is the one kept.
    """
    if ann.key not in seen:
        seen.add(ann.key)
        return True
    if not options.keep_going:
        raise FormatError(
            f"image {ann.key!r} is annotated twice in one export",
            file=ann.source or None,
            hint="remove one, or pass --keep-going to keep the first",
        )
    options.warn(f"{ann.source}: image {ann.key!r} is annotated twice; the first is kept")
    return False


def group_by_image(
    annotations: Iterable[tuple[int, ImageAnnotation]],
    names: Sequence[str],
    options: ReadOptions,
    keep: Callable[[int, ImageAnnotation], bool] | None = None,
) -> dict[str, list[ImageAnnotation]]:
    """(source index, annotation) pairs -> image key -> annotations in source order.

    Each annotation's ``annotator`` becomes ``names[index]``; ``keep`` (optional) selects the
    annotations to group; a repeat within one source follows :func:`first_in_source`.
    """
    groups: dict[str, list[ImageAnnotation]] = {}
    seen: dict[int, set[str]] = {}
    for i, ann in annotations:
        if keep is not None and not keep(i, ann):
            continue
        if not first_in_source(ann, seen.setdefault(i, set()), options):
            continue
        ann.annotator = names[i]
        groups.setdefault(ann.key, []).append(ann)
    return groups


def read_groups(
    texts: Sequence[str], formats: Sequence[str], options: ReadOptions
) -> tuple[dict[str, list[ImageAnnotation]], list[str]]:
    """Read every source; group the annotations by image key. Returns (groups, annotator names).

    Every source is read whole (``consistency`` compares all of them).
    """
    sources = resolve_sources(texts, formats)
    read = [list(get_reader(src.fmt)(src.path, options)) for src in sources]
    names = annotator_names(sources, [{a.annotator for a in anns} for anns in read])
    pairs = ((i, ann) for i, anns in enumerate(read) for ann in anns)
    return group_by_image(pairs, names, options), names
