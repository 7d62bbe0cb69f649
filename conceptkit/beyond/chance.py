"""How much of an IoU is chance, for a finished run: the masks recomputed from its features.

The model and its arithmetic are :mod:`conceptkit.dissection.chance`'s (the dissection counts
the same chance levels during its own tally pass; this module serves runs made before, and
adds ``iou_sd`` and the expected intersection per unit): for a unit and a label, the IoU that
masks of the same per-image sizes ``a_i`` would reach if placed independently of the label
(hypergeometric mean ``sum_i a_i b_i / n`` and variance of the overlap, the expected union
under the run's union rule), ``z = (I - E[I]) / sd[I]`` (0 where ``sd[I] = 0``, as for an
image-level label, which any mask overlaps fully). Real masks are blobs, which disperse more
than pixels placed independently (about 3x the standard deviation for rectangles moved
rigidly, tests/test_beyond_chance.py), so ``z >= 3`` is necessary, not sufficient. A unit's
*support* is the number of images its best label occurs in.

Here the per-image counts come from block-sparse concept masks, so both sums are sparse
matrix products ``(C, N) @ (N, L)``: :func:`chance_layer` does a layer from features (the
dissection's masks, recomputed by :mod:`conceptkit.explain.masks`); :func:`expected_counts`
the expectations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import sparse

from conceptkit.dissection.chance import (
    EPS,
    SUPPORT_MIN,
    Z_MIN,
    chance_iou,
    flags,
    overlap_probability,
    spread,
    variance_scale,
)
from conceptkit.explain.masks import ConceptMasks, popcount_rows, unit_mask
from conceptkit.explain.search import UnitSearch

__all__ = ["EPS", "SUPPORT_MIN", "Z_MIN", "ChanceLayer", "ChanceResult", "chance", "chance_iou"]


@dataclass
class ChanceLayer:
    """One layer (C units, L concepts, K categories). ``(C, L) float64``: ``iou`` (observed,
    the dissection's), ``iou_chance``, ``iou_sd``, ``z``; ``inter``/``expected`` the observed
    and expected intersections. ``(C,)``: ``label`` the best concept (-1: none), ``support``
    the images it occurs in, ``mask_images`` images where the unit's mask is not empty."""

    layer: str
    iou: np.ndarray
    iou_chance: np.ndarray
    iou_sd: np.ndarray
    z: np.ndarray
    inter: np.ndarray
    expected: np.ndarray
    label: np.ndarray
    support: np.ndarray
    mask_images: np.ndarray

    def flags(self, unit: int, z_min: float = Z_MIN, support_min: int = SUPPORT_MIN) -> list[str]:
        """``near_chance`` (best label's z below ``z_min``), ``few_images`` (support below
        ``support_min``), ``no_label`` (no concept overlaps the unit)."""
        c = int(self.label[unit])
        if c < 0:
            return ["no_label"]
        return flags(float(self.z[unit, c]), int(self.support[unit]), z_min, support_min)


def category_pixels(cm: ConceptMasks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (image, category) pair present: ``image, category, pixels`` ``(P,) int64``, the
    pixels of the image carrying any label of the category."""
    if len(cm.blocks) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    K = max(cm.categories, 1)
    keys = cm.block_image * K + cm.cats[cm.block_concept]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    merged = np.bitwise_or.reduceat(cm.blocks[order], starts, axis=0)
    first = keys[starts]
    return first // K, first % K, popcount_rows(merged)


def expected_counts(
    a: np.ndarray, cm: ConceptMasks, union: str = "category", chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a: (C, N)`` mask pixels per unit and image -> ``E[I], Var[I]: (C, L)`` and the
    expected mask total each category's union counts, ``EA: (C, K)`` (see the module)."""
    n = cm.pixels
    b = popcount_rows(cm.blocks).astype(np.float64) if len(cm.blocks) else np.zeros(0)
    shape = (cm.images, cm.concepts)
    mean_w = sparse.csr_matrix((b / n, (cm.block_image, cm.block_concept)), shape=shape)
    var_w = spread(b, n) * variance_scale(n)
    var_m = sparse.csr_matrix((var_w, (cm.block_image, cm.block_concept)), shape=shape)
    a = np.asarray(a, dtype=np.float64)
    E = np.asarray((mean_w.T @ a.T).T)
    V = np.asarray((var_m.T @ spread(a, n).T).T)
    C, K = a.shape[0], cm.categories
    if union == "global":
        return E, V, np.repeat(a.sum(axis=1, keepdims=True), K, axis=1)
    img, cat, pix = category_pixels(cm)
    EA = np.zeros((C, K), dtype=np.float64)
    for u0 in range(0, C, chunk):
        part = a[u0 : u0 + chunk][:, img]  # (c, P)
        p = overlap_probability(torch.from_numpy(part), torch.from_numpy(pix[None, :]), n)
        contrib = part * p.numpy()
        for k in range(K):
            EA[u0 : u0 + chunk, k] = contrib[:, cat == k].sum(axis=1)
    return E, V, EA


def observed_counts(
    cm: ConceptMasks,
    features: np.ndarray,
    thresholds: np.ndarray,
    union: str = "category",
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``features: (C, N, h, w)`` -> ``a: (C, N)`` mask pixels per image, ``inter: (C, L)``
    and the mask totals of each category's union ``act: (C, K)``, as the dissection counts."""
    C = features.shape[0]
    K = cm.categories
    a = np.zeros((C, cm.images), dtype=np.int64)
    inter = np.zeros((C, cm.concepts), dtype=np.int64)
    act = np.zeros((C, K), dtype=np.int64)
    for u in range(C):
        um = unit_mask(u, features[u], float(thresholds[u]), cm.size)
        a[u, um.images] = um.sizes
        s = UnitSearch(cm, um, union)
        inter[u] = s.uc
        act[u] = [s.act(1 << k) for k in range(K)]
        if progress is not None:
            progress(1)
    return a, inter, act


def chance_from_counts(
    layer: str, cm: ConceptMasks, a: np.ndarray, inter: np.ndarray, act: np.ndarray, union: str
) -> ChanceLayer:
    """The whole analysis from the counts of :func:`observed_counts`."""
    truth = cm.truth.astype(np.float64)
    cats = cm.cats
    iou = inter / (act[:, cats] + truth[None, :] - inter + EPS)
    E, V, EA = expected_counts(a, cm, union)
    chance, sd, z = chance_iou(inter.astype(np.float64), E, V, EA, truth, cats)
    best = np.argmax(iou, axis=1) if cm.concepts else np.zeros(len(iou), np.int64)
    has = iou[np.arange(len(iou)), best] > 0 if cm.concepts else np.zeros(len(iou), bool)
    label = np.where(has, best, -1).astype(np.int64)
    support_all = np.diff(cm.cptr)
    support = np.where(label >= 0, support_all[np.maximum(label, 0)], 0)
    return ChanceLayer(
        layer, iou, chance, sd, z, inter, E, label, support.astype(np.int64), (a > 0).sum(axis=1)
    )


def chance_layer(
    layer: str,
    cm: ConceptMasks,
    features: np.ndarray,
    thresholds: np.ndarray,
    union: str = "category",
    progress: Callable[[int], None] | None = None,
) -> ChanceLayer:
    """Chance levels of every unit and concept of one layer (``features: (C, N, h, w)``)."""
    a, inter, act = observed_counts(cm, features, thresholds, union, progress)
    return chance_from_counts(layer, cm, a, inter, act, union)


# ----------------------------------------------------------------------------- a run


@dataclass
class ChanceResult:
    """:func:`chance` on a run: per layer a :class:`ChanceLayer`; concept names/numbers/
    categories; the union rule used."""

    run: str
    union: str
    names: list[str]
    numbers: list[int]
    categories: list[str]
    layers: dict[str, ChanceLayer]
    z_min: float = Z_MIN
    support_min: int = SUPPORT_MIN
    iou_threshold: float = 0.04


def chance(
    run: str | Path,
    layers: Sequence[str] | None = None,
    data: str | Path | None = None,
    model: torch.nn.Module | None = None,
    model_opts: dict[str, Any] | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> ChanceResult:
    """Chance levels of every unit and label of a finished dissection (one forward pass)."""
    from conceptkit.beyond import features as fe
    from conceptkit.explain.run import thresholds

    info, chosen = fe.open_run(run, data, layers)
    union = str(info.settings.get("union", "category"))
    rc = fe.load_concepts(info)
    net = model if model is not None else fe.load_run_model(info, model_opts)
    stores = fe.layer_features(net, info, chosen, batch_size, device, log=log)
    out: dict[str, ChanceLayer] = {}
    try:
        for layer in chosen:
            feats = stores[layer].array
            out[layer] = chance_layer(layer, rc.masks, feats, thresholds(info, layer), union)
    finally:
        for st in stores.values():
            st.close()
    cut = float(info.settings.get("iou_threshold", 0.04))
    return ChanceResult(
        str(info.root), union, rc.names, rc.numbers, rc.categories, out, iou_threshold=cut
    )


def unit_rows(res: ChanceResult, lc: ChanceLayer) -> tuple[list[str], list[list[Any]]]:
    """``chance_<layer>.csv``: one row per unit (0-based) for its best label."""
    from conceptkit.beyond.files import number

    head = ["unit", "label", "number", "category", "iou", "iou_chance", "iou_sd", "z"]
    head += ["intersect", "expected_intersect", "support", "mask_images", "detector", "flags"]
    rows: list[list[Any]] = []
    for u, c in enumerate(lc.label):
        c = int(c)
        if c < 0:
            rows.append([u, "", 0, "", "0.0", "0.0", "0.0", "0.0", 0, "0.0", 0,
                         int(lc.mask_images[u]), 0, "no_label"])  # fmt: skip
            continue
        iou = float(lc.iou[u, c])
        rows.append(
            [
                u,
                res.names[c],
                res.numbers[c],
                res.categories[c],
                number(iou),
                number(lc.iou_chance[u, c]),
                number(lc.iou_sd[u, c]),
                number(lc.z[u, c]),
                int(lc.inter[u, c]),
                number(lc.expected[u, c]),
                int(lc.support[u]),
                int(lc.mask_images[u]),
                int(iou > res.iou_threshold),
                ";".join(lc.flags(u, res.z_min, res.support_min)),
            ]
        )
    return head, rows


def layer_summary(res: ChanceResult, lc: ChanceLayer) -> dict[str, int]:
    """Counts of detectors and of the flagged ones among them."""
    det = [u for u, c in enumerate(lc.label) if c >= 0 and lc.iou[u, c] > res.iou_threshold]
    flags = {u: lc.flags(u, res.z_min, res.support_min) for u in det}
    return {
        "units": len(lc.label),
        "detectors": len(det),
        "detectors_near_chance": sum("near_chance" in f for f in flags.values()),
        "detectors_few_images": sum("few_images" in f for f in flags.values()),
        "detectors_unflagged": sum(not f for f in flags.values()),
    }


def planned_names(layers: Sequence[str]) -> list[str]:
    return [f"chance_{x}.{ext}" for x in layers for ext in ("csv", "npz")] + ["chance.json"]


def save(res: ChanceResult, out: str | Path, force: bool = False) -> list[Path]:
    """``chance_<layer>.csv`` (per unit), ``chance_<layer>.npz`` (``iou``, ``iou_chance``,
    ``iou_sd``, ``z``: ``(C, L) float64``, ``numbers: (L,)``) and ``chance.json``."""
    from conceptkit.beyond import files

    writers: dict[str, files.Writer] = {}
    summary: dict[str, Any] = {}
    for name, lc in res.layers.items():
        writers[f"chance_{name}.csv"] = files.csv_writer(*unit_rows(res, lc))
        arrays = {"iou": lc.iou, "iou_chance": lc.iou_chance, "iou_sd": lc.iou_sd, "z": lc.z}
        arrays["numbers"] = np.asarray(res.numbers, dtype=np.int64)
        writers[f"chance_{name}.npz"] = files.npz_writer(arrays)
        summary[name] = layer_summary(res, lc)
    writers["chance.json"] = files.json_writer(
        {
            "run": res.run,
            "union": res.union,
            "z_min": res.z_min,
            "support_min": res.support_min,
            "iou_threshold": res.iou_threshold,
            "layers": summary,
            "layer_order": list(res.layers),
        }
    )
    return files.save_all(out, writers, force)
