"""Throughput of `conceptkit convert` on generated exports of the annotation tools' formats.

For each format (labelstudio, via, vott, labelbox, sagemaker, vertex, azure) writes N images of
640x480 with 20 shapes each (polygons, boxes, or for the mask formats one label PNG / brush RLE
per image holding 20 blobs) in that tool's layout, runs ``conceptkit convert FORMAT SRC -o OUT``
in a subprocess and prints images/s (wall time of the whole command, start-up included) and
the CPU time per image of the command and its workers (user + system, start-up included).

    python bench/convert_formats.py --images 50 [--formats via,vott] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

W, H, SHAPES = 640, 480, 20
LABELS = ["car", "tree", "road", "sky", "person"]


def polygons(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """20 (label, (6, 2) pixel vertices) star-ish polygons inside the image."""
    out = []
    for k in range(SHAPES):
        cx, cy, r = rng.uniform(60, W - 60), rng.uniform(60, H - 60), rng.uniform(15, 50)
        t = np.sort(rng.uniform(0, 2 * np.pi, 6))
        out.append((LABELS[k % len(LABELS)], np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)))
    return out


def label_map(rng: np.random.Generator) -> np.ndarray:
    """``(H, W) uint8``: 20 rectangles of class 1..5 on 0."""
    out = np.zeros((H, W), dtype=np.uint8)
    for k in range(SHAPES):
        x, y = int(rng.integers(0, W - 60)), int(rng.integers(0, H - 60))
        out[y : y + int(rng.integers(10, 60)), x : x + int(rng.integers(10, 60))] = k % 5 + 1
    return out


COLOURS = [
    (255, 255, 255),
    (44, 160, 44),
    (31, 119, 180),
    (214, 39, 40),
    (148, 103, 189),
    (255, 127, 14),
]


def colour_png(labels: np.ndarray, path: Path) -> None:
    Image.fromarray(np.array(COLOURS, dtype=np.uint8)[labels]).save(path)


def w_labelstudio(src: Path, n: int, rng: np.random.Generator) -> None:
    tasks = []
    for i in range(n):
        res = [
            {
                "id": f"{i}-{k}",
                "type": "polygonlabels",
                "original_width": W,
                "original_height": H,
                "value": {"points": (p / [W / 100, H / 100]).tolist(), "polygonlabels": [lab]},
            }
            for k, (lab, p) in enumerate(polygons(rng))
        ]
        tasks.append(
            {
                "id": i,
                "data": {"image": f"/data/upload/1/img{i:04d}.jpg"},
                "annotations": [{"result": res}],
            }
        )
    (src / "export.json").write_text(json.dumps(tasks))


def w_via(src: Path, n: int, rng: np.random.Generator) -> None:
    doc = {}
    for i in range(n):
        regions = [
            {
                "shape_attributes": {
                    "name": "polygon",
                    "all_points_x": p[:, 0].round().tolist(),
                    "all_points_y": p[:, 1].round().tolist(),
                },
                "region_attributes": {"label": lab},
            }
            for lab, p in polygons(rng)
        ]
        doc[f"img{i:04d}.jpg0"] = {
            "filename": f"img{i:04d}.jpg",
            "size": 0,
            "regions": regions,
            "file_attributes": {},
        }
    (src / "via.json").write_text(json.dumps(doc))


def w_vott(src: Path, n: int, rng: np.random.Generator) -> None:
    for i in range(n):
        regions = [
            {
                "id": f"r{k}",
                "type": "POLYGON",
                "tags": [lab],
                "points": [{"x": x, "y": y} for x, y in p.tolist()],
                "boundingBox": {"left": 0, "top": 0, "width": 1, "height": 1},
            }
            for k, (lab, p) in enumerate(polygons(rng))
        ]
        asset = {"name": f"img{i:04d}.jpg", "path": "file:/x", "size": {"width": W, "height": H}}
        (src / f"{i:032x}-asset.json").write_text(json.dumps({"asset": asset, "regions": regions}))


def w_labelbox(src: Path, n: int, rng: np.random.Generator) -> None:
    rows = [
        {
            "External ID": f"img{i:04d}.jpg",
            "Label": {
                "objects": [
                    {
                        "featureId": f"f{i}-{k}",
                        "title": lab,
                        "polygon": [{"x": x, "y": y} for x, y in p.tolist()],
                    }
                    for k, (lab, p) in enumerate(polygons(rng))
                ]
            },
        }
        for i in range(n)
    ]
    (src / "export.json").write_text(json.dumps(rows))


def w_sagemaker(src: Path, n: int, rng: np.random.Generator) -> None:
    cmap = {
        str(c): {
            "class-name": "BACKGROUND" if c == 0 else LABELS[c - 1],
            "hex-color": "#{:02x}{:02x}{:02x}".format(*COLOURS[c]),
        }
        for c in range(6)
    }
    lines = []
    for i in range(n):
        colour_png(label_map(rng), src / f"img{i:04d}_mask.png")
        meta = {"internal-color-map": cmap, "type": "groundtruth/semantic-segmentation"}
        lines.append(
            json.dumps(
                {
                    "source-ref": f"s3://b/img{i:04d}.jpg",
                    "job-ref": f"s3://b/o/img{i:04d}_mask.png",
                    "job-ref-metadata": meta,
                }
            )
        )
    (src / "output.manifest").write_text("\n".join(lines) + "\n")


def w_vertex(src: Path, n: int, rng: np.random.Generator) -> None:
    specs = [
        {
            "displayName": LABELS[c - 1],
            "color": {
                "red": COLOURS[c][0] / 255,
                "green": COLOURS[c][1] / 255,
                "blue": COLOURS[c][2] / 255,
            },
        }
        for c in range(1, 6)
    ]
    lines = []
    for i in range(n):
        colour_png(label_map(rng), src / f"img{i:04d}_mask.png")
        lines.append(
            json.dumps(
                {
                    "imageGcsUri": f"gs://b/img{i:04d}.jpg",
                    "maskAnnotation": {
                        "maskGcsUri": f"gs://b/img{i:04d}_mask.png",
                        "annotationSpecColors": specs,
                    },
                }
            )
        )
    (src / "data.jsonl").write_text("\n".join(lines) + "\n")


def w_azure(src: Path, n: int, rng: np.random.Generator) -> None:
    lines = []
    for i in range(n):
        labels = [
            {"label": lab, "isCrowd": 0, "polygon": [(p / [W, H]).ravel().tolist()]}
            for lab, p in polygons(rng)
        ]
        lines.append(
            json.dumps(
                {
                    "image_url": f"azureml://d/paths/img{i:04d}.jpg",
                    "image_details": {"width": W, "height": H},
                    "label": labels,
                }
            )
        )
    (src / "train.jsonl").write_text("\n".join(lines) + "\n")


WRITERS: dict[str, Callable[[Path, int, np.random.Generator], None]] = {
    "labelstudio": w_labelstudio,
    "via": w_via,
    "vott": w_vott,
    "labelbox": w_labelbox,
    "sagemaker": w_sagemaker,
    "vertex": w_vertex,
    "azure": w_azure,
}


def _children_cpu() -> float:
    """User + system seconds of the finished child processes (the commands and their workers)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--formats", default=",".join(WRITERS))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--keep",
        type=Path,
        help="folder for the generated exports (kept, reused when there) and the outputs",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ck-bench-formats-") as tmp:
        root = args.keep or Path(tmp)
        for fmt in args.formats.split(","):
            src = root / (f"{fmt}_{args.images}" if args.keep else fmt)
            if not src.exists():
                src.mkdir(parents=True)
                rng = np.random.default_rng(0)
                for i in range(args.images):
                    pixels = rng.integers(0, 255, (H // 8, W // 8, 3), dtype=np.uint8)
                    img = Image.fromarray(pixels).resize((W, H))
                    img.save(src / f"img{i:04d}.jpg", quality=85)
                WRITERS[fmt](src, args.images, rng)
            out = root / f"out-{fmt}_{args.images}"
            cmd = [
                sys.executable,
                "-m",
                "conceptkit",
                "convert",
                fmt,
                str(src),
                "-o",
                str(out),
                "--min-images",
                "1",
                "--workers",
                str(args.workers),
            ]
            shutil.rmtree(out, ignore_errors=True)  # a kept earlier output, not timed
            t0, c0 = time.perf_counter(), _children_cpu()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
            if proc.returncode != 0:
                print(f"{fmt:12s} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            print(
                f"{fmt:12s} {args.images} images x {SHAPES} shapes, 640x480: {wall:6.2f} s  "
                f"{args.images / wall:6.1f} images/s  {1000 * cpu / args.images:6.1f} ms CPU/image"
            )


if __name__ == "__main__":
    main()
