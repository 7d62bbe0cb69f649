"""Shared pieces of the readers of segmentation datasets (VOC, ADE20K, Cityscapes, CamVid).

These datasets store labels as pixels: an index PNG (one class or instance number per pixel) or
a colour PNG (one colour per class). Their pixels are exact by construction, so a reader turns
every distinct value into one ``mask`` :class:`~conceptkit.annotations.Shape` holding the tight
``bool`` patch around its pixels; nothing is rasterised.

- :func:`read_plane` opens a label PNG through :func:`conceptkit.images.open_image` (its declared
  size checked against the limits, and against the image's size, before any pixel is decoded)
  and returns its raw values: palette indices for mode ``P`` (never converted to RGB), 16-bit
  values for ``I;16``, ``(H, W, 3) uint8`` for colour PNGs.
- :func:`regions` splits an ``(H, W)`` integer plane into the patches of its values (one
  comparison per value, or one radix sort of the values' ranks when there are many).
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
    """The raw values of the label PNG ``path``: ``(H, W)`` int64, or ``(H, W, 3) uint8`` for RGB.

    ``size`` ``(width, height)``: the size the plane must have (checked on the header, before
    decoding). Palette PNGs give their indices; RGBA drops alpha; ``LA`` drops alpha.
    """
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
            arr = np.asarray(im.convert("RGB") if mode == "RGBA" else im)
        elif mode == "LA":
            arr = np.asarray(im)[..., 0]
        else:
            raise FormatError(
                f"{what} has pixel mode {mode!r}, expected an index or RGB PNG", file, place
            )
    if arr.ndim == 2:
        return arr.astype(np.int64)
    return np.ascontiguousarray(arr[..., :3], dtype=np.uint8)


def plane_size(path: Path, *, file: Path, place: str, what: str) -> tuple[int, int]:
    """``(width, height)`` of the PNG ``path`` from its header (limits checked)."""
    with images.open_image(path, file=file, place=place, what=what) as im:
        return (int(im.size[0]), int(im.size[1]))


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``(H, W) int64`` ``R << 16 | G << 8 | B``."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


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
    """``plane`` ``(H, W) int64`` with every value replaced by ``table[value]``.

    A value not in the table raises FormatError naming it (as a colour when ``describe``) and
    the first pixel (row, column) holding it. The table's values must fit in 15 bits.
    """
    top = int(plane.max()) if plane.size else -1
    if plane.size and int(plane.min()) >= 0 and top < 1 << 24:
        # a look-up table over the table's keys (at most 2**24 entries of 2 bytes), made once
        # per table (every image of a dataset shares it): one gather
        lut = _lookup_table(tuple(table.items()))
        if top < len(lut):
            mapped = lut[plane].astype(np.int64)
        else:  # values past the table's last key: not in it
            inside = plane < len(lut)
            mapped = np.where(inside, lut[np.where(inside, plane, 0)], -1).astype(np.int64)
        missing = np.flatnonzero(mapped.reshape(-1) < 0)
        if len(missing):
            _refuse(plane, int(plane.reshape(-1)[missing[0]]), file, place, what, describe)
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
    """(distinct values ascending, their pixel counts, ``(N,)`` rank of each pixel's value).

    Ranks are the narrowest unsigned type that holds them, so that the stable sort of
    :func:`regions` is a radix sort.
    """
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo < _TABLE_RANGE:
        shifted = flat - lo if lo else flat
        counts = np.bincount(shifted)
        present = np.flatnonzero(counts)
        dtype = _rank_type(len(present))
        table = np.zeros(len(counts), dtype=dtype)
        table[present] = np.arange(len(present), dtype=dtype)
        return (present + lo).tolist(), counts[present].tolist(), table[shifted]
    values = np.unique(flat)
    ranks = np.searchsorted(values, flat).astype(_rank_type(len(values)))
    return values.tolist(), np.bincount(ranks, minlength=len(values)).tolist(), ranks


def distinct(plane: np.ndarray) -> np.ndarray:
    """The distinct values of ``plane`` (any shape, integers), ascending, ``(K,) int64``."""
    flat = plane.reshape(-1)
    if not flat.size:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo < _TABLE_RANGE:
        return np.flatnonzero(np.bincount(flat - lo if lo else flat)).astype(np.int64) + lo
    return np.unique(flat).astype(np.int64)


def _rank_type(k: int) -> type[np.unsignedinteger[Any]] | type[np.int64]:
    """The narrowest type holding ranks 0..k - 1 (a radix sort for 8 and 16 bits)."""
    return np.uint8 if k <= 1 << 8 else np.uint16 if k <= 1 << 16 else np.int64


#: up to this many values, each value's region is found by one comparison over the ranks (no
#: sort); past it, one sort of the ranks groups them all
_SCAN_VALUES = 48


def regions(plane: np.ndarray, skip: set[int]) -> Iterator[Region]:
    """The region of every distinct value of ``plane`` ``(H, W)`` not in ``skip``, by value.

    Each pixel's value is ranked first (:func:`_ranked`). For a few values, one comparison of
    the ranks per value gives its rows and columns and, cut to the tight box around its pixels,
    its patch. For many, one stable radix sort of the ranks groups the pixels of each value in
    reading order: the first and last pixel of a value give its rows, the least and greatest
    column among them its columns, and its patch is the comparison over that box.
    """
    if not plane.size:
        return
    values, counts, flat = _ranked(plane.reshape(-1))
    ranks = flat.reshape(plane.shape)
    wanted = [(k, v) for k, v in enumerate(values) if v not in skip]
    if len(wanted) <= _SCAN_VALUES:
        for k, value in wanted:
            same = ranks == k
            rows = np.flatnonzero(same.any(axis=1))
            cols = np.flatnonzero(same.any(axis=0))
            y0, x0 = int(rows[0]), int(cols[0])
            mask = np.ascontiguousarray(same[y0 : int(rows[-1]) + 1, x0 : int(cols[-1]) + 1])
            yield Region(value, mask, (x0, y0), counts[k])
        return
    width = plane.shape[1]
    order = np.argsort(flat, kind="stable")
    sizes = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    columns = order % width
    left = np.minimum.reduceat(columns, starts).tolist()
    right = np.maximum.reduceat(columns, starts).tolist()
    first, last = (order[starts] // width).tolist(), (order[ends - 1] // width).tolist()
    for k, value in wanted:
        y0, x0 = first[k], left[k]
        mask = ranks[y0 : last[k] + 1, x0 : right[k] + 1] == k
        yield Region(value, mask, (x0, y0), counts[k])


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
