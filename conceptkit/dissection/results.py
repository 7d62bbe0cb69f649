"""The outcome of a dissection: per-layer tallies, labels, unique detectors, and their files.

:class:`DissectResult` holds plain numpy arrays (no model, no torch state) and writes the output
contract: ``tally_<layer>.csv`` (NetDissect-Lite's exact columns, then per category the best
label's ``<cat>-iou_chance`` and ``<cat>-z``), ``quantile_<layer>.npy``, ``topn_<layer>.npz``
and ``results.json`` (per unit its best label's support, chance level, z and flags; per layer
the flagged counts), atomically through :func:`conceptkit.outdir.atomic_dir`. The chance
levels are :mod:`conceptkit.dissection.chance`'s (this module imports no torch).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit.outdir import atomic_dir

TALLY_FIELDS = ("label", "truth", "activation", "intersect", "iou")
#: per category, after every category's TALLY_FIELDS (readers of NetDissect-Lite's columns
#: find theirs where they were)
CHANCE_FIELDS = ("iou_chance", "z")
RUNNERS_UP = 4
#: a label's IoU is called clearly above chance when its z reaches this
Z_MIN = 3.0
#: Broden kept only labels seen in at least this many images
SUPPORT_MIN = 10
BASELINE_DIR = "baseline"


def flags(
    z: float, support: int, z_min: float = Z_MIN, support_min: int = SUPPORT_MIN
) -> list[str]:
    """A best label's flags: ``near_chance`` (its z below ``z_min``), ``few_images`` (its
    support below ``support_min``); the levels are :mod:`conceptkit.dissection.chance`'s."""
    out = []
    if z < z_min:
        out.append("near_chance")
    if support < support_min:
        out.append("few_images")
    return out


@dataclass
class LayerResult:
    """One layer's statistics (C units, L labels including 0, K categories); a label's
    column is its place in :attr:`DissectResult.label_numbers`.

    ``thresholds: (C,) float64``; ``inter: (C, L)``, ``truth: (L,)``, ``act_cat: (C, K)``,
    ``act_total: (C,)`` int64 counts; ``iou: (C, L) float64``; ``top_indices: (C, N) int64``,
    ``top_values: (C, N) float32``, ``top_maps: (C, N, h, w) float32``; the chance levels
    (None when not counted) ``iou_chance, z: (C, L) float64`` and ``support: (L,) int64``
    the images each label occurs in.
    """

    name: str
    map_size: tuple[int, int]
    thresholds: np.ndarray
    inter: np.ndarray
    truth: np.ndarray
    act_cat: np.ndarray
    act_total: np.ndarray
    iou: np.ndarray
    top_indices: np.ndarray
    top_values: np.ndarray
    top_maps: np.ndarray
    iou_chance: np.ndarray | None = None
    z: np.ndarray | None = None
    support: np.ndarray | None = None

    @property
    def units(self) -> int:
        return int(self.thresholds.shape[0])

    @property
    def has_chance(self) -> bool:
        return self.iou_chance is not None and self.z is not None and self.support is not None


@dataclass
class UnitLabel:
    """A unit's best label in one category (label 0 / name '' when no label overlaps);
    ``column`` its label column (0 for none)."""

    number: int
    name: str
    truth: float
    activation: float
    intersect: float
    iou: float
    column: int = 0


@dataclass
class DissectResult:
    """Everything a dissection found; ``layers`` keeps the order the layers were asked in.

    Per label column ``i``: ``label_numbers[i]`` its number in label.csv (None: ``i``
    itself), ``label_names[i]`` its name, ``label_category[i]`` its category index (-1 for
    label 0 or none). ``baseline``: the same dissection of random weights, when asked for
    (saved into ``baseline/``, compared in results.json's ``baseline``).
    """

    layers: dict[str, LayerResult]
    categories: list[str]
    label_names: list[str]
    label_category: np.ndarray
    settings: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    version: str = ""
    label_numbers: np.ndarray | None = None
    baseline: DissectResult | None = None
    _best: dict[str, list[list[UnitLabel]]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ labels per unit

    def number(self, column: int) -> int:
        """The label number of label column ``column``."""
        return column if self.label_numbers is None else int(self.label_numbers[column])

    def best_labels(self, layer: str) -> list[list[UnitLabel]]:
        """``[unit][category]`` best label by IoU within each category (argmax, lowest number
        on ties). As in NetDissect-Lite, a category where no label has IoU > 0 gives label 0
        (name ''), truth 0 and the activation counted for label 0's category (the last one)."""
        if layer in self._best:
            return self._best[layer]
        lr = self.layers[layer]
        last = len(self.categories) - 1
        out: list[list[UnitLabel]] = []
        cols = [np.flatnonzero(self.label_category == k) for k in range(len(self.categories))]
        for u in range(lr.units):
            row = []
            for k, labs in enumerate(cols):
                ious = lr.iou[u, labs]
                if labs.size == 0 or not (ious.max() > 0):
                    act = float(lr.act_cat[u, last])
                    row.append(UnitLabel(0, "", 0.0, act, 0.0, 0.0))
                    continue
                n = int(labs[int(np.argmax(ious))])
                row.append(
                    UnitLabel(
                        self.number(n),
                        self.label_names[n],
                        float(lr.truth[n]),
                        float(lr.act_cat[u, k]),
                        float(lr.inter[u, n]),
                        float(lr.iou[u, n]),
                        n,
                    )
                )
            out.append(row)
        self._best[layer] = out
        return out

    def unit_best(self, layer: str) -> list[tuple[int, UnitLabel]]:
        """Per unit: (category index, label) of the best category (first on ties)."""
        res = []
        for row in self.best_labels(layer):
            k = max(range(len(row)), key=lambda i: (row[i].iou, -i))
            res.append((k, row[k]))
        return res

    def tally_rows(self, layer: str) -> list[dict[str, Any]]:
        """Rows of ``tally_<layer>.csv``: score descending, ties by unit ascending."""
        best = self.best_labels(layer)
        top = self.unit_best(layer)
        order = sorted(range(len(best)), key=lambda u: (-top[u][1].iou, u))
        lr = self.layers[layer]
        rows = []
        for u in order:
            k, lab = top[u]
            row: dict[str, Any] = {
                "unit": u + 1,
                "category": self.categories[k],
                "label": lab.name,
                "score": lab.iou,
            }
            for ci, cat in enumerate(self.categories):
                b = best[u][ci]
                row[f"{cat}-label"] = b.name
                row[f"{cat}-truth"] = b.truth
                row[f"{cat}-activation"] = b.activation
                row[f"{cat}-intersect"] = b.intersect
                row[f"{cat}-iou"] = b.iou
            if lr.iou_chance is not None and lr.z is not None:
                for ci, cat in enumerate(self.categories):
                    col = best[u][ci].column
                    row[f"{cat}-iou_chance"] = float(lr.iou_chance[u, col])
                    row[f"{cat}-z"] = float(lr.z[u, col])
            rows.append(row)
        return rows

    def tally_header(self, layer: str | None = None) -> list[str]:
        """The tally's columns; with the chance columns when ``layer`` (default: every
        layer) has chance levels."""
        head = ["unit", "category", "label", "score"]
        for cat in self.categories:
            head += [f"{cat}-{f}" for f in TALLY_FIELDS]
        names = [layer] if layer is not None else list(self.layers)
        if names and all(self.layers[n].has_chance for n in names):
            for cat in self.categories:
                head += [f"{cat}-{f}" for f in CHANCE_FIELDS]
        return head

    def dataframe(self) -> Any:
        """A pandas DataFrame: one row per (layer, unit), the tally columns plus ``layer``."""
        import pandas as pd

        frames = []
        for layer in self.layers:
            df = pd.DataFrame(self.tally_rows(layer), columns=self.tally_header(layer))
            df.insert(0, "layer", layer)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ detectors

    def summary(self, layer: str) -> dict[str, Any]:
        """Detectors and unique detectors (official and naive) of one layer."""
        cut = float(self.settings["iou_threshold"])
        best = self.best_labels(layer)
        top = self.unit_best(layer)
        official: dict[str, int] = {}
        for ci, cat in enumerate(self.categories):
            official[cat] = len({row[ci].number for row in best if row[ci].iou > cut})
        naive_labels: dict[str, set[int]] = {cat: set() for cat in self.categories}
        detectors = 0
        for k, lab in top:
            if lab.iou > cut:
                detectors += 1
                naive_labels[self.categories[k]].add(lab.number)
        naive = {cat: len(v) for cat, v in naive_labels.items()}
        return {
            "units": self.layers[layer].units,
            "detectors": detectors,
            "unique_detectors": {
                "official": {"total": sum(official.values()), "per_category": official},
                "naive": {"total": sum(naive.values()), "per_category": naive},
            },
        }

    def unit_chance(self, layer: str) -> list[dict[str, Any]] | None:
        """Per unit, its best label's ``support`` (images it occurs in), ``iou_chance``, ``z``
        and ``flags`` (``near_chance``: z below :data:`Z_MIN`; ``few_images``: support below
        :data:`SUPPORT_MIN`; ``no_label``: no label overlaps the unit). None without chance
        levels."""
        lr = self.layers[layer]
        if lr.iou_chance is None or lr.z is None or lr.support is None:
            return None
        out = []
        for u, (_k, lab) in enumerate(self.unit_best(layer)):
            n = lab.column
            if lab.number == 0:
                out.append({"support": 0, "iou_chance": 0.0, "z": 0.0, "flags": ["no_label"]})
                continue
            support, z = int(lr.support[n]), float(lr.z[u, n])
            out.append(
                {
                    "support": support,
                    "iou_chance": float(lr.iou_chance[u, n]),
                    "z": z,
                    "flags": flags(z, support),
                }
            )
        return out

    def flagged(self, layer: str) -> dict[str, int] | None:
        """Counts of flagged units, all of them and the detectors (IoU above the cut)."""
        chance = self.unit_chance(layer)
        if chance is None:
            return None
        cut = float(self.settings["iou_threshold"])
        det = [c["flags"] for c, (_k, lab) in zip(chance, self.unit_best(layer)) if lab.iou > cut]
        return {
            "near_chance": sum("near_chance" in c["flags"] for c in chance),
            "few_images": sum("few_images" in c["flags"] for c in chance),
            "no_label": sum("no_label" in c["flags"] for c in chance),
            "detectors_near_chance": sum("near_chance" in f for f in det),
            "detectors_few_images": sum("few_images" in f for f in det),
            "detectors_unflagged": sum(not f for f in det),
        }

    def digest(self, layer: str) -> dict[str, Any]:
        """What the trained-vs-random comparison shows of one layer: detectors, unique
        detectors (both definitions), the mean IoU of the units' best labels and, with
        chance levels, the flagged detectors."""
        s = self.summary(layer)
        u = s["unique_detectors"]
        best = [lab.iou for _k, lab in self.unit_best(layer)]
        out: dict[str, Any] = {
            "units": s["units"],
            "detectors": s["detectors"],
            "unique_detectors_official": u["official"]["total"],
            "unique_detectors_naive": u["naive"]["total"],
            "mean_best_iou": float(np.mean(best)) if best else 0.0,
        }
        flagged = self.flagged(layer)
        if flagged is not None:
            for key in ("detectors_near_chance", "detectors_few_images", "detectors_unflagged"):
                out[key] = flagged[key]
        return out

    def baseline_summary(self) -> dict[str, Any] | None:
        """results.json's ``baseline``: per layer the :meth:`digest` of the trained and of
        the random weights (None without a baseline)."""
        b = self.baseline
        if b is None:
            return None
        layers = {n: {"trained": self.digest(n), "random": b.digest(n)} for n in self.layers}
        return {
            "kind": "random",
            "seed": b.model.get("random_weights_seed"),
            "folder": BASELINE_DIR,
            "layers": layers,
        }

    def _units_detail(self, layer: str) -> list[dict[str, Any]]:
        lr = self.layers[layer]
        valid = np.flatnonzero(self.label_category >= 0)
        valid = valid[valid > 0]
        chance = self.unit_chance(layer)
        out = []
        for u, (k, lab) in enumerate(self.unit_best(layer)):
            ious = lr.iou[u, valid]
            order = np.lexsort((valid, -ious))[: RUNNERS_UP + 1]  # IoU desc, then number
            runners: list[dict[str, Any]] = []
            for i in order:
                n = int(valid[i])
                if ious[i] <= 0 or len(runners) >= RUNNERS_UP:
                    break
                if self.number(n) == lab.number:
                    continue
                runners.append(
                    {
                        "label": self.label_names[n],
                        "category": self.categories[int(self.label_category[n])],
                        "iou": float(ious[i]),
                    }
                )
            entry = {
                "unit": u,
                "label": lab.name,
                "category": self.categories[k],
                "iou": lab.iou,
                "threshold": float(lr.thresholds[u]),
                "top_images": [int(v) for v in lr.top_indices[u]],
                "top_activations": [float(v) for v in lr.top_values[u]],
                "runners_up": runners,
            }
            if chance is not None:
                entry.update(chance[u])
            out.append(entry)
        return out

    def to_json(self) -> dict[str, Any]:
        layers = {}
        for name, lr in self.layers.items():
            entry = self.summary(name)
            entry["map_size"] = list(lr.map_size)
            entry["files"] = {
                "tally": f"tally_{name}.csv",
                "quantile": f"quantile_{name}.npy",
                "topn": f"topn_{name}.npz",
            }
            entry["units_detail"] = self._units_detail(name)
            flagged = self.flagged(name)
            if flagged is not None:
                entry["flagged"] = flagged
            layers[name] = entry
        out = {
            "conceptkit_version": self.version,
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "layers": layers,
            # json.dumps(sort_keys=True) loses the --layer order of "layers"; keep it here
            "layer_order": list(self.layers),
        }
        if any(lr.has_chance for lr in self.layers.values()):
            out["chance"] = {"z_min": Z_MIN, "support_min": SUPPORT_MIN}
        baseline = self.baseline_summary()
        if baseline is not None:
            out["baseline"] = baseline
        return out

    # ------------------------------------------------------------------ files

    def write_tally(self, layer: str, path: str | Path) -> None:
        """``tally_<layer>.csv`` as NetDissect-Lite writes it (csv module, CRLF, float reprs)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.tally_header(layer))
            writer.writeheader()
            for row in self.tally_rows(layer):
                writer.writerow(row)

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write every file of the output contract into ``out`` atomically (the baseline's
        into ``out/baseline/``); return its path."""
        with atomic_dir(out, force=force) as tmp:
            self.write_files(tmp)
            if self.baseline is not None:
                (tmp / BASELINE_DIR).mkdir()
                self.baseline.write_files(tmp / BASELINE_DIR)
        return Path(out)

    def write_files(self, tmp: Path) -> None:
        """The output contract's files into the folder ``tmp``."""
        for name, lr in self.layers.items():
            self.write_tally(name, tmp / f"tally_{name}.csv")
            np.save(tmp / f"quantile_{name}.npy", lr.thresholds.astype(np.float64))
            write_npz(
                tmp / f"topn_{name}.npz",
                {
                    "indices": lr.top_indices.astype(np.int64),
                    "values": lr.top_values.astype(np.float32),
                    "maps": lr.top_maps.astype(np.float16),
                },
            )
        text = json.dumps(self.to_json(), sort_keys=True, indent=2, allow_nan=False)
        (tmp / "results.json").write_text(text + "\n", encoding="utf-8")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` that ``np.load`` reads, with fixed zip timestamps (byte-deterministic)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
