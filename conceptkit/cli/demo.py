"""`conceptkit demo`: the whole pipeline on the shipped example, in a few minutes on a CPU.

A thin shell around :func:`conceptkit.demo.run` (convert -> validate -> consistency -> dissect
MobileNetV2 -> report): option parsing, the progress bars and printing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

_EPILOG = """\b
Examples:
  python3 examples/fetch_weights.py     # once: MobileNetV2 ImageNet weights into torch's cache
  conceptkit demo                       # writes demo_out/
  conceptkit demo /tmp/demo --force     # elsewhere, replacing an earlier run

\b
Writes into OUT:
  dataset/                 the Broden folder built from examples/data/labelme and
                           examples/data/labelme_annotator2 (majority consensus where both
                           annotated an image); dataset/consistency/ holds the agreement report
  dissect/                 tally_<layer>.csv, quantile_<layer>.npy, topn_<layer>.npz,
                           results.json, html/ (open html/index.html), plots/
"""


def _bar(desc: str, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty())


@click.command("demo", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out", default="demo_out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--examples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The example data folder (default: examples/data of this checkout; an installed "
    "wheel does not carry it).",
)
@click.option("--force", is_flag=True, help="Replace an existing OUT (one an earlier demo wrote).")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=16,
    show_default=True,
    help="Images per forward pass.",
)
def demo(out: Path, examples: Path | None, force: bool, batch_size: int) -> None:
    """Run convert -> validate -> consistency -> dissect -> report on the shipped example.

    The example is 12 real photographs annotated for this project (see examples/README.md);
    the model is torchvision's ImageNet MobileNetV2, loaded from torch's cache without network.
    """
    from conceptkit.demo import run

    run(out, examples, force=force, batch_size=batch_size, progress=_bar, log=click.echo)
