"""Result folders in the reference code's layouts, for the analysis tests.

:func:`write_lite_folder` writes what NetDissect-Lite leaves in ``result/pytorch_<net>_<data>/``:
one tally per layer, written as its ``FeatureOperator.tally`` writes ``tally.csv`` (a
``csv.DictWriter`` on a file opened without ``newline=''``, so CRLF rows; numpy values turned
into text by ``str``: ``unit`` an integer, the counts and IoUs float64 such as ``76557.0``; rows
in descending score order; the best category of a unit the last one among equal scores), and
optionally the image strips ``html/image/<layer>-<unit:04d>.jpg`` (0-based) and
``html/<layer>.html``. ``flavour="netdissect"`` writes the original NetDissect's
``<layer>-result.csv`` instead: integer truth and intersection, float activations, IoUs with
12 significant digits.

A unit is given as ``{category: (label, iou)}``; categories left out have the reference's
"nothing overlaps" entry (label ``-``, IoU 0). The counts are filled in so that
``intersect / (activation + truth - intersect)`` is close to the IoU; the analysis reads only
labels and IoUs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FIELDS = ("label", "truth", "activation", "intersect", "iou")
Unit = dict[str, tuple[str, float]]

# The hand-counted layer used across the tests (cut 0.04):
#   detector units (best IoU > 0.04): units 1, 2 (object), 3 (part), 4 (scene)      -> 4
#   unique, naive: object {car}, part {wheel}, scene {street}                      -> 3
#   unique, official: object {car, road}, part {wheel, window}, scene {street}     -> 5
#   with IoU >= 0.04, unit 5 (color red, exactly 0.04) joins: 5 detectors, naive 4, official 6.
HAND_LAYER: list[Unit] = [
    {"object": ("car", 0.10), "part": ("wheel", 0.06), "color": ("red", 0.02)},
    {"object": ("car", 0.08), "part": ("window", 0.05)},
    {"part": ("wheel", 0.07), "object": ("tree", 0.03)},
    {"scene": ("street", 0.05), "object": ("road", 0.045)},
    {"color": ("red", 0.04)},
    {"object": ("tree", 0.0399)},
    {"object": ("sky", 0.03)},
    {},
]
LITE_CATEGORIES = ("object", "part", "scene", "texture", "color")
NETDISSECT_CATEGORIES = ("color", "texture", "scene", "part", "object")


def _entries(unit: Unit, categories: Sequence[str]) -> list[tuple[str, float]]:
    return [unit.get(c, ("-", 0.0)) for c in categories]


def _best(entries: list[tuple[str, float]]) -> int:
    """The reference's ``score.argsort(axis=0)[::-1][0]``: the last of the highest scores."""
    scores = np.array([iou for _, iou in entries], dtype=np.float64)
    return int(np.argsort(scores, kind="stable")[::-1][0])


def tally_rows(units: Sequence[Unit], categories: Sequence[str], flavour: str) -> list[dict]:
    """The rows of one tally, in the reference's order (score descending)."""
    rows = []
    for u, unit in enumerate(units):
        entries = _entries(unit, categories)
        best = _best(entries)
        row: dict[str, object] = {
            "unit": np.int64(u + 1),
            "category": categories[best],
            "label": entries[best][0],
            "score": np.float64(entries[best][1]),
        }
        for cat, (label, iou) in zip(categories, entries):
            truth, act = 1000.0, 1000.0
            inter = round(2000.0 * iou / (1.0 + iou))
            row[f"{cat}-label"] = label
            if flavour == "netdissect":
                row[f"{cat}-truth"] = np.int64(truth)
                row[f"{cat}-activation"] = np.float64(act)
                row[f"{cat}-intersect"] = np.int64(inter)
                row[f"{cat}-iou"] = f"{iou:.12g}"
            else:
                row[f"{cat}-truth"] = np.float64(truth)
                row[f"{cat}-activation"] = np.float64(act)
                row[f"{cat}-intersect"] = np.float64(inter)
                row[f"{cat}-iou"] = np.float64(iou)
        rows.append(row)
    scores = np.array([float(r["score"]) for r in rows])  # type: ignore[arg-type]
    ordering = scores.argsort()[::-1]
    return [rows[i] for i in ordering]


def write_tally(
    path: Path, units: Sequence[Unit], categories: Sequence[str], flavour: str = "lite"
) -> Path:
    """One tally file as the reference writes it (see the module docstring)."""
    fields = sum(
        ([f"{c}-{f}" for f in FIELDS] for c in categories), ["unit", "category", "label", "score"]
    )
    with open(path, "w") as f:  # the reference's open(): no newline='' -> CRLF from csv
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        for row in tally_rows(units, categories, flavour):
            writer.writerow(row)
    return path


def write_strip(path: Path, unit: int, tiles: int = 3, size: int = 16) -> Path:
    """A small JPEG strip of ``tiles`` coloured squares (content depends on ``unit``)."""
    from PIL import Image

    gap = 3
    img = np.full((size, tiles * (size + gap) - gap, 3), 255, dtype=np.uint8)
    for t in range(tiles):
        img[:, t * (size + gap) : t * (size + gap) + size] = ((37 * unit + 80 * t) % 256, 60, 200)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)
    return path


def write_lite_folder(
    root: Path,
    name: str,
    layers: dict[str, Sequence[Unit]],
    *,
    categories: Sequence[str] = LITE_CATEGORIES,
    strips: bool | Iterable[int] = False,
    single_tally: bool = False,
    flavour: str = "lite",
) -> Path:
    """``root/name/`` with one tally per layer (``tally_<layer>.csv``; ``tally.csv`` and
    ``html/<layer>.html`` for one layer with ``single_tally``; ``<layer>-result.csv`` for
    ``flavour="netdissect"``) and, with ``strips`` (True: every unit; else the 1-based units
    given), ``html/image/<layer>-<unit - 1:04d>.jpg``."""
    out = root / name
    out.mkdir(parents=True)
    for layer, units in layers.items():
        if flavour == "netdissect":
            write_tally(out / f"{layer}-result.csv", units, categories, flavour)
        elif single_tally:
            write_tally(out / "tally.csv", units, categories)
            (out / "html").mkdir(exist_ok=True)
            (out / "html" / f"{layer}.html").write_text("<!doctype html>\n", encoding="utf-8")
        else:
            write_tally(out / f"tally_{layer}.csv", units, categories)
        wanted = range(1, len(units) + 1) if strips is True else (strips or [])
        for u in wanted:
            write_strip(out / "html" / "image" / f"{layer}-{u - 1:04d}.jpg", u)
    return out
