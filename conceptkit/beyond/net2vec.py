"""Concepts spread over many units: Net2Vec (Fong & Vedaldi, CVPR 2018).

For every concept ``k`` of a layer with ``C`` units, a weight vector ``w_k (C,)`` and a bias
``b_k`` are learned so that ``w_k . f + b_k > 0`` segments the concept, where ``f`` is the
layer's feature vector at a location. All concepts of the layer are trained at once, as one
``(C, K)`` weight matrix, by Adam on mini-batches of images, with a per-pixel logistic loss
balanced for each concept's frequency ``f_k`` (positives weighted ``1 / f_k``, negatives
``1 / (1 - f_k)``). The balanced loss puts the boundary where a cell's share of the concept
passes ``f_k``, not where the label-resolution IoU is best, so each bias is then moved to the
cut that maximises the concept's IoU at the label resolution on (up to ``calibrate_images``
of) the training images (:func:`calibrate`, a histogram sweep).

Bilinear upsampling is linear, so the combination's map at the label resolution is the
upsampled combination of the feature maps: training runs at the feature resolution, against
soft targets (each concept mask pulled back to the feature grid by the upsampling's own
weights, ``t = M U / 1 U``), and scoring at the label resolution, where the mask is the
upsampled ``w . f + b > 0``. Features are standardised per unit for the optimiser; the saved
weights act on raw features.

Training uses one split and scoring another: index.csv's ``train`` images and the rest when
the dataset has both, else every ``1/holdout``-th image is held out. On the scoring images
each concept's IoU (``sum inter / sum union`` over the images, every image counted) is
compared with the best single unit's IoU there (the run's threshold and upsampling, the same
images and union). Concepts are the labels of label planes; image-level labels (scene,
texture) are left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conceptkit import artefacts as af
from conceptkit.artefacts import number
from conceptkit.beyond.features import image_concepts, image_level
from conceptkit.dissection.upsample import bilinear
from conceptkit.errors import UsageError
from conceptkit.explain.masks import ConceptMasks, threshold32

EPS = 1e-10
CHUNK_ELEMS = 1 << 24  # upsampled values held at once


@dataclass
class EmbedSettings:
    """``epochs`` over the training images in batches of ``batch_images``, Adam at ``lr``
        (``weight_decay`` on the standardised weights); ``holdout``: the share of images scored
        when the dataset has one split; ``min_images``: concepts need this many training images;
        ``share``: ``units`` counts the fewest units holding this share of a vector's squared
        (standardised) weight; ``seed`` fixes the shuffling; ``calibrate_images`` (evenly spread
    training images) and ``bins`` set the bias calibration."""

    epochs: int = 30
    batch_images: int = 64
    lr: float = 0.01
    weight_decay: float = 0.0
    holdout: float = 0.2
    min_images: int = 1
    share: float = 0.9
    seed: int = 0
    calibrate_images: int = 128
    bins: int = 1024

    def check(self) -> None:
        if self.epochs < 1 or self.batch_images < 1:
            raise UsageError("--epochs and --batch-images must be at least 1")
        if not 0.0 < self.holdout < 1.0:
            raise UsageError("--holdout must lie in (0, 1)")
        if not 0.0 < self.share <= 1.0:
            raise UsageError("--share must lie in (0, 1]")
        if self.lr <= 0:
            raise UsageError("--lr must be positive")


@dataclass
class LayerEmbedding:
    """One layer, K concepts (column ``k``: concept index ``concepts[k]``). ``weights: (C, K)``
    and ``bias: (K,)`` on raw features; ``mean``/``std: (C,)`` the standardisation; ``(K,)``:
    ``iou`` of the combination and ``single_iou`` of the best unit ``single_unit`` on the
    scoring images, ``units`` (see :class:`EmbedSettings`), ``train_images``, ``score_pixels``."""

    layer: str
    concepts: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    iou: np.ndarray
    single_iou: np.ndarray
    single_unit: np.ndarray
    units: np.ndarray
    train_images: np.ndarray
    score_pixels: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)

    def standardised(self) -> np.ndarray:
        """``(C, K)`` the weights on standardised features."""
        return self.weights * self.std[:, None]

    def similarity(self) -> np.ndarray:
        """``(K, K)`` cosine similarity of the standardised weight vectors."""
        w = self.standardised()
        norm = np.linalg.norm(w, axis=0)
        unit = w / np.where(norm > 0, norm, 1.0)[None, :]
        return unit.T @ unit


def split_images(splits: Sequence[str], holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """``(train, score)`` image indices: index.csv's ``train`` rows and the rest when both
    occur, else every image ``i`` with ``floor((i + 1) h) > floor(i h)`` scored."""
    s = np.asarray(splits)
    idx = np.arange(len(s))
    if "train" in set(splits) and len(set(splits)) > 1:
        return idx[s == "train"], idx[s != "train"]
    held = np.floor((idx + 1) * holdout) > np.floor(idx * holdout)
    return idx[~held], idx[held]


def upsample_matrix(grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``(S, h*w) float32`` the bilinear upsampling (``align_corners=False``) as a matrix."""
    hw = grid[0] * grid[1]
    eye = torch.eye(hw, dtype=torch.float32).reshape(hw, 1, *grid)
    up = F.interpolate(eye, size=size, mode="bilinear", align_corners=False)
    return up.reshape(hw, -1).T.contiguous()


def chosen_concepts(cm: ConceptMasks, train: np.ndarray, min_images: int) -> np.ndarray:
    """Concept indices learned: pixel-level, in at least ``min_images`` training images."""
    in_train = np.isin(cm.block_image, train)
    count = np.bincount(cm.block_concept[in_train], minlength=cm.concepts)
    return np.flatnonzero((count >= max(1, min_images)) & ~image_level(cm))


def soft_targets(
    cm: ConceptMasks, images: np.ndarray, column: np.ndarray, U: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image: ``(k,)`` columns and ``(k, h*w)`` targets of its learned concepts
    (``column[c]``: concept c's column, -1 if not learned; ``U`` from :func:`upsample_matrix`)."""
    mass = U.sum(dim=0)
    out = []
    for i in images:
        cons, bits = image_concepts(cm, int(i))
        keep = column[cons] >= 0
        m = torch.from_numpy(bits[keep]).to(torch.float32)
        out.append((torch.from_numpy(column[cons[keep]]), (m @ U) / mass[None, :]))
    return out


def _cells(features: np.ndarray, images: np.ndarray) -> torch.Tensor:
    """``features: (C, N, h, w)`` -> ``(len(images) * h * w, C)`` cells of ``images``."""
    part = np.ascontiguousarray(features[:, images].transpose(1, 2, 3, 0), dtype=np.float32)
    return torch.from_numpy(part.reshape(-1, features.shape[0]))


def _dense(targets: Sequence[tuple[torch.Tensor, torch.Tensor]], hw: int, K: int) -> torch.Tensor:
    """``(len(targets) * hw, K)`` dense targets of a batch of images."""
    T = torch.zeros((len(targets), hw, K), dtype=torch.float32)
    for j, (cols, t) in enumerate(targets):
        T[j][:, cols] = t.T
    return T.reshape(-1, K)


def fit(
    X: torch.Tensor,
    targets: Sequence[tuple[torch.Tensor, torch.Tensor]],
    K: int,
    opts: EmbedSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Learn all K concepts at once. ``X: (n * hw, C)`` cells of n training images (image-
    major; standardised in place), ``targets`` per image. Returns raw-feature ``weights (C,
    K)``, ``bias (K,)`` and the standardisation ``mean``, ``std (C,)``, all float64."""
    n = len(targets)
    hw = X.shape[0] // max(n, 1)
    C = X.shape[1]
    mean = X.mean(dim=0, dtype=torch.float64)
    std = X.to(torch.float64).std(dim=0, correction=0)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    X.sub_(mean.to(torch.float32)).div_(std.to(torch.float32))
    freq = torch.zeros(K, dtype=torch.float64)
    for cols, t in targets:
        freq.index_add_(0, cols, t.sum(dim=1).to(torch.float64))
    freq = (freq / max(n * hw, 1)).clamp(1e-6, 1 - 1e-6).to(torch.float32)
    pos, neg = 1.0 / freq, 1.0 / (1.0 - freq)
    W = torch.zeros((C, K), dtype=torch.float32, requires_grad=True)
    b = torch.zeros(K, dtype=torch.float32, requires_grad=True)
    adam = torch.optim.Adam([W, b], lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    Xv = X.view(n, hw, C)
    for _ in range(opts.epochs):
        order = torch.randperm(n, generator=gen)
        for a in range(0, n, opts.batch_images):
            rows = order[a : a + opts.batch_images]
            T = _dense([targets[int(r)] for r in rows], hw, K)
            z = Xv[rows].reshape(-1, C) @ W + b
            loss = (T * pos * F.softplus(-z) + (1 - T) * neg * F.softplus(z)).mean(dim=0).sum()
            adam.zero_grad()
            loss.backward()
            adam.step()
    Ws = W.detach().to(torch.float64)
    weights = Ws / std[:, None]
    bias = b.detach().to(torch.float64) - (mean / std) @ Ws
    return weights.numpy(), bias.numpy(), mean.numpy(), std.numpy()


def calibrate(
    cm: ConceptMasks,
    features: np.ndarray,
    images: np.ndarray,
    column: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    bins: int = 1024,
) -> np.ndarray:
    """``(K,)`` biases: per concept, the cut on the upsampled ``w . f + b`` that maximises the
    IoU with the concept over ``images`` (pixels binned into ``bins`` steps of each concept's
    range at the feature resolution, which bounds the upsampled values)."""
    C, K = weights.shape
    Wt = torch.from_numpy(weights.astype(np.float32))
    bt = torch.from_numpy(bias.astype(np.float32))
    sub = np.ascontiguousarray(features[:, images].transpose(1, 0, 2, 3))
    z_all = torch.einsum("nchw,ck->nkhw", torch.from_numpy(sub), Wt) + bt[None, :, None, None]
    lo = z_all.amin(dim=(0, 2, 3))
    hi = z_all.amax(dim=(0, 2, 3))
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    total = torch.zeros(K * bins, dtype=torch.float64)
    pos = torch.zeros(K * bins, dtype=torch.float64)
    offs = (torch.arange(K) * bins)[None, :, None]
    step = max(1, CHUNK_ELEMS // (K * cm.pixels))
    for a in range(0, len(images), step):
        z = z_all[a : a + step]
        up = F.interpolate(z, size=cm.size, mode="bilinear", align_corners=False).flatten(2)
        idx = ((up - lo[None, :, None]) / span[None, :, None] * bins).long().clamp_(0, bins - 1)
        idx += offs
        total += torch.bincount(idx.flatten(), minlength=K * bins).to(torch.float64)
        for j, i in enumerate(images[a : a + step]):
            cons, bits = image_concepts(cm, int(i))
            keep = column[cons] >= 0
            cols = torch.from_numpy(column[cons[keep]])
            hit = idx[j][cols][torch.from_numpy(bits[keep])]
            pos += torch.bincount(hit, minlength=K * bins).to(torch.float64)
    total = total.view(K, bins).flip(1).cumsum(1)  # pixels at or above each bin, top down
    inter = pos.view(K, bins).flip(1).cumsum(1)
    iou = inter / (total + inter[:, -1:] - inter + EPS)
    best = torch.argmax(iou, dim=1)
    cut = lo + span * (bins - 1 - best).to(torch.float32) / bins  # the chosen bin's lower edge
    return (bt - cut).to(torch.float64).numpy()


@dataclass
class Scores:
    """Counts on the scoring images: ``inter``/``pred``/``truth: (K,)`` of the combinations,
    ``unit_inter: (C, K)`` and ``unit_act: (C,)`` of the single units."""

    inter: np.ndarray
    pred: np.ndarray
    truth: np.ndarray
    unit_inter: np.ndarray
    unit_act: np.ndarray


def _up(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(n, h, w)`` -> ``(n, S)`` upsampled bilinearly (``align_corners=False``), by the
    tally's arithmetic, so a single unit's mask is the dissection's."""
    if maps.shape[0] == 0:
        return torch.zeros((0, size[0] * size[1]), dtype=maps.dtype)
    return bilinear(maps, size).reshape(maps.shape[0], -1)


def score(
    cm: ConceptMasks,
    features: np.ndarray,
    images: np.ndarray,
    column: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    thresholds: np.ndarray,
) -> Scores:
    """Count combinations and single units against the K learned concepts at the label
    resolution (``features: (C, N, h, w)``, ``thresholds: (C,)``, ``weights: (C, K)``). Only
    maps whose raw maximum passes the cut are upsampled: bilinear values never exceed it."""
    C, K = weights.shape
    Wt = torch.from_numpy(weights.astype(np.float32))
    bt = torch.from_numpy(bias.astype(np.float32))
    t32 = torch.tensor([float(threshold32(float(t))) for t in thresholds], dtype=torch.float32)
    zeros = np.zeros(K, np.int64)
    out = Scores(
        zeros, zeros.copy(), zeros.copy(), np.zeros((C, K), np.int64), np.zeros(C, np.int64)
    )
    for i in images:
        f = torch.from_numpy(np.ascontiguousarray(features[:, int(i)], dtype=np.float32))
        z = torch.einsum("chw,ck->khw", f, Wt) + bt[:, None, None]
        on_k = torch.nonzero(z.amax(dim=(1, 2)) > 0).flatten()
        pred = _up(z[on_k], cm.size) > 0
        on_u = torch.nonzero(f.amax(dim=(1, 2)) > t32).flatten()
        units = _up(f[on_u], cm.size) > t32[on_u, None]
        out.pred[on_k.numpy()] += pred.sum(dim=1).numpy()
        out.unit_act[on_u.numpy()] += units.sum(dim=1).numpy()
        cons, bits = image_concepts(cm, int(i))
        keep = column[cons] >= 0
        cols = column[cons[keep]]
        m = torch.from_numpy(bits[keep])
        out.truth[cols] += m.sum(dim=1).numpy()
        where = torch.full((K,), -1, dtype=torch.int64)
        where[on_k] = torch.arange(len(on_k))
        row = where[torch.from_numpy(cols)]
        hit = (row >= 0).numpy()
        if hit.any():
            out.inter[cols[hit]] += (pred[row[row >= 0]] & m[hit]).sum(dim=1).numpy()
        if len(on_u) and len(cols):
            both = units.to(torch.float32) @ m.to(torch.float32).T
            out.unit_inter[np.ix_(on_u.numpy(), cols)] += both.round().to(torch.int64).numpy()
    return out


def units_holding(w: np.ndarray, share: float) -> np.ndarray:
    """``w: (C, K)`` -> ``(K,)`` the fewest units whose squared weights reach ``share``."""
    sq = np.sort(w * w, axis=0)[::-1]
    total = sq.sum(axis=0)
    cum = np.cumsum(sq, axis=0)
    need = (cum < share * total[None, :] - 1e-15 * total[None, :]).sum(axis=0) + 1
    return np.where(total > 0, need, 0).astype(np.int64)


def embed_layer(
    layer: str,
    cm: ConceptMasks,
    features: np.ndarray,
    thresholds: np.ndarray,
    train: np.ndarray,
    score_images: np.ndarray,
    opts: EmbedSettings,
) -> LayerEmbedding:
    """Learn and score every concept of one layer (``features: (C, N, h, w) float32``)."""
    opts.check()
    t0 = time.perf_counter()
    concepts = chosen_concepts(cm, train, opts.min_images)
    K = len(concepts)
    if K == 0:
        raise UsageError(f"{layer}: no pixel-level concept occurs in the training images")
    column = np.full(cm.concepts, -1, dtype=np.int64)
    column[concepts] = np.arange(K)
    U = upsample_matrix((features.shape[2], features.shape[3]), cm.size)
    targets = soft_targets(cm, train, column, U)
    X = _cells(features, train)
    t1 = time.perf_counter()
    weights, bias, mean, std = fit(X, targets, K, opts)
    del X
    tc = time.perf_counter()
    spread = np.linspace(0, len(train) - 1, min(len(train), opts.calibrate_images))
    pick = train[np.unique(spread.round().astype(np.int64))]
    bias = calibrate(cm, features, pick, column, weights, bias, opts.bins)
    t2 = time.perf_counter()
    sc = score(cm, features, score_images, column, weights, bias, thresholds)
    iou = sc.inter / (sc.pred + sc.truth - sc.inter + EPS)
    uiou = sc.unit_inter / (sc.unit_act[:, None] + sc.truth[None, :] - sc.unit_inter + EPS)
    best = np.argmax(uiou, axis=0)
    in_train = np.isin(cm.block_image, train)
    count = np.bincount(cm.block_concept[in_train], minlength=cm.concepts)[concepts]
    return LayerEmbedding(
        layer=layer,
        concepts=concepts,
        weights=weights,
        bias=bias,
        mean=mean,
        std=std,
        iou=iou,
        single_iou=uiou[best, np.arange(K)],
        single_unit=best.astype(np.int64),
        units=units_holding(weights * std[:, None], opts.share),
        train_images=count.astype(np.int64),
        score_pixels=sc.truth,
        seconds={
            "targets": t1 - t0,
            "fit": tc - t1,
            "calibrate": t2 - tc,
            "score": time.perf_counter() - t2,
        },  # fmt: skip
    )


# ----------------------------------------------------------------------------- a run


@dataclass
class Embedding:
    """:func:`embed` on a run: per layer a :class:`LayerEmbedding`; concept names, numbers and
    categories (indexed by concept index); the split sizes; ``seconds["gather"]``."""

    run: str
    settings: EmbedSettings
    names: list[str]
    numbers: list[int]
    categories: list[str]
    train: int
    scored: int
    layers: dict[str, LayerEmbedding] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def embed(
    run: str | Path,
    settings: EmbedSettings | None = None,
    layers: Sequence[str] | None = None,
    data: str | Path | None = None,
    model: torch.nn.Module | None = None,
    model_opts: dict[str, Any] | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    cache_mem: int = 2 << 30,
    log: Callable[[str], None] | None = None,
) -> Embedding:
    """Net2Vec embeddings of every concept for the layers of a finished dissection; the
    features are gathered once (one forward pass) and kept for training and scoring."""
    from conceptkit.beyond import features as fe
    from conceptkit.explain.run import thresholds

    opts = settings or EmbedSettings()
    opts.check()
    t0 = time.perf_counter()
    info, chosen = fe.open_run(run, data, layers)
    rc = fe.load_concepts(info)
    train, scored = split_images(rc.splits, opts.holdout)
    if len(train) == 0 or len(scored) == 0:
        raise UsageError("the dataset has too few images to train on one part and score another",
                         file=info.data)  # fmt: skip
    net = model if model is not None else fe.load_run_model(info, model_opts)
    stores = fe.layer_features(net, info, chosen, batch_size, device, cache_mem, log)
    result = Embedding(str(info.root), opts, rc.names, rc.numbers, rc.categories,
                       len(train), len(scored))  # fmt: skip
    result.seconds["gather"] = time.perf_counter() - t0
    try:
        for layer in chosen:
            feats = stores[layer].array
            th = thresholds(info, layer)
            result.layers[layer] = embed_layer(layer, rc.masks, feats, th, train, scored, opts)
    finally:
        for st in stores.values():
            st.close()
    return result


def concept_rows(ex: Embedding, le: LayerEmbedding) -> tuple[list[str], list[list[Any]]]:
    """``embed_<layer>.csv``: one row per learned concept."""
    rows: list[list[Any]] = []
    for k, c in enumerate(le.concepts):
        rows.append(
            [
                ex.numbers[c],
                ex.names[c],
                ex.categories[c],
                number(le.iou[k]),
                number(le.single_iou[k]),
                int(le.single_unit[k]),
                number(le.iou[k] - le.single_iou[k]),
                int(le.units[k]),
                int(le.train_images[k]),
                int(le.score_pixels[k]),
            ]
        )
    return list(af.EMBED_COLUMNS), rows


def similarity_rows(ex: Embedding, le: LayerEmbedding) -> tuple[list[str], list[list[Any]]]:
    """``embed_similarity_<layer>.csv``: the cosine matrix, labelled by label name."""
    names = [ex.names[c] for c in le.concepts]
    sim = le.similarity()
    rows = [[names[k], *[number(v) for v in sim[k]]] for k in range(len(names))]
    return ["label", *names], rows


def save(ex: Embedding, out: str | Path, force: bool = False) -> list[Path]:
    """``embed_<layer>.csv``, ``embed_<layer>.npz`` (``weights (C, K)``, ``bias (K,)`` on raw
    features, ``numbers (K,)`` label numbers, ``mean``/``std (C,)``), ``embed_similarity_<layer>
    .csv`` and ``embed.json`` (settings, split sizes, per-layer means; no timings)."""
    writers: dict[str, af.Writer] = {}
    summary: dict[str, Any] = {}
    for name, le in ex.layers.items():
        writers[af.embed_csv(name)] = af.csv_writer(*concept_rows(ex, le))
        writers[af.embed_npz(name)] = af.npz_writer(
            {
                "weights": le.weights.astype(np.float32),
                "bias": le.bias.astype(np.float32),
                "numbers": np.asarray([ex.numbers[c] for c in le.concepts], dtype=np.int64),
                "mean": le.mean.astype(np.float32),
                "std": le.std.astype(np.float32),
            }
        )
        writers[af.embed_similarity_csv(name)] = af.csv_writer(*similarity_rows(ex, le))
        scored = le.score_pixels > 0
        summary[name] = {
            "concepts": len(le.concepts),
            "concepts_scored": int(scored.sum()),
            "mean_iou": float(le.iou[scored].mean()) if scored.any() else 0.0,
            "mean_single_iou": float(le.single_iou[scored].mean()) if scored.any() else 0.0,
            "combination_better": int((le.iou[scored] > le.single_iou[scored]).sum()),
            "median_units": float(np.median(le.units)) if len(le.units) else 0.0,
        }
    o = ex.settings
    writers[af.EMBED_JSON] = af.json_writer(
        {
            "run": ex.run,
            "settings": {"epochs": o.epochs, "batch_images": o.batch_images, "lr": o.lr,
                         "weight_decay": o.weight_decay, "holdout": o.holdout,
                         "min_images": o.min_images, "share": o.share, "seed": o.seed},
            "train_images": ex.train,
            "score_images": ex.scored,
            "layers": summary,
            "layer_order": list(ex.layers),
        }
    )  # fmt: skip
    return af.save_all(out, writers, force)


def read_embedding(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``embed_<layer>.npz`` -> ``weights (C, K)``, ``bias (K,)``, ``numbers (K,)``."""
    from conceptkit.errors import LayoutError

    try:
        with np.load(path, allow_pickle=False) as z:
            w, b, n = z["weights"], z["bias"], z["numbers"]
    except (OSError, ValueError, KeyError) as exc:
        raise LayoutError(f"is not an embedding file ({exc})", file=path) from None
    if w.ndim != 2 or b.shape != (w.shape[1],) or n.shape != (w.shape[1],):
        raise LayoutError(f"holds arrays of shapes {w.shape}, {b.shape}, {n.shape}", file=path)
    return w.astype(np.float32), b.astype(np.float32), n.astype(np.int64)
