"""`conceptkit embed`: concepts as learned combinations of a layer's units (Net2Vec).

Recomputes RUN's features with one forward pass, learns per concept a weight vector over the
units and a bias (:mod:`conceptkit.beyond.net2vec`), scores them on held-out images against
the best single unit, and writes ``embed_<layer>.csv``, ``embed_<layer>.npz``,
``embed_similarity_<layer>.csv`` and ``embed.json`` into RUN or ``-o DIR``.
"""

from __future__ import annotations

import time
from typing import Any

import click

from conceptkit.cli import _options as run_opts

_EPILOG = """\b
Examples:
  conceptkit embed run/                        # every dissected layer, files into run/
  conceptkit embed run/ --layer layer4 --epochs 50 -o net2vec/
  conceptkit segment run/ photo.jpg -o maps/   # then uses run/embed_<layer>.npz

\b
Writes (each file atomically; --force replaces existing ones):
  embed_<layer>.csv             number, label, category, iou (the combination's), single_iou /
                                single_unit (the best unit on the same images), gain, units
                                (fewest units holding --share of the squared weight),
                                train_images, score_pixels
  embed_<layer>.npz             weights (C x K) and bias (K) on raw features, numbers (K),
                                mean / std (C): the standardisation used in training
  embed_similarity_<layer>.csv  cosine similarity of the concepts' weight vectors
  embed.json                    settings, split sizes, per-layer means
"""


@run_opts.run_command("embed", _EPILOG)
@run_opts.out_option()
@run_opts.layers_option()
@click.option("--epochs", type=int, default=30, show_default=True, help="Passes over training.")
@click.option("--batch-images", type=int, default=64, show_default=True, help="Images per step.")
@click.option("--lr", type=float, default=0.01, show_default=True, help="Adam's learning rate.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="L2 on weights.")
@click.option(
    "--holdout",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of images scored when index.csv has one split (else: non-train rows).",
)
@click.option("--min-images", type=int, default=1, show_default=True, help="Training images.")
@click.option("--share", type=float, default=0.9, show_default=True, help="For the units column.")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffling seed.")
@run_opts.model_options()
@run_opts.force_option("Replace existing embed files.")
def embed(**opts: Any) -> None:
    """Learn every concept as a thresholded combination of a layer's units (Net2Vec).

    Per concept of RUN's dataset (pixel-level labels), a weight per unit and a bias such
    that weights . features + bias > 0 segments the concept (balanced per-pixel logistic
    loss, all concepts of a layer at once), trained on index.csv's train rows and scored on
    the others at the label resolution against the best single unit (RUN's thresholds).
    """
    from conceptkit.artefacts import check_out, embed_names
    from conceptkit.beyond import net2vec as nv
    from conceptkit.beyond.features import open_run

    settings = nv.EmbedSettings(
        epochs=opts["epochs"],
        batch_images=opts["batch_images"],
        lr=opts["lr"],
        weight_decay=opts["weight_decay"],
        holdout=opts["holdout"],
        min_images=opts["min_images"],
        share=opts["share"],
        seed=opts["seed"],
    )
    settings.check()
    out = opts["out"] or opts["run"]
    info, layers = open_run(opts["run"], opts["data"], opts["layers"])
    check_out(out, embed_names(layers), opts["force"])
    t0 = time.perf_counter()
    ex = nv.embed(
        opts["run"],
        settings,
        layers,
        data=opts["data"],
        model_opts=run_opts.model_opts(opts),
        batch_size=opts["batch_size"],
        device=opts["device"],
        log=lambda msg: click.echo(msg, err=True),
    )
    written = nv.save(ex, out, force=opts["force"])
    click.echo(f"{ex.train} training images, {ex.scored} scored; features in "
               f"{ex.seconds['gather']:.1f} s")  # fmt: skip
    for name, le in ex.layers.items():
        ok = le.score_pixels > 0
        better = int((le.iou[ok] > le.single_iou[ok]).sum())
        sec = le.seconds
        click.echo(
            f"{name}: {len(le.concepts)} concepts ({int(ok.sum())} scored); mean IoU "
            f"{_mean(le.single_iou[ok]):.4f} (best single unit) -> {_mean(le.iou[ok]):.4f} "
            f"(combination), better for {better}; targets {sec['targets']:.1f} s, fit "
            f"{sec['fit']:.1f} s, calibrate {sec['calibrate']:.1f} s, score {sec['score']:.1f} s"
        )
    click.echo(f"total {time.perf_counter() - t0:.1f} s; wrote {', '.join(map(str, written))}")


def _mean(values: Any) -> float:
    return float(values.mean()) if len(values) else 0.0
