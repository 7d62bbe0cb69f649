"""`conceptkit consistency SRC...`: measure agreement between annotators of the same images.

Reads every source through :func:`conceptkit.sources.read_groups` (formats mixed freely,
autodetected or forced with ``fmt:path``; images matched by file name), runs
:func:`conceptkit.consistency.analyse`, prints the summary table and optionally writes the
report files. Exit status 1 when the overall
agreement is below ``--fail-under`` (a gate in a labelling pipeline), 2 for a usage problem.
"""

from __future__ import annotations

from pathlib import Path

import click

from conceptkit.cli._strict import StrictFloat
from conceptkit.converters import READERS, ReadOptions
from conceptkit.errors import UsageError
from conceptkit.sources import parse_source, read_groups

_EPILOG = """\b
Examples:
  conceptkit consistency alice/ bob/                      # two LabelMe folders
  conceptkit consistency labelme:alice/ cvat:bob.zip      # force the formats
  conceptkit consistency a/ b/ c/ -o report/ --staple     # 3 annotators, files + STAPLE
  conceptkit consistency a/ b/ --fail-under 0.85          # exit 1 below 85% agreement

\b
A SOURCE is a folder, .zip or file of one export; each is one annotator (named after
its folder or zip). Formats are recognised from the contents: a folder of LabelMe
*.json / *.xml files -> labelme; annotations.xml or a .zip -> cvat; a COCO instances
.json -> coco. Write FORMAT:PATH (e.g. cvat:exportB/) to say it yourself.
Images are matched by file name; an image annotated once is left out. An image
annotated twice in one export is an error (--keep-going: the first is kept, warned).

\b
Agreement = pixels both gave the same label / pixels at least one labelled (pixels both
left unlabelled are excluded; "agree+bg" counts them). Disagreeing pixels split into
naming (matched instances, IoU >= --iou-threshold, names differ), quantity (an instance
with no match) and quality (matched, same name, outlines differ; bF = boundary F-score).
-o DIR (not a SOURCE, nor inside or around one) writes images.csv, image_pairs.csv, pairs.csv, concepts.csv, segments.csv,
naming.csv, vocabulary.csv (+ staple.csv) and consistency.json (see the README).
"""


@click.command(epilog=_EPILOG)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice([*sorted(READERS), "auto"], case_sensitive=False),
    help="Format of the sources: once for all, or once per source in order (default auto).",
)
@click.option(
    "--fail-under",
    type=StrictFloat(0.0, 1.0),
    default=None,
    help="Exit 1 when the overall agreement (the 'agree' column) is below this (0..1); "
    "an undefined agreement (nothing labelled) fails too.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the report files (CSV + JSON) into this folder.",
)
@click.option("--force", is_flag=True, help="Replace an existing --output folder.")
@click.option(
    "--iou-threshold",
    type=StrictFloat(0.0, 1.0, low_open=True),
    default=0.5,
    show_default=True,
    help="Instances match when their IoU is at least this.",
)
@click.option(
    "--convention",
    type=click.Choice(["inclusive", "center"]),
    default=None,
    help="One pixel convention for all sources (default: each format's own tool's).",
)
@click.option(
    "--staple",
    is_flag=True,
    help="Also estimate each annotator's sensitivity/"
    "specificity with STAPLE (pip install conceptkit[staple]).",
)
@click.option("--keep-going", is_flag=True, help="Skip unreadable images with a warning.")
def consistency(
    sources: tuple[str, ...],
    formats: tuple[str, ...],
    fail_under: float | None,
    output: Path | None,
    force: bool,
    iou_threshold: float,
    convention: str | None,
    staple: bool,
    keep_going: bool,
) -> int:
    """Measure how well annotators agree on the images they share.

    Each SOURCE is one annotator's export (LabelMe, CVAT, COCO; mixed freely).
    """
    from conceptkit.consistency import analyse, consensus_details, staple_estimates
    from conceptkit.outdir import atomic_dir, check_target, refuse_overlap

    if len(sources) < 2:
        raise UsageError("give at least two sources (one per annotator) to compare")
    if output is not None:
        refuse_overlap(output, [parse_source(text)[1] for text in sources])
        check_target(output, force)

    def warn(message: str) -> None:
        click.echo(f"warning: {message}", err=True)

    options = ReadOptions(keep_going=keep_going, warn=warn)
    groups, _ = read_groups(list(sources), formats, options)
    shared = {k: v for k, v in groups.items() if len(v) > 1}
    if not shared:
        raise UsageError("no image is annotated in more than one source (matched by file name)")
    report = analyse(groups, iou_threshold=iou_threshold, convention=convention)
    if staple:
        results = [
            consensus_details(groups[k], "staple", convention=convention) for k in sorted(shared)
        ]
        report.staple = staple_estimates(results)
    click.echo(report.summary())
    if output is not None:
        with atomic_dir(output, force=force) as tmp:
            report.write(tmp, subdir="")
        click.echo(f"report written to {output}", err=True)
    agreement = report.agreement
    if fail_under is not None and (agreement is None or agreement < fail_under):
        click.echo(
            f"agreement {agreement if agreement is not None else float('nan'):.4f} is below "
            f"--fail-under {fail_under}",
            err=True,
        )
        return 1
    return 0
