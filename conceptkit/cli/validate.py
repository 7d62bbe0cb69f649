"""`conceptkit validate DIR`: print the findings of :func:`conceptkit.validate.validate`.

Exit status: 0 when there is no error (warnings allowed), 1 when there are errors, 2 for a usage
problem (DIR is not a folder, a bad option).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from conceptkit.validate import CODES, Finding, summary
from conceptkit.validate import validate as run_validate

_EPILOG = """\b
Examples:
  conceptkit validate mydata/
  conceptkit validate mydata/ --json > findings.json
  conceptkit validate mydata/ --no-netdissect      # allow non-square / mixed-size images
  conceptkit validate mydata/ --min-images 20      # warn about labels in < 20 images
  conceptkit validate mydata/ --max-findings 0     # counts per code only

\b
Each line is one finding:
  error E104 index.csv:12 column object: images/x.png is missing — fix: add the file ...
The last line counts them: `2 errors, 1 warning`. Exit status 0 = no error, 1 = errors,
2 = usage problem. Codes: E1xx files and CSV syntax (E110: a path leaving images/, E111: a
value over conceptkit's limits, raised with CONCEPTKIT_LIMIT_<NAME>=N), E2xx images and sizes,
E3xx pixel labels, E4xx tables vs pixels, E5xx categories vs index columns, W6xx warnings.
"""


def format_finding(f: Finding) -> str:
    """One line: ``error E104 index.csv:12 column object: ... — fix: ...``."""
    where = f.file
    if f.line is not None:
        where += f":{f.line}"
    extra = []
    if f.column is not None:
        extra.append(f"column {f.column}")
    if f.detail:
        extra.append(f.detail)
    if extra:
        where += " " + ", ".join(extra)
    return f"{f.severity} {f.code} {where}: {f.message} — fix: {f.hint}"


def human_lines(findings: list[Finding], max_findings: int) -> list[str]:
    """At most ``max_findings`` finding lines, shared fairly between codes, each code's
    remainder summed on one ``... N more`` line."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.code, []).append(f)
    share = max(1, max_findings // max(1, len(groups))) if max_findings else 0
    lines: list[str] = []
    for code, group in groups.items():
        listed = [f for f in group if f.count == 1]
        shown = listed[:share]
        lines += [format_finding(f) for f in shown]
        rest = sum(f.count for f in group) - len(shown)
        if rest:
            lines.append(f"  ... {rest} more {code} {CODES[code][0]} (see --json)")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@click.command(epilog=_EPILOG)
@click.argument(
    "directory",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, dir_okay=True),
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
@click.option(
    "--no-netdissect",
    is_flag=True,
    help="Do not require NetDissect-Lite's square, same-size images.",
)
@click.option(
    "--min-images",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Warn (W601) about labels seen in fewer images (Broden's rule: 10).",
)
@click.option(
    "--max-findings",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Print about this many finding lines, shared between codes; the rest are counted.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes decoding label planes [default: up to 4 on large folders, 1 on <= 2 cores].",
)
@click.pass_context
def validate(
    ctx: click.Context,
    directory: str,
    as_json: bool,
    no_netdissect: bool,
    min_images: int,
    max_findings: int,
    jobs: int | None,
) -> None:
    """Check the Broden folder DIR and say exactly what is wrong.

    Every file is checked against the schemas (headers, types, constraints); every image and
    label plane referenced by index.csv is opened (sizes, pixel label numbers, categories); the
    frequencies and coverages of category.csv, label.csv and c_<cat>.csv are recomputed from
    the pixels and compared. The folder is streamed, so memory stays bounded on large datasets.
    """
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total, unit="row", desc="validate", file=sys.stderr, disable=None, leave=False
            )
        bar.update(done - bar.n)

    try:
        findings = run_validate(
            directory,
            netdissect=not no_netdissect,
            progress=progress,
            min_images=min_images,
            jobs=jobs,
        )
    finally:
        if bar is not None:
            bar.close()
    counts = summary(findings)
    errors = sum(f.count for f in findings if f.severity == "error")
    warnings = sum(f.count for f in findings if f.severity == "warning")
    if as_json:
        doc = {
            "folder": directory,
            "netdissect": not no_netdissect,
            "errors": errors,
            "warnings": warnings,
            "counts": counts,
            "findings": [f.to_dict() for f in findings],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for line in human_lines(findings, max_findings):
            click.echo(line)
        if sum(counts.values()) > 10 and len(counts) > 1:
            click.echo("counts per code:")
            for code, n in sorted(counts.items()):
                click.echo(f"  {code} {CODES[code][0]}: {n}")
        click.echo(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
    ctx.exit(1 if errors else 0)
