"""`conceptkit consistency SRC...`: measure agreement between annotators of the same images.

Reads every source with its reader (formats mixed freely, autodetected or forced with
``fmt:path``), matches images by file name, runs :func:`conceptkit.consistency.analyse`, prints
the summary table and optionally writes the report files. Exit status 1 when the overall
agreement is below ``--fail-under`` (a gate in a labelling pipeline), 2 for a usage problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from conceptkit.annotations import ImageAnnotation
from conceptkit.converters import READERS, ReadOptions, get_reader
from conceptkit.errors import UsageError

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
Images are matched by file name; an image annotated once is left out.

\b
Agreement = pixels both gave the same label / pixels at least one labelled (pixels both
left unlabelled are excluded; "agree+bg" counts them). Disagreeing pixels split into
naming (matched instances, IoU >= --iou-threshold, names differ), quantity (an instance
with no match) and quality (matched, same name, outlines differ; bF = boundary F-score).
-o DIR writes images.csv, image_pairs.csv, pairs.csv, concepts.csv, segments.csv,
naming.csv, vocabulary.csv (+ staple.csv) and consistency.json (see the README).
"""


def parse_source(text: str) -> tuple[str | None, Path]:
    """``fmt:path`` -> (fmt, path) when fmt is a known format, else (None, path)."""
    head, sep, tail = text.partition(":")
    if sep and head.lower() in READERS:
        return head.lower(), Path(tail)
    return None, Path(text)


def _is_coco(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "images" in data and "annotations" in data


def _is_labelme_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "shapes" in data


def detect_format(path: Path) -> str:
    """The format of the export at ``path``, from its contents; UsageError when unclear."""
    if not path.exists():
        raise UsageError("does not exist", file=path)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".zip":
            return "cvat"
        if path.name == "annotations.xml":
            return "cvat"
        if suffix == ".json":
            if _is_coco(path):
                return "coco"
            if _is_labelme_json(path):
                return "labelme"
        if suffix == ".xml":
            return "labelme"
    else:
        if (path / "annotations.xml").is_file():
            return "cvat"
        jsons = sorted(p for p in path.rglob("*.json") if not p.name.startswith("."))
        for p in jsons[:5]:
            if _is_labelme_json(p):
                return "labelme"
            if _is_coco(p):
                return "coco"
        if any(path.rglob("*.xml")):
            return "labelme"
    raise UsageError(
        "cannot tell the export format",
        file=path,
        hint=f"write FORMAT:PATH with FORMAT one of {', '.join(sorted(READERS))}",
    )


def read_groups(
    sources: list[str], formats: tuple[str, ...], options: ReadOptions
) -> tuple[dict[str, list[ImageAnnotation]], list[str]]:
    """Read every source; group the annotations by image key. Returns (groups, annotator names).

    Each source is one annotator, named after the reader's ``annotator`` (the folder or zip
    name) or, when two sources would share a name, the path as typed.
    """
    if formats and len(formats) not in (1, len(sources)):
        raise UsageError(
            f"--format given {len(formats)} times for {len(sources)} sources; give it once "
            "(for all) or once per source"
        )
    parsed = []
    for i, text in enumerate(sources):
        fmt, path = parse_source(text)
        if fmt is None and formats:
            given = formats[0] if len(formats) == 1 else formats[i]
            fmt = None if given == "auto" else given
        parsed.append((fmt or detect_format(path), path, text))
    read: list[list[ImageAnnotation]] = []
    for fmt, path, _ in parsed:
        reader = get_reader(fmt)
        read.append(list(reader(path, options)))
    names = []
    for anns, (_, path, _) in zip(read, parsed):
        found = sorted({a.annotator for a in anns if a.annotator})
        names.append(found[0] if len(found) == 1 else path.name or str(path))
    if len(set(names)) < len(names):
        names = [text for _, _, text in parsed]
    groups: dict[str, list[ImageAnnotation]] = {}
    for anns, name, (_, _, text) in zip(read, names, parsed):
        seen: set[str] = set()
        for ann in anns:
            if ann.key in seen:
                options.warn(f"{text}: image {ann.key!r} appears twice; the first is used")
                continue
            seen.add(ann.key)
            ann.annotator = name
            groups.setdefault(ann.key, []).append(ann)
    return groups, names


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
    type=click.FloatRange(0.0, 1.0),
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
    type=click.FloatRange(0.0, 1.0, min_open=True),
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
    from conceptkit.outdir import atomic_dir, check_target

    if len(sources) < 2:
        raise UsageError("give at least two sources (one per annotator) to compare")
    if output is not None:
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
