"""The IoU tally's per-pixel counting, compiled for the CPU (numba).

:class:`~conceptkit.dissection.stats.IoUTally` decodes each batch's label planes once
(:meth:`~conceptkit.dissection.stats.IoUTally.prepare`) and then, per layer, counts each mask
pixel against the labels under it. In tensor operations both build large intermediates (an
``(image, label)`` key per pixel and plane, a ``(pair, label)`` histogram per layer) that cost
more to allocate and index than to count; these kernels walk the pixels once and count into
the small tables directly. The integers are the same as the tensor code's (the tests hold the
two to each other); the tensor code stays the one used on CUDA and wherever a batch has more
categories than fit in the bits of one int64.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, boundscheck=False)
def present_kernel(pl: np.ndarray, nlab: int) -> np.ndarray:  # pragma: no cover  (compiled)
    """``(nlab,) int64``: pixels of each label number over ``pl: (B, P, S)`` (numbers
    outside ``1..nlab-1`` count as 0)."""
    out = np.zeros(nlab, np.int64)
    B, P, S = pl.shape
    for b in range(B):
        for p in range(P):
            for s in range(S):
                v = pl[b, p, s]
                out[v if 0 < v < nlab else 0] += 1
    return out


@numba.njit(cache=True, nogil=True, boundscheck=False)
def label_kernel(  # pragma: no cover  (compiled; tested through IoUTally.prepare)
    pl: np.ndarray,
    lut: np.ndarray,
    bit: np.ndarray,
    inv: np.ndarray,
    areas: np.ndarray,
    cat_pixels: np.ndarray,
) -> None:
    """For ``pl: (B, P, S)`` label numbers: ``inv: (B * S, P)`` each pixel's index in the
    batch's present labels (``lut`` maps a number to it; numbers outside ``lut`` are 0),
    ``areas: (B, Lc)`` each image's pixels per present label, summed over planes, and
    ``cat_pixels: (B, K)`` each image's pixels carrying a label of category ``k`` in any plane
    (``bit: (Lc,)`` each present label's category as a bit, 0 for none)."""
    B, P, S = pl.shape
    nlab = lut.shape[0]
    for b in range(B):
        for s in range(S):
            row = b * S + s
            pattern = 0
            for p in range(P):
                v = pl[b, p, s]
                u = lut[v] if 0 < v < nlab else 0
                inv[row, p] = u
                areas[b, u] += 1
                pattern |= bit[u]
            k = 0
            while pattern:
                if pattern & 1:
                    if k >= cat_pixels.shape[1]:
                        raise ValueError("a label's category bit is past the categories")
                    cat_pixels[b, k] += 1
                pattern >>= 1
                k += 1


@numba.njit(cache=True, nogil=True, boundscheck=False)
def count_kernel(  # pragma: no cover  (compiled; tested through IoUTally.add)
    kk: np.ndarray,
    s: np.ndarray,
    pair_image: np.ndarray,
    pair_unit: np.ndarray,
    inv: np.ndarray,
    S: int,
    bit: np.ndarray,
    per_unit: np.ndarray,
    size: np.ndarray,
    over: np.ndarray,
) -> None:
    """Count the mask pixels ``(kk, s)`` (pair ``kk``: image ``pair_image[kk]``, unit
    ``pair_unit[kk]``; flat pixel ``s``) against the labels under them: ``per_unit: (C, Lc)``
    gains each pixel's present labels (every plane; label 0 not counted), ``size: (k,)`` each
    pair's pixels, ``over: (k,)`` the OR of the category bits (``bit``) its pixels touch."""
    P = inv.shape[1]
    nc = per_unit.shape[1]
    for i in range(kk.shape[0]):
        q = kk[i]
        row = pair_image[q] * S + s[i]
        c = pair_unit[q]
        if not (0 <= row < inv.shape[0] and 0 <= c < per_unit.shape[0]):
            raise ValueError("a mask pixel outside the label batch or the units")
        size[q] += 1
        acc = over[q]
        for p in range(P):
            u = inv[row, p]
            if not 0 <= u < nc:
                raise ValueError("a pixel's label index outside the batch's labels")
            if u != 0:
                per_unit[c, u] += 1
                acc |= bit[u]
        over[q] = acc
