"""Bilinear upsampling of unit maps to the label resolution, and the pixels above a threshold.

Every mask of the dissection is ``upsample(map) > threshold`` with bilinear interpolation
(``align_corners=False``, PyTorch's convention). This module computes it with one fixed
arithmetic, on any device:

- each axis maps output index ``i`` to a source position ``s = max(0, r * (i + 0.5) - 0.5)``
  (``r = n_in / n_out``, single precision), taps ``lo = floor(s)`` and ``hi = lo + 1`` (the
  last sample repeats), weights ``w_hi = s - lo`` and ``w_lo = 1 - w_hi`` (float32);
- a pixel is ``fma(top, h_lo, bot * h_hi)`` with ``top = fma(x[lo, lo'], w_lo, x[lo, hi'] *
  w_hi)`` and ``bot`` likewise on row ``hi``: each fused multiply-add rounds once to float32.

That is the arithmetic of ``torch.nn.functional.interpolate(..., mode="bilinear")`` on a CPU
with fused multiply-add (tests/test_dissect_upsample.py checks equality on millions of
values), so masks equal those of a plain upsample; written out here it is also the same on
every CPU and on CUDA, so a tally does not depend on the machine. The fused multiply-add is
computed in float64 and rounded once (``a * b`` is exact in float64; a second rounding can
differ from a true fused multiply-add with probability about 2**-29 per value).

:func:`bilinear` is the dense upsample. :func:`mask_pixels` finds the pixels above threshold
without upsampling whole maps: masks hold well under 1% of the pixels (the dissection's
threshold is the 0.5% upper quantile), and a pixel can pass the threshold only if one of its
four taps comes within rounding of it, so only the output blocks next to such taps are
evaluated (the same arithmetic, so the same pixels as the dense upsample).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Axis:
    """One axis of an upsampling from ``n_in`` to ``n_out`` samples.

    Per output index, ``(n_out,)``: ``lo``/``hi`` int64 taps, ``w_lo``/``w_hi`` float32
    weights. Output indices grouped into blocks that share their taps, ``(nb,)``: ``start``,
    ``length`` (1 <= length <= ``width``), ``block_lo``/``block_hi`` the taps, ``ends_lo``/
    ``ends_hi`` ``(nb, 2)`` the weights of its first and last index (the extremes: a block's
    weights are monotone). ``touch``, ``(n_in, d)``: per input sample the blocks it is a tap of
    (-1 pads).
    """

    lo: torch.Tensor
    hi: torch.Tensor
    w_lo: torch.Tensor
    w_hi: torch.Tensor
    start: torch.Tensor
    length: torch.Tensor
    block_lo: torch.Tensor
    block_hi: torch.Tensor
    ends_lo: torch.Tensor
    ends_hi: torch.Tensor
    touch: torch.Tensor
    width: int


def _taps(n_in: int, n_out: int) -> tuple[list[int], list[int], torch.Tensor]:
    """Taps and the upper weight of each output index, as PyTorch computes them."""
    if n_in == n_out:
        idx = list(range(n_out))
        return idx, idx, torch.zeros(n_out, dtype=torch.float32)
    ratio = torch.tensor(float(n_in), dtype=torch.float32) / torch.tensor(
        float(n_out), dtype=torch.float32
    )
    pos = torch.arange(n_out, dtype=torch.float64) + 0.5
    src = (ratio.double() * pos - 0.5).to(torch.float32).clamp(min=0.0)
    lo = torch.clamp(src.floor().to(torch.int64), max=n_in - 1)
    w_hi = (src - lo.to(torch.float32)).clamp(0.0, 1.0)
    hi = lo + (lo < n_in - 1).to(torch.int64)
    return lo.tolist(), hi.tolist(), w_hi


@functools.lru_cache(maxsize=64)
def axis(n_in: int, n_out: int, device: str = "cpu") -> Axis:
    """The (cached) :class:`Axis` of an ``n_in -> n_out`` upsampling on ``device``."""
    lo, hi, w_hi = _taps(n_in, n_out)
    width = max(1, math.ceil(n_out / n_in))
    starts: list[int] = []
    lengths: list[int] = []
    for i in range(n_out):
        same = starts and lo[starts[-1]] == lo[i] and hi[starts[-1]] == hi[i]
        if same and lengths[-1] < width:
            lengths[-1] += 1
        else:
            starts.append(i)
            lengths.append(1)
    dev = torch.device(device)
    touch: list[list[int]] = [[] for _ in range(n_in)]
    for b, s in enumerate(starts):
        touch[lo[s]].append(b)
        if hi[s] != lo[s]:
            touch[hi[s]].append(b)
    d = max(1, max(len(t) for t in touch))
    ends = torch.tensor([[s, s + n - 1] for s, n in zip(starts, lengths, strict=True)])

    def ints(values: list[int] | list[list[int]]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int64, device=dev)

    return Axis(
        lo=ints(lo),
        hi=ints(hi),
        w_lo=(1.0 - w_hi).to(dev),
        w_hi=w_hi.to(dev),
        start=ints(starts),
        length=ints(lengths),
        block_lo=ints([lo[s] for s in starts]),
        block_hi=ints([hi[s] for s in starts]),
        ends_lo=(1.0 - w_hi)[ends].to(dev),
        ends_hi=w_hi[ends].to(dev),
        touch=ints([t + [-1] * (d - len(t)) for t in touch]),
        width=width,
    )


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` rounded once to float32 (float32 operands, broadcast)."""
    return (a.double() * b.double() + c.double()).to(torch.float32)


def _axes(maps: torch.Tensor, size: tuple[int, int]) -> tuple[Axis, Axis]:
    dev = str(maps.device)
    return axis(int(maps.shape[-2]), size[0], dev), axis(int(maps.shape[-1]), size[1], dev)


def bilinear(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``maps: (k, h, w) float32`` -> ``(k, sh, sw) float32`` upsampled (see the module)."""
    ay, ax = _axes(maps, size)
    rows_lo, rows_hi = maps[:, ay.lo], maps[:, ay.hi]  # (k, sh, w)
    top = fma(rows_lo[:, :, ax.lo], ax.w_lo, rows_lo[:, :, ax.hi] * ax.w_hi)
    bot = fma(rows_hi[:, :, ax.lo], ax.w_lo, rows_hi[:, :, ax.hi] * ax.w_hi)
    return fma(top, ay.w_lo[:, None], bot * ay.w_hi[:, None])


def candidates(maps: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """``(k, h, w) bool``: the samples that can carry an upsampled pixel above its map's
    threshold. A pixel is a convex combination of its four taps; its computed value exceeds
    the largest tap by at most a few float32 roundings of the map's largest magnitude, so a
    margin of ``2**-18`` of that magnitude (and of the threshold) is safe."""
    mag = torch.maximum(
        torch.maximum(maps.amax(dim=(1, 2)), -maps.amin(dim=(1, 2))), thresholds.abs()
    )
    floor = thresholds - mag * 2.0**-18
    return maps > floor[:, None, None]


@functools.lru_cache(maxsize=64)
def _kernel_tables(h: int, w: int, size: tuple[int, int]) -> tuple[tuple[np.ndarray, ...], int]:
    """The CPU kernel's views of the two axes' tables (made once per map and label size),
    and the largest block's pixel count."""
    ay, ax = axis(h, size[0], "cpu"), axis(w, size[1], "cpu")
    tables = tuple(
        v.numpy()
        for v in (
            ay.w_lo, ay.w_hi, ay.start, ay.length, ay.block_lo, ay.block_hi, ay.touch,
            ax.w_lo, ax.w_hi, ax.start, ax.length, ax.block_lo, ax.block_hi, ax.touch,
            ay.ends_lo, ay.ends_hi, ax.ends_lo, ax.ends_hi,
        )
    )  # fmt: skip
    return tables, ay.width * ax.width


def mask_pixels(
    maps: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels of ``bilinear(maps, size)`` above each map's threshold.

    ``maps: (k, h, w) float32``, ``thresholds: (k,) float32`` (compared strictly) ->
    ``(map, pixel)``: two ``(q,) int64``, the map index and the flat pixel index ``i * sw +
    j`` of every pixel above threshold, ordered by map. On the CPU a compiled kernel
    (:mod:`conceptkit.dissection._upsample_cpu`) computes the same pixels as the tensor code
    of :func:`mask_pixels_torch`, which runs elsewhere.
    """
    if maps.device.type != "cpu":
        return mask_pixels_torch(maps, thresholds, size)
    from conceptkit.dissection._upsample_cpu import mask_kernel

    x = maps.detach().contiguous().numpy()
    t = thresholds.detach().to(torch.float32).contiguous().numpy()
    if x.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty.clone()
    tables, width = _kernel_tables(int(maps.shape[-2]), int(maps.shape[-1]), size)
    cap = max(1 << 14, x.shape[0] * width * 4)
    while True:
        out_map = np.empty(cap, np.int64)
        out_pix = np.empty(cap, np.int64)
        n = int(mask_kernel(x, t, *tables, size[1], out_map, out_pix))  # type: ignore[call-arg, arg-type]
        if n <= cap:
            return torch.from_numpy(out_map[:n]), torch.from_numpy(out_pix[:n])
        cap = n


def mask_pixels_torch(
    maps: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mask_pixels` in tensor operations (any device)."""
    ay, ax = _axes(maps, size)
    k, h, w = maps.shape
    # the blocks next to a candidate tap, (n,) each: marked from the (few) candidates
    cm, cy, cx = torch.nonzero(candidates(maps, thresholds), as_tuple=True)
    nby, nbx = ay.start.shape[0], ax.start.shape[0]
    ty, tx = ay.touch[cy][:, :, None], ax.touch[cx][:, None, :]  # (q, dy, 1), (q, 1, dx)
    keys = (cm[:, None, None] * nby + ty) * nbx + tx
    hot = torch.zeros(k * nby * nbx, dtype=torch.bool, device=maps.device)
    hot[keys[(ty >= 0) & (tx >= 0)]] = True
    m, by, bx = torch.nonzero(hot.view(k, nby, nbx), as_tuple=True)
    flat = maps.reshape(-1)
    y_lo, y_hi = m * (h * w) + ay.block_lo[by] * w, m * (h * w) + ay.block_hi[by] * w
    x_lo, x_hi = ax.block_lo[bx], ax.block_hi[bx]
    a, b, c, d = flat[y_lo + x_lo], flat[y_lo + x_hi], flat[y_hi + x_lo], flat[y_hi + x_hi]
    # a pixel is bilinear in its two weights (up to rounding), so a block's largest pixel is
    # at one of its corners: keep the blocks whose corners, in plain float32 (a few roundings
    # off), come near the threshold
    xl, xh = ax.ends_lo[bx], ax.ends_hi[bx]  # (n, 2)
    corner_top = a[:, None] * xl + b[:, None] * xh
    corner_bot = c[:, None] * xl + d[:, None] * xh
    yl, yh = ay.ends_lo[by], ay.ends_hi[by]
    corner = corner_top[:, None, :] * yl[:, :, None] + corner_bot[:, None, :] * yh[:, :, None]
    t = thresholds[m]
    mag = torch.maximum(torch.maximum(a.abs(), b.abs()), torch.maximum(c.abs(), d.abs()))
    near = corner.amax(dim=(1, 2)) > t - (mag + t.abs()) * 2.0**-18
    m, by, bx, a, b, c, d, t = (v[near] for v in (m, by, bx, a, b, c, d, t))
    dev = maps.device
    gy = torch.arange(ay.width, device=dev)
    gx = torch.arange(ax.width, device=dev)
    ry = gy[None, :] < ay.length[by][:, None]  # (n, Gy) valid rows
    rx = gx[None, :] < ax.length[bx][:, None]
    rows = ay.start[by][:, None] + torch.where(ry, gy[None, :], 0)  # (n, Gy)
    cols = ax.start[bx][:, None] + torch.where(rx, gx[None, :], 0)
    wl, wh = ax.w_lo[cols], ax.w_hi[cols]  # (n, Gx)
    top = fma(a[:, None], wl, b[:, None] * wh)
    bot = fma(c[:, None], wl, d[:, None] * wh)
    hl, hh = ay.w_lo[rows], ay.w_hi[rows]  # (n, Gy)
    # along a row a pixel is linear in its column weight (up to rounding), so the row's
    # largest pixel is at one of its ends: keep the rows whose ends come near the threshold
    last = (ax.length[bx] - 1)[:, None]
    ends_top = torch.cat([top[:, :1], top.gather(1, last)], 1).double()  # (n, 2)
    ends_bot = torch.cat([bot[:, :1], bot.gather(1, last)], 1).double()
    ends = (
        ends_top[:, None, :] * hl.double()[:, :, None]
        + ends_bot[:, None, :] * hh.double()[:, :, None]
    )  # (n, Gy, 2)
    mag = torch.maximum(ends_top.abs().amax(1), ends_bot.abs().amax(1))
    floor = t.double() - (mag + t.double().abs()) * 2.0**-18
    blk, iy = torch.nonzero((ends.amax(2) > floor[:, None]) & ry, as_tuple=True)
    value = fma(top[blk], hl[blk, iy][:, None], bot[blk] * hh[blk, iy][:, None])  # (r, Gx)
    r, ix = torch.nonzero((value > t[blk][:, None]) & rx[blk], as_tuple=True)
    return m[blk[r]], rows[blk[r], iy[r]] * size[1] + cols[blk[r], ix]
