"""`conceptkit report`: rebuild a finished run's HTML report and plots, or compare several runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from conceptkit.errors import UsageError


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Folder for the comparison of several runs, or for the report of a NetDissect-Lite / "
    "NetDissect result folder (required for both).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes drawing image strips (default: CPU count, at most 8).",
)
@click.option("--force-images", is_flag=True, help="Redraw every image strip, even unchanged ones.")
@click.option("--force", is_flag=True, help="Replace an existing -o folder conceptkit wrote.")
def report(
    runs: tuple[Path, ...],
    output: Path | None,
    workers: int | None,
    force_images: bool,
    force: bool,
) -> None:
    """Rebuild the report of a finished run, or compare several runs.

    With one run folder (the -o of `conceptkit dissect`), rewrites RUN/html (index page, one
    page per layer, image strips) and RUN/plots (PNG + SVG) from results.json,
    quantile_*.npy, topn_*.npz and the run's dataset, without loading the model. Only strips
    whose inputs changed are redrawn. The pages are self-contained: open RUN/html/index.html
    in any browser, offline.

    With a NetDissect-Lite result folder (result/pytorch_<net>_<data>/: tally_<layer>.csv or
    tally.csv, strips in html/image/) or NetDissect's <layer>-result.csv, writes the pages and
    plots built from its tallies into -o DIR (the folder itself is only read), with the
    folder's own image strips; units without a strip say so.

    With several runs (conceptkit's or NetDissect's), draws their unique detectors per category side by side (one stacked bar
    per model and layer) into the -o folder.

    \b
    Examples:
      conceptkit report run/                      # rebuild run/html and run/plots
      conceptkit report run/ --workers 4 --force-images
      conceptkit report result/pytorch_resnet18_places365/ -o lite-report/
      conceptkit report places/ imagenet/ -o compare/
      open compare/index.html
    """
    from conceptkit import report as rep

    if len(runs) == 1 and rep.is_foreign(runs[0]):
        if output is None:
            raise UsageError(
                "is a NetDissect result folder, which is only read; pass -o DIR for its report",
                file=runs[0],
            )
        index = rep.build_foreign(runs[0], output, force=force)
        click.echo(f"report: {index}")
        return
    if len(runs) == 1:
        if output is not None:
            raise UsageError(
                "-o is for comparing several runs; one run's report goes into RUN/html"
            )
        bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=0, unit="strip", desc="image strips", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            index = rep.build(
                runs[0], force_images=force_images, workers=workers, progress=progress
            )
        finally:
            if bar is not None:
                bar.close()
        click.echo(f"report: {index}")
        return
    if output is None:
        raise UsageError("comparing several runs needs -o DIR for the comparison plots")
    index = rep.compare(list(runs), output, force=force)
    click.echo(f"comparison: {index}")
