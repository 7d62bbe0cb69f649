"""Writing the analyses' files: every file atomically (temporary file beside it, then rename),
nothing replaced without ``force``, CSV floats as ``repr`` (round-trip exact), ``.npz`` without
pickles and with fixed timestamps (:func:`conceptkit.dissection.results.write_npz`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit.dissection.results import write_npz
from conceptkit.explain.files import check_out, write_atomic

Writer = Callable[[Path], None]


def csv_writer(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> Writer:
    def write(path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(head)
            w.writerows(rows)

    return write


def npz_writer(arrays: dict[str, np.ndarray]) -> Writer:
    return lambda path: write_npz(path, arrays)


def json_writer(obj: Any) -> Writer:
    text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return write


def number(x: float) -> str:
    """A float cell: ``repr`` (exact round trip)."""
    return repr(float(x))


def save_all(out: str | Path, writers: dict[str, Writer], force: bool = False) -> list[Path]:
    """Write ``{name: writer}`` into the folder ``out`` (created if missing); refuse before
    writing anything when one exists and ``force`` is not given."""
    folder = Path(out)
    check_out(folder, list(writers), force)
    folder.mkdir(parents=True, exist_ok=True)
    for name, write in writers.items():
        write_atomic(folder / name, write)
    return [folder / name for name in writers]
