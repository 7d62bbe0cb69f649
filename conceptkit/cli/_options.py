"""The options of the commands that reuse a finished run (explain, chance, embed, segment).

Each of them takes the run folder RUN, an output folder, the run's dataset and model (to
recompute features with one forward pass), a device and ``--force``; the declarations live here
once, so the commands cannot drift apart in names, defaults or help. The decorators keep
click's order: options appear in ``--help`` in the order they are listed here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# the click parameter names of the model options -> the keywords of the model loaders
_MODEL_KEYWORDS = (
    ("model", "model_spec"),
    ("arch", "arch"),
    ("num_classes", "num_classes"),
    ("trust_pickle", "trust_pickle"),
)


def _compose(decorators: Sequence[Any]) -> Decorator:
    """One decorator applying ``decorators`` so that their options keep the listed order."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def run_command(name: str, epilog: str) -> Callable[[Callable[..., Any]], click.Command]:
    """The click command ``name`` (``-h`` as well as ``--help``) with its RUN argument."""
    command = click.command(
        name, epilog=epilog, context_settings={"help_option_names": ["-h", "--help"]}
    )
    run = click.argument("run", type=click.Path(path_type=Path))
    return lambda f: command(run(f))


def out_option(required: bool = False) -> Decorator:
    """``-o/--out``: the folder written (default: RUN, unless ``required``)."""
    text = "Folder." if required else "Folder (default: RUN)."
    return click.option(
        "-o", "--out", type=click.Path(path_type=Path), default=None, required=required, help=text
    )


def layers_option(text: str = "Layer (default: all of RUN's).") -> Decorator:
    """``--layer`` (repeatable) into ``layers``."""
    return click.option("--layer", "layers", multiple=True, help=text)


def model_options(batch_size: bool = True) -> Decorator:
    """``--data``, ``--model``, ``--arch``, ``--num-classes``, ``--trust-pickle``, with
    ``batch_size`` ``--batch-size``, and ``--device``: how the run's forward pass is redone."""
    decorators = [
        click.option(
            "--data", type=click.Path(path_type=Path), default=None, help="The run's dataset."
        ),
        click.option(
            "--model", "model_spec", default=None, help="The run's model (default: its spec)."
        ),
        click.option(
            "--arch", default=None, help="Architecture of a bare state_dict (as for dissect)."
        ),
        click.option("--num-classes", type=int, default=None, help="Classifier size of --arch."),
        click.option(
            "--trust-pickle", is_flag=True, help="Allow full pickle loading (trusted files)."
        ),
    ]
    if batch_size:
        decorators.append(
            click.option(
                "--batch-size", type=int, default=None, help="Forward batch (default: the run's)."
            )
        )
    decorators.append(
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
    )
    return _compose(decorators)


def force_option(text: str) -> Decorator:
    """``--force``: replace what the command wrote before (``text`` says what)."""
    return click.option("--force", is_flag=True, help=text)


def model_opts(opts: dict[str, Any]) -> dict[str, Any]:
    """The model options of :func:`model_options` as the model loaders' keywords
    (``model``, ``arch``, ``num_classes``, ``trust_pickle``)."""
    return {key: opts[param] for key, param in _MODEL_KEYWORDS}
