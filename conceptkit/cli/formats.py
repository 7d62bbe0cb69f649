"""`conceptkit formats`: the readers there are, what each reads, and which one an export needs.

Without SRC: one block per format of :data:`conceptkit.converters.READERS` with its
description and an example command, taken from the reader module's ``DESCRIPTION`` and
``EXAMPLE`` constants (else the first line of its docstring); a reader whose module is not in
this install shows ``not installed``. With SRC: the format detected from SRC's contents and why
(:func:`conceptkit.converters.detection`).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import click


def describe(name: str) -> tuple[str, str]:
    """(description, example) of format ``name``; ``("not installed", "")`` without its module."""
    from conceptkit.converters import READERS

    module = READERS[name].split(":")[0]
    if importlib.util.find_spec(module) is None:
        return "not installed", ""
    mod = importlib.import_module(module)
    doc = (mod.__doc__ or "").strip().splitlines()
    description = str(getattr(mod, "DESCRIPTION", doc[0] if doc else ""))
    example = str(getattr(mod, "EXAMPLE", f"conceptkit convert {name} SRC -o OUT"))
    return description, example


@click.command("formats", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(path_type=Path))
def formats(src: Path | None) -> None:
    """List the export formats conceptkit reads, or detect the format of SRC."""
    from conceptkit.converters import READERS, detection

    if src is not None:
        fmt, why = detection(src)
        click.echo(f"{fmt}\t({why})")
        click.echo(f"  conceptkit convert {fmt} {src} -o OUT")
        return
    for name in READERS:
        description, example = describe(name)
        click.echo(f"{name:12s} {description}")
        if example:
            click.echo(f"{'':12s}   e.g. {example}")
