"""How much of an IoU is chance, counted while the dissection tallies: pure tensor code.

For a unit and a label, let image ``i`` have ``n`` pixels (the label resolution, the same for
every image), the unit's mask ``a_i`` pixels and the label ``b_i`` pixels. If each image's mask
were a random set of ``a_i`` pixels, placed independently of where the label is, its overlap
with the label would be hypergeometric:

    E[I_i]   = a_i b_i / n
    Var[I_i] = a_i (n - a_i) b_i (n - b_i) / (n^2 (n - 1))

summed over the images (independent): per batch two matrix products of per-image counts,
``(C, B) @ (B, L)``. An image-level label (scene, texture) covers every pixel: ``b_i = n``, so
``E[I_i] = a_i`` and ``Var[I_i] = 0``. The union the dissection divides by counts a unit's mask
only in the images its union rule admits; with ``union="category"`` an image counts for a
category when the mask overlaps a pixel of that category, which a blind mask of ``a_i`` pixels
does with probability ``P_i = 1 - C(n - c_i, a_i) / C(n, a_i)`` (``c_i`` pixels of the
category; 1 for an image-level label), so the expected mask total is ``EA = sum_i a_i P_i``
(``union="global"``: every mask pixel, the tally's ``act_total``). Then

    iou_chance = E[I] / (EA + truth - E[I])
    iou_sd     = sd[I] (EA + truth) / (EA + truth - E[I])^2     (delta method, I only)
    z          = (I - E[I]) / sd[I]                           (0 where sd[I] = 0)

The variance is that of masks whose pixels are placed independently. Real masks are blobs:
moved rigidly to a random offset they keep the same expected overlap but disperse more (about
3x the standard deviation for rectangles, tests/test_beyond_chance.py), so ``z >= 3`` is
necessary, not sufficient. A unit's *support* is the number of images its best label occurs in;
Broden kept only labels seen in at least 10.

:class:`ChanceTally` accumulates the sums with the same ``add`` / ``merge`` / ``state_dict``
shape as :mod:`conceptkit.dissection.stats`. Every sum is an ``int64``: ``sum a_i b_i`` exactly,
``Var`` and ``EA`` in fixed point (``2**-FRACTION_BITS`` pixels, rounded once per batch), so
the totals do not depend on the order batches are added or merged in (one process, several,
a resumed run: the same bits). The fixed point holds while the images times their pixels stay
below ``2**(63 - FRACTION_BITS)``, 3.4e10 (full Broden: 8e8).

:func:`overlap_probability`, :func:`spread`, :func:`variance_scale` and :func:`chance_iou` are
the arithmetic, shared with :mod:`conceptkit.beyond.chance` (which counts from recomputed
features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conceptkit.dissection.results import SUPPORT_MIN, Z_MIN, flags
from conceptkit.dissection.stats import IoUTally, LabelBatch

__all__ = [
    "EPS",
    "SUPPORT_MIN",
    "Z_MIN",
    "ChanceLevels",
    "ChanceTally",
    "chance_iou",
    "flags",
    "merge_chance",
    "overlap_probability",
    "spread",
    "variance_scale",
]

EPS = 1e-10
#: fixed-point fraction of the non-integer sums
FRACTION_BITS = 28
_ONE = float(1 << FRACTION_BITS)


def spread(x: Any, n: int) -> Any:
    """``x (n - x)``, elementwise (numpy or torch): the hypergeometric variance's factor of
    one side."""
    return x * (n - x)


def variance_scale(n: int) -> float:
    """``1 / (n^2 (n - 1))``: ``Var[I_i] = spread(a_i) spread(b_i) * variance_scale(n)``."""
    return 1.0 / (float(n) * float(n) * max(n - 1, 1))


def overlap_probability(a: torch.Tensor, c: torch.Tensor, n: int) -> torch.Tensor:
    """``1 - C(n - c, a) / C(n, a)``: a random set of ``a`` of ``n`` pixels meets ``c`` given
    ones (elementwise, broadcast; float64; 0 where ``a = 0``)."""
    a = a.to(torch.float64)
    c = c.to(torch.float64)
    free = n - c - a
    log_none = torch.lgamma(n - c + 1) + torch.lgamma(n - a + 1)
    log_none = log_none - torch.lgamma(free.clamp(min=0) + 1) - math.lgamma(n + 1)
    none = torch.where(free >= 0, torch.exp(log_none.clamp(max=0.0)), torch.zeros_like(free))
    return torch.where(a > 0, 1.0 - none, torch.zeros_like(none))


def chance_iou(
    inter: np.ndarray,
    E: np.ndarray,
    V: np.ndarray,
    EA: np.ndarray,
    truth: np.ndarray,
    cats: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(C, L) float64`` ``iou_chance``, ``iou_sd`` and ``z`` from ``inter, E, V: (C, L)``,
    ``EA: (C, K)``, ``truth: (L,)`` and each label's category ``cats: (L,)`` (>= 0)."""
    A = EA[:, cats] + truth[None, :]
    D = A - E
    chance = E / (D + EPS)
    sd = np.sqrt(np.maximum(V, 0.0))
    iou_sd = sd * A / (D * D + EPS)
    z = np.divide(inter - E, sd, out=np.zeros_like(E), where=sd > 0)
    return chance, iou_sd, z


def _fixed(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * _ONE).to(torch.int64)


@dataclass
class ChanceLevels:
    """One layer's chance levels (C units, L labels): ``iou_chance``, ``iou_sd``, ``z``,
    ``expected`` (the expected intersection) ``(C, L) float64``, 0 for label 0 and labels
    without a category; ``support: (L,) int64`` images each label occurs in."""

    iou_chance: np.ndarray
    iou_sd: np.ndarray
    z: np.ndarray
    expected: np.ndarray
    support: np.ndarray


class ChanceTally:
    """Streaming sums behind the chance level of every unit and label (module docstring).

    Accumulated, all ``int64``: ``mean: (C, L)`` ``sum_i a_i b_i`` (``E[I] = mean / n``);
    ``var: (C, L)`` ``Var[I]`` and ``act_cat: (C, K)`` ``EA`` in fixed point (``act_cat``
    stays 0 with ``union="global"``, whose ``EA`` is the tally's ``act_total``);
    ``support: (L,)`` images carrying each label (in a plane or image-level). ``pixels`` is
    ``n`` (0 before the first batch), ``images`` the images added.
    """

    def __init__(
        self,
        units: int,
        label_category: torch.Tensor,
        num_categories: int,
        union: str = "category",
        device: Any = None,
    ) -> None:
        if union not in ("category", "global"):
            raise ValueError(f"union must be 'category' or 'global', not {union!r}")
        self.units = units
        self.union = union
        self.label_category = label_category.to(device=device, dtype=torch.int64)
        labels = self.label_category.shape[0]
        self.num_categories = num_categories
        self.mean = torch.zeros((units, labels), dtype=torch.int64, device=device)
        self.var = torch.zeros((units, labels), dtype=torch.int64, device=device)
        self.act_cat = torch.zeros((units, num_categories), dtype=torch.int64, device=device)
        self.support = torch.zeros((labels,), dtype=torch.int64, device=device)
        self.pixels = 0
        self.images = 0

    def _check_pixels(self, n: int) -> None:
        if self.pixels and n and n != self.pixels:
            raise ValueError(f"label planes of {n} pixels after planes of {self.pixels}")
        self.pixels = self.pixels or n

    def add(self, sizes: torch.Tensor, lb: LabelBatch) -> None:
        """Add B images: ``sizes: (B, C) int64`` each image's mask pixels per unit at the
        label resolution (what :meth:`IoUTally.add` returns), ``lb`` the batch's labels."""
        dev = self.mean.device
        n = lb.size[0] * lb.size[1]
        self._check_pixels(n)
        B = sizes.shape[0]
        self.images += B
        a = sizes.to(device=dev, dtype=torch.float64)
        b = lb.areas.to(device=dev, dtype=torch.float64).clone()
        b[:, 0] = 0.0  # label 0 never counts
        self.mean[:, lb.uniq] += torch.round(a.T @ b).to(torch.int64)
        var = (spread(a, n).T @ spread(b, n)) * variance_scale(n)
        self.var[:, lb.uniq] += _fixed(var)
        self._add_image_labels(a, lb.image_labels.to(dev), n)
        self._add_support(lb, B)
        if self.union == "category":
            cat = lb.cat_pixels.to(device=dev, dtype=torch.float64)
            p = overlap_probability(a[:, :, None], cat[:, None, :], n)  # (B, C, K)
            p = torch.where(lb.imgcat.to(dev)[:, None, :], (a > 0).to(p.dtype)[:, :, None], p)
            self.act_cat += _fixed((a[:, :, None] * p).sum(dim=0))

    def _add_image_labels(self, a: torch.Tensor, il: torch.Tensor, n: int) -> None:
        """Image-level labels ``il: (B, M)`` (0: none) cover every pixel: ``E[I_i] = a_i``."""
        ok = il > 0
        if not bool(ok.any()):
            return
        uniq, inv = torch.unique(il[ok], return_inverse=True)
        onehot = torch.zeros((il.shape[0], uniq.shape[0]), dtype=torch.float64, device=a.device)
        rows = torch.nonzero(ok, as_tuple=True)[0]
        onehot.index_put_((rows, inv), torch.ones_like(rows, dtype=torch.float64), accumulate=True)
        self.mean[:, uniq] += torch.round(a.T @ onehot).to(torch.int64) * n

    def _add_support(self, lb: LabelBatch, B: int) -> None:
        dev = self.support.device
        present = torch.zeros((B, self.support.shape[0]), dtype=torch.bool, device=dev)
        present[:, lb.uniq] = lb.areas.to(dev) > 0
        present.scatter_(1, lb.image_labels.to(dev), True)
        present[:, 0] = False
        self.support += present.sum(dim=0)

    def merge(self, other: ChanceTally) -> None:
        for name in ("mean", "var", "act_cat", "support"):
            getattr(self, name).add_(getattr(other, name).to(self.mean.device))
        self._check_pixels(other.pixels)
        self.images += other.images

    def result(self, tally: IoUTally) -> ChanceLevels:
        """The chance levels against ``tally``, the IoU tally of the same images and masks."""
        n = max(self.pixels, 1)
        E = self.mean.cpu().numpy().astype(np.float64) / n
        V = self.var.cpu().numpy().astype(np.float64) / _ONE
        if self.union == "category":
            EA = self.act_cat.cpu().numpy().astype(np.float64) / _ONE
        else:
            total = tally.act_total.cpu().numpy().astype(np.float64)
            EA = np.repeat(total[:, None], self.num_categories, axis=1)
        lc = self.label_category.cpu().numpy()
        inter = tally.inter.cpu().numpy().astype(np.float64)
        truth = tally.truth.cpu().numpy().astype(np.float64)
        chance, sd, z = chance_iou(inter, E, V, EA, truth, np.maximum(lc, 0))
        valid = (lc >= 0) & (np.arange(len(lc)) > 0)
        c, s, zz, e = (np.where(valid[None, :], x, 0.0) for x in (chance, sd, z, E))
        return ChanceLevels(c, s, zz, e, self.support.cpu().numpy().astype(np.int64))

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "var": self.var,
            "act_cat": self.act_cat,
            "support": self.support,
            "pixels": self.pixels,
            "images": self.images,
            "union": self.union,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.mean.device
        for name in ("mean", "var", "act_cat", "support"):
            setattr(self, name, state[name].to(dev))
        self.pixels = int(state["pixels"])
        self.images = int(state["images"])
        self.union = str(state["union"])


def merge_chance(ct: ChanceTally) -> None:
    """Sum every rank's counts into ``ct`` (all-reduce; a rank without images has ``pixels``
    0, so the largest is everyone's)."""
    import torch.distributed as dist

    for name in ("mean", "var", "act_cat", "support"):
        dist.all_reduce(getattr(ct, name), op=dist.ReduceOp.SUM)
    dev = ct.mean.device
    images = torch.tensor([ct.images], dtype=torch.int64, device=dev)
    dist.all_reduce(images, op=dist.ReduceOp.SUM)
    pixels = torch.tensor([ct.pixels], dtype=torch.int64, device=dev)
    dist.all_reduce(pixels, op=dist.ReduceOp.MAX)
    ct.images, ct.pixels = int(images.item()), int(pixels.item())
