"""``conceptkit convert``: the command-line shell around :func:`conceptkit.convert.convert`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from conceptkit.cli._strict import StrictInt
from conceptkit.convert._options import MAX_SIZE, MAX_WORKERS
from conceptkit.errors import UsageError
from conceptkit.sources import choose_format


def _size(value: str) -> int | None:
    """``native`` -> None, else a whole number of pixels from 2 to MAX_SIZE (ASCII digits)."""
    if value.lower() == "native":
        return None
    if not (value.isascii() and value.isdigit()):
        raise UsageError(f"--size must be a number of pixels or 'native', not {value!r}")
    size = int(value)
    if not 2 <= size <= MAX_SIZE:
        raise UsageError(f"--size must be from 2 to {MAX_SIZE} pixels or 'native', not {size}")
    return size


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("fmt", metavar="FORMAT")
@click.argument("srcs", metavar="SRC...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), help="Output folder [default: <SRC>_broden]."
)
@click.option(
    "--size",
    default="224",
    show_default=True,
    help=f"Images become N x N, N from 2 to {MAX_SIZE} (label planes N/2, rounded down); "
    "'native' keeps each image's size.",
)
@click.option(
    "--fit",
    type=click.Choice(["stretch", "crop"]),
    default="stretch",
    show_default=True,
    help="stretch the whole image to N x N, or crop its centred square first.",
)
@click.option(
    "--overlap",
    type=click.Choice(["front", "planes"]),
    default="front",
    show_default=True,
    help="Overlapping shapes of one category: the front one wins, or keep all in extra planes.",
)
@click.option(
    "--pixels",
    type=click.Choice(["inclusive", "center"]),
    default=None,
    help="Force one pixel convention (inclusive = labelme/PIL, center = pycocotools) "
    "[default: each format's own tool].",
)
@click.option(
    "--concepts",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Vocabulary CSV: name,category,synonyms[,plural].",
)
@click.option(
    "--min-images",
    type=StrictInt(1, 10**9),
    default=10,
    show_default=True,
    help="Drop labels seen in fewer images (Broden's rule).",
)
@click.option("--keep-going", is_flag=True, help="Skip images with errors, warning about each.")
@click.option(
    "--workers",
    type=StrictInt(1, MAX_WORKERS),
    default=1,
    show_default=True,
    help=f"Processes decoding/rasterising images (1 to {MAX_WORKERS}); the output is identical "
    "for any value.",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--consensus",
    type=click.Choice(["majority", "staple", "first"]),
    default="majority",
    show_default=True,
    help="How images annotated in several SRCs are merged.",
)
@click.option(
    "--images",
    type=click.Path(path_type=Path, file_okay=False),
    help="Image folder, for exports that do not hold their images (COCO).",
)
@click.option("--no-validate", is_flag=True, help="Do not run `conceptkit validate` on the result.")
def convert(
    fmt: str,
    srcs: tuple[Path, ...],
    out: Path | None,
    size: str,
    fit: str,
    overlap: str,
    pixels: str | None,
    concepts: Path | None,
    min_images: int,
    keep_going: bool,
    workers: int,
    force: bool,
    consensus: str,
    images: Path | None,
    no_validate: bool,
) -> int:
    """Turn annotation exports into a Broden-layout concept dataset.

    FORMAT is labelme (LabelMe JSON and MIT LabelMe XML, searched recursively), cvat
    ("CVAT for images 1.1" folder or .zip), coco (any COCO JSON, file or folder), an
    annotation tool's export (labelstudio, via (also Make Sense), vott, labelbox, sagemaker
    (also Mechanical Turk crowd outputs), vertex, azure), a segmentation dataset (voc, ade20k,
    cityscapes, supervisely, camvid: point at the dataset root), or auto (detected from the
    content; the choice is printed). `conceptkit formats` lists them with examples.
    Several SRCs are several annotators: images they share are compared (agreement report in
    OUT/consistency/) and merged with --consensus.

    \b
    Examples:
      conceptkit convert labelme my_export/                 # -> my_export_broden/, 224 x 224
      conceptkit convert auto project-1-export.json -o data # detects Label Studio
      conceptkit convert labelme my_export/ -o data --size native --workers 4
      conceptkit convert coco instances.json --images val2017/ -o data --size 227 --fit crop
      conceptkit convert cvat task.zip -o data --concepts concepts.csv --min-images 3
      conceptkit convert labelme ann_alice/ ann_bob/ -o data --consensus staple

    OUT may not be, contain or lie inside a SRC, the --images folder or the --concepts
    file; --force replaces only a folder conceptkit wrote. Label names holding ';' or a
    control character, or starting like a spreadsheet formula (=, +, @, - not followed by
    digits), are refused: rename them (the vocabulary can map a formula-like name to another).
    ';' and control characters in image file names become '_'.

    Pixels follow each tool's own exporter (labelme2voc for LabelMe, pycocotools for COCO and
    CVAT) unless --pixels says otherwise. Label planes are rasterised at the image's native
    size, then resampled to half the output size by nearest neighbour (labels are never
    interpolated). The mapping of names to concepts is written to OUT/concepts.csv; pass it
    back with --concepts to repeat the run.
    """
    from conceptkit.convert import ConvertOptions
    from conceptkit.convert import convert as run

    options = ConvertOptions(
        size=_size(size),
        fit=fit,
        overlap=overlap,
        pixels=pixels,
        concepts=concepts,
        min_images=min_images,
        keep_going=keep_going,
        workers=workers,
        force=force,
        consensus=consensus,
        validate=not no_validate,
        images=images,
    )
    bars: list[Any] = []

    def progress(total: int) -> Any:
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            unit="img",
            desc="convert",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        )
        bars.append(bar)
        return bar.update

    fmt, why = choose_format(fmt, list(srcs))
    if why is not None:
        click.echo(f"format: {fmt} ({why})", err=True)
    try:
        summary = run(fmt, list(srcs), out, options, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    click.echo(summary.text())
    return 1 if summary.validation else 0
