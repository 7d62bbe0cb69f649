"""A fabricated dissection run, written exactly as the dissect contract says, for tests and bench.

:func:`make_broden` writes a small Broden folder (images with coloured shapes, label planes,
image-level scene labels); :func:`make_run` writes ``results.json``, ``tally_<layer>.csv``,
``quantile_<layer>.npy`` and ``topn_<layer>.npz`` for it with random but self-consistent numbers
(unique-detector counts follow the contract's definitions from the fabricated tally).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from conceptkit.broden import (
    IndexRow,
    LabelStats,
    build_tables,
    save_plane,
    write_index,
    write_tables,
)

# category -> label names; numbers are assigned in this order, starting at 1.
VOCAB: dict[str, tuple[str, ...]] = {
    "object": ("car", "tree", "road", "sky", "person", "building"),
    "part": ("wheel", "window", "door"),
    "scene": ("street", "kitchen"),
    "color": ("red", "green", "blue"),
}
IMAGE_LEVEL = ("scene",)


def make_broden(root: Path, images: int = 20, size: int = 32, seed: int = 0) -> Path:
    """Write a Broden folder with ``images`` RGB images of ``size x size`` (planes at half size)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images" / "syn").mkdir(parents=True, exist_ok=True)
    numbers: dict[str, list[int]] = {}
    names: dict[int, str] = {}
    n = 1
    for cat, labs in VOCAB.items():
        numbers[cat] = []
        for lab in labs:
            numbers[cat].append(n)
            names[n] = lab
            n += 1
    seg = size // 2
    stats = LabelStats()
    rows = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(images):
        base = rng.integers(0, 255, size=3)
        img = np.empty((size, size, 3), dtype=np.uint8)
        for c in range(3):
            img[..., c] = (base[c] + 90 * np.sin((xx + 3 * i) / 5.0 + c)).clip(0, 255)
        planes: dict[str, Sequence[np.ndarray]] = {}
        labels: dict[str, Sequence[int]] = {}
        rel: dict[str, tuple[str, ...]] = {}
        for cat in VOCAB:
            if cat in IMAGE_LEVEL:
                labels[cat] = [int(rng.choice(numbers[cat]))]
                continue
            plane = np.zeros((seg, seg), dtype=np.int32)
            for _ in range(2):
                y0, x0 = rng.integers(0, seg - 4, size=2)
                h, w = rng.integers(3, seg // 2, size=2)
                plane[y0 : y0 + h, x0 : x0 + w] = int(rng.choice(numbers[cat]))
            name = f"syn/{i:06d}_{cat}.png"
            save_plane(plane, root / "images" / name)
            planes[cat] = [plane]
            rel[cat] = (name,)
            mask = np.kron(plane > 0, np.ones((2, 2), dtype=bool))
            img[mask] = (img[mask] * 0.5 + np.array([200, 60, 40]) * 0.5).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"syn/{i:06d}.jpg", quality=90)
        stats.add_image(planes, labels)
        rows.append(
            IndexRow(
                image=f"syn/{i:06d}.jpg",
                split="train",
                ih=size,
                iw=size,
                sh=seg,
                sw=seg,
                planes=rel,
                image_labels={k: tuple(v) for k, v in labels.items()},
            )
        )
    order = list(VOCAB)
    categories, table, codes = build_tables(order, names, stats)
    write_tables(root, categories, table, codes)
    write_index(root, rows, order)
    return root


def make_run(
    out: Path,
    data: Path,
    layers: dict[str, tuple[int, int]],
    images: int,
    top_n: int = 5,
    iou_threshold: float = 0.04,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Write a fabricated run for ``data`` into ``out``; ``layers``: name -> (units, map side)."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cats = list(VOCAB)
    result_layers = {}
    for lname, (units, side) in layers.items():
        # per unit and category: the best label and its IoU (a heavy tail of a few detectors)
        best = {c: rng.choice(list(VOCAB[c]), size=units) for c in cats}
        iou = {c: (rng.gamma(1.2, 0.012, size=units)).round(6) for c in cats}
        tally = []
        detail = []
        q = rng.uniform(0.5, 1.5, size=units)
        maps = rng.normal(0.0, 1.0, size=(units, top_n, side, side)).astype(np.float16)
        values = maps.reshape(units, top_n, -1).max(-1).astype(np.float32)
        indices = np.stack(
            [rng.choice(images, size=min(top_n, images), replace=False) for _ in range(units)]
        ).astype(np.int64)
        for u in range(units):
            per = sorted(
                ((float(iou[c][u]), c) for c in cats), key=lambda t: (-t[0], cats.index(t[1]))
            )
            top_iou, top_cat = per[0]
            label = str(best[top_cat][u])
            row: dict[str, object] = {
                "unit": u + 1,
                "category": top_cat,
                "label": label,
                "score": top_iou,
            }
            for c in cats:
                row[f"{c}-label"] = str(best[c][u])
                row[f"{c}-truth"] = 100
                row[f"{c}-activation"] = 50
                row[f"{c}-intersect"] = 10
                row[f"{c}-iou"] = float(iou[c][u])
            tally.append(row)
            detail.append(
                {
                    "unit": u,
                    "label": label,
                    "category": top_cat,
                    "iou": top_iou,
                    "threshold": float(q[u]),
                    "top_images": indices[u].tolist(),
                    "top_activations": [float(v) for v in values[u]],
                    "runners_up": [
                        {"label": str(best[c][u]), "category": c, "iou": i} for i, c in per[1:5]
                    ],
                }
            )
        tally.sort(key=lambda r: (-float(r["score"]), int(r["unit"])))  # type: ignore[arg-type, call-overload]
        header = ["unit", "category", "label", "score"] + [
            f"{c}-{k}" for c in cats for k in ("label", "truth", "activation", "intersect", "iou")
        ]
        with open(out / f"tally_{lname}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, header, lineterminator="\n")
            w.writeheader()
            w.writerows(tally)
        np.save(out / f"quantile_{lname}.npy", q.astype(np.float64))
        np.savez(out / f"topn_{lname}.npz", indices=indices, values=values, maps=maps)
        official = {
            c: len({str(best[c][u]) for u in range(units) if iou[c][u] > iou_threshold})
            for c in cats
        }
        det = [d for d in detail if float(d["iou"]) > iou_threshold]  # type: ignore[arg-type]
        naive_labels = {(d["category"], d["label"]) for d in det}
        naive = {c: len({lab for cat, lab in naive_labels if cat == c}) for c in cats}
        result_layers[lname] = {
            "units": units,
            "map_size": [side, side],
            "detectors": len(det),
            "unique_detectors": {
                "official": {"total": sum(official.values()), "per_category": official},
                "naive": {"total": len({lab for _, lab in naive_labels}), "per_category": naive},
            },
            "files": {
                "tally": f"tally_{lname}.csv",
                "quantile": f"quantile_{lname}.npy",
                "topn": f"topn_{lname}.npz",
            },
            "units_detail": detail,
        }
    results = {
        "conceptkit_version": "0.1.0",
        "model": {"spec": "synthetic", "description": "fabricated run", "fingerprint": "0" * 16},
        "data": {
            "path": str(data),
            "fingerprint": "f" * 16,
            "images": images,
            "categories": cats,
            "image_size": [size, size],
            "seg_size": [size // 2, size // 2],
        },
        "settings": {
            "quantile": 0.005,
            "iou_threshold": iou_threshold,
            "top_n": top_n,
            "union": "category",
            "preprocess": "netdissect",
            "mean": [124.6901, 118.6897, 109.5388],
            "std": [57.12, 57.12, 57.12],
            "batch_size": 64,
            "thresholds_from": "computed",
        },
        "layers": result_layers,
    }
    (out / "results.json").write_text(
        json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return out


def make(
    root: Path,
    layers: dict[str, tuple[int, int]] | None = None,
    images: int = 20,
    top_n: int = 5,
    size: int = 32,
    seed: int = 0,
    iou_threshold: float = 0.04,
) -> Path:
    """A Broden folder at ``root/data`` and a run at ``root/out``; returns the run folder."""
    layers = layers or {"layer3": (12, 4), "layer4": (16, 2)}
    data = make_broden(Path(root) / "data", images=images, size=size, seed=seed)
    return make_run(
        Path(root) / "out", data, layers, images, top_n, iou_threshold, size=size, seed=seed
    )


__all__: Sequence[str] = ["make", "make_broden", "make_run"]
