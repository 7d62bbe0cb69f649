"""Concept maps of images: which concept each pixel shows, according to a dissected layer.

With the run's detector units (best label IoU above the run's cut), a pixel gets the label of
the unit that is most strongly active there *relative to its threshold*, ``(a - T) / |T|``
with ``a`` the unit's map upsampled bilinearly (``align_corners=False``) to the image size by
the dissection's own arithmetic (:func:`~conceptkit.dissection.upsample.bilinear`), so a
detector's pixels are exactly those its dissection mask would hold; no label (0) where no
detector passes its threshold. With Net2Vec embeddings
(:mod:`conceptkit.beyond.net2vec`, ``embed_<layer>.npz``), a pixel gets the concept whose
combination ``w . f + b`` is largest there, 0 where none is positive.

An image of any size the model accepts is fed whole (the run's preprocessing, no resizing).
:func:`segment_images` writes into OUT, atomically: ``<stem>_labels.png`` (label numbers in
the Broden encoding R + 256 G, at the image size), ``<stem>_overlay.jpg`` (the image with
the concepts tinted and a legend) and ``concepts.csv`` (per image and concept: pixels and
share of the image).
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptkit import artefacts as af
from conceptkit.dissection.upsample import bilinear
from conceptkit.errors import LayoutError, UsageError
from conceptkit.explain.run import RunInfo, thresholds

CHUNK = 1 << 22  # upsampled values held at once (the float64 arithmetic holds a few times more)


@dataclass
class Legend:
    """What a label number means: ``names[n]``, ``categories[n]``."""

    names: dict[int, str]
    categories: dict[int, str]


@dataclass
class Detectors:
    """``units: (D,)`` detector units (0-based) and ``numbers: (D,)`` their labels' numbers."""

    units: np.ndarray
    numbers: np.ndarray


@dataclass
class ImageMap:
    """One image's map: ``labels: (H, W) int64`` label numbers (0: none); ``image: (H, W, 3)
    uint8``; ``source`` the file."""

    source: Path
    image: np.ndarray
    labels: np.ndarray

    def areas(self) -> list[tuple[int, int]]:
        """``(number, pixels)`` of every label present, largest first (ties: number)."""
        nums, counts = np.unique(self.labels[self.labels > 0], return_counts=True)
        return sorted(zip(nums.tolist(), counts.tolist()), key=lambda t: (-t[1], t[0]))


def legend(info: RunInfo) -> Legend:
    """Label names and primary categories of the run's dataset."""
    from conceptkit.explain.run import concept_table

    numbers, cats, names, cat_names, _ = concept_table(info.data)
    return Legend(dict(zip(numbers, names)), {n: cat_names[k] for n, k in zip(numbers, cats)})


def detectors(info: RunInfo, layer: str, lg: Legend) -> Detectors:
    """The layer's detector units and label numbers, from results.json's ``units_detail``."""
    path = info.root / "results.json"
    cut = float(info.settings.get("iou_threshold", 0.04))
    number = {(lg.categories[n], name): n for n, name in lg.names.items()}
    try:
        detail = json.loads(path.read_text(encoding="utf-8"))["layers"][layer]["units_detail"]
        pairs = [
            (int(d["unit"]), number[(str(d["category"]), str(d["label"]))])
            for d in detail
            if d["label"] and float(d["iou"]) > cut
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise LayoutError(f"layers.{layer}.units_detail cannot be read ({exc!r})",
                          file=path) from None  # fmt: skip
    units = np.array([u for u, _ in pairs], dtype=np.int64)
    return Detectors(units, np.array([n for _, n in pairs], dtype=np.int64))


def strongest(scores: Any, count: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel the largest of ``count`` upsampled score maps and which one it is.

    ``scores(a, b) -> (b - a, H, W) float32`` gives maps ``a:b`` upsampled to ``size``
    (shifted so that 0 is the cut); returns ``(H, W)`` values and indices."""
    H, W = size
    best = torch.full((H, W), -torch.inf)
    which = torch.full((H, W), -1, dtype=torch.int64)
    step = max(1, CHUNK // (H * W))
    for a in range(0, count, step):
        value, idx = scores(a, min(count, a + step)).max(dim=0)
        better = value > best
        best = torch.where(better, value, best)
        which = torch.where(better, idx + a, which)
    return best, which


def unit_labels(
    feats: torch.Tensor, thresh: np.ndarray, det: Detectors, size: tuple[int, int]
) -> np.ndarray:
    """``feats: (C, h, w)`` -> ``(H, W) int64`` label of the most active detector (0: none)."""
    if len(det.units) == 0:
        return np.zeros(size, dtype=np.int64)
    t = torch.from_numpy(thresh[det.units].astype(np.float32))
    scale = t.abs().clamp(min=1e-12)
    maps = feats[torch.from_numpy(det.units)]

    def scores(a: int, b: int) -> torch.Tensor:
        # the dissection's own upsample, then the cut: a pixel scores > 0 exactly where the
        # unit's dissection mask holds it (upsampled value > threshold)
        up = bilinear(maps[a:b], size)
        return (up - t[a:b, None, None]) / scale[a:b, None, None]

    best, which = strongest(scores, len(det.units), size)
    labels = det.numbers[which.clamp(min=0).numpy()]
    return np.where((best > 0).numpy(), labels, 0).astype(np.int64)


def embedding_labels(
    feats: torch.Tensor,
    weights: np.ndarray,
    bias: np.ndarray,
    numbers: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """``feats: (C, h, w)``, ``weights: (C, K)`` -> ``(H, W) int64`` label of the largest
    positive combination (0: none)."""
    W = torch.from_numpy(weights.astype(np.float32))
    b = torch.from_numpy(bias.astype(np.float32))

    def scores(a: int, c: int) -> torch.Tensor:
        return bilinear(torch.einsum("chw,ck->khw", feats, W[:, a:c]) + b[a:c, None, None], size)

    best, which = strongest(scores, W.shape[1], size)
    labels = numbers[which.clamp(min=0).numpy()]
    return np.where((best > 0).numpy(), labels, 0).astype(np.int64)


def read_image(path: Path) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB, upright by its EXIF orientation; one-line FormatError."""
    from conceptkit.images import make_upright, open_image, orientation

    with open_image(path, file=path, place=None) as im:
        orient = orientation(im)
        rgb = im.convert("RGB")
        return np.asarray(make_upright(rgb, orient), dtype=np.uint8).copy()


def colour(number: int) -> tuple[int, int, int]:
    """A fixed, well-spread colour per label number (golden-ratio hues)."""
    hue = (number * 0.6180339887498949) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def overlay(m: ImageMap, lg: Legend, alpha: float = 0.5) -> Any:
    """The image with each concept tinted (``alpha``) and a legend on the right (PIL image)."""
    from PIL import Image, ImageDraw

    img = m.image.astype(np.float32)
    tint = np.zeros_like(img)
    for n, _ in m.areas():
        tint[m.labels == n] = colour(n)
    on = (m.labels > 0)[..., None]
    mixed = np.where(on, (1 - alpha) * img + alpha * tint, img).round().astype(np.uint8)
    H, W = m.labels.shape
    rows = m.areas()
    side = 200
    canvas = Image.new("RGB", (W + side, max(H, 8 + 16 * len(rows))), (255, 255, 255))
    canvas.paste(Image.fromarray(mixed), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for j, (n, pixels) in enumerate(rows):
        y = 4 + 16 * j
        draw.rectangle((W + 6, y, W + 18, y + 12), fill=colour(n), outline=(0, 0, 0))
        text = f"{lg.names.get(n, str(n))} {100.0 * pixels / (H * W):.1f}%"
        draw.text((W + 24, y), text, fill=(0, 0, 0))
    return canvas


class Segmenter:
    """A run's model, one layer, and the rule that names pixels (units or an embedding)."""

    def __init__(
        self,
        info: RunInfo,
        layer: str,
        model: torch.nn.Module,
        embedding: Path | None,
        device: str = "cpu",
    ) -> None:
        from conceptkit.beyond.net2vec import read_embedding
        from conceptkit.dissection.forward import Forward
        from conceptkit.dissection.preprocess import get_preprocess

        st = info.settings
        if st.get("preprocess") == "netdissect":
            self.prep = get_preprocess("netdissect")
        else:
            self.prep = get_preprocess("imagenet", st.get("mean"), st.get("std"))
        self.layer = layer
        self.device = torch.device(device)
        self.forward = Forward.of_run(model, self.device, st)  # the run's layout, precision
        self.model = self.forward.model
        self.legend = legend(info)
        self.thresholds = thresholds(info, layer)
        self.embedding = read_embedding(embedding) if embedding is not None else None
        self.detectors = detectors(info, layer, self.legend)

    def features(self, image: np.ndarray, source: Path) -> torch.Tensor:
        """``(C, h, w) float32`` of ``image: (H, W, 3) uint8``."""
        from conceptkit.errors import FormatError

        x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous().to(self.device)
        with self.forward.hooks([self.layer]) as hooks:
            try:
                f = self.forward(hooks, self.prep(x))[self.layer]
            except RuntimeError as exc:
                msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                raise FormatError(f"the model cannot take this image ({msg})", source) from None
        return f[0].to("cpu", torch.float32)

    def map(self, source: Path, image: np.ndarray) -> ImageMap:
        """The map of ``image: (H, W, 3) uint8`` read from ``source``."""
        feats = self.features(image, source)
        size = (image.shape[0], image.shape[1])
        if self.embedding is not None:
            w, b, nums = self.embedding
            if w.shape[0] != feats.shape[0]:
                raise LayoutError(f"embedding has {w.shape[0]} units, layer {self.layer} "
                                  f"{feats.shape[0]}")  # fmt: skip
            labels = embedding_labels(feats, w, b, nums, size)
        else:
            labels = unit_labels(feats, self.thresholds, self.detectors, size)
        return ImageMap(source, image, labels)


def stems(paths: Sequence[Path]) -> list[str]:
    """The output names of ``paths`` (their stems); UsageError on a repeated stem."""
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise UsageError(f"has the same name as {seen[p.stem]}; outputs would collide",
                             file=p)  # fmt: skip
        seen[p.stem] = p
    return list(seen)


def write_maps(maps: Sequence[ImageMap], lg: Legend, folder: Path) -> None:
    """``<stem>_labels.png``, ``<stem>_overlay.jpg`` and ``concepts.csv`` into ``folder``."""
    from conceptkit.broden import save_plane

    rows = []
    for m, stem in zip(maps, stems([m.source for m in maps]), strict=True):
        save_plane(m.labels, folder / f"{stem}_labels.png")
        overlay(m, lg).save(folder / f"{stem}_overlay.jpg", quality=90)
        total = m.labels.size
        for n, pixels in m.areas():
            share = repr(pixels / total)
            rows.append([m.source.name, n, lg.names.get(n, ""), lg.categories.get(n, ""),
                         pixels, share])  # fmt: skip
    af.csv_writer(af.CONCEPTS_COLUMNS, rows)(folder / af.CONCEPTS_CSV)


def segment_images(
    run: str | Path,
    images: Sequence[str | Path],
    out: str | Path | None = None,
    layer: str | None = None,
    embedding: str | Path | None | bool = None,
    force: bool = False,
    data: str | Path | None = None,
    model: torch.nn.Module | None = None,
    model_opts: dict[str, Any] | None = None,
    device: str = "cpu",
) -> list[ImageMap]:
    """Concept maps of ``images`` by ``layer`` (default: the run's last); ``embedding``: an
    ``embed_<layer>.npz`` path, False for the units, None for ``RUN/embed_<layer>.npz`` when it
    exists. With ``out``, writes the files there atomically (nothing when anything fails)."""
    from conceptkit.beyond import features as fe
    from conceptkit.outdir import atomic_dir, check_target

    paths = [Path(p) for p in images]
    if not paths:
        raise UsageError("no image given")
    stems(paths)
    if out is not None:
        check_target(out, force)
    info, chosen = fe.open_run(run, data, [layer] if layer else None)
    name = chosen[-1]
    emb: Path | None = None
    if embedding is None:
        default = info.root / af.embed_npz(name)
        emb = default if default.is_file() else None
    elif embedding is not False and embedding is not True:
        emb = Path(embedding)
    pixels = [read_image(p) for p in paths]
    net = model if model is not None else fe.load_run_model(info, model_opts)
    seg = Segmenter(info, name, net, emb, device)
    maps = [seg.map(p, im) for p, im in zip(paths, pixels, strict=True)]
    if out is not None:
        with atomic_dir(out, force=force) as tmp:
            write_maps(maps, seg.legend, tmp)
    return maps
