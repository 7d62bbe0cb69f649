"""Read and write the Broden layout, bit-compatible with NetDissect-Lite's loader.

A Broden folder holds ``images/`` plus five kinds of CSV (see ``schemas/broden_*.json``):

- ``category.csv``  ``name,first,last,count,frequency``; row order is category order everywhere.
- ``label.csv``     ``number,name,category,frequency,coverage,syns``; ``category`` is ``cat(n)``
  or ``cat(n);cat2(m)``.
- ``c_<cat>.csv``   ``code,number,name,frequency,coverage``: dense per-category codes.
- ``index.csv``     ``image,split,ih,iw,sh,sw,<one column per category>``; a category cell holds
  ``;``-separated items: all digits = an image-level label number, else a label-plane PNG path.

The headers are those of the Table Schemas (:data:`INDEX_FIXED`, :data:`CATEGORY_HEADER`,
:data:`LABEL_HEADER`, :data:`CODE_HEADER` are read from them), so the files conceptkit writes and
the schemas it ships and validates with cannot disagree.

Label planes decode as ``R + 256 * G`` (blue ignored) at ``sh x sw``; 0 means unlabelled.
The ``torch`` dataset over a Broden folder is :class:`conceptkit.dissection.data.BrodenDataset`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from conceptkit import images, limits
from conceptkit.errors import LayoutError
from conceptkit.schemas import load as load_schema


def _schema_header(name: str) -> tuple[str, ...]:
    """The column names of the shipped Table Schema ``name``, in order."""
    return tuple(f["name"] for f in load_schema(name)["fields"])


#: the fixed first columns of index.csv (one column per category follows)
INDEX_FIXED = _schema_header("broden_index")
#: the header of category.csv
CATEGORY_HEADER = _schema_header("broden_category")
#: the header of label.csv
LABEL_HEADER = _schema_header("broden_label")
#: the header of c_<cat>.csv
CODE_HEADER = _schema_header("broden_codes")

_CAT_FIELD = re.compile(r"^([^();]+)\((\d+)\)$")


@dataclass(frozen=True)
class Category:
    """One row of ``category.csv``: first/last label number, label count, summed frequency."""

    name: str
    first: int
    last: int
    count: int
    frequency: int


@dataclass(frozen=True)
class Label:
    """One row of ``label.csv``. ``categories`` maps category -> images seen in it."""

    number: int
    name: str
    categories: tuple[tuple[str, int], ...]
    frequency: int
    coverage: float
    syns: str = ""

    @property
    def category_field(self) -> str:
        """The ``cat(n);cat2(m)`` text NetDissect-Lite parses."""
        return ";".join(f"{c}({n})" for c, n in self.categories)


@dataclass(frozen=True)
class CategoryCode:
    """One row of ``c_<cat>.csv``: dense code within the category -> global label number."""

    code: int
    number: int
    name: str
    frequency: int
    coverage: float


@dataclass
class IndexRow:
    """One row of ``index.csv``.

    ``planes[cat]`` lists label-plane PNG paths (relative to ``images/``);
    ``image_labels[cat]`` lists image-level label numbers that cover the whole image.
    """

    image: str
    split: str
    ih: int
    iw: int
    sh: int
    sw: int
    planes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    image_labels: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def cell(self, category: str) -> str:
        """The ``index.csv`` cell text for ``category`` (image-level numbers first, as Broden)."""
        items = [str(n) for n in self.image_labels.get(category, ())]
        items += list(self.planes.get(category, ()))
        return ";".join(items)


@dataclass
class BrodenMeta:
    """Everything in a Broden folder except ``index.csv`` rows and pixels."""

    root: Path
    categories: list[Category]
    labels: list[Label]
    codes: dict[str, list[CategoryCode]]
    index_categories: list[str]

    @property
    def category_names(self) -> list[str]:
        return [c.name for c in self.categories]

    def label_names(self) -> dict[int, str]:
        """Global label number -> name (0 is ``-``)."""
        names = {0: "-"}
        names.update({lab.number: lab.name for lab in self.labels})
        return names

    def primary_category(self) -> dict[int, str]:
        """Label number -> its primary category: the one where its coverage is largest.

        Ties go to the category listed first in ``category.csv`` (NetDissect-Lite's argmax).
        """
        order = self.category_names
        best: dict[int, tuple[float, int, str]] = {}
        for cat in order:
            for code in self.codes.get(cat, []):
                key = (code.coverage, -order.index(cat), cat)
                if code.number not in best or key[:2] > best[code.number][:2]:
                    best[code.number] = key
        return {num: v[2] for num, v in best.items()}


# ----------------------------------------------------------------------------- reading

_ASCII_INT = re.compile(r"^-?[0-9]+$")
_ASCII_FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_BOM = "\ufeff"
_MAX_DIGITS = 18  # longer label numbers are over any limit (and int() refuses > 4300 digits)


def _place(line: int, column: str | None = None) -> str:
    return f"line {line}" if column is None else f"line {line}, column {column}"


class CsvError(LayoutError):
    """A CSV file that cannot be read as CSV; ``line`` is where (None: the whole file)."""

    def __init__(self, message: str, file: Path, line: int | None = None, byte: int | None = None):
        place = None if line is None else _place(line) + ("" if byte is None else f", byte {byte}")
        super().__init__(message, file=file, place=place)
        self.line = line


def utf8_error_place(path: Path) -> tuple[int, int] | None:
    """(1-based line, 1-based byte in it) of the first bytes of ``path`` that are not UTF-8."""
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return line, exc.start + 1
    return None


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line, cells) of every row of a CSV: the header, then the non-empty rows.

    Every way the file can be unreadable is one :class:`CsvError` naming it and the line:
    missing, a folder, not UTF-8, a UTF-8 byte-order mark, a field over the ``csv_field_chars``
    limit, broken quoting. The line of a row is the last line it spans (``csv.reader.line_num``).
    """
    if path.is_dir():
        raise CsvError("is a folder, not a CSV file", path)
    if not path.is_file():
        raise CsvError("file is missing", path)
    csv.field_size_limit(limits.get("csv_field_chars"))
    line = 0
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            for cells in reader:
                if line == 0 and cells and cells[0].startswith(_BOM):
                    raise CsvError(
                        "starts with a UTF-8 byte-order mark; save it as UTF-8 without one "
                        "(NetDissect-Lite reads the mark as part of the first column's name)",
                        path,
                        1,
                    )
                first, line = line == 0, reader.line_num
                if cells or first:
                    yield line, cells
    except UnicodeDecodeError as exc:
        where = utf8_error_place(path)
        message = f"is not UTF-8 text ({exc.reason})"
        raise CsvError(message, path, *(where or (None, None))) from None
    except csv.Error as exc:
        raise CsvError(f"is not valid CSV ({exc})", path, line + 1) from None
    except OSError as exc:
        raise CsvError(f"cannot be read ({exc.strerror})", path) from None


def _open_csv(
    path: Path, expected: Sequence[str], exact: bool = True
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header of a CSV (checked against ``expected``) and its rows as (line, cells by column).

    ``exact=False``: the header must start with ``expected`` (index.csv). A row with another
    number of cells than the header is a LayoutError at its line.
    """
    rows = csv_rows(path)
    _, header = next(rows, (1, []))
    want = list(expected)
    got = header if exact else header[: len(want)]
    if got != want:
        raise LayoutError(
            f"header is {','.join(header)!r}, expected {','.join(want)!r}"
            + ("" if exact else " followed by one column per category"),
            file=path,
            place="line 1",
        )

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        for ln, cells in rows:
            if len(cells) != len(header):
                raise LayoutError(
                    f"has {len(cells)} cells, header has {len(header)}", file=path, place=_place(ln)
                )
            yield ln, dict(zip(header, cells))

    return header, records()


def _int(path: Path, line: int, column: str, text: str) -> int:
    """``text`` as an integer written in ASCII digits; LayoutError otherwise."""
    if not _ASCII_INT.match(text) or len(text) > _MAX_DIGITS + 1:
        raise LayoutError(
            f"expected an integer, found {text[:40]!r}", file=path, place=_place(line, column)
        )
    return int(text)


def _count(path: Path, line: int, column: str, text: str) -> int:
    """A non-negative integer (a frequency, a first/last label, a count)."""
    value = _int(path, line, column, text)
    if value < 0:
        raise LayoutError(f"{value} is negative", file=path, place=_place(line, column))
    return value


def _label_number(path: Path, line: int, column: str, text: str, minimum: int = 0) -> int:
    """A label number: at least ``minimum``, within the ``label_number`` limit."""
    value = _int(path, line, column, text)
    if value < minimum:
        raise LayoutError(
            f"label number {value} is below {minimum}", file=path, place=_place(line, column)
        )
    limits.check("label_number", value, file=path, place=_place(line, column), error=LayoutError)
    return value


def _size(path: Path, line: int, column: str, text: str) -> int:
    """An image or plane side: positive, within the ``image_side`` limit."""
    value = _int(path, line, column, text)
    if value < 1:
        raise LayoutError(
            f"{column} is {value}; sizes are positive", file=path, place=_place(line, column)
        )
    limits.check("image_side", value, file=path, place=_place(line, column), error=LayoutError)
    return value


def _float(path: Path, line: int, column: str, text: str) -> float:
    """A finite, non-negative number written in ASCII (no nan, inf, 1e999)."""
    value = float(text) if _ASCII_FLOAT.match(text) else math.nan
    if not math.isfinite(value) or value < 0:
        raise LayoutError(
            f"expected a finite non-negative number, found {text[:40]!r}",
            file=path,
            place=_place(line, column),
        )
    return value


def parse_category_field(text: str) -> tuple[tuple[str, int], ...]:
    """Parse ``cat(n);cat2(m)`` into ``(("cat", n), ("cat2", m))``; ValueError when malformed."""
    out = []
    for piece in text.split(";"):
        m = _CAT_FIELD.match(piece)
        if not m:
            raise ValueError(f"{piece!r} is not of the form cat(n)")
        out.append((m.group(1), int(m.group(2))))
    return tuple(out)


def _category_name(path: Path, line: int, text: str) -> str:
    """A category name that is safe in a file name (``c_<name>.csv`` stays in the folder)."""
    if not text or any(c in text for c in "/\\") or not text.isprintable():
        raise LayoutError(
            f"category name {text[:40]!r} is empty or holds a path separator or control character",
            file=path,
            place=_place(line, "name"),
        )
    return text


def read_categories(root: Path) -> list[Category]:
    path = root / "category.csv"
    _, rows = _open_csv(path, CATEGORY_HEADER)
    return [
        Category(
            name=_category_name(path, ln, r["name"]),
            first=_count(path, ln, "first", r["first"]),
            last=_count(path, ln, "last", r["last"]),
            count=_count(path, ln, "count", r["count"]),
            frequency=_count(path, ln, "frequency", r["frequency"]),
        )
        for ln, r in rows
    ]


def _label_categories(path: Path, ln: int, number: int, text: str) -> tuple[tuple[str, int], ...]:
    if number == 0:
        return ()
    try:
        return parse_category_field(text)
    except ValueError as exc:
        raise LayoutError(
            f"{exc}; NetDissect-Lite needs cat(n) or cat(n);cat2(m)",
            file=path,
            place=_place(ln, "category"),
        ) from None


def read_labels(root: Path) -> list[Label]:
    path = root / "label.csv"
    _, rows = _open_csv(path, LABEL_HEADER)
    labels = []
    for ln, r in rows:
        number = _label_number(path, ln, "number", r["number"])
        labels.append(
            Label(
                number=number,
                name=r["name"],
                categories=_label_categories(path, ln, number, r["category"]),
                frequency=_count(path, ln, "frequency", r["frequency"]),
                coverage=_float(path, ln, "coverage", r["coverage"]),
                syns=r["syns"],
            )
        )
    return labels


def read_codes(root: Path, category: str) -> list[CategoryCode]:
    path = root / f"c_{category}.csv"
    _, rows = _open_csv(path, CODE_HEADER)
    return [
        CategoryCode(
            code=_label_number(path, ln, "code", r["code"], minimum=1),
            number=_label_number(path, ln, "number", r["number"], minimum=1),
            name=r["name"],
            frequency=_count(path, ln, "frequency", r["frequency"]),
            coverage=_float(path, ln, "coverage", r["coverage"]),
        )
        for ln, r in rows
    ]


def index_header(root: Path) -> list[str]:
    """The header of ``index.csv``; LayoutError unless it starts with the fixed columns."""
    header, _ = _open_csv(root / "index.csv", INDEX_FIXED, exact=False)
    return header


def parse_index_cell(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Split an index cell into (plane paths, image-level label numbers), empty pieces dropped.

    An item of ASCII digits is a label number; ValueError for an item of other digits (``²``,
    ``١٢``: NetDissect-Lite's ``isdigit`` takes them for numbers that ``int`` then refuses) and
    for a number of more than 18 digits.
    """
    planes: list[str] = []
    numbers: list[int] = []
    for item in text.split(";"):
        if not item:
            continue
        if not item.isdigit():
            planes.append(item)
        elif not item.isascii():
            raise ValueError(f"item {item[:40]!r} has digits that are not ASCII 0-9")
        elif len(item) > _MAX_DIGITS:
            raise ValueError(f"label number {item[:40]}... has {len(item)} digits")
        else:
            numbers.append(int(item))
    return tuple(planes), tuple(numbers)


@lru_cache(maxsize=64)
def _real_folder(folder: str) -> str:
    """``os.path.realpath(folder)``, resolved once per folder (index.csv has a path per cell)."""
    return os.path.realpath(folder)


def outside_reason(images: Path, rel: str) -> str | None:
    """Why the path ``rel`` from index.csv leaves the folder ``images`` (None: it stays inside).

    Absolute paths (POSIX or Windows), paths climbing out with ``..``, and paths that resolve
    outside through a symbolic link are refused; ``images`` itself may be a link.
    """
    if "\x00" in rel:
        return "holds a NUL character"
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).anchor:
        return "is an absolute path"
    if posixpath.normpath(rel.replace("\\", "/")).split("/", 1)[0] == "..":
        return "climbs out of images/ with '..'"
    base = _real_folder(os.fspath(images))
    real = os.path.realpath(os.path.join(base, rel))
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        return "resolves outside images/ through a symbolic link"
    return None


def _inside(path: Path, images: Path, line: int, column: str, rel: str) -> str:
    why = outside_reason(images, rel)
    if why is not None:
        raise LayoutError(
            f"path {rel[:200]!r} {why}; paths in index.csv stay inside images/",
            file=path,
            place=_place(line, column),
        )
    return rel


def _index_row(
    path: Path, images: Path, ln: int, r: dict[str, str], cats: Sequence[str]
) -> IndexRow:
    """One checked row: image and plane paths inside ``images``, sizes and numbers in limits."""
    if not r["image"]:
        raise LayoutError("image is empty", file=path, place=_place(ln, "image"))
    row = IndexRow(
        image=_inside(path, images, ln, "image", r["image"]),
        split=r["split"],
        ih=_size(path, ln, "ih", r["ih"]),
        iw=_size(path, ln, "iw", r["iw"]),
        sh=_size(path, ln, "sh", r["sh"]),
        sw=_size(path, ln, "sw", r["sw"]),
    )
    for cols, h, w in (("ih,iw", row.ih, row.iw), ("sh,sw", row.sh, row.sw)):
        place = _place(ln, cols)
        limits.check("image_pixels", h * w, file=path, place=place, error=LayoutError)
    for cat in cats:
        try:
            planes, numbers = parse_index_cell(r[cat])
        except ValueError as exc:
            raise LayoutError(str(exc), file=path, place=_place(ln, cat)) from None
        for n in numbers:
            limits.check("label_number", n, file=path, place=_place(ln, cat), error=LayoutError)
        if planes:
            row.planes[cat] = tuple(_inside(path, images, ln, cat, p) for p in planes)
        if numbers:
            row.image_labels[cat] = numbers
    return row


def iter_index(root: str | Path) -> Iterator[tuple[int, IndexRow]]:
    """Stream ``index.csv`` as (line number, row) without holding the file in memory.

    Every row is checked before it is yielded (LayoutError naming index.csv and the line):
    paths stay inside ``images/``, sizes are positive and within the limits, numbers are
    ASCII integers.
    """
    root = Path(root)
    path = root / "index.csv"
    header, rows = _open_csv(path, INDEX_FIXED, exact=False)
    cats = header[len(INDEX_FIXED) :]
    images = root / "images"
    for ln, r in rows:
        yield ln, _index_row(path, images, ln, r, cats)


def read_meta(root: str | Path) -> BrodenMeta:
    """Read category.csv, label.csv, every c_<cat>.csv and the index header."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError("is not a folder", file=root)
    categories = read_categories(root)
    labels = read_labels(root)
    codes = {c.name: read_codes(root, c.name) for c in categories}
    index_cats = index_header(root)[len(INDEX_FIXED) :]
    return BrodenMeta(root, categories, labels, codes, index_cats)


def read_index(root: str | Path) -> list[IndexRow]:
    """All rows of ``index.csv`` (use :func:`iter_index` to stream)."""
    return [row for _, row in iter_index(root)]


# ----------------------------------------------------------------------------- pixels


def decode_plane(path: str | Path, *, what: str = "label plane") -> np.ndarray:
    """Decode a label-plane PNG into ``(H, W) int32`` label numbers (R + 256 * G).

    The declared size is checked against the ``image_side`` and ``image_pixels`` limits before
    anything is decoded; a plane that is over them or unreadable is a FormatError naming the
    file (``what`` names the plane in the message).
    """
    with images.open_image(Path(path), file=path, place=None, what=what) as im:
        if im.mode in ("L", "P", "I", "I;16"):
            return np.asarray(im, dtype=np.int32)
        arr = np.asarray(im.convert("RGB"))
    return arr[..., 0].astype(np.int32) + 256 * arr[..., 1].astype(np.int32)


def encode_plane(labels: np.ndarray) -> np.ndarray:
    """Encode ``(H, W)`` integer labels as ``(H, W, 3) uint8`` RGB with R + 256 * G, B = 0."""
    lab = np.asarray(labels)
    if lab.min(initial=0) < 0 or lab.max(initial=0) > 65535:
        raise ValueError("label numbers must lie in 0..65535")
    lab = lab.astype(np.int64)
    out = np.zeros(lab.shape + (3,), dtype=np.uint8)
    out[..., 0] = lab % 256
    out[..., 1] = lab // 256
    return out


def save_plane(labels: np.ndarray, path: str | Path) -> None:
    """Write a label plane as a PNG (deterministic bytes: no timestamps, fixed compression)."""
    from PIL import Image

    Image.fromarray(encode_plane(labels), "RGB").save(path, format="PNG", optimize=False)


# ----------------------------------------------------------------------------- statistics


@dataclass
class LabelStats:
    """Per (category, label) image frequency and coverage, accumulated image by image.

    ``coverage`` is the sum over images of the fraction of the image the label covers (an
    image-level label covers 1.0), as Broden's label.csv and c_<cat>.csv hold it.
    """

    frequency: dict[tuple[str, int], int] = field(default_factory=dict)
    coverage: dict[tuple[str, int], float] = field(default_factory=dict)

    def add_image(
        self,
        planes: Mapping[str, Sequence[np.ndarray]],
        image_labels: Mapping[str, Sequence[int]],
    ) -> None:
        """Add one image: ``planes[cat]`` are ``(sh, sw)`` int label arrays."""
        for cat, arrays in planes.items():
            seen: dict[int, float] = {}
            for arr in arrays:
                nums, counts = _value_counts(np.asarray(arr))
                size = float(np.asarray(arr).size)
                for n, c in zip(nums.tolist(), counts.tolist()):
                    if n:
                        seen[n] = seen.get(n, 0.0) + c / size
            for n, cov in seen.items():
                self._add(cat, n, cov)
        for cat, numbers in image_labels.items():
            for n in set(numbers):
                if n:
                    self._add(cat, n, 1.0)

    def _add(self, cat: str, number: int, cov: float) -> None:
        key = (cat, number)
        self.frequency[key] = self.frequency.get(key, 0) + 1
        self.coverage[key] = self.coverage.get(key, 0.0) + cov


def _value_counts(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``arr`` ascending and their counts (``np.unique``'s), by one
    ``bincount`` for a plane of small label numbers (no sort)."""
    flat = arr.reshape(-1)
    if flat.size and arr.dtype.kind in "ui":
        lo, hi = int(flat.min()), int(flat.max())
        if lo >= 0 and hi < 1 << 16:
            counts = np.bincount(flat, minlength=hi + 1)
            nums = np.flatnonzero(counts)
            return nums, counts[nums]
    return np.unique(arr, return_counts=True)


def build_tables(
    category_order: Sequence[str],
    names: dict[int, str],
    stats: LabelStats,
    syns: dict[int, str] | None = None,
) -> tuple[list[Category], list[Label], dict[str, list[CategoryCode]]]:
    """Derive category.csv, label.csv and c_<cat>.csv rows from label statistics.

    Labels keep their global numbers; within a category codes are dense, ordered by
    frequency (descending) then number, as Broden orders them.
    """
    syns = syns or {}
    per_cat: dict[str, list[tuple[int, int, float]]] = {c: [] for c in category_order}
    for (cat, num), freq in stats.frequency.items():
        per_cat.setdefault(cat, []).append((num, freq, stats.coverage[(cat, num)]))
    codes: dict[str, list[CategoryCode]] = {}
    for cat in category_order:
        entries = sorted(per_cat.get(cat, []), key=lambda e: (-e[1], e[0]))
        codes[cat] = [
            CategoryCode(code=i + 1, number=n, name=names[n], frequency=f, coverage=cv)
            for i, (n, f, cv) in enumerate(entries)
        ]
    categories = []
    for cat in category_order:
        nums = [c.number for c in codes[cat]]
        categories.append(
            Category(
                name=cat,
                first=min(nums) if nums else 0,
                last=max(nums) if nums else 0,
                count=len(nums),
                frequency=sum(c.frequency for c in codes[cat]),
            )
        )
    labels = []
    for num in sorted({n for (_, n) in stats.frequency}):
        cats = tuple(
            (cat, stats.frequency[(cat, num)])
            for cat in category_order
            if (cat, num) in stats.frequency
        )
        labels.append(
            Label(
                number=num,
                name=names[num],
                categories=cats,
                frequency=sum(f for _, f in cats),
                coverage=sum(stats.coverage[(cat, num)] for cat, _ in cats),
                syns=syns.get(num, ""),
            )
        )
    return categories, labels, codes


# ----------------------------------------------------------------------------- writing


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def _fmt_float(x: float) -> str:
    return f"{x:f}"


def category_csv(categories: Sequence[Category]) -> str:
    return _csv_text(
        CATEGORY_HEADER, ((c.name, c.first, c.last, c.count, c.frequency) for c in categories)
    )


def label_csv(labels: Sequence[Label]) -> str:
    return _csv_text(
        LABEL_HEADER,
        (
            (
                lab.number,
                lab.name,
                lab.category_field,
                lab.frequency,
                _fmt_float(lab.coverage),
                lab.syns,
            )
            for lab in labels
        ),
    )


def codes_csv(codes: Sequence[CategoryCode]) -> str:
    return _csv_text(
        CODE_HEADER,
        ((c.code, c.number, c.name, c.frequency, _fmt_float(c.coverage)) for c in codes),
    )


def index_csv_header(categories: Sequence[str]) -> str:
    return _csv_text(list(INDEX_FIXED) + list(categories), [])


def index_csv_row(row: IndexRow, categories: Sequence[str]) -> str:
    return _csv_text(
        [],
        [
            [row.image, row.split, row.ih, row.iw, row.sh, row.sw]
            + [row.cell(c) for c in categories]
        ],
    ).lstrip("\n")


def write_tables(
    root: str | Path,
    categories: Sequence[Category],
    labels: Sequence[Label],
    codes: dict[str, list[CategoryCode]],
) -> None:
    """Write category.csv, label.csv and one c_<cat>.csv per category into ``root``."""
    root = Path(root)
    (root / "category.csv").write_text(category_csv(categories), encoding="utf-8")
    (root / "label.csv").write_text(label_csv(labels), encoding="utf-8")
    for cat in categories:
        (root / f"c_{cat.name}.csv").write_text(
            codes_csv(codes.get(cat.name, [])), encoding="utf-8"
        )


def write_index(root: str | Path, rows: Iterable[IndexRow], categories: Sequence[str]) -> None:
    """Write ``index.csv`` (streams ``rows``)."""
    with open(Path(root) / "index.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write(index_csv_header(categories))
        for row in rows:
            fh.write(index_csv_row(row, categories))
