"""Fabricated dissection runs for the report's tests and bench, written by the real writer.

:func:`make_broden` writes a small Broden folder (images with coloured shapes, label planes,
image-level scene labels) through :mod:`conceptkit.broden`'s writers. :func:`make_run` fills a
:class:`~conceptkit.dissection.results.DissectResult` with random but self-consistent statistics
(IoU = intersection / (truth + activation - intersection) from integer counts) and saves it with
:meth:`DissectResult.save`, so the files are exactly what ``conceptkit dissect`` writes: the
report's inputs cannot drift from the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from conceptkit.broden import (
    BrodenMeta,
    IndexRow,
    LabelStats,
    build_tables,
    read_index,
    read_meta,
    save_plane,
    write_index,
    write_tables,
)
from conceptkit.dissection.results import DissectResult, LayerResult

# category -> label names; numbers are assigned in this order, starting at 1.
VOCAB: dict[str, tuple[str, ...]] = {
    "object": ("car", "tree", "road", "sky", "person", "building"),
    "part": ("wheel", "window", "door"),
    "scene": ("street", "kitchen"),
    "color": ("red", "green", "blue"),
}
IMAGE_LEVEL = ("scene",)


def _numbers() -> tuple[dict[str, list[int]], dict[int, str]]:
    """Category -> its label numbers, and number -> name, for :data:`VOCAB`."""
    numbers: dict[str, list[int]] = {}
    names: dict[int, str] = {}
    n = 1
    for cat, labs in VOCAB.items():
        numbers[cat] = list(range(n, n + len(labs)))
        names.update(zip(numbers[cat], labs))
        n += len(labs)
    return numbers, names


def _image(rng: np.random.Generator, i: int, size: int) -> np.ndarray:
    """``(size, size, 3) uint8``: a smooth colour wave, different for each ``i``."""
    xx = np.arange(size)[None, :]
    base = rng.integers(0, 255, size=3)
    img = np.empty((size, size, 3), dtype=np.uint8)
    for c in range(3):
        img[..., c] = (base[c] + 90 * np.sin((xx + 3 * i) / 5.0 + c)).clip(0, 255)
    return img


def _plane(rng: np.random.Generator, numbers: list[int], seg: int) -> np.ndarray:
    """``(seg, seg) int32``: two random rectangles of random labels of one category."""
    plane = np.zeros((seg, seg), dtype=np.int32)
    for _ in range(2):
        y0, x0 = rng.integers(0, seg - 4, size=2)
        h, w = rng.integers(3, seg // 2, size=2)
        plane[y0 : y0 + h, x0 : x0 + w] = int(rng.choice(numbers))
    return plane


def make_broden(root: Path, images: int = 20, size: int = 32, seed: int = 0) -> Path:
    """Write a Broden folder with ``images`` RGB images of ``size x size`` (planes at half size)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images" / "syn").mkdir(parents=True, exist_ok=True)
    numbers, names = _numbers()
    seg = size // 2
    stats = LabelStats()
    rows = []
    for i in range(images):
        img = _image(rng, i, size)
        planes: dict[str, Sequence[np.ndarray]] = {}
        labels: dict[str, Sequence[int]] = {}
        rel: dict[str, tuple[str, ...]] = {}
        for cat in VOCAB:
            if cat in IMAGE_LEVEL:
                labels[cat] = [int(rng.choice(numbers[cat]))]
                continue
            plane = _plane(rng, numbers[cat], seg)
            name = f"syn/{i:06d}_{cat}.png"
            save_plane(plane, root / "images" / name)
            planes[cat] = [plane]
            rel[cat] = (name,)
            mask = np.kron(plane > 0, np.ones((2, 2), dtype=bool))
            img[mask] = (img[mask] * 0.5 + np.array([200, 60, 40]) * 0.5).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"syn/{i:06d}.jpg", quality=90)
        stats.add_image(planes, labels)
        rows.append(
            IndexRow(
                image=f"syn/{i:06d}.jpg",
                split="train",
                ih=size,
                iw=size,
                sh=seg,
                sw=seg,
                planes=rel,
                image_labels={k: tuple(v) for k, v in labels.items()},
            )
        )
    order = list(VOCAB)
    categories, table, codes = build_tables(order, names, stats)
    write_tables(root, categories, table, codes)
    write_index(root, rows, order)
    return root


def label_table(meta: BrodenMeta) -> tuple[list[str], np.ndarray]:
    """``label_names[n]`` and ``label_category (L,) int64`` (-1: label 0 / none), as the
    dissection derives them: each label in its primary category."""
    names = meta.label_names()
    nlab = max(names) + 1
    cats = meta.category_names
    label_category = np.full(nlab, -1, dtype=np.int64)
    for num, cat in meta.primary_category().items():
        if 0 < num < nlab and cat in cats:
            label_category[num] = cats.index(cat)
    return [names.get(i, "") for i in range(nlab)], label_category


def fake_layer(
    rng: np.random.Generator,
    name: str,
    units: int,
    side: int,
    label_category: np.ndarray,
    images: int,
    top_n: int,
) -> LayerResult:
    """A layer's statistics: integer counts with a heavy tail of well-matching units, and
    IoUs computed from them; top images distinct per unit, maps standard normal."""
    nlab = label_category.shape[0]
    ncat = int(label_category.max()) + 1
    truth = np.asarray(rng.integers(50, 500, size=nlab), dtype=np.int64)
    truth[0] = 0
    act_cat = rng.integers(50, 500, size=(units, ncat)).astype(np.int64)
    act = act_cat[:, np.maximum(label_category, 0)]  # (C, L): the unit's activation per label
    target = rng.gamma(1.2, 0.012, size=(units, nlab))  # wanted IoU
    inter = np.rint(target * (truth + act) / (1.0 + target)).astype(np.int64)
    inter = np.minimum(inter, np.minimum(truth, act))
    inter[:, label_category < 0] = 0
    union = truth + act - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    maps = rng.normal(0.0, 1.0, size=(units, top_n, side, side)).astype(np.float32)
    k = min(top_n, images)
    indices = np.stack([rng.choice(images, size=k, replace=False) for _ in range(units)])
    return LayerResult(
        name=name,
        map_size=(side, side),
        thresholds=rng.uniform(0.5, 1.5, size=units),
        inter=inter,
        truth=truth,
        act_cat=act_cat,
        act_total=act_cat.sum(axis=1),
        iou=iou,
        top_indices=indices.astype(np.int64),
        top_values=maps[:, :k].reshape(units, k, -1).max(-1).astype(np.float32),
        top_maps=maps[:, :k],
    )


def make_result(
    data: Path,
    layers: dict[str, tuple[int, int]],
    top_n: int = 5,
    iou_threshold: float = 0.04,
    seed: int = 0,
) -> DissectResult:
    """A :class:`DissectResult` for the Broden folder ``data``; ``layers``: name -> (units,
    map side). Settings, model and data records carry the keys a real run writes."""
    rng = np.random.default_rng(seed)
    meta = read_meta(data)
    rows = read_index(data)
    n_images = len(rows)
    label_names, label_category = label_table(meta)
    return DissectResult(
        layers={
            name: fake_layer(rng, name, units, side, label_category, n_images, top_n)
            for name, (units, side) in layers.items()
        },
        categories=meta.category_names,
        label_names=label_names,
        label_category=label_category,
        settings={
            "quantile": 0.005,
            "iou_threshold": iou_threshold,
            "top_n": top_n,
            "union": "category",
            "preprocess": "netdissect",
            "mean": [124.6901, 118.6897, 109.5388],
            "std": [57.12, 57.12, 57.12],
            "batch_size": 64,
            "thresholds_from": None,
        },
        model={"spec": "synthetic", "description": "fabricated run", "fingerprint": "0" * 16},
        data={
            "path": str(Path(data).resolve()),
            "fingerprint": "f" * 16,
            "images": n_images,
            "categories": meta.category_names,
            "image_size": [rows[0].ih, rows[0].iw],
            "seg_size": [rows[0].sh, rows[0].sw],
        },
        version="0.1.0",
    )


def make_run(
    out: Path,
    data: Path,
    layers: dict[str, tuple[int, int]],
    top_n: int = 5,
    iou_threshold: float = 0.04,
    seed: int = 0,
) -> Path:
    """Save a fabricated run for ``data`` into ``out`` (which must not exist); returns ``out``."""
    return make_result(data, layers, top_n, iou_threshold, seed).save(out)


def make(
    root: Path,
    layers: dict[str, tuple[int, int]] | None = None,
    images: int = 20,
    top_n: int = 5,
    size: int = 32,
    seed: int = 0,
    iou_threshold: float = 0.04,
) -> Path:
    """A Broden folder at ``root/data`` and a run at ``root/out``; returns the run folder."""
    layers = layers or {"layer3": (12, 4), "layer4": (16, 2)}
    data = make_broden(Path(root) / "data", images=images, size=size, seed=seed)
    return make_run(Path(root) / "out", data, layers, top_n, iou_threshold, seed=seed)
