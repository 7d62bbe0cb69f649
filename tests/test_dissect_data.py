"""The dissection's dataset view of a Broden folder."""

from __future__ import annotations

from pathlib import Path

import torch


def test_dataset_and_collate(mini_broden: Path) -> None:
    from conceptkit.dissection import data

    ds = data.BrodenDataset(mini_broden)
    s = ds[0]
    assert s.image.shape == (3, 224, 224) and s.image.dtype == torch.uint8
    assert s.planes["part"].shape == (2, 112, 112)
    assert s.planes["scene"].shape == (0, 112, 112)
    b = data.collate([ds[0], ds[1]])
    assert b.images.shape == (2, 3, 224, 224)
    assert b.planes["object"].shape == (2, 1, 112, 112)
    assert b.image_labels["scene"].tolist() == [[3], [3]]
