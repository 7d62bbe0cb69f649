"""Image strips: a unit's top-N images side by side with its mask drawn over each.

The mask is the unit's raw map ``(h, w)`` upsampled bilinearly (``align_corners=False``, as
``torch.nn.functional.interpolate``) to the image size, then ``> threshold``. Outside the mask the
image is dimmed; the mask's outline is drawn. A strip is one JPEG with fixed encoder settings, so
the same inputs give the same bytes. :func:`render_jobs` renders many strips in a process pool.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

STRIP_VERSION = 1  # bump when the drawing changes: every strip is then redrawn
GAP = 4  # white pixels between tiles
DIM = 0.3  # brightness kept outside the mask
OUTLINE = (255, 221, 0)  # outline colour
OUTLINE_WIDTH = 2  # pixels inside the mask boundary
JPEG_QUALITY = 85


def resize_matrix(out_size: int, in_size: int) -> np.ndarray:
    """``(out_size, in_size) float64`` weights of 1-D linear resampling, ``align_corners=False``.

    Source coordinate of output pixel o: ``(o + 0.5) * in / out - 0.5``, clamped at 0, as
    PyTorch's bilinear upsampling computes it.
    """
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    m = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - lam)
    np.add.at(m, (rows, i1), lam)
    return m


def upsample(amap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``amap (h, w)`` to ``size (H, W)``: ``(H, W) float64``."""
    a = np.asarray(amap, dtype=np.float64)
    return resize_matrix(size[0], a.shape[0]) @ a @ resize_matrix(size[1], a.shape[1]).T


def unit_mask(amap: np.ndarray, threshold: float, size: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool``: the upsampled map above ``threshold`` (strict)."""
    return upsample(amap, size) > threshold


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; the image border counts as inside (no outline along it)."""
    p = np.pad(mask, 1, mode="edge")
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Draw ``mask (H, W) bool`` over ``image (H, W, 3) uint8``: dim outside, outline inside."""
    inner = mask
    for _ in range(OUTLINE_WIDTH):
        inner = _erode(inner)
    edge = mask & ~inner
    out = np.where(mask[..., None], image.astype(np.float32), image.astype(np.float32) * DIM)
    out = np.rint(out).astype(np.uint8)
    out[edge] = OUTLINE
    return out


@dataclass(frozen=True)
class StripJob:
    """Everything needed to draw one strip (picklable, sent to a worker).

    ``maps``: ``(N, h, w) float16`` raw maps of the unit on ``images`` (absolute paths);
    ``tile``: ``(H, W)`` tile size (the dataset's image size).
    """

    out: str
    images: tuple[str, ...]
    maps: np.ndarray
    threshold: float
    tile: tuple[int, int]


@lru_cache(maxsize=512)
def _load_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB of the image at ``path``, resized to ``size`` if it differs; its
    declared size is checked against the limits before it is decoded."""
    from PIL import Image

    from conceptkit.images import open_image

    with open_image(Path(path), file=path, place=None) as im:
        rgb = im.convert("RGB")
        if rgb.size != (size[1], size[0]):
            rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(rgb)
    arr.setflags(write=False)
    return arr


def strip_array(job: StripJob) -> np.ndarray:
    """``(H, N*W + (N-1)*GAP, 3) uint8``: the strip of ``job``."""
    h, w = job.tile
    n = len(job.images)
    strip = np.full((h, max(n * w + (n - 1) * GAP, 1), 3), 255, dtype=np.uint8)
    for i, path in enumerate(job.images):
        image = _load_image(path, (h, w))
        mask = unit_mask(job.maps[i].astype(np.float32), job.threshold, (h, w))
        x = i * (w + GAP)
        strip[:, x : x + w] = overlay(image, mask)
    return strip


def render(job: StripJob) -> str:
    """Draw the strip of ``job`` and write it as JPEG (fixed settings); returns the path."""
    from PIL import Image

    tmp = job.out + ".part"
    Image.fromarray(strip_array(job)).save(
        tmp, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling=2
    )
    os.replace(tmp, job.out)
    return job.out


def job_hash(job: StripJob, image_hashes: dict[str, str]) -> str:
    """A hash of every input of a strip: drawing version, images' bytes, maps, threshold, size."""
    h = hashlib.sha256()
    h.update(f"v{STRIP_VERSION};{GAP};{DIM};{OUTLINE};{OUTLINE_WIDTH};{JPEG_QUALITY};".encode())
    h.update(f"{job.tile};{job.threshold!r};{job.maps.shape};{job.maps.dtype}".encode())
    h.update(np.ascontiguousarray(job.maps).tobytes())
    for p in job.images:
        h.update(image_hashes[p].encode())
    return h.hexdigest()


def file_hash(path: str) -> str:
    """sha256 of a file's bytes (a missing file hashes as 'missing')."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "missing"
    return h.hexdigest()


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def render_jobs(
    jobs: Sequence[StripJob],
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Render ``jobs``: in this process when ``workers == 1``, else in a process pool (spawn)."""
    workers = default_workers() if workers is None else max(1, workers)
    total = len(jobs)
    if workers == 1 or total <= 1:
        for i, job in enumerate(jobs):
            render(job)
            if progress:
                progress(i + 1, total)
        return
    chunk = max(1, min(16, total // (workers * 4)))
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker) as pool:
        try:
            for i, _ in enumerate(pool.map(render, jobs, chunksize=chunk)):
                if progress:
                    progress(i + 1, total)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # a failed strip or Ctrl-C: stop now
            raise


def _worker() -> None:
    """Pool workers leave Ctrl-C to the parent (which cancels the pool and cleans up)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
