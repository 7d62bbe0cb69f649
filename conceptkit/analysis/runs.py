"""Read finished dissections, conceptkit's or the reference code's, into per-layer tallies.

Three kinds of folder are recognised by their files (they are only read, never written):

- **conceptkit**: ``results.json`` (read through :func:`conceptkit.report.run.load_run`) with
  one ``tally_<layer>.csv`` per layer, in the ``--layer`` order it records;
- **NetDissect-Lite** (``result/pytorch_<network>_<dataset>/``): ``tally_<layer>.csv`` files,
  or the single ``tally.csv`` its ``main.py`` writes (the layer is then named by the one
  ``html/<layer>.html`` page beside it, else ``tally``);
- **NetDissect** (the original code): ``<layer>-result.csv`` files.

Every tally has NetDissect-Lite's columns: ``unit`` (1-based), ``category``, ``label``,
``score`` (the unit's best IoU), then per category ``<cat>-label``, ``<cat>-truth``,
``<cat>-activation``, ``<cat>-intersect``, ``<cat>-iou``. The categories and their order come
from each file's header (NetDissect's older files list them in another order and write float
activations; both read the same). A file that breaks the format is a
:class:`~conceptkit.errors.LayoutError` naming the file, the line and the column.

A run is named ``<network>_<dataset>``: from the folder name (``pytorch_resnet18_places365`` ->
``resnet18`` and ``places365``, the dataset being the part after the last ``_``) for the
reference's folders, and from results.json's model for conceptkit runs (``torchvision:NAME`` ->
``NAME`` and ``imagenet``, or ``random`` for ``:none``; a model file -> its name, split the same
way). ``name=`` overrides either.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from conceptkit import limits
from conceptkit.dissection.results import CHANCE_FIELDS, TALLY_FIELDS
from conceptkit.errors import LayoutError, UsageError
from conceptkit.report.pages import strip_name
from conceptkit.report.run import layer_file, load_run

HEAD = ("unit", "category", "label", "score")
FLOAT_FIELDS = ("truth", "activation", "intersect", "iou")
DEFAULT_IOU_THRESHOLD = 0.04  # NetDissect's and NetDissect-Lite's SCORE_THRESHOLD
REFERENCE_UNSAFE = re.compile(r"[-/#?*!\s]+")  # what the reference's fn_safe turns into '-'

FORMAT_NAMES = {
    "conceptkit": "conceptkit run",
    "netdissect-lite": "NetDissect-Lite result",
    "netdissect": "NetDissect result",
}


@dataclass
class RunLayer:
    """One layer's tally: ``tally`` has one row per unit, sorted by ``unit`` (1-based).

    Columns: ``unit`` int, ``category`` str, ``label`` str, ``score`` float, and for every
    category of ``categories`` (the file's order) ``<cat>-label`` str and ``<cat>-truth``,
    ``<cat>-activation``, ``<cat>-intersect``, ``<cat>-iou`` float.
    """

    name: str
    file: Path
    categories: list[str]
    tally: pd.DataFrame

    @property
    def units(self) -> int:
        return len(self.tally)


@dataclass
class Run:
    """A finished dissection: where it is, what kind, its name and its layers (in order).

    ``iou_threshold`` is the run's own cut: results.json's setting for a conceptkit run, else
    NetDissect's 0.04. ``results`` is the parsed results.json of a conceptkit run, else None.
    """

    path: Path
    format: str
    network: str
    dataset: str
    layers: list[RunLayer]
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    results: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``<network>_<dataset>`` (just the network when the dataset is not known)."""
        return f"{self.network}_{self.dataset}" if self.dataset else self.network

    @property
    def categories(self) -> list[str]:
        """Categories of all layers, in first-seen order."""
        out: list[str] = []
        for lay in self.layers:
            out += [c for c in lay.categories if c not in out]
        return out

    def layer(self, name: str | None = None) -> RunLayer:
        """The layer called ``name``; without a name, the only layer (UsageError otherwise)."""
        if name is None:
            if len(self.layers) == 1:
                return self.layers[0]
            names = ", ".join(lay.name for lay in self.layers)
            raise UsageError(f"several layers ({names}); name one with --layer", file=self.path)
        for lay in self.layers:
            if lay.name == name:
                return lay
        names = ", ".join(lay.name for lay in self.layers)
        raise UsageError(f"no layer {name!r} (layers: {names})", file=self.path)

    def strip_file(self, layer: str, unit: int) -> Path:
        """Where the unit's image strip is (whether or not the file exists):
        ``html/image/<layer>-<unit - 1:04d>.jpg``, the name NetDissect-Lite, NetDissect and
        conceptkit all write (0-based there); ``unit`` is 1-based, as in the tally. The layer
        is made file-safe the way the folder's writer does it."""
        if self.format == "conceptkit":
            name = strip_name(layer, unit - 1)
        else:  # the reference's fn_safe: runs of - / # ? * ! and spaces become one '-'
            safe = REFERENCE_UNSAFE.sub("-", layer).strip("-")
            name = f"{safe}-{unit - 1:04d}.jpg"
        return self.path / "html" / "image" / name


# ---------------------------------------------------------------------------- tally files


def _float(text: str, file: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LayoutError(
            f"{text!r} is not a number", file=file, place=f"line {line}, column {column}"
        ) from None
    if value != value:  # NaN: every comparison with the cut would be False
        raise LayoutError("is NaN", file=file, place=f"line {line}, column {column}")
    return value


def _chance_columns(header: list[str]) -> int:
    """How many of the header's last columns are conceptkit's ``<cat>-iou_chance``,
    ``<cat>-z`` (per category, after every category's NetDissect-Lite columns)."""
    m = sum(h.endswith("-iou_chance") for h in header)
    if m == 0 or len(header) < 4 + 7 * m:
        return 0
    cats = [h[: -len("-label")] for h in header[4 : 4 + 5 * m : 5]]
    want = [f"{c}-{f}" for c in cats for f in CHANCE_FIELDS]
    return 2 * m if header[-2 * m :] == want else 0


def _categories(header: list[str], file: Path) -> list[str]:
    """The categories a tally header names, in its order; LayoutError when it is malformed.
    conceptkit's trailing chance columns (:data:`CHANCE_FIELDS`) are read as they are."""
    extra = _chance_columns(header)
    if extra:
        header = header[:-extra]
    if tuple(header[:4]) != HEAD:
        raise LayoutError(
            f"header starts {','.join(header[:4])!r}, expected 'unit,category,label,score'",
            file=file,
            place="line 1",
        )
    rest = header[4:]
    if not rest or len(rest) % len(TALLY_FIELDS):
        raise LayoutError(
            f"{len(rest)} columns after 'score'; expected 5 per category "
            f"(<cat>-{', <cat>-'.join(TALLY_FIELDS)})",
            file=file,
            place="line 1",
        )
    cats: list[str] = []
    for i in range(0, len(rest), len(TALLY_FIELDS)):
        cat = rest[i].rsplit("-", 1)[0] if rest[i].endswith("-label") else ""
        want = [f"{cat}-{f}" for f in TALLY_FIELDS]
        if not cat or rest[i : i + len(TALLY_FIELDS)] != want or cat in cats:
            got = ",".join(rest[i : i + len(TALLY_FIELDS)])
            raise LayoutError(
                f"columns {i + 5}-{i + 9} are {got!r}; expected one category's "
                f"<cat>-{', <cat>-'.join(TALLY_FIELDS)} (each category once)",
                file=file,
                place="line 1",
            )
        cats.append(cat)
    return cats


def _row(cells: list[str], header: list[str], cats: list[str], file: Path, line: int) -> dict:
    if len(cells) != len(header):
        raise LayoutError(
            f"{len(cells)} cells, the header has {len(header)}", file=file, place=f"line {line}"
        )
    row: dict[str, Any] = dict(zip(header, cells))
    text = row["unit"].strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise LayoutError(
            f"unit {row['unit']!r} is not a whole number >= 1 (units are 1-based)",
            file=file,
            place=f"line {line}, column unit",
        )
    row["unit"] = int(text)
    if row["category"] not in cats:
        raise LayoutError(
            f"category {row['category']!r} is not one of the header's ({', '.join(cats)})",
            file=file,
            place=f"line {line}, column category",
        )
    chance = header[len(HEAD) + len(TALLY_FIELDS) * len(cats) :]  # conceptkit's, or none
    for key in ["score"] + [f"{cat}-{f}" for cat in cats for f in FLOAT_FIELDS] + chance:
        row[key] = _float(row[key], file, line, key)
        if key.endswith(("score", "-iou")) and not (0.0 <= row[key] <= 1.0):
            raise LayoutError(
                f"IoU {row[key]!r} is outside [0, 1]", file=file, place=f"line {line}, column {key}"
            )
    best = row[f"{row['category']}-iou"]
    if abs(row["score"] - best) > 1e-9 * max(1.0, abs(best)):
        raise LayoutError(
            f"score {row['score']!r} differs from {row['category']}-iou {best!r} (the score is "
            "the IoU of the unit's best label)",
            file=file,
            place=f"line {line}, column score",
        )
    return row


def read_tally(file: str | Path) -> tuple[list[str], pd.DataFrame]:
    """``(categories, tally)`` of one tally CSV (NetDissect-Lite's or NetDissect's columns).

    ``tally`` is sorted by unit; see :class:`RunLayer` for its columns. LayoutError names the
    file, the line and the column of the first problem (duplicate units included).
    """
    file = Path(file)
    if not file.is_file():
        raise LayoutError("is not a regular file", file=file)
    limits.check("file_bytes", file.stat().st_size, file=file, error=LayoutError)
    rows: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    try:
        with open(file, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise LayoutError("is empty (expected a header line)", file=file, place="line 1")
            cats = _categories(header, file)
            for cells in reader:
                if not cells:
                    continue
                line = reader.line_num
                row = _row(cells, header, cats, file, line)
                if row["unit"] in seen:
                    raise LayoutError(
                        f"unit {row['unit']} again (first on line {seen[row['unit']]})",
                        file=file,
                        place=f"line {line}, column unit",
                    )
                seen[row["unit"]] = line
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise LayoutError(f"is not UTF-8 text ({exc.reason})", file=file) from None
    except csv.Error as exc:
        raise LayoutError(f"is not a readable CSV ({exc})", file=file) from None
    except OSError as exc:
        raise LayoutError(f"cannot be read ({exc.strerror or exc})", file=file) from None
    if not rows:
        raise LayoutError("has a header but no unit rows", file=file, place="line 2")
    df = pd.DataFrame(rows, columns=header).sort_values("unit", kind="stable")
    return cats, df.reset_index(drop=True)


# ---------------------------------------------------------------------------- folders


def _natural(name: str) -> list[Any]:
    """Sort key that puts layer3 before layer10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def detect_format(path: Path) -> str:
    """``conceptkit``, ``netdissect-lite`` or ``netdissect``, from the files in ``path``."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise LayoutError(what, file=path, hint="pass a dissection's output folder")
    if (path / "results.json").is_file():
        return "conceptkit"
    if any(path.glob("tally_*.csv")) or (path / "tally.csv").is_file():
        return "netdissect-lite"
    if any(path.glob("*-result.csv")):
        return "netdissect"
    inner = sorted(
        p.name
        for p in path.iterdir()
        if p.is_dir() and (any(p.glob("tally*.csv")) or (p / "results.json").is_file())
    )
    raise LayoutError(
        "holds no results.json, tally_<layer>.csv, tally.csv or <layer>-result.csv",
        file=path,
        hint=f"dissections inside it: {', '.join(inner[:3])}; pass those" if inner else None,
    )


def _lite_files(path: Path) -> list[tuple[str, Path]]:
    named = [(p.name[len("tally_") : -len(".csv")], p) for p in path.glob("tally_*.csv")]
    if (path / "tally.csv").is_file():
        pages = [p.stem for p in (path / "html").glob("*.html") if p.stem != "index"]
        named.append((pages[0] if len(pages) == 1 else "tally", path / "tally.csv"))
    return sorted(named, key=lambda item: _natural(item[0]))


def _netdissect_files(path: Path) -> list[tuple[str, Path]]:
    named = [(p.name[: -len("-result.csv")], p) for p in path.glob("*-result.csv")]
    return sorted(named, key=lambda item: _natural(item[0]))


def split_name(name: str) -> tuple[str, str]:
    """``(network, dataset)`` of a run name: ``pytorch_`` and NetDissect-Lite's test-mode
    ``_test`` dropped, split at the last ``_``
    (``pytorch_wide_resnet50_places365`` -> ``wide_resnet50``, ``places365``)."""
    if name.startswith("pytorch_"):
        name = name[len("pytorch_") :]
    if name.endswith("_test"):
        name = name[: -len("_test")]
    network, sep, dataset = name.rpartition("_")
    return (network, dataset) if sep and network else (name, "")


def _conceptkit_name(results: dict[str, Any], folder: str) -> tuple[str, str]:
    spec = str((results.get("model") or {}).get("spec") or "")
    if spec.startswith("torchvision:"):
        parts = spec.split(":")
        weights = parts[2] if len(parts) > 2 else "DEFAULT"
        if weights.lower() == "none":
            return parts[1], "random"
        if weights == "DEFAULT" or weights.upper().startswith("IMAGENET"):
            return parts[1], "imagenet"
        return parts[1], weights.lower()
    if spec:
        stem = Path(spec).name.split(".")[0]
        if stem:
            return split_name(stem)
    return split_name(folder)


def _conceptkit_run(path: Path) -> Run:
    info = load_run(path)
    layers = []
    for lay in info.layers:
        file = layer_file(info, lay, "tally")
        if not file.is_file():
            raise LayoutError(
                "file is missing", file=file, hint=f"results.json lists layer {lay.name!r}"
            )
        cats, df = read_tally(file)
        if len(df) != lay.units:
            raise LayoutError(
                f"has {len(df)} units, results.json says {lay.units}",
                file=file,
                place=f"layer {lay.name}",
            )
        layers.append(RunLayer(lay.name, file, cats, df))
    network, dataset = _conceptkit_name(info.results, path.resolve().name)
    return Run(path, "conceptkit", network, dataset, layers, info.iou_threshold, info.results)


def load(path: str | Path, *, name: str | None = None) -> Run:
    """Read the dissection in ``path`` (any of the three kinds); ``name`` (``<network>_<dataset>``)
    overrides the name found in the folder."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "conceptkit":
        run = _conceptkit_run(path)
    else:
        files = _lite_files(path) if kind == "netdissect-lite" else _netdissect_files(path)
        layers = []
        for lname, file in files:
            cats, df = read_tally(file)
            layers.append(RunLayer(lname, file, cats, df))
        network, dataset = split_name(path.resolve().name)
        run = Run(path, kind, network, dataset, layers)
    if name is not None:
        run.network, run.dataset = split_name(name)
    return run
