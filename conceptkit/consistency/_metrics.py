"""Pure arithmetic of annotator agreement: joint counts, kappas, matching, error types, boundary F.

Everything here takes label or instance planes (``(H, W)`` integer arrays, 0 = unlabelled) and
returns counts or figures; nothing reads files or prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Joint = dict[tuple[Any, Any], int]


def _pair_codes(a: np.ndarray, b: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``a * base + b`` and their counts (bincount when the range is small)."""
    codes = a * base + b
    if base * base <= 1 << 22:
        counts = np.bincount(codes, minlength=base * base)
        present = np.flatnonzero(counts)
        return present, counts[present]
    return np.unique(codes, return_counts=True)


def joint_counts(la: np.ndarray, lb: np.ndarray) -> Joint:
    """Pixel counts of every (label in a, label in b) pair. ``la, lb: (H, W) int``."""
    a = la.astype(np.int64).ravel()
    b = lb.astype(np.int64).ravel()
    base = int(max(a.max(initial=0), b.max(initial=0))) + 1
    codes, counts = _pair_codes(a, b, base)
    return {(int(c // base), int(c % base)): int(n) for c, n in zip(codes, counts)}


def add_joint(total: Joint, part: Mapping[tuple[Any, Any], int]) -> None:
    """``total += part`` in place."""
    for key, n in part.items():
        total[key] = total.get(key, 0) + n


def cohen_kappa(joint: Mapping[tuple[Any, Any], int]) -> float:
    """Cohen's kappa of two raters from their joint counts (every label, 0 included, a category).

    1.0 when the chance agreement is 1 (both raters used one and the same category throughout).
    """
    n = sum(joint.values())
    if n == 0:
        return float("nan")
    agree = sum(c for (i, j), c in joint.items() if i == j)
    marg_a: dict[Any, int] = {}
    marg_b: dict[Any, int] = {}
    for (i, j), c in joint.items():
        marg_a[i] = marg_a.get(i, 0) + c
        marg_b[j] = marg_b.get(j, 0) + c
    po = agree / n
    pe = sum(marg_a[k] * marg_b.get(k, 0) for k in marg_a) / (n * n)
    if pe >= 1.0:
        return 1.0
    return (po - pe) / (1.0 - pe)


def binary_kappa(area_a: int, area_b: int, inter: int, n: int) -> float:
    """Cohen's kappa of "this concept / not this concept" from the two areas and their overlap."""
    if n == 0:
        return float("nan")
    both_out = n - area_a - area_b + inter
    po = (inter + both_out) / n
    pa, pb = area_a / n, area_b / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return 1.0
    return (po - pe) / (1.0 - pe)


@dataclass
class FleissSums:
    """Running sums for Fleiss' kappa over pixels (items) rated by ``m`` annotators each.

    ``count[k]``: sum over pixels of c_k (raters giving category k); ``square[k]``: sum of c_k^2;
    ``pi``: sum over pixels of P_i = (sum_k c_k^2 - m) / (m (m - 1)); ``items``: pixels;
    ``raters``: sum over pixels of m. Sums from images with different m pool correctly.
    """

    count: dict[Any, int]
    square: dict[Any, int]
    pi: float = 0.0
    items: int = 0
    raters: int = 0

    @classmethod
    def of(cls, planes: Sequence[np.ndarray]) -> FleissSums:
        """Sums for one image. ``planes``: m label planes ``(H, W) int`` of the same image."""
        m = len(planes)
        stack = np.stack([p.ravel() for p in planes])
        labels = np.unique(stack)
        count: dict[Any, int] = {}
        square: dict[Any, int] = {}
        sumsq = 0
        for k in labels.tolist():
            c = (stack == k).sum(axis=0, dtype=np.int64)
            count[int(k)] = int(c.sum())
            square[int(k)] = int((c * c).sum())
            sumsq += square[int(k)]
        items = stack.shape[1]
        pi = (sumsq - items * m) / (m * (m - 1)) if m > 1 else 0.0
        return cls(count=count, square=square, pi=pi, items=items, raters=items * m)

    def add(self, other: FleissSums) -> None:
        """Pool ``other`` into these sums."""
        for k, v in other.count.items():
            self.count[k] = self.count.get(k, 0) + v
        for k, v in other.square.items():
            self.square[k] = self.square.get(k, 0) + v
        self.pi += other.pi
        self.items += other.items
        self.raters += other.raters

    def kappa(self) -> float:
        """Fleiss' kappa over every category (0 = unlabelled included)."""
        if self.items == 0 or self.raters == 0:
            return float("nan")
        p_bar = self.pi / self.items
        pe = sum((v / self.raters) ** 2 for v in self.count.values())
        if pe >= 1.0:
            return 1.0
        return (p_bar - pe) / (1.0 - pe)


def fleiss_binary(sums: Iterable[tuple[int, int, int, int]]) -> float:
    """Fleiss' kappa of "concept k / not k" from per-image ``(count_k, square_k, pixels, m)``.

    ``count_k``/``square_k``: sums over the image's pixels of c and c^2, c = raters giving k.
    """
    pi = 0.0
    items = 0
    raters = 0
    total = 0
    for count, square, pixels, m in sums:
        if m < 2:
            continue
        # sum over pixels of c^2 + (m - c)^2 - m
        sq = 2 * square + pixels * m * m - 2 * m * count - pixels * m
        pi += sq / (m * (m - 1))
        items += pixels
        raters += pixels * m
        total += count
    if items == 0:
        return float("nan")
    p = total / raters
    pe = p * p + (1 - p) * (1 - p)
    if pe >= 1.0:
        return 1.0
    return (pi / items - pe) / (1.0 - pe)


def match_instances(
    ids_a: np.ndarray, n_a: int, ids_b: np.ndarray, n_b: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], float]]:
    """Greedy one-to-one matching of instances by IoU of their visible pixels.

    ``ids_a, ids_b: (H, W) int`` instance planes (0 = none) with ``n_a``/``n_b`` instances.
    Candidate pairs with IoU >= ``threshold`` are taken from the highest IoU down (ties: lower
    instance numbers first), each instance at most once. For ``threshold`` >= 0.5 this is the
    unique optimal matching (an instance can overlap only one other by more than half).
    Returns ``match_a: (n_a + 1,) int`` (matched instance of b, -1 none; index 0 unused),
    ``match_b`` likewise, and the IoU of every matched pair.
    """
    a = ids_a.astype(np.int64).ravel()
    b = ids_b.astype(np.int64).ravel()
    area_a = np.bincount(a, minlength=n_a + 1)
    area_b = np.bincount(b, minlength=n_b + 1)
    both = (a > 0) & (b > 0)
    base = max(n_a, n_b) + 1
    codes, inter = _pair_codes(a[both], b[both], base)
    candidates: list[tuple[float, int, int]] = []
    for code, n in zip(codes.tolist(), inter.tolist()):
        i, j = divmod(code, base)
        iou = n / (area_a[i] + area_b[j] - n)
        if iou >= threshold and iou > 0:
            candidates.append((-iou, i, j))
    candidates.sort()
    match_a = np.full(n_a + 1, -1, dtype=np.int64)
    match_b = np.full(n_b + 1, -1, dtype=np.int64)
    ious: dict[tuple[int, int], float] = {}
    for neg, i, j in candidates:
        if match_a[i] < 0 and match_b[j] < 0:
            match_a[i] = j
            match_b[j] = i
            ious[(i, j)] = -neg
    return match_a, match_b, ious


def boxes(ids: np.ndarray, n: int) -> np.ndarray:
    """``(n + 1, 4) int64`` inclusive boxes (y0, x0, y1, x1) of instances 1..n of ``ids: (H, W)``
    (row 0 and instances without pixels: an empty box, y0 > y1)."""
    h, w = ids.shape
    out = np.empty((n + 1, 4), dtype=np.int64)
    out[:, :2] = (h, w)
    out[:, 2:] = -1
    ys, xs = np.nonzero(ids)
    labels = ids[ys, xs].astype(np.int64)
    np.minimum.at(out[:, 0], labels, ys)
    np.minimum.at(out[:, 1], labels, xs)
    np.maximum.at(out[:, 2], labels, ys)
    np.maximum.at(out[:, 3], labels, xs)
    return out


def error_types(
    ids_a: np.ndarray,
    ids_b: np.ndarray,
    la: np.ndarray,
    lb: np.ndarray,
    match_a: np.ndarray,
    match_b: np.ndarray,
) -> tuple[int, int, int]:
    """Split the disagreeing pixels (``la != lb``) into (naming, quantity, quality) counts.

    A disagreeing pixel is *naming* when its instances in a and b are matched to each other (so
    their names differ); else *quantity* when an instance there (in a or b) has no match at all;
    else *quality* (matched instances whose outlines differ). The three add up to the number of
    disagreeing pixels.
    """
    ia = ids_a.astype(np.int64)
    ib = ids_b.astype(np.int64)
    disagree = la != lb
    ma = np.concatenate([[-1], match_a[1:]])[ia]  # matched b instance of a's pixel, -1 none
    mb = np.concatenate([[-1], match_b[1:]])[ib]
    naming = disagree & (ia > 0) & (ib > 0) & (ma == ib)
    unmatched = ((ia > 0) & (ma < 0)) | ((ib > 0) & (mb < 0))
    quantity = disagree & ~naming & unmatched
    n_dis = int(disagree.sum())
    n_nam = int(naming.sum())
    n_qty = int(quantity.sum())
    return n_nam, n_qty, n_dis - n_nam - n_qty


def default_tolerance(height: int, width: int) -> int:
    """Boundary tolerance in pixels: 0.75% of the image diagonal, at least 1 (as DAVIS)."""
    return max(1, int(round(0.0075 * float(np.hypot(height, width)))))


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (outside the array counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~inner


def _dilate_rows(mask: np.ndarray, half: int) -> np.ndarray:
    """Each row of ``mask: (H, W) bool`` dilated by ``half`` pixels left and right."""
    if half == 0:
        return mask.copy()
    h, w = mask.shape
    csum = np.zeros((h, w + 2 * half + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=csum[:, half + 1 : half + 1 + w])
    csum[:, half + 1 + w :] = csum[:, half + w : half + w + 1]
    return (csum[:, 2 * half + 1 :] - csum[:, :w]) > 0


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask: (H, W) bool`` by a disk of ``radius`` pixels.

    The disk is a stack of horizontal runs (half-width floor(sqrt(r^2 - dy^2)) at row offset
    dy): each run is a row dilation by cumulative sums, shifted by dy; 2r + 1 passes in all.
    """
    out = np.zeros_like(mask)
    h = mask.shape[0]
    runs: dict[int, np.ndarray] = {}
    for dy in range(-radius, radius + 1):
        half = math.isqrt(radius * radius - dy * dy)
        if half not in runs:
            runs[half] = _dilate_rows(mask, half)
        rows = runs[half]
        if dy >= 0:
            out[dy:h] |= rows[: h - dy]
        else:
            out[: h + dy] |= rows[-dy:]
    return out


def boundary_f(mask_a: np.ndarray, mask_b: np.ndarray, tolerance: int) -> float:
    """Boundary F-score of two ``(H, W) bool`` masks: boundary pixels within ``tolerance``.

    Precision: share of a's boundary pixels within ``tolerance`` (Euclidean) of b's boundary;
    recall the other way round; F = 2PR / (P + R). 1.0 for two empty masks.
    """
    rows = np.flatnonzero((mask_a | mask_b).any(axis=1))
    cols = np.flatnonzero((mask_a | mask_b).any(axis=0))
    if rows.size == 0:
        return 1.0
    y0, y1 = max(rows[0] - tolerance - 1, 0), rows[-1] + tolerance + 2
    x0, x1 = max(cols[0] - tolerance - 1, 0), cols[-1] + tolerance + 2
    ba = _boundary(mask_a[y0:y1, x0:x1])
    bb = _boundary(mask_b[y0:y1, x0:x1])
    na, nb = int(ba.sum()), int(bb.sum())
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    precision = float((ba & _dilate(bb, tolerance)).sum()) / na
    recall = float((bb & _dilate(ba, tolerance)).sum()) / nb
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
