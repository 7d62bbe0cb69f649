"""What the analyses beyond single units read from a finished dissection, in one place.

A run folder (``results.json``, ``quantile_<layer>.npy``, ``tally_<layer>.csv``) names its
model, dataset, layers, preprocessing and union rule. :func:`open_run` reads it (through
:mod:`conceptkit.explain.run`, which checks that the dataset's CSV files are the dissected
ones), :func:`load_concepts` packs every concept of the dataset once
(:class:`~conceptkit.explain.masks.ConceptMasks`), and :func:`layer_features` recomputes the
layers' features with one forward pass in the run's batch size and preprocessing.
:func:`image_concepts` unpacks one image's concept masks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptkit.errors import UsageError
from conceptkit.explain.masks import ConceptMasks, ImageLabels, build_concept_masks, unpack
from conceptkit.explain.run import (
    ExplainSettings,
    FeatureStore,
    RunInfo,
    check_data,
    compute_features,
    concept_table,
    read_run,
)

Log = Callable[[str], None]


@dataclass
class RunConcepts:
    """Every concept of a run's dataset: ``masks`` (packed, per image), and per concept ``c``
    its label ``numbers[c]``, ``names[c]`` and category name ``categories[c]``;
    ``splits[i]``: the index.csv split of image ``i``."""

    masks: ConceptMasks
    numbers: list[int]
    names: list[str]
    categories: list[str]
    category_names: list[str]
    splits: list[str]


def open_run(
    run: str | Path, data: str | Path | None = None, layers: Sequence[str] | None = None
) -> tuple[RunInfo, list[str]]:
    """The run folder's record and the chosen layers (default: all dissected ones)."""
    info = read_run(run, data)
    chosen = list(layers) if layers else list(info.layers)
    for layer in chosen:
        if layer not in info.layers:
            raise UsageError(f"layer {layer!r} was not dissected in this run ({info.layers})")
    check_data(info)
    return info, chosen


def _label_items(data: Path) -> Iterator[ImageLabels]:
    from conceptkit.dissection.data import BrodenDataset

    ds = BrodenDataset(data, load_images=False, load_planes=True)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=16, num_workers=_workers(), collate_fn=list, shuffle=False
    )
    for samples in loader:
        for s in samples:
            assert s.planes is not None and s.image_labels is not None
            yield ImageLabels(s.planes.numpy(), s.image_labels.numpy())


def _workers() -> int:
    return min(4, max(0, (os.cpu_count() or 1) - 1))


def load_concepts(info: RunInfo) -> RunConcepts:
    """Pack every concept of the run's dataset (one pass over the label planes)."""
    from conceptkit.broden import read_index

    numbers, cats, names, cat_names, nlab = concept_table(info.data)
    cm = build_concept_masks(
        _label_items(info.data), info.images, info.seg_size, numbers, cats, nlab
    )
    splits = [row.split for row in read_index(info.data)]
    return RunConcepts(cm, numbers, names, [cat_names[k] for k in cats], cat_names, splits)


def load_run_model(info: RunInfo, model_opts: dict[str, Any] | None = None) -> torch.nn.Module:
    """The run's model (``model_opts``: ``model``, ``arch``, ``num_classes``, ``trust_pickle``
    as for ``conceptkit dissect``), refused unless its weights are the dissected ones."""
    from conceptkit.explain.run import load_run_model

    return load_run_model(info, model_opts or {})


def layer_features(
    model: torch.nn.Module,
    info: RunInfo,
    layers: Sequence[str],
    batch_size: int | None = None,
    device: str = "cpu",
    cache_mem: int = 2 << 30,
    log: Log | None = None,
) -> dict[str, FeatureStore]:
    """``{layer: (C, N, h, w) float32}`` stores, one forward pass over the dataset; call
    ``close()`` on each when done."""
    opts = ExplainSettings(batch_size=batch_size, device=device, cache_mem=cache_mem)
    return compute_features(model, info, layers, opts, log or (lambda msg: None))


def image_concepts(cm: ConceptMasks, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``i``'s concepts: ``(k,) int64`` concept indices and ``(k, S) bool`` masks."""
    rows = cm.by_image[cm.iptr[i] : cm.iptr[i + 1]]
    return cm.block_concept[rows], unpack(cm.blocks[rows], cm.pixels)


def image_level(cm: ConceptMasks) -> np.ndarray:
    """``(L,) bool``: concepts that cover every pixel of every image they occur in (image-level
    labels such as scenes and textures)."""
    support = np.diff(cm.cptr)
    return (support > 0) & (cm.truth == support * cm.pixels)
