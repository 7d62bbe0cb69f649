"""Benchmark of conceptkit.consistency: analyse + majority consensus on synthetic annotators.

Makes N images of SIZE x SIZE with K polygon objects each, three annotators derived from them
with known errors (one object shifted, one renamed, one deleted per annotator), then times
``analyse`` (all pairs) and ``consensus(..., "majority")`` per image, and prints the figures.

    python bench/consistency.py                  # 40 images of 512 x 512, 20 objects
    python bench/consistency.py --images 100 --size 1024
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.consistency import analyse, consensus


def make(n_images: int, size: int, k: int, seed: int = 0) -> list[ImageAnnotation]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        shapes = []
        for j in range(k):
            cx, cy = rng.uniform(0.1, 0.9, 2) * size
            r = rng.uniform(0.03, 0.1) * size
            angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
            radii = r * rng.uniform(0.7, 1.0, 12)
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
            shapes.append(Shape(label=f"c{j % 8}", kind="polygon", points=pts, order=j))
        out.append(
            ImageAnnotation(key=f"{i}.jpg", width=size, height=size, shapes=shapes, annotator="t")
        )
    return out


def noisy(ann: ImageAnnotation, name: str, offset: int) -> ImageAnnotation:
    a = copy.deepcopy(ann)
    a.annotator = name
    a.shapes[offset].points = a.shapes[offset].points + [5.0, 0.0]
    a.shapes[offset + 1].label = "renamed"
    del a.shapes[offset + 2]
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--objects", type=int, default=20)
    args = ap.parse_args()
    truth = make(args.images, args.size, args.objects)
    groups = {t.key: [noisy(t, f"a{i}", 3 * i) for i in range(3)] for t in truth}
    t0, c0 = time.perf_counter(), time.process_time()
    report = analyse(groups)
    t1, c1 = time.perf_counter(), time.process_time()
    for anns in groups.values():
        consensus(anns, "majority")
    t2, c2 = time.perf_counter(), time.process_time()
    n = args.images
    print(f"{n} images {args.size}x{args.size}, {args.objects} objects, 3 annotators (3 pairs)")
    for what, wall, cpu in (("analyse", t1 - t0, c1 - c0), ("consensus", t2 - t1, c2 - c1)):
        print(
            f"{what:10s} wall {wall:.2f} s, CPU {cpu:.2f} s ({1000 * cpu / n:.1f} ms CPU per image)"
        )
    print("\n".join(report.summary().splitlines()[:6]))


if __name__ == "__main__":
    main()
