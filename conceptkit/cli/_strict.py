"""Strict number options: ASCII digits only, inside documented bounds, never nan or inf.

click's own INT and FLOAT take what Python's ``int()`` and ``float()`` take (``1_000``,
``" 12"``, Arabic-Indic digits, ``nan``, ``inf``); these types take plain decimal numbers only.
A bad value is a usage error (exit 2) in click's one ``Error:`` line.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


class StrictInt(click.ParamType):
    """A whole number from ``low`` to ``high`` (both included), written in ASCII digits."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _INT.fullmatch(value):
            number = int(value)
        else:
            self.fail(f"{value!r} is not a whole number from {self.low} to {self.high}", param, ctx)
        if not self.low <= number <= self.high:
            self.fail(f"{number} is not in the range {self.low} to {self.high}", param, ctx)
        return number

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"INTEGER {self.low}..{self.high}"


class StrictFloat(click.ParamType):
    """A finite decimal number in ``[low, high]`` (``low_open``: ``low`` itself excluded)."""

    name = "number"

    def __init__(self, low: float, high: float, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def _range(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        elif isinstance(value, str) and _FLOAT.fullmatch(value):
            number = float(value)
        else:
            self.fail(f"{value!r} is not a number in {self._range()}", param, ctx)
        below = number <= self.low if self.low_open else number < self.low
        if below or number > self.high:
            self.fail(f"{number:g} is not in {self._range()}", param, ctx)
        return number
