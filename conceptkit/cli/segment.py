"""`conceptkit segment`: concept maps of images from a finished dissection.

Each pixel gets the label of the layer's most strongly active detector unit there (relative
to its threshold), or of the strongest Net2Vec combination when ``RUN/embed_<layer>.npz``
exists (:mod:`conceptkit.beyond.segment`). Writes ``<stem>_labels.png`` (Broden encoding),
``<stem>_overlay.jpg`` and ``concepts.csv`` into OUT, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from conceptkit.cli import _options as run_opts

_EPILOG = """\b
Examples:
  conceptkit segment run/ photo.jpg street.png -o maps/
  conceptkit segment run/ photo.jpg -o maps/ --layer layer3 --no-embedding
  conceptkit segment run/ photo.jpg -o maps/ --embedding net2vec/embed_layer4.npz

\b
Writes (OUT is built beside its target and renamed into place when complete):
  <stem>_labels.png   label numbers per pixel, R + 256 G (Broden's encoding), image size
  <stem>_overlay.jpg  the image with each concept tinted, and a legend
  concepts.csv        image, number, label, category, pixels, share
"""


@run_opts.run_command("segment", _EPILOG)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@run_opts.out_option(required=True)
@click.option("--layer", default=None, help="Layer (default: RUN's last).")
@click.option(
    "--embedding",
    type=click.Path(path_type=Path),
    default=None,
    help="An embed_<layer>.npz (default: RUN/embed_<layer>.npz when it exists).",
)
@click.option(
    "--no-embedding",
    "units_only",
    is_flag=True,
    help="Use the detector units even when RUN has embeddings.",
)
@run_opts.model_options(batch_size=False)
@run_opts.force_option("Replace an OUT that conceptkit wrote.")
def segment(**opts: Any) -> None:
    """Label every pixel of IMAGES with a concept, using a layer of RUN.

    Images of any size the model accepts are fed whole with RUN's preprocessing. A pixel
    gets the label of the detector unit (best IoU above RUN's cut) whose activation
    exceeds its threshold by the largest factor, (a - T) / |T|, or no label (0).
    """
    from conceptkit.beyond.segment import segment_images
    from conceptkit.errors import UsageError

    if opts["units_only"] and opts["embedding"] is not None:
        raise UsageError("--no-embedding and --embedding exclude each other")
    embedding: Path | bool | None = False if opts["units_only"] else opts["embedding"]
    maps = segment_images(
        opts["run"],
        opts["images"],
        opts["out"],
        layer=opts["layer"],
        embedding=embedding,
        force=opts["force"],
        data=opts["data"],
        model_opts=run_opts.model_opts(opts),
        device=opts["device"],
    )
    for m in maps:
        found = m.areas()
        click.echo(
            f"{m.source}: {len(found)} concepts, {100 * (m.labels > 0).mean():.1f}% labelled"
        )
    click.echo(f"wrote {opts['out']}")
