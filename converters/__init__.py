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
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from conceptkit.converters import _parallel

from conceptkit import limits
from conceptkit.annotations import ImageAnnotation
from conceptkit.errors import FormatError, UsageError

T = TypeVar("T")


def _ignore(message: str) -> None:
    """The default ``warn``: drop the message."""


@dataclass
class ReadOptions:
    """What every reader is told.

    ``keep_going``: skip images with errors (report them through ``warn``) instead of raising.
    ``warn``: called with one line per warning (file and place first).
    ``check_paths``: refuse image paths that lead outside ``src`` (``../``, absolute).
    ``extra``: format-specific options (free form, documented by the reader).
    ``workers``: processes :func:`each_record` may build records in (1 = in this process; the
    records and their order are the same whatever the number).
    """

    keep_going: bool = False
    warn: Callable[[str], None] = _ignore
    check_paths: bool = True
    extra: dict[str, object] = field(default_factory=dict)
    workers: int = 1


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


def export_files(src: Path, patterns: tuple[str, ...], what: str, expected: str) -> list[Path]:
    """The export files at ``src``: ``src`` itself when it is a file, else, in the folder ``src``,
    the sorted files matching the first of ``patterns`` that matches any (each checked by
    :func:`within`).

    FormatError ``no <what> here`` for a folder without one, ``no such file or folder (expected
    <expected>)`` when ``src`` is neither.
    """
    if src.is_file():
        return [src]
    if src.is_dir():
        for pattern in patterns:
            found = sorted(p for p in src.glob(pattern) if p.is_file())
            if found:
                return within(src, found)
        raise FormatError(f"no {what} here", src)
    raise FormatError(f"no such file or folder (expected {expected})", src)


def each_record(
    items: Iterable[T],
    build: Callable[[T], ImageAnnotation | None],
    options: ReadOptions,
    skipped: str,
    annotator: str | None = None,
) -> Iterator[ImageAnnotation]:
    """``build(item)`` for each of ``items``, the records that are not None.

    A FormatError from ``build`` propagates, or under ``options.keep_going`` is reported as
    ``"<error><skipped>"`` through ``options.warn`` and the item skipped (errors raised while
    iterating ``items`` always propagate). Each record gets ``annotator`` when it is given.
    With ``options.workers`` > 1 the records are built in that many worker processes
    (:mod:`conceptkit.converters._parallel`): the same records, warnings and errors, in order.
    """
    for record, error in _built(items, build, options):
        if error is not None:
            if not options.keep_going:
                raise error
            options.warn(f"{error}{skipped}")
            continue
        if record is None:
            continue
        if annotator is not None:
            record.annotator = annotator
        yield record


#: the fewest items :func:`each_record` builds in worker processes (fewer are not worth starting
#: them: a reader that calls it once per file of one image builds in this process)
PARALLEL_FROM = 16


def _built(
    items: Iterable[T], build: Callable[[T], ImageAnnotation | None], options: ReadOptions
) -> Iterator[tuple[ImageAnnotation | None, FormatError | None]]:
    """(record, None) or (None, its FormatError) for each item, in order."""
    it = iter(items)
    head: list[T] = []
    failure: Exception | None = None
    if options.workers > 1 and _parallel.can_fork():
        try:
            head.extend(itertools.islice(it, PARALLEL_FROM))
        except Exception as exc:  # raised once the items before it are built
            failure = exc
        if failure is None and len(head) == PARALLEL_FROM:
            many = itertools.chain(head, it)
            for outcome in _parallel.outcomes(many, build, options, options.workers):
                for line in outcome.warnings:
                    options.warn(line)
                yield outcome.record, outcome.error
            return
    for item in itertools.chain(head, () if failure else it):
        try:
            record = build(item)
        except FormatError as exc:
            yield None, exc
            continue
        yield record, None
    if failure is not None:
        raise failure


def line_records(
    path: Path,
    what: str,
    build: Callable[[dict[str, Any], Path, str], ImageAnnotation],
    options: ReadOptions,
) -> Iterator[ImageAnnotation]:
    """``build(line, path, "line N")`` for each line of the JSON Lines file ``path`` (an object).

    Through :func:`each_record`: under ``keep_going`` a bad line is skipped (``; line skipped``);
    each record's annotator is the name of the folder holding ``path``.
    """

    def one(item: tuple[int, object]) -> ImageAnnotation:
        place = f"line {item[0]}"
        return build(mapping(item[1], path, place), path, place)

    return each_record(json_lines(path, what), one, options, "; line skipped", path.parent.name)


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


# ----------------------------------------------------------------------------- shared by readers


def number(value: object, file: str | Path, place: str) -> float:
    """``value`` as a float: a JSON number (not a bool), finite; else FormatError at ``place``."""
    if type(value) not in (int, float):
        raise FormatError(f"expected a number, found {_kind(value)}", file, place)
    out = float(value)  # type: ignore[arg-type]
    if not np.isfinite(out):
        raise FormatError("a number is not finite (NaN or infinity)", file, place)
    return out


def integer(value: object, file: str | Path, place: str) -> int:
    """``value`` as an int: a JSON integer (or a float with no fraction); else FormatError."""
    out = number(value, file, place)
    if out != int(out):
        raise FormatError(f"expected a whole number, found {value!r}", file, place)
    return int(out)


def text(value: object, file: str | Path, place: str) -> str:
    """``value`` when it is a string; else FormatError at ``place``."""
    if not isinstance(value, str):
        raise FormatError(f"expected a string, found {_kind(value)}", file, place)
    return value


def mapping(value: object, file: str | Path, place: str) -> dict[str, object]:
    """``value`` when it is a JSON object; else FormatError at ``place``."""
    if not isinstance(value, dict):
        raise FormatError(f"expected an object, found {_kind(value)}", file, place)
    return value


def array(value: object, file: str | Path, place: str) -> list[object]:
    """``value`` when it is a JSON list; else FormatError at ``place``."""
    if not isinstance(value, list):
        raise FormatError(f"expected a list, found {_kind(value)}", file, place)
    return value


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    return names.get(type(value), f"{type(value).__name__} {str(value)[:20]!r}")


def base_name(reference: str, file: str | Path, place: str) -> str:
    """The file name at the end of an image reference (a URL, ``s3://``, ``file:`` or a path).

    Query strings and fragments are dropped and ``%xx`` escapes decoded. Only the last part is
    kept, so the name cannot lead anywhere; a name that is empty, ``.``/``..`` or holds a NUL
    is a FormatError.
    """
    from urllib.parse import unquote

    ref = reference.split("?", 1)[0].split("#", 1)[0]
    name = unquote(ref).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\0" in name:
        raise FormatError(f"image reference {reference[:80]!r} names no file", file, place)
    return name


def local_image(root: Path, name: str, file: str | Path, place: str) -> Path:
    """Where the image file ``name`` (a bare file name) is under the folder ``root``.

    The first that exists of ``root/name``, ``root/images/name``, ``root/img/name``; when none
    does, ``root/name`` (the pipeline reports the missing image). A symbolic link leading out of
    ``root`` is a FormatError.
    """
    candidates = [root / name, root / "images" / name, root / "img" / name]
    for path in candidates:
        if path.is_file():
            if not inside(root, path):
                raise FormatError(f"image {name!r} is a symbolic link leading outside", file, place)
            return path
    return candidates[0]


def image_size(path: Path, file: str | Path, place: str) -> tuple[int, int]:
    """``(width, height)`` of the image at ``path`` as its header says (upright, after EXIF).

    Nothing is decoded; the size is checked against the limits. For formats that do not
    record the size (VIA, Labelbox v1).
    """
    from conceptkit import images

    with images.open_image(path, file=file, place=place, what=f"image {path.name!r}") as im:
        return images.upright_size(im)  # type: ignore[no-any-return]


def read_mask_png(source: Path | bytes, file: str | Path, place: str, what: str) -> np.ndarray:
    """Decode a mask or label PNG to ``(H, W, 4) uint8`` RGBA (its size checked first).

    Palette, grey and RGB images are converted to RGBA (alpha 255 where the file has none).
    """
    from conceptkit import images

    with images.open_image(source, file=file, place=place, what=what) as im:
        rgba = np.asarray(im.convert("RGBA"))
    return rgba


def hex_colour(value: str, file: str | Path, place: str) -> tuple[int, int, int]:
    """``#rrggbb`` (or ``rrggbb``) -> (r, g, b); FormatError otherwise."""
    digits = value[1:] if value.startswith("#") else value
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise FormatError(f"colour {value[:20]!r} is not #rrggbb", file, place)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def tight_mask(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """``(h, w) bool`` -> (the patch inside its pixels' bounding box, (x0, y0)); None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    return np.ascontiguousarray(mask[y0 : y1 + 1, x0 : x1 + 1]), (x0, y0)


def json_lines(path: Path, what: str) -> Iterator[tuple[int, object]]:
    """``(line number, parsed value)`` of each non-blank line of the JSON Lines file ``path``.

    The file goes through the same checks as :func:`jsonfile.load` (size, encoding); a line that
    is not JSON, or uses ``NaN``/``Infinity``, is a FormatError at ``line N``.
    """
    import json

    from conceptkit import jsonfile

    raw = jsonfile._read(path, what)
    body = jsonfile._text(raw, path)
    for n, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_constant=jsonfile._refuse_constant)
        except jsonfile._Constant as exc:
            raise FormatError(
                f"malformed JSON: {exc} is not a JSON number", path, f"line {n}"
            ) from None
        except (ValueError, RecursionError) as exc:
            reason = getattr(exc, "msg", "nested too deeply or an integer too long")
            raise FormatError(f"malformed JSON: {reason}", path, f"line {n}") from None
        limits.check("json_depth", jsonfile.depth(line.encode()), file=path, place=f"line {n}")
        yield n, value


def peek(path: Path, size: int = 1 << 20) -> bytes:
    """The first ``size`` bytes of ``path`` (empty when it cannot be read), for recognising formats."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


# ----------------------------------------------------------------------------- format detection

_JSON_MARKS: tuple[tuple[str, tuple[bytes, ...], str], ...] = (
    ("via", (b'"_via_img_metadata"',), "a VIA project (_via_img_metadata)"),
    ("via", (b'"shape_attributes"', b'"regions"'), "VIA regions with shape_attributes"),
    ("vott", (b'"asset"', b'"regions"'), "a VoTT asset with regions"),
    ("sagemaker", (b'"annotatedResult"',), "a crowd-html worker output (annotatedResult)"),
    ("labelbox", (b'"External ID"',), "Labelbox v1 rows (External ID)"),
    ("labelbox", (b'"data_row"', b'"projects"'), "Labelbox v2 rows (data_row, projects)"),
    ("labelstudio", (b'"from_name"', b'"to_name"'), "Label Studio results (from_name, to_name)"),
    ("labelstudio", (b'"completions"', b'"data"'), "Label Studio tasks (completions)"),
    ("labelme", (b'"shapes"',), "a LabelMe JSON (shapes)"),
)
_LINE_MARKS: tuple[tuple[str, bytes, str], ...] = (
    ("vertex", b'"imageGcsUri"', "Vertex AI lines (imageGcsUri)"),
    ("vertex", b'"image_gcs_uri"', "Vertex AI lines (image_gcs_uri)"),
    ("azure", b'"image_url"', "Azure ML lines (image_url, image_details)"),
    ("sagemaker", b'"source-ref"', "a Ground Truth manifest (source-ref)"),
    ("labelbox", b'"data_row"', "Labelbox NDJSON rows (data_row)"),
)
#: dataset folders recognised by what they hold: (format, paths that must exist, why)
_FOLDER_MARKS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("cvat", ("annotations.xml",), "annotations.xml (CVAT for images)"),
    ("cityscapes", ("gtFine",), "a gtFine/ folder (Cityscapes)"),
    ("supervisely", ("meta.json",), "meta.json (Supervisely project)"),
    ("voc", ("SegmentationClass",), "SegmentationClass/ (Pascal VOC)"),
    ("voc", ("ImageSets/Segmentation",), "ImageSets/Segmentation/ (Pascal VOC)"),
    ("ade20k", ("objectInfo150.csv",), "objectInfo150.csv (ADE20K)"),
    ("ade20k", ("index_ade20k.pkl",), "index_ade20k.pkl (ADE20K)"),
    ("camvid", ("label_colors.txt",), "label_colors.txt (CamVid)"),
    ("camvid", ("class_dict.csv",), "class_dict.csv (CamVid)"),
)


def _json_format(path: Path) -> tuple[str, str] | None:
    head = peek(path)
    if path.name.endswith("-asset.json") or path.suffix.lower() == ".vott":
        return "vott", f"{path.name} is a VoTT asset/project file"
    if all(re.search(rb'"%s"\s*:' % k, head) for k in (b"images", b"annotations")):
        if re.search(rb'"(image_id|category_id)"\s*:\s*"', head):
            return "azure", f"{path.name}: COCO keys with ids written as strings (Azure ML)"
        return "coco", f"{path.name}: COCO keys (images, annotations)"
    for fmt, marks, why in _JSON_MARKS:
        if all(m in head for m in marks):
            return fmt, f"{path.name}: {why}"
    return None


def _lines_format(path: Path) -> tuple[str, str] | None:
    first = peek(path, 1 << 16).lstrip().split(b"\n", 1)[0]
    for fmt, mark, why in _LINE_MARKS:
        if mark in first:
            return fmt, f"{path.name}: {why}"
    return None


def _file_format(path: Path) -> tuple[str, str] | None:
    suffix = path.suffix.lower()
    if suffix == ".zip" or path.name == "annotations.xml":
        return "cvat", f"{path.name}: a CVAT export"
    if suffix == ".manifest":
        return "sagemaker", f"{path.name}: a Ground Truth manifest"
    if suffix in (".jsonl", ".ndjson"):
        found = _lines_format(path)
        if found is None and suffix == ".ndjson":
            return "labelbox", f"{path.name}: NDJSON (Labelbox)"
        return found
    if suffix in (".json", ".vott"):
        return _json_format(path)
    if suffix == ".xml":
        root = re.search(
            rb"<([A-Za-z_][\w.-]*)[\s>]",
            re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", peek(path, 4096), flags=re.S),
        )
        if root is not None and root.group(1) == b"annotations":
            return "cvat", f"{path.name}: XML root <annotations> (CVAT)"
        return (
            "labelme",
            f"{path.name}: XML root <{(root.group(1) if root else b'?').decode()}> (LabelMe XML)",
        )
    return None


def _folder_format(path: Path) -> tuple[str, str] | None:
    for fmt, marks, why in _FOLDER_MARKS:
        if all((path / m).exists() for m in marks):
            return fmt, f"{path.name}/ holds {why}"
    files = sorted(
        p
        for pattern in ("*.manifest", "*-asset.json", "*.vott", "*.jsonl", "*.ndjson", "*.json")
        for p in path.glob(pattern)
        if p.is_file() and not p.name.startswith(".")
    )
    files += sorted(p for p in (path / "annotations").glob("*.json") if p.is_file())
    for p in files[:20]:
        found = _file_format(p)
        if found is not None:
            return found
    nested = sorted(p for p in path.rglob("*.json") if not p.name.startswith("."))[:5]
    for p in nested:
        found = _json_format(p)
        if found is not None:
            return found
    if any(path.rglob("*.xml")):
        return "labelme", f"{path.name}/ holds .xml files (LabelMe XML)"
    return None


def detection(src: Path) -> tuple[str, str]:
    """(format, why) for the export at ``src``, from its contents; UsageError when unclear.

    Files by kind and a peek at their first bytes (JSON keys, the first JSON line, the XML root);
    folders by what they hold (``annotations.xml``, ``gtFine/``, ``meta.json``, ...) and then by
    their files. The reason names the file and what was recognised.
    """
    src = Path(src)
    if not src.exists():
        raise UsageError("does not exist", file=src)
    found = _file_format(src) if src.is_file() else _folder_format(src)
    if found is None:
        raise UsageError(
            "cannot tell the export format",
            file=src,
            hint=f"write FORMAT:PATH with FORMAT one of {', '.join(sorted(READERS))}",
        )
    return found


def detect(src: Path) -> str:
    """The format name of the export at ``src`` (see :func:`detection`)."""
    return detection(src)[0]
