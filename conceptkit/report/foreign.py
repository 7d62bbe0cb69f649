"""The report of a foreign dissection folder: NetDissect-Lite's or NetDissect's results.

The folder (``result/pytorch_<network>_<dataset>/`` with ``tally_<layer>.csv`` or
``tally.csv``, or NetDissect's ``<layer>-result.csv``) is read through
:func:`conceptkit.analysis.runs.load` and never written: pages and plots go to a new folder
(``-o DIR``: ``DIR/html``, ``DIR/plots``). The counts come from
:mod:`conceptkit.analysis.counts`; each unit's image strip is the folder's own
``html/image/<layer>-NNNN.jpg``, copied; a unit without one gets a card that says so, and the
index lists what could not be shown.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from conceptkit import limits
from conceptkit.analysis.counts import detector_counts, unique_naive, unique_official
from conceptkit.analysis.runs import FORMAT_NAMES, Run, RunLayer, load
from conceptkit.errors import ConceptkitError, UsageError
from conceptkit.outdir import atomic_dir
from conceptkit.report import pages
from conceptkit.report.run import LayerInfo, RunInfo, RunnerUp, UnitInfo

RUNNERS_UP = 3


def _units(lay: RunLayer) -> list[UnitInfo]:
    """The tally's rows as 0-based :class:`UnitInfo`; runners-up: the best labels of the other
    categories with an IoU above 0, largest first (at most :data:`RUNNERS_UP`)."""
    out = []
    for row in lay.tally.to_dict("records"):
        others = [
            RunnerUp(str(row[f"{c}-label"]), c, float(row[f"{c}-iou"]))
            for c in lay.categories
            if c != row["category"] and float(row[f"{c}-iou"]) > 0
        ]
        others.sort(key=lambda r: (-r.iou, r.category))
        out.append(
            UnitInfo(
                unit=int(row["unit"]) - 1,
                label=str(row["label"]),
                category=str(row["category"]),
                iou=float(row["score"]),
                threshold=0.0,
                top_images=(),
                runners_up=tuple(others[:RUNNERS_UP]),
            )
        )
    return out


def run_info(run: Run) -> RunInfo:
    """A foreign :class:`~conceptkit.analysis.runs.Run` as the report's :class:`RunInfo`
    (no thresholds, top images or map sizes: the tally files do not hold them)."""
    cut = run.iou_threshold
    layers = []
    for lay in run.layers:
        official = unique_official(lay, cut)
        naive = unique_naive(lay, cut)
        info = LayerInfo(
            name=lay.name,
            units=lay.units,
            map_size=(0, 0),
            detectors=sum(detector_counts(lay, cut).values()),
            unique_official=official,
            unique_naive=naive,
            unique_official_total=sum(official.values()),
            unique_naive_total=sum(naive.values()),
            files={"tally": lay.file.name},
        )
        info.unit_info = _units(lay)
        layers.append(info)
    results: dict[str, Any] = {
        "model": {"spec": run.name, "description": run.name},
        "data": {"path": "", "categories": run.categories},
        "settings": {"iou_threshold": cut},
        "layers": {},
    }
    return RunInfo(out=run.path, results=results, layers=layers, source=FORMAT_NAMES[run.format])


def strip_size(path: Path, root: Path) -> tuple[int, int] | str:
    """``(width, height)`` of the strip at ``path``, or why it cannot be shown."""
    from PIL import Image

    if not path.is_file():
        return f"the folder has no {path.relative_to(root).as_posix()}"
    if not path.resolve().is_relative_to(root.resolve()):
        return f"{path.relative_to(root).as_posix()} points outside the folder"
    try:
        limits.check("file_bytes", path.stat().st_size, file=path)
        with Image.open(path) as im:
            limits.check("image_pixels", im.width * im.height, file=path)
            return int(im.width), int(im.height)
    except (OSError, ConceptkitError, Image.DecompressionBombError) as exc:  # shown on the card
        return f"{path.relative_to(root).as_posix()} cannot be read ({exc})"


def _check_out(src: Path, out: Path) -> None:
    a, b = src.resolve(), out.resolve()
    if b == a or b.is_relative_to(a):
        raise UsageError(
            "is inside the folder being reported on, which is only read; pass -o DIR outside it",
            file=out,
        )
    if a.is_relative_to(b):
        raise UsageError("holds the folder being reported on; pass another -o DIR", file=out)


def _missing_html(missing: dict[str, list[tuple[int, str]]], units: dict[str, int]) -> str:
    """The index's list of the strips that could not be shown (empty when all were)."""
    if not any(missing.values()):
        return ""
    items = ""
    for layer, gone in missing.items():
        if not gone:
            continue
        shown = ", ".join(str(u) for u, _ in gone[:20]) + (" …" if len(gone) > 20 else "")
        items += (
            f"<li>{pages.esc(layer)}: {len(gone)} of {units[layer]} units without an image strip "
            f"(units {shown}; e.g. {pages.esc(gone[0][1])})</li>\n"
        )
    return f"<h2>Not shown</h2>\n<ul>\n{items}</ul>"


def build_foreign(src: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """The report of the foreign folder ``src`` into ``out`` (``out/html``, ``out/plots``;
    refused inside ``src``, and an existing ``out`` unless ``force``); returns the index page."""
    from conceptkit.report.builder import write_plots

    src, out = Path(src), Path(out)
    run = load(src)
    _check_out(src, out)
    info = run_info(run)
    with atomic_dir(out, force=force) as tmp:
        (tmp / "plots").mkdir()
        image_dir = tmp / "html" / "image"
        image_dir.mkdir(parents=True)
        made = write_plots(info, tmp / "plots")
        missing: dict[str, list[tuple[int, str]]] = {}
        for lay in info.layers:
            sizes: dict[int, Any] = {}
            missing[lay.name] = []
            for u in lay.unit_info:
                path = run.strip_file(lay.name, u.unit + 1)
                sizes[u.unit] = strip_size(path, src)
                if isinstance(sizes[u.unit], str):
                    missing[lay.name].append((u.unit, sizes[u.unit]))
                else:
                    shutil.copyfile(path, image_dir / pages.strip_name(lay.name, u.unit))
            (tmp / "html" / pages.layer_page(lay.name)).write_text(
                pages.layer_html(info, lay, {}, sizes), encoding="utf-8"
            )
        notes = _missing_html(missing, {lay.name: lay.units for lay in info.layers})
        links = {k: [f"../plots/{p}" for p in v] for k, v in made.items()}
        (tmp / "html" / "index.html").write_text(
            pages.index_page(info, links, notes), encoding="utf-8"
        )
    return out / "html" / "index.html"
