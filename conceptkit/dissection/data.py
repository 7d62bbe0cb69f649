"""The dissection's view of a Broden folder: a torch ``Dataset`` of images and label planes.

:class:`BrodenDataset` yields :class:`Sample` items (the image as a tensor, the label planes
and image-level labels of every category pooled, each plane and label still counted on its
own); :func:`collate` stacks them into a :class:`Batch`; :func:`loader` makes the DataLoader
the dissection uses (whole single-process batches, in row order). Images and planes are
checked against the sizes index.csv declares.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from conceptkit.broden import decode_plane, read_index, read_meta
from conceptkit.errors import ConceptkitError, LayoutError
from conceptkit.images import open_image


@dataclass
class Sample:
    """One dataset item.

    ``index``: the row number in index.csv; ``image``: ``(3, ih, iw) uint8`` or None (not
    loaded); ``planes``: ``(P, sh, sw) int32`` label planes of every category (category.csv
    order, then the cell's order; P >= 0) or None; ``image_labels``: ``(M,) int64``
    image-level label numbers of every category (M >= 0).
    """

    index: int
    image: torch.Tensor | None
    planes: torch.Tensor | None
    image_labels: torch.Tensor | None


class BrodenDataset(torch.utils.data.Dataset[Sample]):
    """A map-style ``Dataset`` over a Broden folder; use :func:`collate` in a DataLoader.

    ``load_images``/``load_planes`` choose what is read; the images of the rows in
    ``skip_images`` are never read (the dissection takes their features from its cache).
    """

    def __init__(
        self,
        root: str | Path,
        load_images: bool = True,
        load_planes: bool = True,
        skip_images: Container[int] = (),
    ) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.rows = read_index(self.root)
        self.categories = list(self.meta.category_names)
        self.load_images = load_images
        self.load_planes = load_planes
        self.skip_images = skip_images

    def with_options(
        self, load_images: bool, load_planes: bool, skip_images: Container[int] = ()
    ) -> BrodenDataset:
        """The same folder (tables already read) with other loading options."""
        other = copy.copy(self)
        other.load_images = load_images
        other.load_planes = load_planes
        other.skip_images = skip_images
        return other

    def __len__(self) -> int:
        return len(self.rows)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / self.rows[i].image

    def load_image(self, i: int) -> np.ndarray:
        """``(ih, iw, 3) uint8`` RGB array of row ``i`` (its declared size checked first)."""
        path = self.image_path(i)
        with open_image(path, file=path, place=None) as im:
            return np.asarray(im.convert("RGB"))

    def _image(self, i: int) -> torch.Tensor:
        row = self.rows[i]
        image = torch.from_numpy(np.ascontiguousarray(self.load_image(i).transpose(2, 0, 1)))
        if tuple(image.shape[1:]) != (row.ih, row.iw):
            raise LayoutError(
                f"image is {image.shape[2]}x{image.shape[1]}, index.csv says {row.iw}x{row.ih}",
                file=self.image_path(i),
            )
        return image

    def _planes(self, i: int) -> torch.Tensor:
        row = self.rows[i]
        arrays = []
        for cat in self.categories:
            for p in row.planes.get(cat, ()):
                arr = _read_plane(self.root / "images" / p)
                if arr.shape != (row.sh, row.sw):
                    raise LayoutError(
                        f"plane is {arr.shape[1]}x{arr.shape[0]}, expected {row.sw}x{row.sh}",
                        file=self.root / "images" / p,
                    )
                arrays.append(arr)
        if not arrays:
            return torch.zeros((0, row.sh, row.sw), dtype=torch.int32)
        return torch.from_numpy(np.stack(arrays))

    def __getitem__(self, i: int) -> Sample:
        row = self.rows[i]
        image = self._image(i) if self.load_images and i not in self.skip_images else None
        planes = labels = None
        if self.load_planes:
            planes = self._planes(i)
            nums = [n for cat in self.categories for n in row.image_labels.get(cat, ())]
            labels = torch.tensor(nums, dtype=torch.int64)
        return Sample(index=i, image=image, planes=planes, image_labels=labels)


def _read_plane(path: Path) -> np.ndarray:
    """``(H, W) int32`` label numbers of a plane PNG; FormatError naming it when unreadable."""
    with open_image(path, file=path, place=None, what="label plane"):
        return decode_plane(path)


@dataclass
class Batch:
    """A collated batch of B samples.

    ``rows``: ``(B,) int64`` row numbers; ``images``: ``(B', 3, ih, iw) uint8`` of the B'
    samples that loaded an image, or None when none did; ``planes``: ``(B, Pmax, sh, sw)
    int32`` and ``image_labels``: ``(B, Mmax) int64``, zero padded (0 = unlabelled; Pmax and
    Mmax at least 1), or None when planes were not loaded.
    """

    rows: torch.Tensor
    images: torch.Tensor | None
    planes: torch.Tensor | None
    image_labels: torch.Tensor | None


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples of equal image and plane size into a :class:`Batch`."""
    rows = torch.tensor([s.index for s in samples], dtype=torch.int64)
    imgs = [s.image for s in samples if s.image is not None]
    batch = Batch(rows, torch.stack(imgs) if imgs else None, None, None)
    planes = [s.planes for s in samples if s.planes is not None]
    labels = [s.image_labels for s in samples if s.image_labels is not None]
    if len(planes) == len(samples) == len(labels) and samples:
        sh, sw = planes[0].shape[-2:]
        pmax = max(1, max(p.shape[0] for p in planes))
        mmax = max(1, max(lab.shape[0] for lab in labels))
        batch.planes = torch.zeros((len(samples), pmax, sh, sw), dtype=torch.int32)
        batch.image_labels = torch.zeros((len(samples), mmax), dtype=torch.int64)
        for b, (p, lab) in enumerate(zip(planes, labels, strict=True)):
            batch.planes[b, : p.shape[0]] = p
            batch.image_labels[b, : lab.shape[0]] = lab
    return batch


class _Guarded(torch.utils.data.Dataset[Sample | ConceptkitError]):
    """``ds`` whose items are the :class:`ConceptkitError` instead when one is raised, so that
    an error met in a DataLoader worker reaches the main process whole (file, place), not as
    the worker's traceback text."""

    def __init__(self, ds: BrodenDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Sample | ConceptkitError:
        try:
            return self.ds[i]
        except ConceptkitError as exc:
            return exc


_BATCH_FIELDS = ("rows", "images", "planes", "image_labels")


def _collate_guarded(
    items: Sequence[Sample | ConceptkitError],
) -> dict[str, np.ndarray | None] | ConceptkitError:
    """The first item's error, or the collated batch as numpy arrays: a worker sends those
    through its pipe by value, where tensors would pass file descriptors through a socket in
    the temporary folder (which fails when TMPDIR's path is long, and leaves ``pymp-*``
    folders behind when a worker is killed)."""
    for item in items:
        if isinstance(item, ConceptkitError):
            return item
    batch = collate(items)  # type: ignore[arg-type]
    wire: dict[str, np.ndarray | None] = {}
    for name in _BATCH_FIELDS:
        t = getattr(batch, name)
        wire[name] = None if t is None else t.numpy()
    return wire


def loader(
    ds: BrodenDataset,
    batches: Sequence[tuple[int, int]],
    workers: int,
    *,
    pin_memory: bool = False,
    prefetch: int = 4,
) -> Iterator[Batch]:
    """Batches (:class:`Batch`) for exactly the row ranges ``batches``, in order, read by
    ``workers`` DataLoader worker processes (0: in this process), each ``prefetch`` batches
    ahead so that decoding overlaps the forward; ``pin_memory`` for a CUDA device. The first
    bad image or plane raises its error here, the same with or without workers."""
    dl = torch.utils.data.DataLoader(
        _Guarded(ds),
        batch_sampler=[list(range(a, b)) for a, b in batches],
        num_workers=workers,
        collate_fn=_collate_guarded,
        persistent_workers=False,
        prefetch_factor=prefetch if workers > 0 else None,
    )
    for wire in dl:
        if isinstance(wire, ConceptkitError):
            raise wire
        t = {k: None if a is None else torch.from_numpy(a) for k, a in wire.items()}
        if pin_memory:
            t = {k: None if a is None else a.pin_memory() for k, a in t.items()}
        rows = t["rows"]
        if rows is None:
            raise RuntimeError("a batch without row numbers")
        yield Batch(rows, t["images"], t["planes"], t["image_labels"])


def check_sizes(ds: BrodenDataset) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((ih, iw), (sh, sw))`` shared by every row; a LayoutError names the first row that
    differs (the dissection needs one image size and one label size)."""
    if not ds.rows:
        raise LayoutError("index.csv has no images", file=ds.root / "index.csv")
    first = ds.rows[0]
    for ln, row in enumerate(ds.rows, start=2):
        if (row.ih, row.iw, row.sh, row.sw) != (first.ih, first.iw, first.sh, first.sw):
            raise LayoutError(
                f"image size {row.ih}x{row.iw} / label size {row.sh}x{row.sw} differ from the "
                f"first row's {first.ih}x{first.iw} / {first.sh}x{first.sw}; dissection needs "
                "one size (resize the dataset)",
                file=ds.root / "index.csv",
                place=f"line {ln}",
            )
    return (first.ih, first.iw), (first.sh, first.sw)


def data_fingerprint(root: Path) -> str:
    """sha256 over the CSV files of a Broden folder (index, category, label, c_*)."""
    h = hashlib.sha256()
    names = ["index.csv", "category.csv", "label.csv"]
    names += sorted(p.name for p in root.glob("c_*.csv"))
    for name in names:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()
