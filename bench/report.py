"""Benchmark: report image strips for 512 units x 10 images (synthetic 224x224 run).

Prints the time to draw every strip with 1 and 2 worker processes, the whole report build
(strips + pages + plots) and an unchanged rebuild (strips carried over via the manifest).

    python bench/report.py [--units 512] [--top-n 10] [--images 200] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from conceptkit import report
from conceptkit.report.builder import strip_jobs
from conceptkit.report.run import load_run
from conceptkit.report.strips import render_jobs

TESTS = Path(__file__).resolve().parents[1] / "tests"


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--units", type=int, default=512)
    ap.add_argument("--top-n", type=int, default=10)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    sys.path.insert(0, str(TESTS))
    import synthetic_run  # tests/synthetic_run.py: fake runs written by the real writer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        data = synthetic_run.make_broden(root / "data", images=args.images, size=args.size)
        out = synthetic_run.make_run(root / "out", data, {"layer4": (args.units, 7)}, args.top_n)
        print(
            f"synthetic run: {args.units} units x {args.top_n} images of {args.size}x{args.size} "
            f"({args.images} distinct images), made in {time.perf_counter() - t:.1f} s"
        )
        load = os.getloadavg()[0]
        print(f"cpu count: {os.cpu_count()}, load average {load:.1f} (wall times need an idle box)")
        run = load_run(out)
        for w in [int(x) for x in args.workers.split(",")]:
            target = root / f"strips-{w}"
            target.mkdir()
            jobs, _ = strip_jobs(run, target)
            t, c = time.perf_counter(), _cpu()
            render_jobs(jobs, workers=w)
            dt, dc = time.perf_counter() - t, _cpu() - c
            size = sum(p.stat().st_size for p in target.glob("*.jpg"))
            print(
                f"strips, {w} worker(s): {dt:.2f} s for {len(jobs)} strips "
                f"({1000 * dt / len(jobs):.1f} ms/strip wall, {dc:.2f} s CPU, {size / 2**20:.1f} MiB)"
            )
            shutil.rmtree(target)
        w = max(int(x) for x in args.workers.split(","))
        t = time.perf_counter()
        report.build(out, workers=w)
        print(f"full build (strips + pages + plots), {w} workers: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        report.build(out, workers=w)
        print(f"rebuild, nothing changed: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
