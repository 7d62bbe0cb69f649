"""Bit-packed masks at the label resolution: every concept's pixels and one unit's mask.

Pixel ``p`` of image ``i`` (row-major over ``sh x sw``, ``S = sh * sw``) is bit ``p % 64`` of
word ``p // 64`` of image ``i``'s block of ``W = ceil(S / 64)`` ``uint64`` words (padding bits
are 0). A concept is stored only in the images it occurs in (block-sparse), so the memory is
``W * 8`` bytes per (image, concept present) pair: about 1.5 KB at 112 x 112.

- :class:`ConceptMasks`: every concept of a Broden folder, with the counts every search needs
  (``truth``, pairwise co-occurrence ``pair``) and :meth:`ConceptMasks.count`, which counts
  ``|X_i AND C_c,i|`` for a stack of image masks against every concept at once (one gather,
  one AND, one popcount, one bincount).
- :class:`UnitMask`: a unit's mask (the dissection's own threshold and upsampling), only in
  the images where it is not empty.

A concept's mask is binary: a pixel is in it when any label plane of its image carries the
label there, and an image-level label (scene, texture) covers its whole image. The dissection
counts every plane on its own, so the two agree unless one pixel carries the same label in two
planes (:attr:`ConceptMasks.duplicates` counts such pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from conceptkit.dissection.upsample import mask_pixels

_LUT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_CHUNK_WORDS = 1 << 21  # words per gathered chunk in ConceptMasks.count (16 MiB)


def popcount_rows(words: np.ndarray) -> np.ndarray:
    """``(n, W) uint64`` -> ``(n,) int64`` set bits per row (``np.bitwise_count`` on
    numpy >= 2, a byte lookup table before)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    return popcount_rows_lut(words)


def popcount_rows_lut(words: np.ndarray) -> np.ndarray:
    """:func:`popcount_rows` through a 256-entry byte table (numpy < 2)."""
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(words.shape[0], -1)
    return _LUT[as_bytes].sum(axis=1, dtype=np.int64)


def words_per_image(pixels: int) -> int:
    return (pixels + 63) // 64


def pack(bits: np.ndarray) -> np.ndarray:
    """``(n, S) bool`` -> ``(n, W) uint64`` (bit ``p % 64`` of word ``p // 64``)."""
    n, s = bits.shape
    packed = np.packbits(bits, axis=1, bitorder="little")
    width = words_per_image(s) * 8
    if packed.shape[1] != width:
        packed = np.pad(packed, ((0, 0), (0, width - packed.shape[1])))
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack(words: np.ndarray, pixels: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(n, W) uint64`` -> ``(n, pixels) bool``."""
    as_bytes = np.ascontiguousarray(words.astype("<u8")).view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :pixels].astype(bool)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


@dataclass
class ImageLabels:
    """One image's labels: ``planes: (P, sh, sw)`` int label numbers, ``image_labels: (M,)``."""

    planes: np.ndarray
    image_labels: np.ndarray


class ConceptMasks:
    """Block-sparse packed masks of ``L`` concepts over ``N`` images of ``S`` pixels.

    ``numbers: (L,)`` their label numbers; ``cats: (L,)`` category indices; ``blocks: (B, W)
    uint64`` one row per (concept, image) pair present, sorted by concept then image, with
    ``block_concept``/``block_image: (B,)`` and ``cptr: (L + 1,)`` (concept ``c`` owns rows
    ``cptr[c]:cptr[c+1]``); ``by_image: (B,)`` the rows sorted by image, ``iptr: (N + 1,)``.
    ``truth: (L,)`` pixels per concept; ``pair: (L, L)`` ``|C_a AND C_b|``.
    """

    def __init__(
        self,
        images: int,
        size: tuple[int, int],
        numbers: np.ndarray,
        cats: np.ndarray,
        block_concept: np.ndarray,
        block_image: np.ndarray,
        blocks: np.ndarray,
        duplicates: int = 0,
    ) -> None:
        self.images = int(images)
        self.size = (int(size[0]), int(size[1]))
        self.pixels = self.size[0] * self.size[1]
        self.words = words_per_image(self.pixels)
        self.numbers = np.asarray(numbers, dtype=np.int64)
        self.cats = np.asarray(cats, dtype=np.int64)
        self.duplicates = int(duplicates)
        order = np.lexsort((block_image, block_concept))
        self.block_concept = np.asarray(block_concept, dtype=np.int64)[order]
        self.block_image = np.asarray(block_image, dtype=np.int64)[order]
        self.blocks = np.ascontiguousarray(blocks.reshape(-1, self.words)[order])
        L = len(self.numbers)
        self.cptr = np.searchsorted(self.block_concept, np.arange(L + 1))
        self.by_image = np.lexsort((self.block_concept, self.block_image))
        self.iptr = np.searchsorted(self.block_image[self.by_image], np.arange(self.images + 1))
        self.truth = np.bincount(
            self.block_concept, weights=popcount_rows(self.blocks), minlength=L
        ).astype(np.int64)
        self.pair = self._pairs()

    @property
    def concepts(self) -> int:
        return len(self.numbers)

    @property
    def categories(self) -> int:
        return int(self.cats.max()) + 1 if len(self.cats) else 0

    def support(self, c: int) -> np.ndarray:
        """``(n,) int64`` the images concept ``c`` occurs in, ascending."""
        return self.block_image[self.cptr[c] : self.cptr[c + 1]]

    def mask(self, c: int, images: np.ndarray) -> np.ndarray:
        """``(len(images), W) uint64`` concept ``c`` on ``images`` (ascending; zero elsewhere)."""
        own = self.support(c)
        out = np.zeros((len(images), self.words), dtype=np.uint64)
        if len(own) == 0 or len(images) == 0:
            return out
        pos = np.minimum(np.searchsorted(own, images), len(own) - 1)
        hit = own[pos] == images
        out[hit] = self.blocks[self.cptr[c] + pos[hit]]
        return out

    def block_counts(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, ...]:
        """For every stored block of ``images`` (ascending, unique; ``masks: (n, W)`` their
        masks): ``(row, block, count)`` with ``count = |masks[row] AND blocks[block]|``."""
        starts = self.iptr[images]
        lengths = self.iptr[images + 1] - starts
        rows = np.repeat(np.arange(len(images), dtype=np.int64), lengths)
        idx = self.by_image[_ranges(starts, lengths)]
        counts = np.empty(len(idx), dtype=np.int64)
        step = max(1, _CHUNK_WORDS // self.words)
        for a in range(0, len(idx), step):
            b = a + step
            counts[a:b] = popcount_rows(masks[rows[a:b]] & self.blocks[idx[a:b]])
        return rows, idx, counts

    def count(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``(L,) int64``: ``sum_i |masks[i] AND C_c,images[i]|`` for every concept ``c``."""
        _, idx, counts = self.block_counts(images, masks)
        return np.bincount(self.block_concept[idx], weights=counts, minlength=self.concepts).astype(
            np.int64
        )

    def _pairs(self) -> np.ndarray:
        """``(L, L) int64`` co-occurrence, one image at a time over its blocks."""
        L = self.concepts
        pair = np.zeros((L, L), dtype=np.int64)
        for i in range(self.images):
            idx = self.by_image[self.iptr[i] : self.iptr[i + 1]]
            if len(idx) == 0:
                continue
            b = self.blocks[idx]
            k = len(idx)
            both = (b[:, None, :] & b[None, :, :]).reshape(k * k, self.words)
            inter = popcount_rows(both).reshape(k, k)
            c = self.block_concept[idx]
            pair[np.ix_(c, c)] += inter
        return pair


def _concept_bits(
    item: ImageLabels, lut: np.ndarray, pixels: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """One image -> (concept indices present, ``(k, S)`` bool masks, pixels the dissection
    counts more than once: the same label on one pixel in two planes, a repeated or
    plane-duplicated image-level label)."""
    planes = item.planes.reshape(item.planes.shape[0], -1).astype(np.int64)
    planes = np.where((planes > 0) & (planes < len(lut)), planes, 0)
    codes = np.where(planes > 0, lut[planes], -1)
    img = item.image_labels.astype(np.int64)
    img_codes = lut[img[(img > 0) & (img < len(lut))]]
    img_codes = img_codes[img_codes >= 0]
    present = np.union1d(np.unique(codes[codes >= 0]), img_codes)
    bits = np.zeros((len(present), pixels), dtype=bool)
    dup = 0
    for j, c in enumerate(present):
        hits = codes == c
        occurrences = int((img_codes == c).sum())
        if occurrences:
            bits[j] = True
            dup += int(hits.sum()) + (occurrences - 1) * pixels
        else:
            bits[j] = hits.any(axis=0)
            dup += int(hits.sum()) - int(bits[j].sum())
    return present, bits, dup


def build_concept_masks(
    items: Iterable[ImageLabels],
    images: int,
    size: tuple[int, int],
    numbers: Sequence[int],
    cats: Sequence[int],
    label_count: int,
    progress: Callable[[int], None] | None = None,
) -> ConceptMasks:
    """Pack every concept of ``items`` (one per image, in order). ``numbers[c]`` is concept
    ``c``'s label number (labels not listed are ignored), ``cats[c]`` its category index,
    ``label_count`` one more than the largest label number in label.csv."""
    lut = np.full(label_count, -1, dtype=np.int64)
    lut[np.asarray(numbers, dtype=np.int64)] = np.arange(len(numbers))
    pixels = size[0] * size[1]
    con: list[np.ndarray] = []
    img: list[np.ndarray] = []
    blk: list[np.ndarray] = []
    dup = 0
    for i, item in enumerate(items):
        present, bits, d = _concept_bits(item, lut, pixels)
        dup += d
        con.append(present)
        img.append(np.full(len(present), i, dtype=np.int64))
        blk.append(pack(bits))
        if progress is not None:
            progress(1)
    words = words_per_image(pixels)
    return ConceptMasks(
        images,
        size,
        np.asarray(numbers),
        np.asarray(cats),
        np.concatenate(con) if con else np.zeros(0, np.int64),
        np.concatenate(img) if img else np.zeros(0, np.int64),
        np.concatenate(blk) if blk else np.zeros((0, words), np.uint64),
        dup,
    )


# ----------------------------------------------------------------------------- units


@dataclass
class UnitMask:
    """A unit's mask: ``images: (n,) int64`` ascending, where it is not empty; ``words: (n, W)
    uint64`` its packed mask there; ``sizes: (n,) int64`` pixels per image."""

    unit: int
    images: np.ndarray
    words: np.ndarray
    sizes: np.ndarray

    @property
    def total(self) -> int:
        return int(self.sizes.sum())


def threshold32(threshold: float) -> np.float32:
    """The largest float32 ``t32 <= threshold``: ``x > threshold`` iff ``x > t32`` for float32 x."""
    t32 = np.float32(threshold)
    if float(t32) > float(threshold):
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return np.float32(t32)


def unit_mask(
    unit: int,
    features: np.ndarray,
    threshold: float,
    size: tuple[int, int],
    max_elems: int = 1 << 24,
) -> UnitMask:
    """The mask of one unit, as the dissection makes it: ``features: (N, h, w) float32`` its raw
    maps; each map upsampled bilinearly (``align_corners=False``) to ``size``, then
    ``value > threshold``, by the tally's own arithmetic
    (:func:`conceptkit.dissection.upsample.mask_pixels`). Only images whose raw maximum passes
    the threshold can have a pixel in the mask."""
    t32 = threshold32(threshold)
    n = features.shape[0]
    maxima = features.reshape(n, -1).max(axis=1)
    cand = np.flatnonzero(maxima > t32)
    pixels = size[0] * size[1]
    step = max(1, max_elems // pixels)
    words: list[np.ndarray] = []
    sizes: list[np.ndarray] = []
    keep: list[np.ndarray] = []
    for a in range(0, len(cand), step):
        rows = cand[a : a + step]
        maps = torch.from_numpy(np.ascontiguousarray(features[rows], dtype=np.float32))
        which, pixel = mask_pixels(maps, torch.full((len(rows),), float(t32)), size)
        bits = np.zeros((len(rows), pixels), dtype=bool)
        bits[which.numpy(), pixel.numpy()] = True
        packed = pack(bits)
        s = popcount_rows(packed)
        nz = s > 0
        keep.append(rows[nz])
        sizes.append(s[nz])
        words.append(packed[nz])
    W = words_per_image(pixels)
    return UnitMask(
        unit,
        np.concatenate(keep).astype(np.int64) if keep else np.zeros(0, np.int64),
        np.concatenate(words) if words else np.zeros((0, W), np.uint64),
        np.concatenate(sizes) if sizes else np.zeros(0, np.int64),
    )
