"""The dissection's view of a Broden folder: a torch ``Dataset`` of images and label planes.

:class:`BrodenDataset` yields :class:`Sample` items; :func:`collate` stacks them into a
:class:`Batch` (planes zero-padded to the batch's largest plane count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit.broden import decode_plane, read_index, read_meta
from conceptkit.errors import LayoutError


@dataclass
class Sample:
    """One dataset item.

    ``image``: ``(3, ih, iw) uint8`` tensor; ``planes[cat]``: ``(P, sh, sw) int32`` tensor
    (P >= 0 planes); ``image_labels[cat]``: tuple of label numbers; ``index``: row number.
    """

    index: int
    image: Any
    planes: dict[str, Any]
    image_labels: dict[str, tuple[int, ...]]


class BrodenDataset:
    """A ``torch.utils.data.Dataset`` over a Broden folder.

    Items are :class:`Sample`; pass :func:`collate` as the DataLoader's ``collate_fn``.
    ``categories`` restricts which categories are decoded (default: all in category.csv).
    ``transform`` maps the uint8 image tensor to whatever the model needs.
    """

    def __init__(
        self,
        root: str | Path,
        categories: Sequence[str] | None = None,
        transform: Any = None,
        load_images: bool = True,
        load_planes: bool = True,
    ) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.rows = read_index(self.root)
        self.categories = list(categories) if categories is not None else self.meta.category_names
        self.transform = transform
        self.load_images = load_images
        self.load_planes = load_planes

    def __len__(self) -> int:
        return len(self.rows)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / self.rows[i].image

    def load_image(self, i: int) -> np.ndarray:
        """``(ih, iw, 3) uint8`` RGB array of row ``i``."""
        from PIL import Image

        path = self.image_path(i)
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise LayoutError(f"image cannot be read ({exc})", file=path) from None

    def __getitem__(self, i: int) -> Sample:
        import torch

        row = self.rows[i]
        image: Any = None
        if self.load_images:
            image = torch.from_numpy(np.ascontiguousarray(self.load_image(i).transpose(2, 0, 1)))
            if self.transform is not None:
                image = self.transform(image)
        planes: dict[str, Any] = {}
        if self.load_planes:
            for cat in self.categories:
                paths = row.planes.get(cat, ())
                arrays = [decode_plane(self.root / "images" / p) for p in paths]
                if arrays:
                    planes[cat] = torch.from_numpy(np.stack(arrays))
                else:
                    planes[cat] = torch.zeros((0, row.sh, row.sw), dtype=torch.int32)
        labels = {cat: row.image_labels.get(cat, ()) for cat in self.categories}
        return Sample(index=i, image=image, planes=planes, image_labels=labels)


@dataclass
class Batch:
    """A collated batch.

    ``indices``: ``(B,) int64``; ``images``: ``(B, 3, H, W)`` (or None);
    ``planes[cat]``: ``(B, Pmax, sh, sw) int32``, zero-padded; ``image_labels[cat]``:
    ``(B, Lmax) int64``, zero-padded (0 = no label).
    """

    indices: Any
    images: Any
    planes: dict[str, Any]
    image_labels: dict[str, Any]


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples of equal image and plane size into a :class:`Batch`."""
    import torch

    indices = torch.tensor([s.index for s in samples], dtype=torch.int64)
    images = None
    if samples and samples[0].image is not None:
        images = torch.stack([s.image for s in samples])
    planes: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    cats = list(samples[0].image_labels) if samples else []
    for cat in cats:
        if samples[0].planes:
            pmax = max(s.planes[cat].shape[0] for s in samples)
            h, w = samples[0].planes[cat].shape[-2:]
            out = torch.zeros((len(samples), pmax, h, w), dtype=torch.int32)
            for b, s in enumerate(samples):
                p = s.planes[cat]
                out[b, : p.shape[0]] = p
            planes[cat] = out
        lmax = max(len(s.image_labels[cat]) for s in samples)
        lab = torch.zeros((len(samples), lmax), dtype=torch.int64)
        for b, s in enumerate(samples):
            if s.image_labels[cat]:
                lab[b, : len(s.image_labels[cat])] = torch.tensor(s.image_labels[cat])
        labels[cat] = lab
    return Batch(indices=indices, images=images, planes=planes, image_labels=labels)
