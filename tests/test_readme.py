"""The README cannot rot: its set-up commands are what CI runs, and every `conceptkit` command
it shows names an existing command with existing options (the demo itself runs in
test_demo.py, the validator on the fixture in test_validate.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conceptkit.cli import COMMANDS, cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(text: str) -> list[str]:
    """Every shell command line of the README's bash blocks (continuations joined)."""
    lines: list[str] = []
    for block in _bash_blocks(text):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _conceptkit_invocations() -> list[list[str]]:
    out = []
    for line in _commands(README):
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part.strip().split(">", 1)[0])
            if words[:1] == ["conceptkit"]:
                out.append(words[1:])
    return out


INVOCATIONS = _conceptkit_invocations()


def test_readme_shows_every_command() -> None:
    shown = {words[0] for words in INVOCATIONS if words}
    assert shown >= set(COMMANDS), set(COMMANDS) - shown


@pytest.mark.parametrize("words", INVOCATIONS, ids=[" ".join(w)[:60] for w in INVOCATIONS])
def test_readme_command_uses_real_options(words: list[str]) -> None:
    cmd = cli.get_command(click.Context(cli), words[0])
    assert cmd is not None, f"no command {words[0]!r}"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for w in words[1:]:
        if w.startswith("-"):
            assert w.split("=", 1)[0] in known, f"{words[0]} has no option {w}"
    res = CliRunner().invoke(cli, [words[0], "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output


def test_setup_is_two_commands_matching_ci() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = _commands(setup)
    assert len(commands) == 2
    install, tests = commands
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for step in install.split("&&")[:-1]:
        assert step.strip() in ci, step  # CI installs exactly as the README does
    assert install.split("&&")[-1].strip().startswith("conceptkit demo")
    assert tests in ci  # CI runs the README's test command


def test_python_scripts_named_in_readme_exist() -> None:
    for line in _commands(README):
        for script in re.findall(r"python3? ((?:examples|bench)/\S+)", line):
            assert (REPO / script).is_file(), script
