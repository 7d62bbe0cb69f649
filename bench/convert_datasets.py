"""Benchmark `conceptkit convert` on generated segmentation datasets: images/s and peak memory.

    python bench/convert_datasets.py                          # every format, 50 images
    python bench/convert_datasets.py --sizes 25 50 --formats voc camvid --keep /tmp/bench-ds

For each format (voc, ade20k, cityscapes, supervisely, camvid) it writes ``n`` 640x480 images
with 20 objects each (random ellipses and boxes, later ones in front) in that dataset's own
layout and encoding: VOC palette class and object PNGs with Annotations XML; ADE20K ``_seg.png``
(class in R/G, instance in B) with the 2021 JSON; Cityscapes ``instanceIds.png`` (uint16,
``id * 1000 + k``); Supervisely bitmaps (base64 zlib PNG at an origin); CamVid colour masks
with ``train.txt``. Then it runs ``conceptkit convert FORMAT SRC -o OUT --min-images 1
--no-validate --workers W`` in a subprocess per format and size, and prints the wall time,
images/s, the CPU time per image (user + system of the command and its workers) and the peak
resident memory of the convert process (``ru_maxrss`` of a wrapper's children). Run it with two sizes to see that memory does not grow with the number of images.

Measured on the 2-core machine while another job used it (so wall-clock images/s is low and
noisy; CPU ms/image is the figure to compare), ``--workers 2``, CPU ms/image before -> after
the mask-reader work of issue 14 (base commit b485aec, same datasets, runs interleaved):

    200 images:  voc 19.3-21.9 -> 11.0-11.3   ade20k 20.6-21.2 -> 13.8-14.8
                 cityscapes 25.3-25.5 -> 17.1-18.7   camvid 24.6-25.5 -> 18.9-22.7
    1000 images: cityscapes 24.8 -> 16.0-17.9   camvid 26.6 -> 17.5-17.9

Peak RSS 39-40 MiB at 200 and at 400 images for all four (camvid was 71 MiB before), 42-43 MiB
at 1000. Where the time goes now (camvid, per image): decoding the PNG photo 5.4 ms and the
colour mask 2.3 ms, the bicubic resize 2.5 ms, writing the JPEG and the plane 1.3 ms; about
2.5 ms in the main process (spool zlib and pickle, checks, statistics) and 1.5 ms of start-up
at 200 images (0.3 at 1000).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

W, H, OBJECTS = 640, 480, 20
#: the Cityscapes ids used: stuff (no instances) and things (id * 1000 + k)
STUFF_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23)
THING_IDS = (24, 25, 26, 27, 28, 31, 32, 33)
#: colours of CamVid classes (from its 32-colour table), Void left out
CAMVID = [(64, 128, 64), (192, 0, 128), (0, 128, 192), (0, 128, 64), (128, 0, 0), (64, 0, 128),
          (64, 0, 192), (192, 128, 64), (192, 192, 128), (64, 64, 128), (128, 0, 192),
          (192, 0, 64), (128, 128, 64), (192, 0, 192), (128, 64, 64), (64, 192, 128),
          (64, 64, 0), (128, 64, 128), (128, 128, 192), (0, 0, 192)]  # fmt: skip


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(photo (H, W, 3) uint8, objects (H, W) uint8 (0 none, k = object k), classes)``:
    object k (1..20) is an ellipse or box of class ``classes[k - 1]`` (1..20)."""
    yy, xx = np.mgrid[0:H, 0:W]
    objects = np.zeros((H, W), dtype=np.uint8)
    classes = [int(c) for c in rng.integers(1, 21, size=OBJECTS)]
    for k in range(1, OBJECTS + 1):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        rx, ry = rng.uniform(15, 120), rng.uniform(15, 120)
        if k % 2:
            inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        else:
            inside = (abs(xx - cx) <= rx) & (abs(yy - cy) <= ry)
        objects[inside] = k
    base = rng.uniform(0, 255, size=3)
    photo = np.clip(base + rng.normal(0, 20, size=(H, W, 3)), 0, 255).astype(np.uint8)
    return photo, objects, classes


def _class_plane(objects: np.ndarray, classes: list[int]) -> np.ndarray:
    lut = np.array([0, *classes], dtype=np.uint8)
    return lut[objects]


def _palette(arr: np.ndarray) -> Image.Image:
    im = Image.fromarray(arr, "L").convert("P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    return im


def gen_voc(root: Path, i: int, photo: np.ndarray, objects: np.ndarray, classes: list[int]) -> None:
    from conceptkit.converters.voc import CLASSES

    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(root / "JPEGImages" / f"{i:06d}.jpg", quality=85)
    _palette(_class_plane(objects, classes)).save(root / "SegmentationClass" / f"{i:06d}.png")
    _palette(objects).save(root / "SegmentationObject" / f"{i:06d}.png")
    names = "".join(f"<object><name>{CLASSES[c]}</name></object>" for c in classes)
    (root / "Annotations" / f"{i:06d}.xml").write_text(f"<annotation>{names}</annotation>")


def gen_ade20k(
    root: Path, i: int, photo: np.ndarray, objects: np.ndarray, classes: list[int]
) -> None:
    folder = root / "training" / "street"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"ADE_train_{i:08d}"
    Image.fromarray(photo).save(folder / f"{stem}.jpg", quality=85)
    number = np.array([0, *[100 + c for c in classes]], dtype=np.int64)[objects]
    seg = np.stack([number // 256 * 10, number % 256, objects], axis=-1).astype(np.uint8)
    Image.fromarray(seg, "RGB").save(folder / f"{stem}_seg.png")
    objs = [{"id": k, "name": f"thing{c:02d}, stuff", "name_ndx": 100 + c, "parts": {"part_level": 0}}
            for k, c in enumerate(classes)]  # fmt: skip
    doc = {
        "annotation": {
            "filename": f"{stem}.jpg",
            "imsize": [H, W, 3],
            "scene": ["street"],
            "object": objs,
        }
    }
    (folder / f"{stem}.json").write_text(json.dumps(doc))


def gen_cityscapes(
    root: Path, i: int, photo: np.ndarray, objects: np.ndarray, classes: list[int]
) -> None:
    gt = root / "gtFine" / "train" / "benchcity"
    img = root / "leftImg8bit" / "train" / "benchcity"
    gt.mkdir(parents=True, exist_ok=True)
    img.mkdir(parents=True, exist_ok=True)
    stem = f"benchcity_{i:06d}_000019"
    Image.fromarray(photo).save(img / f"{stem}_leftImg8bit.png", compress_level=1)
    values = [3]  # out of roi where no object is
    for k, c in enumerate(classes, 1):
        ids = THING_IDS if c % 2 else STUFF_IDS
        cid = ids[c % len(ids)]
        values.append(cid * 1000 + k if ids is THING_IDS else cid)
    plane = np.array(values, dtype=np.uint16)[objects]
    Image.fromarray(plane).save(gt / f"{stem}_gtFine_instanceIds.png")


def gen_supervisely(
    root: Path, i: int, photo: np.ndarray, objects: np.ndarray, classes: list[int]
) -> None:
    (root / "ds" / "ann").mkdir(parents=True, exist_ok=True)
    (root / "ds" / "img").mkdir(parents=True, exist_ok=True)
    if not (root / "meta.json").exists():
        titles = [{"title": f"class{c:02d}", "shape": "bitmap"} for c in range(1, 21)]
        (root / "meta.json").write_text(json.dumps({"classes": titles, "tags": []}))
    name = f"img{i:06d}.jpg"
    Image.fromarray(photo).save(root / "ds" / "img" / name, quality=85)
    objs = []
    for k, c in enumerate(classes, 1):
        ys, xs = np.nonzero(objects == k)
        if not len(ys):
            continue
        y0, x0 = int(ys.min()), int(xs.min())
        patch = objects[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1] == k
        buf = io.BytesIO()
        Image.fromarray(patch.astype(np.uint8) * 255, "L").convert("1").save(buf, format="PNG")
        data = base64.b64encode(zlib.compress(buf.getvalue())).decode()
        objs.append({"id": k, "classTitle": f"class{c:02d}", "geometryType": "bitmap",
                     "bitmap": {"data": data, "origin": [x0, y0]}})  # fmt: skip
    doc = {"size": {"height": H, "width": W}, "tags": [], "objects": objs}
    (root / "ds" / "ann" / f"{name}.json").write_text(json.dumps(doc))


def gen_camvid(
    root: Path, i: int, photo: np.ndarray, objects: np.ndarray, classes: list[int]
) -> None:
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "trainannot").mkdir(parents=True, exist_ok=True)
    name = f"0001TP_{i:06d}.png"
    Image.fromarray(photo).save(root / "train" / name, compress_level=1)
    lut = np.array([(0, 0, 0), *[CAMVID[c - 1] for c in classes]], dtype=np.uint8)
    Image.fromarray(lut[objects], "RGB").save(root / "trainannot" / name)
    with open(root / "train.txt", "a") as fh:
        fh.write(f"/SegNet/CamVid/train/{name} /SegNet/CamVid/trainannot/{name}\n")


GENERATORS: dict[str, Callable[[Path, int, np.ndarray, np.ndarray, list[int]], None]] = {
    "voc": gen_voc,
    "ade20k": gen_ade20k,
    "cityscapes": gen_cityscapes,
    "supervisely": gen_supervisely,
    "camvid": gen_camvid,
}


def generate(fmt: str, root: Path, n: int, seed: int = 0) -> None:
    """``n`` images of format ``fmt`` under ``root``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        GENERATORS[fmt](root, i, *scene(rng))


_WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(u.ru_utime + u.ru_stime, u.ru_maxrss); sys.exit(rc)"
)


def run(fmt: str, src: Path, out: Path, workers: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS kB of the convert process)."""
    cmd = [sys.executable, "-m", "conceptkit", "convert", fmt, str(src), "-o", str(out)]
    cmd += ["--min-images", "1", "--no-validate", "--workers", str(workers)]
    shutil.rmtree(out, ignore_errors=True)  # a kept earlier output (--keep), not timed
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"convert {fmt} failed:\n{proc.stderr}")
    cpu, rss = proc.stdout.split()[-2:]
    return dt, float(cpu), int(rss)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[50])
    ap.add_argument("--formats", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="folder for the generated datasets (kept)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="conceptkit-bench-ds-"))
    print(f"{W}x{H} images, {OBJECTS} objects each; workers {args.workers}; output 224 x 224")
    try:
        for fmt in args.formats:
            for n in args.sizes:
                src = base / f"{fmt}_{n}"
                if not src.exists():
                    generate(fmt, src, n)
                dt, cpu, rss = run(fmt, src, base / f"out_{fmt}_{n}", args.workers)
                print(
                    f"{fmt:12s} {n:6d} images: {dt:6.2f} s  {n / dt:6.1f} images/s  "
                    f"{1000 * cpu / n:6.1f} ms CPU/image  peak RSS {rss / 1024:6.1f} MiB"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
