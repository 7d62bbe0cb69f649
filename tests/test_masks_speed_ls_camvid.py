"""The faster paths of the Label Studio and CamVid conversions give the pixels of the slow ones.

- ``center`` polygons decode only their window from pycocotools' run lengths
  (:func:`conceptkit.rasterize._coco_polygon`): the same pixels as ``decode(merge(rles))`` cut
  to the window, for random rings (unioned), windows and canvases, coordinates on and off the
  half-pixel grid, outside the canvas too.
- :func:`conceptkit.convert._image.load_image` keeps an RGB image's decoded pixels instead of
  copying them: the same pixels and info as ``convert("RGB")``, usable after the file is closed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.convert._image import load_image
from conceptkit.rasterize import _coco_polygon, shape_patch

mask_utils = pytest.importorskip("pycocotools.mask")


def _full(rings: list[np.ndarray], h: int, w: int) -> np.ndarray:
    rles = mask_utils.frPyObjects([r.reshape(-1).tolist() for r in rings], h, w)
    full: np.ndarray = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    return full


def test_windowed_coco_decode_matches_full_decode() -> None:
    rng = np.random.default_rng(14)
    for trial in range(600):
        h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        rings = []
        for _ in range(1 + trial % 3):
            k = int(rng.integers(3, 12))
            ring = np.stack([rng.uniform(-6, w + 6, k), rng.uniform(-6, h + 6, k)], 1)
            rings.append(np.round(ring * 2) / 2 if trial % 2 else ring)
        full = _full(rings, h, w)
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        got = _coco_polygon(rings, h, w, (x0, y0, x1, y1))
        assert got.dtype == np.bool_ and got.shape == (y1 - y0, x1 - x0)
        assert np.array_equal(got, full[y0:y1, x0:x1]), trial
        assert np.array_equal(_coco_polygon(rings, h, w), full), trial


def test_windowed_decode_of_large_shapes_and_long_runs() -> None:
    # runs of 1s that go on from the bottom of a column into the next one (a shape covering
    # whole columns), and run lengths that take several characters of the RLE string
    h, w = 700, 900
    rings = [np.array([[-3.0, -3.0], [w + 3.0, -3.0], [w + 3.0, h + 3.0], [-3.0, h + 3.0]])]
    rings.append(np.array([[100.2, 50.7], [880.4, 300.1], [20.9, 690.3]]))
    full = _full(rings, h, w)
    for win in [(0, 0, w, h), (5, 7, 400, 650), (850, 0, 900, 10)]:
        x0, y0, x1, y1 = win
        assert np.array_equal(_coco_polygon(rings, h, w, win), full[y0:y1, x0:x1])
    ring = rings[1]
    assert np.array_equal(_coco_polygon([ring], h, w), _full([ring], h, w))


def test_center_shape_patches_match_the_full_canvas() -> None:
    rng = np.random.default_rng(3)
    h, w = 480, 640
    for k in range(200):
        kind = ("polygon", "rectangle", "oriented_rectangle", "line")[k % 4]
        n = 2 if kind in ("rectangle", "line") else int(rng.integers(3, 9))
        pts = np.stack([rng.uniform(-20, w + 20, n), rng.uniform(-20, h + 20, n)], 1)
        shape = Shape(label="a", kind=kind, points=pts, convention="center")  # type: ignore[arg-type]
        patch = shape_patch(shape, h, w)
        if kind == "rectangle":
            (xa, ya), (xb, yb) = pts.min(0), pts.max(0)
            ring = np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])
        elif kind == "line":
            continue  # buffered by shapely first; covered by the converters' tests
        else:
            ring = pts
        full = _full([ring], h, w)
        if patch is None:
            assert not full.any()
            continue
        ph, pw = patch.mask.shape
        assert np.array_equal(patch.mask, full[patch.y0 : patch.y0 + ph, patch.x0 : patch.x0 + pw])
        outside = full.copy()
        outside[patch.y0 : patch.y0 + ph, patch.x0 : patch.x0 + pw] = False
        assert not outside.any()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_load_image_keeps_the_decoded_pixels(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / f"img.{fmt.lower()}"
    Image.fromarray(pixels).save(path, format=fmt)
    ann = ImageAnnotation(key=path.name, width=64, height=48, image_path=path)
    for want in (None, 16):
        got, w, h = load_image(ann, want)
        with Image.open(path) as im:
            if want is not None and im.format == "JPEG":
                im.draft("RGB", (want, want))
            expected = im.convert("RGB")
        assert (w, h) == (64, 48) and got.mode == "RGB"
        assert got.size == expected.size and got.info == expected.info
        assert got.tobytes() == expected.tobytes()
        got.resize((8, 8)).save(tmp_path / "out.jpg")  # usable once the file is closed
