"""Shared pieces of the readers of segmentation datasets (VOC, ADE20K, Cityscapes, CamVid).

These datasets store labels as pixels: an index PNG (one class or instance number per pixel) or
a colour PNG (one colour per class). Their pixels are exact by construction, so a reader turns
every distinct value into one ``mask`` :class:`~conceptkit.annotations.Shape` holding the tight
``bool`` patch around its pixels; nothing is rasterised.

- :func:`read_plane` opens a label PNG through :func:`conceptkit.images.open_image` (its declared
  size checked against the limits, and against the image's size, before any pixel is decoded)
  and returns its raw values in their own type: palette indices for mode ``P`` (never converted
  to RGB) as ``uint8``, 16-bit values for ``I;16`` as ``uint16``, ``(H, W, 3) uint8`` for colour
  PNGs (no wider copy: the planes of a 640x480 image stay a few hundred kB).
- :func:`regions` splits an ``(H, W)`` integer plane into the patches of its values: the plane
  is cut into runs (stretches of one value within a row), and one radix sort of the runs'
  value ranks gives each value's pixel count and tight box (:func:`boxes`), so the cost is one
  pass over the pixels plus the runs, whatever the number of values.
- :func:`colour_codes` packs RGB into one integer per pixel (``R << 16 | G << 8 | B``) and
  :func:`lookup` maps values through a table, refusing a value the table lacks with the first
  pixel that has it.
- :func:`read_text` reads a small text file (list, table) within the limit ``file_bytes``.
- :func:`files_under` lists files under SRC in sorted order, each checked to lie inside it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from conceptkit.converters import inside, within

from conceptkit import images, limits
from conceptkit.annotations import Shape
from conceptkit.errors import FormatError


@dataclass
class Region:
    """The pixels of one value of a plane: ``mask`` ``(h, w) bool`` with top-left ``origin``
    ``(x0, y0)``; ``count`` = its number of pixels."""

    value: int
    mask: np.ndarray
    origin: tuple[int, int]
    count: int


def read_plane(
    path: Path,
    *,
    file: Path,
    place: str,
    what: str,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The raw values of the label PNG ``path``: ``(H, W)`` integers (``uint8`` for ``P``, ``L``
    and ``1``, ``uint16`` for ``I;16``, ``int32`` for ``I``; native byte order), or ``(H, W, 3)
    uint8`` for RGB. Possibly read-only.

    ``size`` ``(width, height)``: the size the plane must have (checked on the header, before
    decoding). Palette PNGs give their indices; RGBA drops alpha; ``LA`` drops alpha.
    """
    return _read(path, file, place, what, size, codes=False)[0]


def read_labels(
    path: Path,
    *,
    file: Path,
    place: str,
    what: str,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, bool]:
    """(values, colour) of the label PNG ``path``: an index PNG's raw values as
    :func:`read_plane` gives them and False, or an RGB(A) PNG's ``(H, W) uint32`` colour codes
    (:func:`colour_codes`, read straight from Pillow's 4-byte pixels) and True."""
    return _read(path, file, place, what, size, codes=True)


def _read(
    path: Path, file: Path, place: str, what: str, size: tuple[int, int] | None, codes: bool
) -> tuple[np.ndarray, bool]:
    with images.open_image(path, file=file, place=place, what=what) as im:
        if size is not None and im.size != size:
            raise FormatError(
                f"{what} is {im.size[0]}x{im.size[1]}, the image is {size[0]}x{size[1]}",
                file,
                place,
            )
        mode = im.mode
        if mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
            arr = np.asarray(im)
        elif mode in ("RGB", "RGBA"):
            rgb = im.convert("RGB") if mode == "RGBA" else im
            if codes:
                return _codes(rgb), True
            arr = np.asarray(rgb)
        elif mode == "LA":
            arr = np.asarray(im)[..., 0]
        else:
            raise FormatError(
                f"{what} has pixel mode {mode!r}, expected an index or RGB PNG", file, place
            )
    if arr.ndim == 2:
        if arr.dtype == np.bool_:
            return arr.astype(np.uint8), False  # Pillow stores a set bit as 255: values 0 and 1
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("=")), False
    return np.ascontiguousarray(arr[..., :3], dtype=np.uint8), False


def _codes(rgb: Any) -> np.ndarray:
    """``(H, W) uint32`` ``R << 16 | G << 8 | B`` of an RGB PIL image: its pixels as 4 bytes
    (R, G, B, pad) read as one big-endian number, shifted past the pad byte."""
    width, height = rgb.size
    raw = np.frombuffer(rgb.tobytes("raw", "RGBX"), dtype=">u4").reshape(height, width)
    out = raw.astype(np.uint32)
    out >>= 8
    return out


def plane_size(path: Path, *, file: Path, place: str, what: str) -> tuple[int, int]:
    """``(width, height)`` of the PNG ``path`` from its header (limits checked)."""
    with images.open_image(path, file=file, place=place, what=what) as im:
        return (int(im.size[0]), int(im.size[1]))


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``(H, W) uint32`` ``R << 16 | G << 8 | B``."""
    return pack_bytes(rgb[..., 0], rgb[..., 1], rgb[..., 2])


def pack_bytes(high: np.ndarray, mid: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Three ``uint8`` arrays of one shape -> ``uint32`` ``high << 16 | mid << 8 | low``."""
    out = high.astype(np.uint32)
    out <<= 16
    out |= mid.astype(np.uint32) << 8
    out |= low
    return out


def describe_colour(code: int) -> str:
    """``(R, G, B)`` of a packed colour, for messages."""
    return f"({code >> 16}, {(code >> 8) & 255}, {code & 255})"


def lookup(
    plane: np.ndarray,
    table: dict[int, int],
    *,
    file: Path,
    place: str,
    what: str,
    describe: bool = False,
) -> np.ndarray:
    """``plane`` ``(H, W)`` integers with every value replaced by ``table[value]``: ``(H, W)
    int16`` (``int64`` when a value lies outside 0..2**24 - 1).

    A value not in the table raises FormatError naming it (as a colour when ``describe``) and
    the first pixel (row, column) holding it. The table's values must fit in 15 bits.
    """
    top = int(plane.max()) if plane.size else -1
    if plane.size and int(plane.min()) >= 0 and top < 1 << 24:
        # a look-up table over the table's keys (at most 2**24 entries of 2 bytes), made once
        # per table (every image of a dataset shares it): one gather
        lut = _lookup_table(tuple(table.items()))
        if top < len(lut):
            mapped = lut[plane]
        else:  # values past the table's last key: not in it
            inside = plane < len(lut)
            mapped = np.where(inside, lut[np.where(inside, plane, 0)], -1).astype(np.int16)
        if int(mapped.min()) < 0:
            first = int(np.flatnonzero(mapped.reshape(-1) < 0)[0])
            _refuse(plane, int(plane.reshape(-1)[first]), file, place, what, describe)
        return mapped
    values, inverse = np.unique(plane, return_inverse=True)
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values.tolist()):
        if v not in table:
            _refuse(plane, v, file, place, what, describe)
        out[i] = table[v]
    return out[inverse].reshape(plane.shape)


@functools.lru_cache(maxsize=2)
def _lookup_table(items: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``(K + 1,) int16``: entry ``key`` holds ``table[key]``, -1 where the table has none;
    K = the largest key in 0..2**24 - 1 (keys outside that range are left out). Read-only."""
    keys = [k for k, _ in items if 0 <= k < 1 << 24]
    lut = np.full(max(keys, default=0) + 1, -1, dtype=np.int16)
    for key, value in items:
        if 0 <= key < 1 << 24:
            lut[key] = value
    lut.flags.writeable = False
    return lut


def _refuse(
    plane: np.ndarray, value: int, file: Path, place: str, what: str, describe: bool
) -> None:
    row, col = (int(c[0]) for c in np.nonzero(plane == value))
    shown = describe_colour(value) if describe else str(value)
    raise FormatError(
        f"{what} has the value {shown} at pixel (row {row}, column {col}), "
        "which its label table does not name",
        file,
        place,
    )


#: the widest value range ranked through a look-up table (4 Mi entries, at most 32 MiB); a
#: plane whose values span more (packed colours, say) is ranked by a sort
_TABLE_RANGE = 1 << 22


def _ranked(flat: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """(distinct values ascending, how often each occurs, ``(N,)`` rank of each item's value).

    Ranks are the narrowest unsigned type that holds them, so that a stable sort of them is a
    radix sort. The values are ranked through a table over their range when that range is
    small, both absolutely and against the number of items; else by a sort.
    """
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo < min(_TABLE_RANGE, 16 * flat.size + 4096):
        shifted = flat.astype(np.intp)  # the type bincount counts in; no wrap-around below
        if lo:
            shifted -= lo
        counts = np.bincount(shifted)
        present = np.flatnonzero(counts)
        dtype = _rank_type(len(present))
        table = np.zeros(len(counts), dtype=dtype)
        table[present] = np.arange(len(present), dtype=dtype)
        return (present + lo).tolist(), counts[present].tolist(), table[shifted]
    values = np.unique(flat)
    ranks = np.searchsorted(values, flat).astype(_rank_type(len(values)))
    return values.tolist(), np.bincount(ranks, minlength=len(values)).tolist(), ranks


def _rank_type(k: int) -> type[np.unsignedinteger[Any]] | type[np.int64]:
    """The narrowest type holding ranks 0..k - 1 (a radix sort for 8 and 16 bits)."""
    return np.uint8 if k <= 1 << 8 else np.uint16 if k <= 1 << 16 else np.int64


@dataclass
class Boxes:
    """The distinct values of a plane, ascending, with per value its pixel ``count`` and its
    tight box ``(x0, y0, x1, y1)`` (inclusive)."""

    values: list[int]
    counts: list[int]
    boxes: list[tuple[int, int, int, int]]

    def take(self, order: list[int]) -> Boxes:
        """These values (with their counts and boxes) in the order ``order`` (their indices)."""
        return Boxes(
            [self.values[k] for k in order],
            [self.counts[k] for k in order],
            [self.boxes[k] for k in order],
        )


def boxes(plane: np.ndarray) -> Boxes:
    """The :class:`Boxes` of an ``(H, W)`` integer plane (at least one pixel).

    The plane is cut into runs, one wherever the value changes or a row starts (reading
    order). A stable radix sort of the runs' value ranks groups each value's runs in reading
    order: its first and last run give its rows, the least start and greatest end among them
    its columns, the sum of their lengths its pixel count.
    """
    height, width = plane.shape
    flat = plane.reshape(-1)
    change = flat[1:] != flat[:-1]
    change[width - 1 :: width] = True  # the next pixel starts a row
    starts = np.flatnonzero(change)
    starts += 1
    starts = np.concatenate((np.zeros(1, dtype=starts.dtype), starts))
    lengths = np.diff(starts, append=flat.size)
    values, runs, ranks = _ranked(flat[starts])
    order = np.argsort(ranks, kind="stable")
    last = np.cumsum(runs)
    first = last - np.asarray(runs, dtype=last.dtype)
    last -= 1
    starts, lengths = starts[order], lengths[order]
    rows, left = np.divmod(starts, width)
    right = left + lengths - 1
    counts = np.add.reduceat(lengths, first).tolist()
    x0 = np.minimum.reduceat(left, first).tolist()
    x1 = np.maximum.reduceat(right, first).tolist()
    y0, y1 = rows[first].tolist(), rows[last].tolist()
    return Boxes(values, counts, list(zip(x0, y0, x1, y1)))


def regions(plane: np.ndarray, skip: set[int], found: Boxes | None = None) -> Iterator[Region]:
    """The region of every distinct value of ``plane`` ``(H, W)`` not in ``skip``, by value.

    Each value's tight box comes from :func:`boxes` (``found``: already computed for this
    plane), its patch is the comparison of the plane with the value over that box.
    """
    if not plane.size:
        return
    found = boxes(plane) if found is None else found
    for value, count, (x0, y0, x1, y1) in zip(found.values, found.counts, found.boxes):
        if value not in skip:
            yield Region(value, plane[y0 : y1 + 1, x0 : x1 + 1] == value, (x0, y0), count)


def mask_shape(
    label: str,
    region: Region,
    *,
    order: int,
    place: str,
    instance: str | None = None,
    category: str | None = None,
    z: int = 0,
) -> Shape:
    """A ``mask`` Shape of ``region`` (pixels exact: the convention does not apply)."""
    return Shape(
        label=label,
        kind="mask",
        mask=region.mask,
        origin=region.origin,
        instance=instance,
        order=order,
        place=place,
        category=category,
        z=z,
    )


def read_text(path: Path, *, what: str) -> list[str]:
    """The lines of the UTF-8 text file ``path`` (size within ``file_bytes``; BOM dropped)."""
    try:
        if not path.is_file():
            raise FormatError(f"is not a regular file, expected the {what}", path)
        limits.check("file_bytes", path.stat().st_size, file=path, what=f"the {what}")
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror or exc})", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    if "\x00" in text:
        raise FormatError(
            f"holds a NUL character (line {text[: text.index(chr(0))].count(chr(10)) + 1})", path
        )
    return text.splitlines()


def files_under(src: Path, pattern: str) -> list[Path]:
    """Regular files under ``src`` matching the glob ``pattern`` (recursive), sorted by their
    path relative to ``src``; a symbolic link leading outside ``src`` is a FormatError."""
    found = [p for p in src.rglob(pattern) if p.is_file() and not p.name.startswith(".")]
    return within(src, sorted(found, key=lambda p: p.relative_to(src).as_posix()))


def image_in(src: Path, candidates: list[Path], file: Path, place: str) -> Path:
    """The first of ``candidates`` that exists (else the first), checked to lie inside ``src``."""
    chosen = next((c for c in candidates if c.is_file()), candidates[0])
    if not inside(src, chosen):
        raise FormatError(f"image {chosen.name!r} points outside SRC ({src})", file, place)
    return chosen
