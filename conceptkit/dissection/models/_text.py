"""Pieces of the one-line messages that the model modules raise."""

from __future__ import annotations

SHOW = 3  # how many names a message lists


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) turned into one space."""
    return " ".join(text.split())


def names(items: list[str]) -> str:
    """The first :data:`SHOW` of ``items``, comma-separated, with ``, ...`` when there are more."""
    shown = ", ".join(items[:SHOW])
    return shown + (", ..." if len(items) > SHOW else "")


def shape(s: tuple[int, ...]) -> str:
    """``(10, 512)``; ``(10)`` for one dimension (no trailing comma)."""
    return "(" + ", ".join(str(d) for d in s) + ")"
