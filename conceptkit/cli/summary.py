"""`conceptkit summary`: detectors and unique detectors of finished dissections, any kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _table(summary: Any) -> list[str]:
    """The three counts of one layer as a small fixed-width table (categories as columns)."""
    cats = list(summary.detectors)
    rows = [
        ("detector units", summary.detectors),
        ("unique detectors, official", summary.official),
        ("unique detectors, naive", summary.naive),
    ]
    width = max(len(name) for name, _ in rows)
    cols = [max(len(c), 5) for c in cats]
    head = f"  {'':<{width}}  {'total':>14}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cats, cols))
    lines = [head.rstrip()]
    for name, per in rows:
        total = sum(per.values())
        share = 100.0 * total / summary.units if summary.units else 0.0
        cells = "  ".join(f"{per[c]:>{w}}" for c, w in zip(cats, cols))
        both = f"{total} ({share:.1f}%)"
        lines.append(f"  {name:<{width}}  {both:>14}  {cells}")
    return lines


def _heading(summary: Any) -> str:
    from conceptkit.analysis.runs import FORMAT_NAMES

    return (
        f"{summary.run} {summary.layer} ({FORMAT_NAMES[summary.format]}, {summary.path}): "
        f"{summary.units} units, detector when IoU {summary.comparison} "
        f"{summary.iou_threshold:g}"
    )


@click.command("summary")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...", type=click.Path(path_type=Path))
@click.option(
    "--layer",
    "layers",
    multiple=True,
    help="Only this layer (repeat for several; default: every layer of each run).",
)
@click.option(
    "--iou-threshold",
    type=float,
    default=None,
    help="The cut (default: the run's own, from results.json; 0.04 for NetDissect folders).",
)
@click.option(
    "--inclusive",
    is_flag=True,
    help="Count IoU >= T, as NetDissect-Lite's pages do (default IoU > T, as conceptkit "
    "and the paper).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON, for scripts.")
def summary(
    runs: tuple[Path, ...],
    layers: tuple[str, ...],
    iou_threshold: float | None,
    inclusive: bool,
    as_json: bool,
) -> None:
    """Count the detectors and unique detectors of finished dissections.

    Each RUN is a `conceptkit dissect` output folder, a NetDissect-Lite result folder
    (result/pytorch_<network>_<dataset>/ with tally_<layer>.csv or tally.csv) or a NetDissect
    one (<layer>-result.csv); folders are only read. Per run and layer it prints the units and,
    per category and in total:

    \b
      detector units              units whose best IoU passes the cut, in the
                                  category of their best label
      unique detectors, official  per category, distinct labels among units whose
                                  best label in that category passes the cut, summed
      unique detectors, naive     distinct best labels of the detector units

    Runs are named <network>_<dataset> from the folder name or from results.json.

    \b
    Examples:
      conceptkit summary run/
      conceptkit summary result/pytorch_resnet18_places365 result/pytorch_resnet18_imagenet
      conceptkit summary run/ --layer layer4 --iou-threshold 0.05 --json > counts.json
    """
    from conceptkit.analysis import load, summarize

    loaded = [load(path) for path in runs]
    results = []
    for run in loaded:
        names = list(layers) if layers else [lay.name for lay in run.layers]
        for name in names:
            results.append(summarize(run, name, iou_threshold=iou_threshold, inclusive=inclusive))
    if as_json:
        click.echo(json.dumps([s.to_json() for s in results], indent=2))
        return
    for i, s in enumerate(results):
        if i:
            click.echo("")
        click.echo(_heading(s))
        for line in _table(s):
            click.echo(line)
