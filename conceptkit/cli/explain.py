"""`conceptkit explain`: compositional explanations (logical formulas) of a dissection's units.

Reads a finished run folder, recomputes the unit masks with one forward pass, searches each
unit's best formula (:func:`conceptkit.explain.explain`) and writes ``explain_<layer>.csv``,
``explain_gain.png`` and ``explain.json`` (plus ``exhaustive_<layer>.csv``) into the run folder
or ``-o DIR``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from conceptkit.cli import _options as run_opts
from conceptkit.errors import UsageError

_EPILOG = """\b
Examples:
  conceptkit explain run/                              # every unit, length <= 3, beam 5
  conceptkit explain run/ --layer layer4 --max-length 2 --workers 8 -o formulas/
  conceptkit explain run/ --length-penalty 0.05        # IoU x 0.95 per extra concept
  conceptkit explain run/ --units 0,5,9 --exhaustive   # the beam against the true best

\b
Writes (each file atomically; --force replaces existing ones):
  explain_<layer>.csv     unit, formula, labels (the formula over label numbers), iou,
                          score, length, label / label_iou (the dissection's), iou_len<k>
  exhaustive_<layer>.csv  with --exhaustive: beam and exhaustive formula, IoU, shortfall
  explain_gain.png        mean IoU gain over the single best concept against length
  explain.json            settings and per-layer means

\b
Formula syntax: concept names joined by AND, OR, AND NOT; every compound operand in
parentheses, e.g. (water OR river) AND NOT blue; names that are not plain words in quotes.
"""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def _size(text: str) -> int:
    """``2GB``, ``512MiB``, ``1.5g``, ``0`` -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"--cache-mem {text!r} is not a size (e.g. 2GB, 512MB)")
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * 1024**power)


def _units(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        units = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise UsageError(f"--units {text!r}: expected unit numbers like 0,5,9") from None
    if not units:
        raise UsageError("--units names no unit")
    return units


def _bar(desc: str, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="unit" if desc != "concepts" else "img", file=sys.stderr,
        disable=not sys.stderr.isatty(),
    )  # fmt: skip


@run_opts.run_command("explain", _EPILOG)
@run_opts.out_option()
@run_opts.layers_option("Layer to explain (default: all of RUN's).")
@click.option("--max-length", type=int, default=3, show_default=True, help="Concepts per formula.")
@click.option("--beam", type=int, default=5, show_default=True, help="Formulas kept per length.")
@click.option(
    "--length-penalty",
    type=float,
    default=0.0,
    show_default=True,
    help="Score = IoU x (1 - P) per concept after the first.",
)
@click.option("--units", default=None, help="Only these units (0-based, e.g. 0,5,9).")
@click.option(
    "--exhaustive", is_flag=True, help="Also the exact best formula (needs --units; slow)."
)
@click.option(
    "--exhaustive-length",
    type=int,
    default=None,
    help="Longest formula of --exhaustive (1-3; default: --max-length, at most 3).",
)
@click.option(
    "--workers", type=int, default=None, help="Processes searching units (default: CPU count)."
)
@run_opts.model_options()
@click.option(
    "--cache-mem",
    default="2GB",
    show_default=True,
    help="Features kept in memory (the rest in a temporary memory-mapped file).",
)
@click.option(
    "--spill-dir", type=click.Path(path_type=Path), default=None, help="For that temporary file."
)
@run_opts.force_option("Replace existing explain files.")
def explain(**opts: Any) -> None:
    """Describe each unit of a finished dissection by a logical formula over concepts.

    For every unit of RUN's layers: beam search over formulas of the dataset's concepts
    joined by AND, OR and AND NOT (Mu & Andreas, NeurIPS 2020), scored by the IoU of the
    unit's mask (RUN's thresholds and upsampling) with the formula's mask, counted exactly
    at the label resolution over every image and with RUN's --union. A length-1 formula
    scores exactly the dissection's IoU. Units are numbered from 0, as in results.json.
    """
    from conceptkit import artefacts
    from conceptkit.explain import ExplainSettings, files, run

    max_length = opts["max_length"]
    ex_len = 0
    if opts["exhaustive"]:
        if opts["units"] is None:
            raise UsageError("--exhaustive needs --units (it is meant for a handful of units)")
        ex_len = opts["exhaustive_length"] or min(3, max_length)
    elif opts["exhaustive_length"] is not None:
        raise UsageError("--exhaustive-length goes with --exhaustive")
    settings = ExplainSettings(
        max_length=max_length,
        beam=opts["beam"],
        length_penalty=opts["length_penalty"],
        exhaustive=ex_len,
        units=_units(opts["units"]),
        workers=opts["workers"] or min(8, os.cpu_count() or 1),
        batch_size=opts["batch_size"],
        device=opts["device"],
        cache_mem=_size(opts["cache_mem"]),
        spill_dir=opts["spill_dir"],
    )
    settings.check()
    out = opts["out"] or opts["run"]
    info = run.read_run(opts["run"], opts["data"])
    layers = list(opts["layers"]) or info.layers
    artefacts.check_out(out, artefacts.explain_names(layers, bool(ex_len)), opts["force"])

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    result = run.explain(
        opts["run"],
        settings,
        layers=layers,
        data=opts["data"],
        model_opts=run_opts.model_opts(opts),
        log=log,
        progress=_bar,
    )
    written = files.save(result, out, force=opts["force"])
    for name, layer in result.layers.items():
        click.echo(
            f"{name}: {len(layer.units)} units in {layer.seconds:.1f} s; mean IoU "
            f"{_mean(layer, 'iou1'):.4f} (one concept) -> {_mean(layer, 'iou'):.4f} "
            f"(length <= {max_length})"
        )
        if ex_len:
            short = [u.exhaustive_score - u.score for u in layer.units]
            click.echo(
                f"{name}: beam shortfall against the exhaustive search (length <= {ex_len}): "
                f"mean {sum(short) / len(short):.5f}, max {max(short):.5f}, "
                f"{sum(1 for v in short if v > 1e-12)} of {len(short)} units short; "
                f"{1000 * _mean(layer, 'seconds'):.1f} ms per unit (beam), "
                f"{1000 * _mean(layer, 'exhaustive_seconds'):.1f} ms (exhaustive)"
            )
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


def _mean(layer: Any, attr: str) -> float:
    values = [getattr(u, attr) for u in layer.units]
    return sum(values) / len(values) if values else 0.0
