"""`conceptkit dissect`: Network Dissection of a model's layers against a Broden folder.

Loads the model (:mod:`conceptkit.dissection.models`), runs :func:`conceptkit.dissection.run.dissect`,
writes the output contract into ``-o OUT`` atomically, then builds the HTML report
(:func:`conceptkit.report.build`). ``--nproc N`` re-runs the user's own arguments under torchrun.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conceptkit.dissection import settings
from conceptkit.errors import ConceptkitError, UsageError

if TYPE_CHECKING:
    from conceptkit.dissection.settings import DissectSettings

_EPILOG = """\b
Examples:
  conceptkit dissect --model torchvision:resnet18 --data broden1_224/ -o run/
  conceptkit dissect --model resnet18_places365.pth --arch resnet18 --num-classes 365 \\
      --data broden1_224/ --layer layer3 --layer layer4 -o run/
  conceptkit dissect --model mynet.pt --list-layers            # names and output shapes
  conceptkit dissect --model torchvision:vgg16 --data mydata/ --layer features.29 \\
      --preprocess netdissect --batch-size 32 --cache-mem 4GB -o vgg/
  conceptkit dissect --model m.pth --arch resnet18 --data d/ --thresholds old_run/ -o again/
  conceptkit dissect --model torchvision:resnet18 --data d/ -o run/ --nproc 2   # 2 processes
  conceptkit dissect --model torchvision:resnet18 --data d/ -o run/ --baseline random
  torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --rdzv_backend c10d \
      --rdzv_endpoint host0:29500 -m conceptkit dissect --model m.pth --arch resnet18 ...

\b
Writes into OUT (atomically; --force replaces an existing OUT):
  tally_<layer>.csv     NetDissect-Lite's tally columns, one row per unit, best first, then
                        per category the best label's <cat>-iou_chance and <cat>-z
  quantile_<layer>.npy  the per-unit thresholds (exact 0.995 quantile by default)
  topn_<layer>.npz      each unit's top images: indices, max values, raw maps
  results.json          settings, fingerprints, detectors, unique detectors, per-unit labels
                        with their support, chance level, z and flags (near_chance: z < 3,
                        few_images: label in < 10 images); with --baseline, trained vs random
  baseline/             with --baseline random: the same files for random weights (seed 0)
  html/, plots/         the report (skip: --no-report)

\b
Memory: pass 1 keeps the probed layers' features (float32, exact) for pass 2 so that it needs
no second forward, layer by layer: the last layers up to --cache-mem (auto: a quarter of the
available memory, 4 GB kept free, shared by the processes on the machine) in memory (the first that
does not fit whole: as many of its batches as fit, the rest spilled), the next up to
--cache-disk (auto: half the free space, 2 GB kept free) in a temporary folder (--spill-dir,
deleted at the end; about 300 KB per image for ResNet-18 layer3+layer4, 1.5 MB with
layer1..layer4), and pass 2 re-runs the forward, stopped after them, for the first layers that
fit neither. When not everything fits in memory, the number of layers re-run is chosen by
predicted cost (--spill-when faster): re-running the forward up to a layer (timed on the first
batch) against writing and reading back the bytes spilled instead (at the disk speed measured
in --spill-dir). The choice and its prediction are logged in one line ("cache: ...").
--spill-when fits: spill whatever fits on disk. --no-spill: no disk.

\b
Speed: the forward runs under torch.inference_mode with the loader's workers decoding ahead;
--channels-last auto lays conv nets out channels-last (0.55-0.86x the forward time on a CPU,
faster on GPUs too; values equal within float32 rounding; off: the plain layout); --fold-bn
auto folds each batch norm into the convolution before it, in a copy of the model (0.87x the
forward time for ResNet-18; the layers read are kept; values equal within float32 rounding;
off: run the batch norms); --autocast bf16|fp16 runs the forward in reduced precision
(faster on GPUs, but it changes the activations and so the results).

\b
Resume: statistics are checkpointed to OUT.partial/ every --checkpoint-every batches; rerun
the same command after an interruption to continue (a changed model, dataset or setting is
named and the run starts fresh). OUT.partial/ is removed once OUT is written.
"""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(text: str, option: str = "--cache-mem") -> int:
    """``2GB``, ``512MiB``, ``1.5g``, ``0`` -> bytes (K/M/G/T powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"{option} {text!r} is not a size (e.g. 2GB, 512MB, 0)")
    unit = (m.group(2) or "b").lower()[0]
    power = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit]
    return int(float(m.group(1)) * 1024**power)


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected three numbers like 0.485,0.456,0.406"
        ) from None
    if len(values) != 3:
        raise UsageError(f"{option} {text!r}: expected three comma-separated numbers (R,G,B)")
    return values


def _strip_nproc(args: Sequence[str], takes_value: Container[str]) -> list[str]:
    """``args`` without ``--nproc N`` / ``--nproc=N``, everything else kept in order; the
    token after an option in ``takes_value`` is that option's value, never an option."""
    out: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--":
            return [*out, arg, *it]
        if arg == "--nproc":
            next(it, None)
        elif not arg.startswith("--nproc="):
            out.append(arg)
            if arg in takes_value:
                value = next(it, None)
                if value is not None:
                    out.append(value)
    return out


def _own_args(ctx: click.Context) -> list[str]:
    """The user's own arguments of this command, from ``sys.argv`` (after ``dissect``), minus
    ``--nproc``; checked to parse to the very options this run was given."""
    argv = sys.argv[1:]
    if "dissect" not in argv:
        raise UsageError("--nproc needs the command line (run `conceptkit dissect ... --nproc N`)")
    takes_value = {
        opt
        for p in ctx.command.params
        if isinstance(p, click.Option) and not p.is_flag
        for opt in p.opts
    }
    args = _strip_nproc(argv[argv.index("dissect") + 1 :], takes_value)
    sub = ctx.command.make_context("dissect", list(args), resilient_parsing=True)
    mine = {k: v for k, v in ctx.params.items() if k != "nproc"}
    if {k: v for k, v in sub.params.items() if k != "nproc"} != mine:
        raise UsageError("--nproc needs the command line (run `conceptkit dissect ... --nproc N`)")
    return args


def _launch(nproc: int) -> int:
    """Re-run this very command (the user's arguments minus ``--nproc``) under
    ``torchrun --standalone`` with ``nproc`` processes; returns torchrun's exit status."""
    args = _own_args(click.get_current_context())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), "-m", "conceptkit", "dissect", *args]
    click.echo(f"launching {nproc} processes: torchrun --standalone --nproc_per_node {nproc} "
               "-m conceptkit dissect ...", err=True)  # fmt: skip
    return subprocess.call(cmd)


def _grid(text: str | None) -> tuple[int, int] | None:
    from conceptkit.dissection.tokens import parse_grid

    return None if text is None else parse_grid(text)


def _list_layers(module: Any, opts: dict[str, Any]) -> None:
    from conceptkit.dissection import models
    from conceptkit.dissection.nodes import graph_nodes

    if opts["nodes"]:
        for node in graph_nodes(module):
            click.echo(node)
        return
    size = opts["input_size"] or 224
    for info in models.list_layers(module, size, _grid(opts["grid"])):
        shape = "x".join(str(d) for d in info.out_shape) if info.out_shape else "-"
        click.echo(f"{info.name}\t{info.type}\t{shape}\t{info.read}")


def _settings(opts: dict[str, Any]) -> DissectSettings:
    """The science, cache and run settings the options ask for."""
    from conceptkit.dissection.settings import (
        CacheSettings,
        DissectSettings,
        RunSettings,
        ScienceSettings,
    )

    return DissectSettings(
        science=ScienceSettings(
            quantile=opts["quantile"],
            iou_threshold=opts["iou_threshold"],
            top_n=opts["top_n"],
            union=opts["union"],
            preprocess=opts["preprocess"],
            mean=_floats(opts["mean"], "--mean"),
            std=_floats(opts["std"], "--std"),
            thresholds=opts["thresholds"],
            input_size=opts["input_size"],
            grid=_grid(opts["grid"]),
            baseline=opts["baseline"],
        ),
        cache=CacheSettings(
            cache_mem=None if opts["cache_mem"] == "auto" else parse_size(opts["cache_mem"]),
            spill=not opts["no_spill"],
            spill_dir=opts["spill_dir"],
            spill_dtype=opts["spill_dtype"],
            spill_when=opts["spill_when"],
            cache_disk=None
            if opts["cache_disk"] == "auto"
            else parse_size(opts["cache_disk"], "--cache-disk"),
        ),
        run=RunSettings(
            batch_size=opts["batch_size"],
            workers=opts["workers"],
            checkpoint_every=max(1, opts["checkpoint_every"]),
            resume=not opts["no_resume"],
            shard=opts["shard"],
            autocast=opts["autocast"],
            channels_last=opts["channels_last"],
            fold_bn=opts["fold_bn"],
        ),
    )


def _bar(desc: str, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="img", file=sys.stderr, disable=not sys.stderr.isatty()
    )


def _echo_baseline(layer: str, trained: dict[str, Any], random: dict[str, Any]) -> None:
    """One line: the layer's trained weights against the random ones."""
    parts = []
    for key, what in (
        ("detectors", "detectors"),
        ("unique_detectors_official", "unique (official)"),
        ("mean_best_iou", "mean best IoU"),
    ):
        a, b = trained[key], random[key]
        parts.append(f"{what} {a:.4f} vs {b:.4f}" if isinstance(a, float) else f"{what} {a} vs {b}")
    click.echo(f"{layer}, trained vs random weights: {', '.join(parts)}")


#: blocks up to this size come from the heap, and this much free heap is kept (a batch's
#: activations are reused instead of faulted in again)
DISSECT_HEAP = 1 << 30


@click.command("dissect", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    "model_spec",
    required=True,
    help="torchvision:NAME, a .pth/.pt file, or TorchScript.",
)
@click.option(
    "--arch", default=None, help="Architecture for a bare state_dict (e.g. resnet18, module:fn)."
)
@click.option("--num-classes", type=int, default=None, help="Classifier size of --arch.")
@click.option(
    "--trust-pickle", is_flag=True, help="Allow full pickle loading (only for files you trust)."
)
@click.option(
    "--data", type=click.Path(path_type=Path), default=None, help="The Broden-layout folder."
)
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), default=Path("dissect_out"), show_default=True
)
@click.option(
    "--layer",
    "layers",
    multiple=True,
    help="Dotted module name or graph node (layer4.1.add); repeat for several (default: the "
    "last conv stage; a ViT's blocks 3, 6, 9, 12 of 12; a ConvNeXt's or Swin's stages).",
)
@click.option(
    "--list-layers",
    is_flag=True,
    help="Print the model's layers with output shapes and how each is read, and exit.",
)
@click.option("--nodes", is_flag=True, help="With --list-layers: print the graph nodes instead.")
@click.option(
    "--input-size",
    type=int,
    default=None,
    help="Resize images to NxN for the model (a ViT at 224 on a 227 Broden, Inception at 299).",
)
@click.option("--grid", default=None, help="Token grid HxW of transformer layers (e.g. 14x14).")
@click.option(
    "--quantile",
    type=float,
    default=0.005,
    show_default=True,
    help="Top fraction defining the threshold.",
)
@click.option(
    "--iou-threshold",
    type=float,
    default=0.04,
    show_default=True,
    help="A unit is a detector above this IoU.",
)
@click.option("--top-n", type=int, default=10, show_default=True, help="Top images kept per unit.")
@click.option(
    "--union",
    type=click.Choice(settings.UNIONS),
    default="category",
    show_default=True,
    help="category: NetDissect's union (images touching the category); global: every image.",
)
@click.option(
    "--thresholds",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with quantile_<layer>.npy to reuse (skips the quantile pass).",
)
@click.option(
    "--baseline",
    type=click.Choice([b for b in settings.BASELINES if b]),
    default=None,
    help="Also dissect the same architecture with random weights (seed 0) into OUT/baseline/.",
)
@click.option(
    "--preprocess",
    type=click.Choice(["imagenet", "netdissect"]),
    default="imagenet",
    show_default=True,
    help="imagenet: torchvision mean/std; netdissect: NetDissect-Lite's arithmetic.",
)
@click.option("--mean", default=None, help="Custom R,G,B mean on the 0..1 scale (imagenet style).")
@click.option("--std", default=None, help="Custom R,G,B std on the 0..1 scale.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option(
    "--workers", type=int, default=None, help="DataLoader workers (default: min(4, cores - 1))."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--cache-mem",
    default="auto",
    show_default=True,
    help="Features kept in memory between the passes (auto: a quarter of the available memory, 4 GB "
    "kept free; the rest spill to disk).",
)
@click.option(
    "--cache-disk",
    default="auto",
    show_default=True,
    help="Disk the spilled features may take (auto: half the free space, 2 GB kept free).",
)
@click.option(
    "--spill-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where features past --cache-mem go (default: the system temp folder).",
)
@click.option(
    "--no-spill", is_flag=True, help="Never write features to disk; re-run the forward instead."
)
@click.option(
    "--spill-when",
    type=click.Choice(settings.SPILL_WHEN),
    default="faster",
    show_default=True,
    help="faster: spill a layer only where that is predicted to beat re-running the forward up "
    "to it; fits: spill whatever fits --cache-disk.",
)
@click.option(
    "--spill-dtype",
    type=click.Choice(settings.SPILL_DTYPES),
    default="float32",
    show_default=True,
    help="Disk format of spilled features (float16: half the disk, not bit-exact).",
)
@click.option(
    "--autocast",
    type=click.Choice([a for a in settings.AUTOCASTS if a]),
    default=None,
    help="Reduced-precision forward (faster on GPUs; changes the activations and results).",
)
@click.option(
    "--channels-last",
    type=click.Choice(settings.CHANNELS_LAST),
    default="auto",
    show_default=True,
    help="Channels-last layout (auto: for conv nets; off: the plain layout).",
)
@click.option(
    "--fold-bn",
    type=click.Choice(settings.FOLD_BN),
    default="auto",
    show_default=True,
    help="Fold batch norms into the convolutions before them (auto; off: run them).",
)
@click.option(
    "--nproc",
    type=int,
    default=1,
    show_default=True,
    help="Processes on this machine (launches torchrun --standalone).",
)
@click.option(
    "--shard",
    type=click.Choice(["strided", "contiguous"]),
    default="strided",
    show_default=True,
    help="How batches are dealt to the processes.",
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=50,
    show_default=True,
    help="Batches between checkpoints in OUT.partial/ (0: no checkpoints).",
)
@click.option("--no-resume", is_flag=True, help="Ignore a checkpoint in OUT.partial/; start fresh.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--no-report", is_flag=True, help="Do not build OUT/html and OUT/plots.")
def dissect(**opts: Any) -> None:
    """Probe the units of a model's layers against the concepts of a Broden folder.

    For every unit: threshold its activations at the top quantile, measure the IoU of the
    upsampled masks with every labelled concept, and name the unit by its best concept
    (Network Dissection, Bau et al. 2017; numbers match NetDissect-Lite with
    --preprocess netdissect).
    """
    if opts["nproc"] > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_launch(opts["nproc"]))
    if opts["nproc"] < 1:
        raise UsageError("--nproc must be at least 1")
    from conceptkit import heap
    from conceptkit.dissection import models

    # this process does one dissection: keep freed activations for the next batch (faults
    # cost 16 of 108 CPU seconds of a 2,000-image ResNet-18 run otherwise; conceptkit.heap)
    heap.steady_heap(mmap_bytes=DISSECT_HEAP, trim_bytes=DISSECT_HEAP)

    loaded = models.load_model(
        opts["model_spec"],
        arch=opts["arch"],
        num_classes=opts["num_classes"],
        trust_pickle=opts["trust_pickle"],
    )
    if opts["list_layers"]:
        _list_layers(loaded.module, opts)
        return
    if opts["data"] is None:
        raise UsageError("--data is required (the Broden folder to dissect against)")
    from conceptkit.outdir import check_target

    check_target(opts["out"], opts["force"])
    layers = list(opts["layers"]) or models.default_layers(loaded.module, opts["input_size"] or 224)
    from conceptkit.dissection.hooks import check_layers

    check_layers(loaded.module, layers)
    from conceptkit.dissection import checkpoint, distributed
    from conceptkit.dissection.run import Dissection

    base = _settings(opts)
    ctx, device = distributed.setup(opts["device"])
    prefix = f"[rank {ctx.rank}] " if ctx.active else ""
    partial = checkpoint.partial_dir(opts["out"])
    every = opts["checkpoint_every"]

    def log(msg: str) -> None:
        click.echo(f"{prefix}{msg}", err=True)

    if every > 0 and ctx.is_main:
        log(f"checkpoints: {partial}/ every {every} batches (removed when OUT is written)")
    settings = base.with_options(
        device=device,
        progress=_bar if ctx.is_main else None,
        checkpoint_dir=partial if every > 0 else None,
        dist_ctx=ctx,
        log=log,
        model_info={
            "spec": opts["model_spec"],
            "description": loaded.description,
            "fingerprint": loaded.fingerprint,
        },
    )
    fresh = not partial.exists()
    try:
        result = Dissection(loaded.module, opts["data"], layers, settings).run()
    except ConceptkitError:
        # bad input: the checkpoints this run started are of no use; an interruption (Ctrl-C,
        # SIGTERM, a kill) keeps them so that the rerun resumes
        if fresh:
            checkpoint.remove(partial)
        raise
    if not ctx.is_main:
        distributed.teardown(ctx)
        return
    out = result.save(opts["out"], force=opts["force"])
    checkpoint.remove(partial)
    distributed.teardown(ctx)
    for name in layers:
        s = result.summary(name)
        u = s["unique_detectors"]
        click.echo(
            f"{name}: {s['units']} units, {s['detectors']} detectors "
            f"(IoU > {opts['iou_threshold']}), unique detectors: official {u['official']['total']}, "
            f"naive {u['naive']['total']}"
        )
        if result.baseline is not None:
            _echo_baseline(name, result.digest(name), result.baseline.digest(name))
    click.echo(f"wrote {out}/ (tally_*.csv, quantile_*.npy, topn_*.npz, results.json)")
    if opts["no_report"]:
        return
    from conceptkit.report import build

    build(out)
    click.echo(f"report: {out}/html/index.html")
