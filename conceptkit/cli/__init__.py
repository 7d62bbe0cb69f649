"""The `conceptkit` command line: a click group whose commands load lazily.

Each command lives in its own module (``conceptkit/cli/<name>.py``) so that ``conceptkit --help``
stays fast and a problem in one command never breaks the others. Input problems
(:class:`~conceptkit.errors.ConceptkitError`) become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
import threading
from typing import Any

import click

from conceptkit import __version__
from conceptkit.errors import ConceptkitError, UsageError

# command name -> (module, attribute, one-line help shown by `conceptkit --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": (
        "conceptkit.cli.convert",
        "convert",
        "Turn annotation-tool exports and segmentation datasets into a Broden folder.",
    ),
    "formats": (
        "conceptkit.cli.formats",
        "formats",
        "List the export formats conceptkit reads, or detect the format of SRC.",
    ),
    "validate": (
        "conceptkit.cli.validate",
        "validate",
        "Check a Broden folder and say exactly what is wrong.",
    ),
    "consistency": (
        "conceptkit.cli.consistency",
        "consistency",
        "Measure agreement between annotators.",
    ),
    "dissect": (
        "conceptkit.cli.dissect",
        "dissect",
        "Probe a model's units against the concepts of a Broden folder.",
    ),
    "report": (
        "conceptkit.cli.report",
        "report",
        "Rebuild the HTML report and plots of finished runs.",
    ),
    "summary": (
        "conceptkit.cli.summary",
        "summary",
        "Count detectors and unique detectors of runs (conceptkit or NetDissect-Lite).",
    ),
    "explain": (
        "conceptkit.cli.explain",
        "explain",
        "Explain units by logical formulas over concepts (compositional explanations).",
    ),
    "embed": (
        "conceptkit.cli.embed",
        "embed",
        "Learn concepts as combinations of units (Net2Vec).",
    ),
    "segment": (
        "conceptkit.cli.segment",
        "segment",
        "Concept maps of images from a run's detector units.",
    ),
    "chance": (
        "conceptkit.cli.chance",
        "chance",
        "Chance levels of every unit's IoU, support and flags.",
    ),
    "demo": ("conceptkit.cli.demo", "demo", "Run the whole pipeline on the shipped example."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (mod, _, _) in COMMANDS.items() if importlib.util.find_spec(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise
        cmd: click.Command = getattr(mod, attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conceptkit")
def cli() -> None:
    """conceptkit: build concept datasets and dissect vision models.

    \b
    A typical session:
      conceptkit convert labelme my_export/ -o mydata/
      conceptkit validate mydata/
      conceptkit dissect --model torchvision:resnet18 --data mydata/ -o run/
      open run/html/index.html

    Run `conceptkit COMMAND --help` for the options of each command.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup path (temporary folders) runs."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning input errors into one line and exit status 1 (2 for usage).

    SIGTERM is handled like SIGINT (temporary folders removed, exit 143 instead of 130).
    """
    before = None  # the caller's handler, given back on return (main() may be called in-process)
    if threading.current_thread() is threading.main_thread():
        before = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _main(argv: list[str] | None) -> Any:
    try:
        rv = cli.main(args=argv, prog_name="conceptkit", standalone_mode=False)
    except Terminated:
        click.echo("Terminated.", err=True)
        sys.exit(143)
    except click.exceptions.Abort as exc:
        # click turns KeyboardInterrupt (and so our Terminated) into Abort
        if isinstance(exc.__cause__ or exc.__context__, Terminated):
            click.echo("Terminated.", err=True)
            sys.exit(143)
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        click.echo(f"conceptkit: {exc}", err=True)
        sys.exit(2)
    except ConceptkitError as exc:
        click.echo(f"conceptkit: {exc.kind}: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
    return None
