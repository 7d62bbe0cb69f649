"""Concept maps agree with the dissection's masks pixel for pixel."""

from __future__ import annotations

import numpy as np
import torch

from conceptkit.beyond.segment import Detectors, embedding_labels, unit_labels
from conceptkit.dissection.upsample import bilinear, mask_pixels

SIZE = (40, 56)  # not a multiple of the 7 x 7 maps


def _feats() -> tuple[torch.Tensor, np.ndarray]:
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(5, 7, 7, generator=g)
    # thresholds that are upsampled values themselves: ties sit exactly on the cut
    thresh = np.quantile(bilinear(feats, SIZE).reshape(5, -1).numpy(), 0.9, axis=1, method="lower")
    return feats, thresh.astype(np.float32)


def test_one_detector_labels_exactly_its_dissection_mask():
    feats, thresh = _feats()
    for unit in range(5):
        det = Detectors(np.array([unit]), np.array([7]))
        labels = unit_labels(feats, thresh, det, SIZE)
        m, pix = mask_pixels(
            feats[unit : unit + 1], torch.from_numpy(thresh[unit : unit + 1]), SIZE
        )
        mask = np.zeros(SIZE[0] * SIZE[1], dtype=bool)
        mask[pix.numpy()] = True
        assert mask.any() and set(np.unique(labels)) <= {0, 7}
        np.testing.assert_array_equal(labels.reshape(-1) == 7, mask)


def test_several_detectors_label_the_union_with_the_strongest():
    feats, thresh = _feats()
    det = Detectors(np.array([0, 2, 4]), np.array([1, 2, 3]))
    labels = unit_labels(feats, thresh, det, SIZE)
    up = bilinear(feats[[0, 2, 4]], SIZE).numpy()
    t = thresh[[0, 2, 4]][:, None, None]
    rel = (up - t) / np.abs(t)
    union = (up > t).any(0)
    np.testing.assert_array_equal(labels > 0, union)
    np.testing.assert_array_equal(labels[union], (rel.argmax(0) + 1)[union])


def test_embedding_labels_where_the_upsampled_combination_is_positive():
    feats, _ = _feats()
    w = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    b = np.array([-1.0, -1.5], dtype=np.float32)
    labels = embedding_labels(feats, w, b, np.array([4, 9]), SIZE)
    combo = (
        torch.einsum("chw,ck->khw", feats, torch.from_numpy(w)) + torch.from_numpy(b)[:, None, None]
    )
    up = bilinear(combo, SIZE).numpy()
    np.testing.assert_array_equal(labels > 0, (up > 0).any(0))
    np.testing.assert_array_equal(labels[labels > 0], np.array([4, 9])[up.argmax(0)][labels > 0])
