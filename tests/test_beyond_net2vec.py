"""Net2Vec on a synthetic layer where one concept is exactly a fixed mixture of two units: the
learned combination beats every single unit (whatever its threshold) and recovers the mixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conceptkit.beyond.net2vec import (
    EmbedSettings,
    embed_layer,
    score,
    split_images,
    units_holding,
    upsample_matrix,
)
from conceptkit.explain.masks import ConceptMasks, ImageLabels, build_concept_masks

N, C, GRID, SIZE = 60, 6, 8, 16
MIX = np.array([0.7, 0.3, 0, 0, 0, 0])
CUT = 0.4


def _layer(seed: int = 0) -> tuple[np.ndarray, ConceptMasks]:
    """``(C, N, 8, 8)`` random features; concept 'a' = upsampled ``MIX . f > CUT``."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(C, N, GRID, GRID)).astype(np.float32)
    mix = np.tensordot(MIX.astype(np.float32), feats, axes=1)  # (N, 8, 8)
    up = F.interpolate(torch.from_numpy(mix)[:, None], size=(SIZE, SIZE), mode="bilinear",
                       align_corners=False)[:, 0].numpy()  # fmt: skip
    items = [ImageLabels((up[i] > CUT).astype(np.int64)[None], np.zeros(0, np.int64))
             for i in range(N)]  # fmt: skip
    cm = build_concept_masks(items, N, (SIZE, SIZE), [1], [0], 2)
    return feats, cm


def test_upsample_matrix_is_the_interpolation() -> None:
    x = torch.randn(3, GRID, GRID)
    U = upsample_matrix((GRID, GRID), (SIZE, SIZE))
    ref = F.interpolate(x[None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]
    assert torch.allclose((x.reshape(3, -1) @ U.T).reshape(3, SIZE, SIZE), ref, atol=1e-6)


def test_split_images() -> None:
    train, scored = split_images(["train"] * 3 + ["val"] * 2, 0.2)
    assert train.tolist() == [0, 1, 2] and scored.tolist() == [3, 4]
    train, scored = split_images(["train"] * 10, 0.2)
    assert scored.tolist() == [4, 9] and len(train) == 8


def test_units_holding() -> None:
    w = np.array([[3.0, 1.0], [4.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert units_holding(w, 0.9).tolist() == [2, 4]
    assert units_holding(w, 0.5).tolist() == [1, 2]


def test_mixture_is_recovered_and_beats_every_unit() -> None:
    feats, cm = _layer()
    train, scored = np.arange(45), np.arange(45, N)
    opts = EmbedSettings(epochs=300, batch_images=16, lr=0.05)
    le = embed_layer("l", cm, feats, np.zeros(C), train, scored, opts)
    assert le.concepts.tolist() == [0]
    w, b = le.weights[:, 0], float(le.bias[0])
    # the direction and the cut of the mixture: w / w0 = MIX / 0.7, b / w0 = -CUT / 0.7
    assert w / w[0] == pytest.approx(MIX / 0.7, abs=0.04)
    assert b / w[0] == pytest.approx(-CUT / 0.7, abs=0.04)
    assert le.units.tolist() == [2]
    assert le.iou[0] > 0.95
    # every single unit at every threshold stays far below
    column = np.array([0])
    best = 0.0
    for q in np.linspace(0.05, 0.95, 19):
        th = np.quantile(feats.reshape(C, -1), q, axis=1)
        sc = score(cm, feats, scored, column, le.weights, le.bias, th)
        single = sc.unit_inter[:, 0] / (sc.unit_act + sc.truth[0] - sc.unit_inter[:, 0])
        best = max(best, float(single.max()))
    assert best < le.iou[0] - 0.15
    assert le.single_iou[0] <= best


def test_score_when_nothing_fires() -> None:
    feats, cm = _layer()
    w = np.zeros((C, 1))
    sc = score(cm, feats, np.arange(N), np.array([0]), w, np.array([-1.0]), np.full(C, 1e9))
    assert sc.pred.tolist() == [0] and sc.inter.tolist() == [0] and sc.unit_act.sum() == 0
    assert sc.truth[0] == cm.truth[0] > 0
