"""Streaming statistics of a dissection: pure tensor code, no file I/O.

Every statistic has the same shape, modelled on running statistics that can be summed across
processes and checkpointed: ``add(...)`` one batch, ``merge(other)`` a statistic of the same kind
built over other images (another rank, another shard), ``state_dict()`` / ``load_state_dict()``
(tensors and ints only, so ``torch.save`` or an all-gather can carry them).

- :class:`TopQuantile`: the EXACT per-unit upper quantile (numpy's default linear interpolation)
  from a per-unit buffer of only the largest values needed.
- :class:`TopImages`: each unit's top-N images by maximum activation, with their raw maps.
- :class:`IoUTally`: intersections, truths and unions of thresholded, upsampled activation maps
  against label planes, vectorised over units and images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conceptkit.dissection.upsample import mask_pixels


def quantile_need(total: int, quantile: float) -> int:
    """How many of the largest values decide the ``1 - quantile`` quantile of ``total`` values.

    numpy's linear method reads sorted positions ``floor(v)`` and ``floor(v) + 1`` with
    ``v = (total - 1) * (1 - quantile)``; both lie in the top ``total - floor(v)`` values.
    """
    if total <= 0:
        return 0
    virtual = (total - 1) * (1.0 - quantile)
    return int(total - math.floor(virtual))


def float32_below(thresholds: torch.Tensor) -> torch.Tensor:
    """The largest float32 ``t32 <= t`` for float64 ``t``, so that ``x > t`` iff ``x > t32``
    for every float32 ``x``. ``thresholds: (C,) float64`` -> ``(C,) float32``."""
    t64 = thresholds.to(torch.float64)
    t32 = t64.to(torch.float32)
    above = t32.to(torch.float64) > t64
    down = torch.nextafter(t32, torch.full_like(t32, -math.inf))
    return torch.where(above, down, t32)


class TopQuantile:
    """Exact per-unit ``1 - quantile`` quantile of raw activations over a dataset.

    ``total`` is the number of values each unit will see (``N * h * w``), known in advance
    from the dataset length; the buffer keeps only the ``quantile_need(total, quantile)``
    largest values per unit: ``top: (C, k) float32``. :meth:`result` equals
    ``np.quantile(all_values.astype(float64), 1 - quantile)`` (method ``linear``) per unit.

    Per-batch cost does not grow with the images seen: once ``k`` values are kept, a batch's
    values at or below each unit's current k-th largest (``floor``) are dropped at once (they
    can no longer be among the ``k`` largest: ties change no value), the rest wait in a
    pending buffer that is merged into ``top`` (one top-k) only when it holds more than ``k``
    values, so each value is selected over O(1) times on average.
    """

    def __init__(self, units: int, total: int, quantile: float = 0.005, device: Any = None) -> None:
        self.units = units
        self.total = int(total)
        self.quantile = float(quantile)
        self.need = quantile_need(self.total, self.quantile)
        self.count = 0
        self._top = torch.empty((units, 0), dtype=torch.float32, device=device)
        self._pending: list[torch.Tensor] = []
        self._pending_width = 0
        self._floor: torch.Tensor | None = None

    @property
    def top(self) -> torch.Tensor:
        """``(C, k) float32``: each unit's ``k <= need`` largest values so far (unordered)."""
        self._compact()
        return self._top

    @top.setter
    def top(self, values: torch.Tensor) -> None:
        self._pending, self._pending_width = [], 0
        self._top = values
        self._set_floor()

    def _set_floor(self) -> None:
        full = self.need > 0 and self._top.shape[1] >= self.need
        self._floor = self._top.amin(dim=1) if full else None

    def _compact(self) -> None:
        if not self._pending:
            return
        values = torch.cat([self._top, *self._pending], dim=1)
        self._pending, self._pending_width = [], 0
        if values.shape[1] > self.need:
            values = torch.topk(values, self.need, dim=1, sorted=False).values
        self._top = values
        self._set_floor()

    def _keep(self, values: torch.Tensor) -> None:
        """Replace the buffer by the ``need`` largest of ``values: (C, m)`` per unit."""
        if values.shape[1] > self.need:
            values = torch.topk(values, self.need, dim=1, sorted=False).values
        self.top = values

    def add(self, acts: torch.Tensor) -> None:
        """``acts: (B, C, h, w)`` raw activations of B images (any memory layout)."""
        acts = acts.to(device=self._top.device, dtype=torch.float32)
        self.count += acts[:, 0].numel()
        if self._floor is None:
            vals = acts.transpose(0, 1).reshape(self.units, -1)
        else:
            vals = self._above_floor(acts)
            if vals.shape[1] == 0:
                return
        self._pending.append(vals)
        self._pending_width += vals.shape[1]
        if self._pending_width > self.need:
            self._compact()

    def _above_floor(self, acts: torch.Tensor) -> torch.Tensor:
        """``acts: (B, C, h, w)`` -> ``(C, m)``: each unit's values above its floor,
        left-aligned, padded with -inf (never among the k largest: ``top`` holds k finite
        values). Found by one comparison in the batch's own layout (no transposed copy)."""
        assert self._floor is not None
        C = self.units
        floor = self._floor.view(1, -1, *([1] * (acts.dim() - 2)))
        if not (acts.is_contiguous() or acts.is_contiguous(memory_format=torch.channels_last)):
            acts = acts.contiguous()
        # compared in the batch's own layout; the few hits listed unit by unit
        above = (acts > floor).transpose(0, 1).reshape(C, -1)  # (C, B * h * w)
        unit, pos = torch.nonzero(above, as_tuple=True)  # sorted by unit
        counts = torch.bincount(unit, minlength=C)
        width = int(counts.max()) if unit.numel() else 0
        out = torch.full((C, width), -math.inf, device=acts.device)
        if width == 0:
            return out
        # memory offset of (image b, unit, pixel) with pos = b * S + pixel
        S = acts[0, 0].numel()
        if acts.is_contiguous():  # (B, C, S): b * C * S + unit * S + pixel
            offset = pos + torch.div(pos, S, rounding_mode="floor") * ((C - 1) * S) + unit * S
        else:  # channels-last, (B, S, C): (b * S + pixel) * C + unit
            offset = pos * C + unit
        flat = acts.as_strided((acts.numel(),), (1,))
        first = torch.cumsum(counts, 0) - counts
        out[unit, torch.arange(unit.shape[0], device=out.device) - first[unit]] = flat[offset]
        return out

    def merge(self, other: TopQuantile) -> None:
        self.count += other.count
        self._keep(torch.cat([self.top, other.top.to(self._top.device)], dim=1))

    def result(self) -> np.ndarray:
        """``(C,) float64`` thresholds (numpy linear interpolation over all values seen)."""
        n = self.count
        if n == 0:
            raise ValueError("no activations were added")
        if quantile_need(n, self.quantile) > self.top.shape[1]:
            raise ValueError(f"saw {n} values per unit, the buffer sized for {self.total}")
        desc = torch.sort(self.top, dim=1, descending=True).values.cpu().numpy().astype(np.float64)
        virtual = (n - 1) * (1.0 - self.quantile)
        prev = math.floor(virtual)
        nxt = min(prev + 1, n - 1)
        gamma = virtual - prev
        a = desc[:, n - 1 - prev]
        b = desc[:, n - 1 - nxt]
        diff = b - a
        # numpy's _lerp: a + d*t, but b - d*(1-t) where t >= 0.5
        return b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma

    def state_dict(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "count": self.count,
            "total": self.total,
            "quantile": self.quantile,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.total = int(state["total"])
        self.quantile = float(state["quantile"])
        self.need = quantile_need(self.total, self.quantile)
        self.top = state["top"].to(self._top.device)


class TopImages:
    """Each unit's top-``n`` images by maximum raw activation, with the raw maps.

    ``values: (C, k) float32`` descending (ties: lower row first), ``indices: (C, k) int64``
    dataset rows, ``maps: (C, k, h, w) float32``; ``k <= n`` grows until ``n`` images are seen.
    """

    def __init__(self, units: int, n: int, map_size: tuple[int, int], device: Any = None) -> None:
        self.n = int(n)
        h, w = map_size
        self.values = torch.empty((units, 0), dtype=torch.float32, device=device)
        self.indices = torch.empty((units, 0), dtype=torch.int64, device=device)
        self.maps = torch.empty((units, 0, h, w), dtype=torch.float32, device=device)

    def _order(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """``(C, m)`` candidates -> ``(C, <= n)`` positions of the new top-n, best first
        (ties: lower row first)."""
        order = torch.sort(indices, dim=1, stable=True).indices
        v = torch.gather(values, 1, order)
        order = torch.gather(order, 1, torch.sort(v, dim=1, descending=True, stable=True).indices)
        return order[:, : self.n]

    def _select(self, values: torch.Tensor, indices: torch.Tensor, maps: torch.Tensor) -> None:
        order = self._order(values, indices)
        self.values = torch.gather(values, 1, order)
        self.indices = torch.gather(indices, 1, order)
        c = torch.arange(values.shape[0], device=values.device)[:, None]
        self.maps = maps[c, order]

    def add(self, acts: torch.Tensor, rows: torch.Tensor) -> None:
        """``acts: (B, C, h, w)``, ``rows: (B,) int64`` their dataset row numbers. Only the
        maps that enter the top-n are copied."""
        acts = acts.to(device=self.values.device, dtype=torch.float32)
        maxima = acts.amax(dim=(2, 3)).T  # (C, B)
        rows = rows.to(self.values.device).view(1, -1).expand_as(maxima)
        values = torch.cat([self.values, maxima], 1)
        indices = torch.cat([self.indices, rows], 1)
        order = self._order(values, indices)
        kept = self.values.shape[1]
        units = torch.arange(values.shape[0], device=values.device)[:, None].expand_as(order)
        old = order < kept
        maps = torch.empty((*order.shape, *self.maps.shape[2:]), dtype=torch.float32,
                           device=self.maps.device)  # fmt: skip
        maps[old] = self.maps[units[old], order[old]]
        maps[~old] = acts[order[~old] - kept, units[~old]]
        self.values = torch.gather(values, 1, order)
        self.indices = torch.gather(indices, 1, order)
        self.maps = maps

    def merge(self, other: TopImages) -> None:
        dev = self.values.device
        self._select(
            torch.cat([self.values, other.values.to(dev)], 1),
            torch.cat([self.indices, other.indices.to(dev)], 1),
            torch.cat([self.maps, other.maps.to(dev)], 1),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "values": self.values, "indices": self.indices, "maps": self.maps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.values.device
        self.n = int(state["n"])
        self.values = state["values"].to(dev)
        self.indices = state["indices"].to(dev)
        self.maps = state["maps"].to(dev)


_MAX_BITS = 62  # categories as bits of one int64 (the compiled CPU counting's limit)


def _compiled(dev: torch.device, categories: int) -> bool:
    """Whether the compiled CPU counting (:mod:`conceptkit.dissection._tally_cpu`) runs."""
    return dev.type == "cpu" and categories <= _MAX_BITS


def _numpy_ints(t: torch.Tensor) -> np.ndarray:
    """A CPU integer tensor as a C-contiguous numpy array (no copy when it is one)."""
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        t = t.to(torch.int64)
    return np.ascontiguousarray(t.detach().numpy())


@dataclass
class LabelBatch:
    """A batch's labels, decoded once and shared by every layer's tally.

    ``truth: (L,)`` labelled pixels per label; ``uniq: (Lc,)`` label numbers present (0
    first); ``inv: (B * S, P)`` each pixel's index into ``uniq``, one column per plane; ``catmat: (Lc, K)``
    one-hot category of each present label; ``image_labels: (B, M)``; ``imgcat: (B, K)``
    whether the image has an image-level label of each category; ``areas: (B, Lc) int64``
    each image's pixels carrying ``uniq[j]`` (summed over planes; column 0 is not
    meaningful); ``cat_pixels: (B, K) int64`` each image's pixels carrying at least one
    label of category ``k`` (in any plane); ``catbit: (Lc,) int64`` each present label's
    category as a bit (``1 << k``; 0 for label 0, for a label without category and when
    there are more than 62 categories).
    """

    size: tuple[int, int]
    truth: torch.Tensor
    uniq: torch.Tensor
    inv: torch.Tensor
    catmat: torch.Tensor
    image_labels: torch.Tensor
    imgcat: torch.Tensor
    areas: torch.Tensor
    cat_pixels: torch.Tensor
    catbit: torch.Tensor


class IoUTally:
    """Intersection / union counts of unit masks against labels (NetDissect's tally).

    For each image, a unit's raw map is upsampled bilinearly (``align_corners=False``; the
    arithmetic of :mod:`conceptkit.dissection.upsample`) to the label size ``sh x sw`` and
    thresholded strictly (``value > threshold``); only the pixels near samples that come
    close to the threshold are evaluated (:func:`~conceptkit.dissection.upsample.mask_pixels`). Accumulated, all
    ``int64``:

    - ``inter: (C, L)`` mask pixels carrying label ``l`` (each plane counted; an image-level
      label covers every pixel, so it adds the whole mask);
    - ``truth: (L,)`` labelled pixels of ``l`` (an image-level label adds ``sh * sw``);
    - ``act_cat: (C, K)`` mask pixels counted toward category ``k``'s union. With
      ``union="category"`` (NetDissect) an image adds its mask only when the mask overlaps a
      pixel whose label belongs to ``k`` or the image has an image-level label of ``k``; with
      ``union="global"`` every image adds its mask to every category;
    - ``act_total: (C,)`` all mask pixels.

    Label 0 never counts. ``label_category: (L,) int64`` is each label's (primary) category
    index, -1 for none. ``max_elems`` bounds the pixels one chunk of maps can yield (maps x
    label pixels), and with it the memory of a chunk's mask and counts.
    """

    def __init__(
        self,
        units: int,
        label_category: torch.Tensor,
        num_categories: int,
        union: str = "category",
        device: Any = None,
        max_elems: int = 1 << 24,
    ) -> None:
        if union not in ("category", "global"):
            raise ValueError(f"union must be 'category' or 'global', not {union!r}")
        self.units = units
        self.union = union
        self.max_elems = max_elems
        self.label_category = label_category.to(device=device, dtype=torch.int64)
        if self.label_category.numel() and int(self.label_category.max()) >= num_categories:
            raise ValueError(
                f"label_category holds {int(self.label_category.max())}, past the "
                f"{num_categories} categories"
            )
        labels = self.label_category.shape[0]
        self.num_categories = num_categories
        self.inter = torch.zeros((units, labels), dtype=torch.int64, device=device)
        self.truth = torch.zeros((labels,), dtype=torch.int64, device=device)
        self.act_cat = torch.zeros((units, num_categories), dtype=torch.int64, device=device)
        self.act_total = torch.zeros((units,), dtype=torch.int64, device=device)
        self.images = 0

    def _clean(self, labels: torch.Tensor) -> torch.Tensor:
        """Label numbers outside label.csv count as unlabelled."""
        lab = labels.to(device=self.truth.device, dtype=torch.int64)
        return torch.where((lab > 0) & (lab < self.truth.shape[0]), lab, torch.zeros_like(lab))

    def prepare(self, planes: torch.Tensor, image_labels: torch.Tensor) -> LabelBatch:
        """Decode a batch's labels once for every layer (see :class:`LabelBatch`).

        ``planes: (B, P, sh, sw)`` integer label planes of all categories, zero padded;
        ``image_labels: (B, M)`` image-level label numbers, zero padded.
        """
        dev = self.truth.device
        nlab = self.truth.shape[0]
        K = self.num_categories
        B = planes.shape[0]
        sh, sw = planes.shape[-2:]
        S = sh * sw
        fast = _compiled(dev, K)
        raw = planes.reshape(B, -1, S)
        il = self._clean(image_labels).reshape(B, -1)
        if fast:
            from conceptkit.dissection._tally_cpu import present_kernel

            raw_np = _numpy_ints(raw)  # one contiguous copy at most, for both kernels
            present = torch.from_numpy(present_kernel(raw_np, nlab))
        else:
            pl = self._clean(raw)
            present = torch.bincount(pl.flatten(), minlength=nlab)
        truth = present + torch.bincount(il.flatten(), minlength=nlab) * S
        truth[0] = 0
        # compact one-hot: the labels present in this batch, 0 first
        present[0] = 1
        uniq = torch.nonzero(present).flatten()
        lut = torch.zeros((nlab,), dtype=torch.int64, device=dev)
        lut[uniq] = torch.arange(uniq.shape[0], device=dev)
        ucat = self.label_category[uniq]
        has = (ucat >= 0) & (uniq > 0)
        nc = uniq.shape[0]
        catmat = torch.zeros((nc, K), dtype=torch.float32, device=dev)
        catmat[torch.nonzero(has).flatten(), ucat[has]] = 1.0
        one = torch.ones((), dtype=torch.int64, device=dev)
        catbit = torch.zeros((nc,), dtype=torch.int64, device=dev)
        if K <= _MAX_BITS:
            catbit = torch.where(has, one << ucat.clamp(min=0), 0)
        icat = torch.where(il > 0, self.label_category[il], torch.full_like(il, -1))
        icat = torch.where(icat >= 0, icat, torch.full_like(icat, K))
        imgcat = torch.zeros((B, K + 1), dtype=torch.bool, device=dev)
        imgcat.scatter_(1, icat, True)
        if fast:
            from conceptkit.dissection._tally_cpu import label_kernel

            P = raw.shape[1]
            inv_np = np.empty((B * S, P), np.int64)
            areas_np = np.zeros((B, nc), np.int64)
            cat_np = np.zeros((B, K), np.int64)
            label_kernel(raw_np, lut.numpy(), catbit.numpy(), inv_np, areas_np, cat_np)
            inv, areas = torch.from_numpy(inv_np), torch.from_numpy(areas_np)
            cat_pixels = torch.from_numpy(cat_np)
        else:
            inv = lut[pl.transpose(1, 2)].reshape(B * S, -1)
            image = torch.arange(B, device=dev).repeat_interleave(S)[:, None]
            areas = torch.bincount((image * nc + inv).flatten(), minlength=B * nc).view(B, nc)
            cat_pixels = self._category_pixels(inv, torch.where(has, ucat, -1), image[:, 0], B)
        return LabelBatch(
            (sh, sw), truth, uniq, inv, catmat, il, imgcat[:, :K], areas, cat_pixels, catbit
        )

    def _category_pixels(
        self, inv: torch.Tensor, ucat: torch.Tensor, image: torch.Tensor, B: int
    ) -> torch.Tensor:
        """``(B, K)``: per image, the pixels carrying a label of each category in any plane.
        ``inv: (B * S, P)`` indices into the present labels, ``ucat: (Lc,)`` their category
        (-1: none), ``image: (B * S,)`` each pixel's image. Each pixel's categories as bits,
        OR-ed over the planes, then one histogram of (image, bit pattern) per batch."""
        K, dev = self.num_categories, inv.device
        if K == 0:
            return torch.zeros((B, 0), dtype=torch.int64, device=dev)
        if K > 16:  # wide patterns: one count per category instead
            onehot = torch.zeros((inv.shape[0], K + 1), dtype=torch.bool, device=dev)
            onehot.scatter_(1, torch.where(ucat >= 0, ucat, K)[inv], True)
            return onehot[:, :K].view(B, -1, K).sum(dim=1)
        one = torch.ones((), dtype=torch.int64, device=dev)
        bit = torch.where(ucat >= 0, one << ucat.clamp(min=0), 0)
        pattern = bit[inv[:, 0]]
        for p in range(1, inv.shape[1]):
            pattern |= bit[inv[:, p]]
        hist = torch.bincount(image * (1 << K) + pattern, minlength=B << K).view(B, 1 << K)
        bits = (torch.arange(1 << K, device=dev)[:, None] >> torch.arange(K, device=dev)) & 1
        return hist @ bits

    def add(
        self,
        acts: torch.Tensor,
        thresholds: torch.Tensor,
        planes: torch.Tensor | LabelBatch,
        image_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Add B images; returns ``sizes: (B, C) int64``, each image's mask pixels per unit.

        ``acts: (B, C, h, w)`` raw activations; ``thresholds: (C,)`` (float64 compared
        exactly); ``planes: (B, P, sh, sw)`` integer label planes of all categories, zero
        padded, with ``image_labels: (B, M)`` image-level label numbers, zero padded; or a
        :class:`LabelBatch` from :meth:`prepare` (shared by the layers of one batch).
        """
        dev = self.truth.device
        if isinstance(planes, LabelBatch):
            lb = planes
        else:
            if image_labels is None:
                raise ValueError("image_labels are needed with raw planes")
            lb = self.prepare(planes, image_labels)
        acts = acts.to(device=dev, dtype=torch.float32)
        C = acts.shape[1]
        sh, sw = lb.size
        S = sh * sw
        nlab = self.truth.shape[0]
        nc = lb.uniq.shape[0]
        t32 = float32_below(thresholds.to(dev))
        self.images += acts.shape[0]
        self.truth += lb.truth

        # (image, unit) pairs whose raw maximum passes the threshold; the rest have empty masks
        active = acts.amax(dim=(2, 3)) > t32[None, :]
        b_all, c_all = torch.nonzero(active, as_tuple=True)
        step = max(1, self.max_elems // S)
        per_unit = torch.zeros((C, nc), dtype=torch.int64, device=dev)
        sizes = torch.zeros((acts.shape[0], C), dtype=torch.int64, device=dev)
        fast = _compiled(dev, self.num_categories)
        for start in range(0, b_all.shape[0], step):
            b = b_all[start : start + step]
            c = c_all[start : start + step]
            k = b.shape[0]
            kk, s = mask_pixels(acts[b, c], t32[c], (sh, sw))
            if fast:
                from conceptkit.dissection._tally_cpu import count_kernel

                size_np, over_np = np.zeros(k, np.int64), np.zeros(k, np.int64)
                count_kernel(
                    kk.numpy(), s.numpy(), b.numpy(), c.numpy(), lb.inv.numpy(), S,
                    lb.catbit.numpy(), per_unit.numpy(), size_np, over_np,
                )  # fmt: skip
                size = torch.from_numpy(size_np)
                hits = torch.from_numpy(over_np)
            else:
                size = torch.bincount(kk, minlength=k)
                keys = kk[:, None] * nc + torch.index_select(lb.inv, 0, b[kk] * S + s)
                inter = torch.bincount(keys.flatten(), minlength=k * nc).view(k, nc)
                inter[:, 0] = 0
                per_unit.index_add_(0, c, inter)
            sizes[b, c] = size
            # image-level labels: the whole mask intersects them
            lab = lb.image_labels[b]
            ok = lab > 0
            flat = (c[:, None] * nlab + lab)[ok]
            self.inter.view(-1).index_add_(0, flat, size[:, None].expand_as(lab)[ok])
            if self.union == "category":
                if fast:
                    bits = torch.arange(self.num_categories, device=dev)
                    over = ((hits[:, None] >> bits) & 1).bool() | lb.imgcat[b]
                else:
                    over = ((inter.to(torch.float32) @ lb.catmat) > 0) | lb.imgcat[b]
                add = size[:, None] * over
            else:
                add = size[:, None].expand(k, self.num_categories)
            self.act_cat.index_add_(0, c, add.to(torch.int64))
            self.act_total.index_add_(0, c, size)
        self.inter[:, lb.uniq] += per_unit
        return sizes

    def merge(self, other: IoUTally) -> None:
        for name in ("inter", "truth", "act_cat", "act_total"):
            getattr(self, name).add_(getattr(other, name).to(self.truth.device))
        self.images += other.images

    def iou(self) -> torch.Tensor:
        """``(C, L) float64``: ``inter / (act_cat[:, cat(l)] + truth[l] - inter + 1e-10)``;
        0 for label 0 and labels without a category."""
        cat = self.label_category.clamp(min=0)
        union_act = self.act_cat[:, cat].to(torch.float64)
        inter = self.inter.to(torch.float64)
        iou = inter / (union_act + self.truth.to(torch.float64)[None, :] - inter + 1e-10)
        valid = (self.label_category >= 0) & (torch.arange(len(cat), device=cat.device) > 0)
        return torch.where(valid[None, :], iou, torch.zeros_like(iou))

    def state_dict(self) -> dict[str, Any]:
        return {
            "inter": self.inter,
            "truth": self.truth,
            "act_cat": self.act_cat,
            "act_total": self.act_total,
            "images": self.images,
            "union": self.union,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.truth.device
        for name in ("inter", "truth", "act_cat", "act_total"):
            setattr(self, name, state[name].to(dev))
        self.images = int(state["images"])
        self.union = str(state["union"])
