"""`conceptkit chance`: how much of each unit's IoU a blindly placed mask would reach.

Recomputes RUN's unit masks with one forward pass, counts per image each unit's mask size and
each label's area, and writes per layer ``chance_<layer>.csv`` (per unit: its best label's
``iou``, ``iou_chance``, ``iou_sd``, ``z``, support and flags), ``chance_<layer>.npz`` (every
unit and label) and ``chance.json`` into RUN or ``-o DIR`` (:mod:`conceptkit.beyond.chance`).
"""

from __future__ import annotations

from typing import Any

import click

from conceptkit.cli import _options as run_opts

_EPILOG = """\b
Examples:
  conceptkit chance run/                       # every dissected layer, files into run/
  conceptkit chance run/ --layer layer4 -o chance/

\b
Flags (column `flags`, `;`-separated):
  near_chance  the best label's intersection is less than 3 standard deviations above
               what masks of the same per-image sizes would reach blindly (z < 3); always
               so for image-level labels (scene, texture), which every mask overlaps fully
  few_images   the best label occurs in fewer than 10 images (Broden's rule)
  no_label     no label overlaps the unit
"""


@run_opts.run_command("chance", _EPILOG)
@run_opts.out_option()
@run_opts.layers_option()
@run_opts.model_options()
@run_opts.force_option("Replace existing chance files.")
def chance(**opts: Any) -> None:
    """Chance level, z-score and support of every unit's IoU in a finished dissection.

    For unit masks of the sizes RUN's units have in each image, placed independently of
    the labels, the expected intersection with a label is sum_i a_i b_i / n_i (mask and
    label pixels a_i, b_i of n_i), with hypergeometric variance; the chance IoU divides it
    by the expected union under RUN's union rule. Units are numbered from 0.
    """
    from conceptkit.artefacts import chance_names, check_out
    from conceptkit.beyond import chance as ch
    from conceptkit.beyond.features import open_run

    out = opts["out"] or opts["run"]
    info, layers = open_run(opts["run"], opts["data"], opts["layers"])
    check_out(out, chance_names(layers), opts["force"])
    res = ch.chance(
        opts["run"],
        layers,
        data=opts["data"],
        model_opts=run_opts.model_opts(opts),
        batch_size=opts["batch_size"],
        device=opts["device"],
        log=lambda msg: click.echo(msg, err=True),
    )
    written = ch.save(res, out, force=opts["force"])
    for name, lc in res.layers.items():
        s = ch.layer_summary(res, lc)
        click.echo(
            f"{name}: {s['detectors']} detectors (IoU > {res.iou_threshold}); "
            f"{s['detectors_near_chance']} near chance (z < {res.z_min:g}), "
            f"{s['detectors_few_images']} with a label in < {res.support_min} images, "
            f"{s['detectors_unflagged']} unflagged"
        )
    click.echo(f"wrote {', '.join(str(p) for p in written)}")
