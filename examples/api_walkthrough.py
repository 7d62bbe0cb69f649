#!/usr/bin/env python3
"""conceptkit from Python, end to end: convert -> dissect -> read the DataFrame -> plot.

    python3 examples/api_walkthrough.py [OUT]        # default: walkthrough_out/

Converts the example's CVAT export into a Broden folder, dissects the last stage of
torchvision's ImageNet MobileNetV2 (weights: python3 examples/fetch_weights.py), prints the
best units per concept from the results DataFrame and draws their IoUs with matplotlib.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from conceptkit.convert import ConvertOptions, convert
from conceptkit.dissection.models import load_model
from conceptkit.dissection.run import dissect

EXAMPLES = Path(__file__).resolve().parent / "data"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)

    # 1. Annotations -> Broden folder (the vocabulary puts parts, materials, tags in place).
    summary = convert(
        "cvat",
        [EXAMPLES / "cvat"],
        out / "dataset",
        ConvertOptions(concepts=EXAMPLES / "concepts.csv", min_images=1, force=True),
    )
    print(summary.text())

    # 2. Dissect one layer of a pretrained model (loaded from torch's cache, never downloaded).
    loaded = load_model("torchvision:mobilenet_v2:IMAGENET1K_V1")
    result = dissect(loaded.module, out / "dataset", layers=["features.18"], batch_size=16)
    result.save(out / "dissect", force=True)

    # 3. The results as a pandas DataFrame: one row per (layer, unit).
    df = result.dataframe()
    detectors = df[df["score"] > 0.04]
    best = detectors.sort_values("score", ascending=False).drop_duplicates("label")
    print(f"\n{len(detectors)} of {len(df)} units are detectors (IoU > 0.04)")
    print(best[["unit", "label", "category", "score"]].head(10).to_string(index=False))

    # 4. A plot: the best IoU reached for each concept, coloured by category.
    colours = {c: f"C{i}" for i, c in enumerate(sorted(best["category"].unique()))}
    fig = Figure(figsize=(7, 0.3 * len(best) + 1))  # no pyplot: no display backend needed
    ax = fig.subplots()
    ax.barh(best["label"], best["score"], color=[colours[c] for c in best["category"]])
    ax.invert_yaxis()
    ax.set_xlabel("best unit IoU (features.18)")
    ax.set_title("MobileNetV2 units vs the example's concepts")
    fig.tight_layout()
    fig.savefig(out / "best_iou_per_concept.png", dpi=100)
    print(f"\nwrote {out / 'best_iou_per_concept.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("walkthrough_out"))
