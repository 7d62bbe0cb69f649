"""The sparse threshold of :mod:`conceptkit.dissection.upsample`, compiled for the CPU (numba).

:func:`mask_pixels` in torch runs about 40 small tensor operations per call over the hot
blocks, and on a CPU most of its time goes to allocating and indexing those intermediates;
this kernel walks each map once: its candidate samples, the blocks they touch, each block's
corner bound, then each row's ends and pixels, with the same arithmetic (a fused multiply-add
is ``float32(float64(a) * float64(b) + float64(c))``: the product of two float32 is exact in
float64, so a compiler's contraction of it into a hardware fma cannot change the result). The
output is the same set of pixels, in the same order (map, block row, block column, row, column).
The torch version stays the one used on CUDA, and the reference the tests hold this one to.
"""

from __future__ import annotations

import numba
import numpy as np

_MARGIN = np.float32(2.0**-18)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _fma(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _mark(
    x: np.ndarray, t: np.float32, y_touch: np.ndarray, x_touch: np.ndarray, hot: np.ndarray
) -> bool:
    """Mark in ``hot`` the blocks next to a candidate sample of the map ``x`` (within
    ``2**-18`` of its largest magnitude below ``t``, as ``upsample.candidates``); any?"""
    h, w = x.shape
    mag = abs(t)
    for i in range(h):
        for j in range(w):
            mag = max(mag, abs(x[i, j]))
    floor = t - mag * _MARGIN
    found = False
    for i in range(h):
        for j in range(w):
            if not x[i, j] > floor:
                continue
            found = True
            for p in range(y_touch.shape[1]):
                by = y_touch[i, p]
                for q in range(x_touch.shape[1]):
                    bx = x_touch[j, q]
                    if by >= 0 and bx >= 0:
                        hot[by, bx] = True
    return found


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _near(
    a: np.float32,
    b: np.float32,
    c: np.float32,
    d: np.float32,
    t: np.float32,
    xl: np.ndarray,
    xh: np.ndarray,
    yl: np.ndarray,
    yh: np.ndarray,
) -> bool:
    """Whether a block's largest corner (plain float32, a few roundings off) comes near ``t``:
    a pixel is bilinear in its weights, so a block's largest pixel is at a corner."""
    best = -np.inf
    for e in range(2):
        ct = a * xl[e] + b * xh[e]
        cb = c * xl[e] + d * xh[e]
        for f in range(2):
            best = max(best, ct * yl[f] + cb * yh[f])
    mag = max(max(abs(a), abs(b)), max(abs(c), abs(d)))
    return bool(best > t - (mag + abs(t)) * _MARGIN)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def mask_kernel(  # pragma: no cover  (compiled; tested through upsample.mask_pixels)
    maps: np.ndarray,  # (k, h, w) float32, C-contiguous
    thr: np.ndarray,  # (k,) float32
    y_wl: np.ndarray,  # per output row: weights
    y_wh: np.ndarray,
    y_start: np.ndarray,  # per block of rows: start, length, taps
    y_len: np.ndarray,
    y_blo: np.ndarray,
    y_bhi: np.ndarray,
    y_touch: np.ndarray,  # (h, dy): the row blocks each input row is a tap of
    x_wl: np.ndarray,
    x_wh: np.ndarray,
    x_start: np.ndarray,
    x_len: np.ndarray,
    x_blo: np.ndarray,
    x_bhi: np.ndarray,
    x_touch: np.ndarray,
    y_end_lo: np.ndarray,  # (nby, 2): the weights of a block's first and last row
    y_end_hi: np.ndarray,
    x_end_lo: np.ndarray,  # (nbx, 2)
    x_end_hi: np.ndarray,
    sw: int,
    out_map: np.ndarray,  # (cap,) int64
    out_pix: np.ndarray,
) -> int:
    """Writes up to ``cap`` (map, pixel) pairs; returns how many there are in all."""
    nby, nbx = y_start.shape[0], x_start.shape[0]
    hot = np.zeros((nby, nbx), np.bool_)
    top = np.empty(max(1, x_len.max()), np.float32)
    bot = np.empty_like(top)
    n = 0
    for m in range(maps.shape[0]):
        x, t = maps[m], thr[m]
        if not _mark(x, t, y_touch, x_touch, hot):
            continue
        for by in range(nby):
            for bx in range(nbx):
                if not hot[by, bx]:
                    continue
                hot[by, bx] = False
                a, b = x[y_blo[by], x_blo[bx]], x[y_blo[by], x_bhi[bx]]
                c, d = x[y_bhi[by], x_blo[bx]], x[y_bhi[by], x_bhi[bx]]
                if not _near(a, b, c, d, t, x_end_lo[bx], x_end_hi[bx], y_end_lo[by], y_end_hi[by]):
                    continue
                s0, nx = x_start[bx], x_len[bx]
                for g in range(nx):
                    top[g] = _fma(a, x_wl[s0 + g], np.float32(b * x_wh[s0 + g]))
                    bot[g] = _fma(c, x_wl[s0 + g], np.float32(d * x_wh[s0 + g]))
                n = _rows(
                    top,
                    bot,
                    nx,
                    t,
                    y_start[by],
                    y_len[by],
                    y_wl,
                    y_wh,
                    m,
                    s0,
                    sw,
                    out_map,
                    out_pix,
                    n,
                )
    return n


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _rows(
    top: np.ndarray,
    bot: np.ndarray,
    nx: int,
    t: np.float32,
    r0: int,
    nr: int,
    y_wl: np.ndarray,
    y_wh: np.ndarray,
    m: int,
    s0: int,
    sw: int,
    out_map: np.ndarray,
    out_pix: np.ndarray,
    n: int,
) -> int:
    """The pixels above ``t`` of one block's rows (those whose ends come near it: along a row
    a pixel is linear in its column weight, up to rounding)."""
    e0t, e1t = np.float64(top[0]), np.float64(top[nx - 1])
    e0b, e1b = np.float64(bot[0]), np.float64(bot[nx - 1])
    t64 = np.float64(t)
    floor = t64 - (max(max(abs(e0t), abs(e1t)), max(abs(e0b), abs(e1b))) + abs(t64)) * 2.0**-18
    for ry in range(r0, r0 + nr):
        hl, hh = y_wl[ry], y_wh[ry]
        if not max(e0t * hl + e0b * hh, e1t * hl + e1b * hh) > floor:
            continue
        for g in range(nx):
            if _fma(top[g], hl, np.float32(bot[g] * hh)) > t:
                if n < out_map.shape[0]:
                    out_map[n] = m
                    out_pix[n] = ry * sw + s0 + g
                n += 1
    return n
