"""The dissection's dataset view of a Broden folder: items, collate, loader, size checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conceptkit.broden import decode_plane
from conceptkit.dissection.data import (
    BrodenDataset,
    Sample,
    check_sizes,
    collate,
    data_fingerprint,
    loader,
)
from conceptkit.errors import LayoutError


def test_item_pools_every_categorys_planes_and_labels(mini_broden: Path) -> None:
    ds = BrodenDataset(mini_broden)
    s = ds[0]
    assert s.index == 0
    assert s.image is not None and s.image.shape == (3, 224, 224) and s.image.dtype == torch.uint8
    pixels = np.asarray(Image.open(mini_broden / "images" / "mini/000001.jpg").convert("RGB"))
    np.testing.assert_array_equal(s.image.permute(1, 2, 0).numpy(), pixels)
    # category.csv order: part (2 planes), scene (image-level 3), object, color, texture (11)
    names = ["part_1", "part_2", "object", "color"]
    want = np.stack([decode_plane(mini_broden / "images" / f"mini/000001_{n}.png") for n in names])
    assert s.planes is not None and s.planes.dtype == torch.int32
    np.testing.assert_array_equal(s.planes.numpy(), want)
    assert s.image_labels is not None and s.image_labels.tolist() == [3, 11]


def test_loading_options(mini_broden: Path) -> None:
    ds = BrodenDataset(mini_broden, load_planes=False)
    s = ds[1]
    assert s.planes is None and s.image_labels is None and s.image is not None
    other = ds.with_options(load_images=True, load_planes=True, skip_images={1})
    assert other[1].image is None and other[1].planes is not None
    assert other[2].image is not None
    assert ds.load_planes is False  # the original is untouched
    assert other.rows is ds.rows


def _sample(i: int, planes: list[int], labels: list[int], image: bool = True) -> Sample:
    p = torch.stack([torch.full((2, 3), v, dtype=torch.int32) for v in planes]) if planes else None
    return Sample(
        index=i,
        image=torch.full((3, 4, 4), i, dtype=torch.uint8) if image else None,
        planes=p if p is not None else torch.zeros((0, 2, 3), dtype=torch.int32),
        image_labels=torch.tensor(labels, dtype=torch.int64),
    )


def test_collate_pads_planes_and_labels_with_zeros() -> None:
    b = collate([_sample(4, [7, 8], [3]), _sample(5, [], [])])
    assert b.rows.tolist() == [4, 5]
    assert b.images is not None and b.images.shape == (2, 3, 4, 4)
    assert b.images[1].unique().tolist() == [5]
    assert b.planes is not None and b.planes.shape == (2, 2, 2, 3)
    assert b.planes[0, 0].unique().tolist() == [7] and b.planes[0, 1].unique().tolist() == [8]
    assert b.planes[1].abs().sum() == 0
    assert b.image_labels is not None and b.image_labels.tolist() == [[3], [0]]
    # no planes and no labels anywhere still gives one (empty) column of each
    b = collate([_sample(0, [], [], image=False)])
    assert b.images is None
    assert b.planes is not None and b.planes.shape == (1, 1, 2, 3)
    assert b.image_labels is not None and b.image_labels.tolist() == [[0]]
    # planes not loaded
    s = Sample(index=0, image=None, planes=None, image_labels=None)
    b = collate([s])
    assert b.planes is None and b.image_labels is None


def test_loader_gives_exactly_the_row_ranges(mini_broden: Path) -> None:
    ds = BrodenDataset(mini_broden, load_planes=False)
    got = [b.rows.tolist() for b in loader(ds, [(0, 3), (10, 12)], workers=0)]
    assert got == [[0, 1, 2], [10, 11]]


def test_sizes_are_checked(mini_broden: Path, tmp_path: Path) -> None:
    ds = BrodenDataset(mini_broden)
    assert check_sizes(ds) == ((224, 224), (112, 112))
    root = tmp_path / "d"
    shutil.copytree(mini_broden, root)
    Image.new("RGB", (100, 224)).save(root / "images" / "mini/000001.jpg")
    Image.new("RGB", (50, 112)).save(root / "images" / "mini/000002_object.png")
    ds = BrodenDataset(root)
    with pytest.raises(LayoutError, match="image is 100x224, index.csv says 224x224") as exc:
        ds[0]
    assert exc.value.file == str(root / "images" / "mini/000001.jpg")
    with pytest.raises(LayoutError, match="plane is 50x112, expected 112x112"):
        ds[1]
    lines = (root / "index.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",224,224,112,112,", ",224,224,56,56,")
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(LayoutError) as exc:
        check_sizes(BrodenDataset(root))
    assert exc.value.place == "line 4"


def test_data_fingerprint_follows_the_tables(mini_broden: Path, tmp_path: Path) -> None:
    root = tmp_path / "d"
    shutil.copytree(mini_broden, root, ignore=shutil.ignore_patterns("images"))
    before = data_fingerprint(root)
    assert before == data_fingerprint(mini_broden) and len(before) == 64
    (root / "label.csv").write_text((root / "label.csv").read_text() + "\n")
    assert data_fingerprint(root) != before
