"""The files later commands leave in a run folder: their names, columns, writers and readers.

``conceptkit explain``, ``chance``, ``embed`` and ``segment`` write these files and the report
reads some of them back; both sides take the names and the columns from here, so they cannot
drift apart.

- ``explain_<layer>.csv`` (:data:`EXPLAIN_COLUMNS`, then ``iou_len1`` ... ``iou_len<k>``),
  ``exhaustive_<layer>.csv`` (:data:`EXHAUSTIVE_COLUMNS`), ``explain_gain.png``,
  ``explain.json``;
- ``chance_<layer>.csv`` (:data:`CHANCE_COLUMNS`), ``chance_<layer>.npz``, ``chance.json``;
- ``embed_<layer>.csv`` (:data:`EMBED_COLUMNS`), ``embed_<layer>.npz``,
  ``embed_similarity_<layer>.csv``, ``embed.json``;
- ``concepts.csv`` of ``conceptkit segment`` (:data:`CONCEPTS_COLUMNS`).

Writing: every file atomically (a temporary file beside it, then rename), nothing replaced
without ``force``, CSV floats as ``repr`` (round-trip exact), ``.npz`` without pickles and with
fixed timestamps, JSON with sorted keys. Reading (:func:`read_formulas`, :func:`read_chance`):
a file that breaks its format is a LayoutError naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit import limits
from conceptkit.errors import LayoutError, UsageError

Writer = Callable[[Path], None]

# ---- names ----------------------------------------------------------------------------------

EXPLAIN_GAIN_PNG = "explain_gain.png"
EXPLAIN_JSON = "explain.json"
CHANCE_JSON = "chance.json"
EMBED_JSON = "embed.json"
CONCEPTS_CSV = "concepts.csv"


# one file per layer: ``explain_csv("layer4") == "explain_layer4.csv"``
explain_csv: Callable[[str], str] = "explain_{}.csv".format
exhaustive_csv: Callable[[str], str] = "exhaustive_{}.csv".format
chance_csv: Callable[[str], str] = "chance_{}.csv".format
chance_npz: Callable[[str], str] = "chance_{}.npz".format
embed_csv: Callable[[str], str] = "embed_{}.csv".format
embed_npz: Callable[[str], str] = "embed_{}.npz".format
embed_similarity_csv: Callable[[str], str] = "embed_similarity_{}.csv".format


def explain_names(layers: Sequence[str], exhaustive: bool) -> list[str]:
    """The files an explanation of ``layers`` writes, in the order it writes them."""
    names = [explain_csv(x) for x in layers]
    if exhaustive:
        names += [exhaustive_csv(x) for x in layers]
    return [*names, EXPLAIN_GAIN_PNG, EXPLAIN_JSON]


def chance_names(layers: Sequence[str]) -> list[str]:
    """The files a chance check of ``layers`` writes, in the order it writes them."""
    return [name for x in layers for name in (chance_csv(x), chance_npz(x))] + [CHANCE_JSON]


def embed_names(layers: Sequence[str]) -> list[str]:
    """The files an embedding of ``layers`` writes, in the order it writes them."""
    names = [n for x in layers for n in (embed_csv(x), embed_npz(x), embed_similarity_csv(x))]
    return [*names, EMBED_JSON]


# ---- columns --------------------------------------------------------------------------------

#: ``explain_<layer>.csv``, before the ``iou_len<k>`` columns (:func:`explain_columns`)
EXPLAIN_COLUMNS = ("unit", "formula", "labels", "iou", "score", "length", "label", "label_iou")
EXHAUSTIVE_COLUMNS = (
    "unit", "beam_formula", "beam_iou", "beam_score", "exhaustive_formula", "exhaustive_iou",
    "exhaustive_score", "exhaustive_length", "shortfall", "formulas_extended",
)  # fmt: skip
CHANCE_COLUMNS = (
    "unit", "label", "number", "category", "iou", "iou_chance", "iou_sd", "z", "intersect",
    "expected_intersect", "support", "mask_images", "detector", "flags",
)  # fmt: skip
EMBED_COLUMNS = (
    "number", "label", "category", "iou", "single_iou", "single_unit", "gain", "units",
    "train_images", "score_pixels",
)  # fmt: skip
CONCEPTS_COLUMNS = ("image", "number", "label", "category", "pixels", "share")

#: the columns the report reads (each one of the written ones)
FORMULA_READ = ("unit", "formula", "iou")
CHANCE_READ = ("unit", "iou_chance", "z", "support", "detector", "flags")


def explain_columns(max_length: int) -> list[str]:
    """The header of ``explain_<layer>.csv`` for formulas of at most ``max_length`` concepts."""
    return [*EXPLAIN_COLUMNS, *(f"iou_len{k}" for k in range(1, max_length + 1))]


# ---- writing --------------------------------------------------------------------------------


def write_atomic(path: Path, write: Writer) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then rename it to ``path`` (mode
    0644); the temporary file is removed when ``write`` fails or is interrupted."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_writer(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> Writer:
    """A CSV file: ``head``, then ``rows`` (UTF-8, ``\\r\\n`` line ends as csv writes them)."""

    def write(path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(head)
            w.writerows(rows)

    return write


def npz_writer(arrays: dict[str, np.ndarray]) -> Writer:
    """An ``.npz`` of ``arrays`` (no pickles, fixed timestamps)."""
    from conceptkit.dissection.results import write_npz

    return lambda path: write_npz(path, arrays)


def json_writer(obj: Any) -> Writer:
    """``obj`` as JSON: sorted keys, indent 2, no NaN, a final newline."""
    text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return write


def number(x: float) -> str:
    """A float cell: ``repr`` (exact round trip)."""
    return repr(float(x))


def check_out(out: Path, names: Sequence[str], force: bool) -> None:
    """Refuse (before any work) a folder ``out`` that is not one, or that holds one of ``names``
    when ``force`` is not given."""
    if out.exists() and not out.is_dir():
        raise UsageError("is not a folder", file=out)
    if not force:
        for name in names:
            if (out / name).exists():
                raise UsageError("exists (use --force to replace it)", file=out / name)


def save_all(out: str | Path, writers: dict[str, Writer], force: bool = False) -> list[Path]:
    """Write ``{name: writer}`` into the folder ``out`` (created if missing), in that order;
    refuse before writing anything when one exists and ``force`` is not given."""
    folder = Path(out)
    check_out(folder, list(writers), force)
    folder.mkdir(parents=True, exist_ok=True)
    for name, write in writers.items():
        write_atomic(folder / name, write)
    return [folder / name for name in writers]


# ---- reading --------------------------------------------------------------------------------


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of one of these CSV files as dicts (strings, unchecked)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Chance:
    """One unit's row of ``chance_<layer>.csv``: its best label's chance IoU, z score, support
    (images the label occurs in), whether it is a detector, and its flags."""

    iou_chance: float
    z: float
    support: int
    detector: bool
    flags: tuple[str, ...]


def read_unit_rows(
    path: Path, columns: Sequence[str], units: int
) -> list[tuple[int, int, dict[str, str]]]:
    """``(line, unit, row)`` of a per-unit CSV (``unit`` 0-based, below ``units``), checked to
    have ``columns``."""
    limits.check("file_bytes", path.stat().st_size, file=path, error=LayoutError)
    out = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise LayoutError(f"has no column {missing[0]!r}", file=path, place="line 1")
            for row in reader:
                line = reader.line_num
                text = row["unit"] or ""
                if not (text.isascii() and text.isdigit()) or int(text) >= units:
                    raise LayoutError(
                        f"unit {text!r} is not one of the layer's {units} units (0-based)",
                        file=path,
                        place=f"line {line}, column unit",
                    )
                out.append((line, int(text), row))
    except UnicodeDecodeError as exc:
        raise LayoutError(f"is not UTF-8 text ({exc.reason})", file=path) from None
    except csv.Error as exc:
        raise LayoutError(f"is not a readable CSV ({exc})", file=path) from None
    return out


def cell_number(row: dict[str, str], key: str, path: Path, line: int) -> float:
    """The finite number in column ``key`` of ``row`` (line ``line`` of ``path``)."""
    try:
        value = float(row[key] or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LayoutError(
            f"{row[key]!r} is not a finite number", file=path, place=f"line {line}, column {key}"
        )
    return value


def read_formulas(path: Path, units: int) -> dict[int, tuple[str, float]]:
    """Unit -> ``(formula, iou)`` from an ``explain_<layer>.csv`` (units without one left out)."""
    out = {}
    for line, unit, row in read_unit_rows(path, FORMULA_READ, units):
        if row["formula"]:
            out[unit] = (row["formula"], cell_number(row, "iou", path, line))
    return out


def read_chance(path: Path, units: int) -> dict[int, Chance]:
    """Unit -> :class:`Chance` from a ``chance_<layer>.csv``."""
    out = {}
    for line, unit, row in read_unit_rows(path, CHANCE_READ, units):
        support = cell_number(row, "support", path, line)
        out[unit] = Chance(
            iou_chance=cell_number(row, "iou_chance", path, line),
            z=cell_number(row, "z", path, line),
            support=int(support),
            detector=cell_number(row, "detector", path, line) > 0,
            flags=tuple(f for f in (row["flags"] or "").split(";") if f),
        )
    return out
