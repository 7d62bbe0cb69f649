"""Benchmark `conceptkit convert` on a generated LabelMe export; prints images/s and peak memory.

    python bench/convert.py                       # 250 and 1,000 images, --workers 2, 224 x 224
    python bench/convert.py --sizes 100 --workers 1 --keep /tmp/bench

Generates 640x480 JPEGs (smooth colour fields plus noise, about 40 kB each) with about 20
polygons each (20 labels, random convex-ish polygons of 6-12 vertices), then runs
``conceptkit convert labelme SRC -o OUT --workers W`` in a subprocess per size and samples the
resident memory of that process and its workers every 20 ms. Peak RSS is reported for the
main process and for the whole process tree (sum of main + workers at the worst sample), and
the CPU time of the whole tree per image (user + system), which does not depend on how busy
the machine is: on W idle cores the rate approaches min(W, workers + 1) / CPU-per-image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LABELS = [f"concept{i:02d}" for i in range(20)]


def generate(root: Path, n: int, seed: int = 0) -> None:
    """``n`` LabelMe JSON + JPEG pairs in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for i in range(n):
        c = rng.uniform(0, 255, size=(3, 3))
        arr = np.stack(
            [
                c[k, 0] + (c[k, 1] - c[k, 0]) * xx / 640 + (c[k, 2] - c[k, 0]) * yy / 480
                for k in range(3)
            ],
            axis=-1,
        )
        arr += rng.normal(0, 8, size=arr.shape).astype(np.float32)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
            root / f"img{i:05d}.jpg", quality=85
        )
        shapes = []
        for _ in range(int(rng.integers(18, 23))):
            cx, cy = rng.uniform(0, 640), rng.uniform(0, 480)
            r = rng.uniform(10, 120)
            k = int(rng.integers(6, 13))
            t = np.sort(rng.uniform(0, 2 * np.pi, size=k))
            rad = r * rng.uniform(0.6, 1.0, size=k)
            pts = np.stack(
                [np.clip(cx + rad * np.cos(t), 0, 639), np.clip(cy + rad * np.sin(t), 0, 479)], 1
            )
            shapes.append(
                {
                    "label": LABELS[int(rng.integers(0, len(LABELS)))],
                    "points": pts.round(2).tolist(),
                    "group_id": None,
                    "shape_type": "polygon",
                    "flags": {},
                }
            )
        doc = {
            "version": "5.5.0",
            "flags": {},
            "shapes": shapes,
            "imagePath": f"img{i:05d}.jpg",
            "imageData": None,
            "imageHeight": 480,
            "imageWidth": 640,
        }
        (root / f"img{i:05d}.json").write_text(json.dumps(doc))


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out + [g for c in out for g in _children(c)]


def run(src: Path, out: Path, workers: int, size: str) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds of the whole tree, peak main RSS kB, peak tree RSS kB)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "conceptkit", "convert", "labelme", str(src), "-o", str(out)]
    cmd += ["--workers", str(workers), "--size", size, "--force", "--no-validate"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    main_peak = tree_peak = 0
    while proc.poll() is None:
        m = _rss_kb(proc.pid)
        main_peak = max(main_peak, m)
        tree_peak = max(tree_peak, m + sum(_rss_kb(c) for c in _children(proc.pid)))
        time.sleep(0.02)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"convert failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return dt, cpu, main_peak, tree_peak


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 1000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", default="224")
    ap.add_argument("--keep", type=Path, help="folder for the generated exports (kept)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="conceptkit-bench-"))
    print(
        f"cores available: {len(os.sched_getaffinity(0))}; workers {args.workers}; size {args.size}"
    )
    try:
        for n in args.sizes:
            src = base / f"labelme_{n}"
            if not src.exists():
                t0 = time.perf_counter()
                generate(src, n)
                print(f"generated {n} images in {time.perf_counter() - t0:.1f} s")
            dt, cpu, main_kb, tree_kb = run(src, base / f"out_{n}", args.workers, args.size)
            print(
                f"{n:6d} images: {dt:6.2f} s  {n / dt:7.1f} images/s  "
                f"CPU {1000 * cpu / n:5.1f} ms/image  "
                f"peak RSS main {main_kb / 1024:6.1f} MiB, main+workers {tree_kb / 1024:6.1f} MiB"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
