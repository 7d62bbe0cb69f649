"""Logical formulas over concepts: the tree, its text syntax, its parser and a canonical key.

A formula is a leaf (one concept, held by its index into the search's concept list) or a binary
node ``left OP right`` with ``OP`` one of ``AND``, ``OR``, ``AND NOT``. The text form writes a
leaf as the concept's name (quoted with double quotes, backslash escapes, when the name is not
a plain word or is a keyword) and wraps every binary operand in parentheses, so it never relies
on precedence::

    (water OR river) AND NOT blue
    ((water OR river) AND NOT blue) OR "potted plant"

:func:`parse` reads that form back and more: without parentheses ``AND`` / ``AND NOT`` bind
tighter than ``OR`` and operators of one level group from the left (``a OR b AND NOT c`` is
``a OR (b AND NOT c)``). Keywords are upper case. :func:`canonical` gives a key that is equal
for formulas equal by commutativity and associativity of AND and OR.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from conceptkit.errors import UsageError

AND, OR, ANDNOT = "AND", "OR", "AND NOT"
OPS = (AND, OR, ANDNOT)
_KEYWORDS = {"AND", "OR", "NOT"}
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/+']*$")


@dataclass(frozen=True)
class Formula:
    """A leaf (``op is None``, ``concept`` set) or ``left op right``."""

    op: str | None = None
    concept: int = -1
    left: Formula | None = None
    right: Formula | None = None

    @staticmethod
    def leaf(concept: int) -> Formula:
        return Formula(concept=concept)

    def join(self, op: str, other: Formula) -> Formula:
        """``self op other``."""
        if op not in OPS:
            raise ValueError(f"unknown operator {op!r}")
        return Formula(op=op, left=self, right=other)

    @property
    def is_leaf(self) -> bool:
        return self.op is None

    def children(self) -> tuple[Formula, Formula]:
        if self.left is None or self.right is None:
            raise ValueError("a leaf has no children")
        return self.left, self.right

    def leaves(self) -> list[int]:
        """Concept indices, left to right (a concept used twice appears twice)."""
        if self.is_leaf:
            return [self.concept]
        left, right = self.children()
        return left.leaves() + right.leaves()

    def __len__(self) -> int:
        return len(self.leaves())

    def to_text(self, names: Sequence[str]) -> str:
        """The text form, leaves named by ``names[concept]``."""
        if self.is_leaf:
            return quote(names[self.concept])
        left, right = self.children()
        return f"{_operand(left, names)} {self.op} {_operand(right, names)}"


def _operand(f: Formula, names: Sequence[str]) -> str:
    text = f.to_text(names)
    return text if f.is_leaf else f"({text})"


def quote(name: str) -> str:
    """A concept name as a leaf token: bare when it is a plain word, else double-quoted."""
    if _PLAIN.match(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ----------------------------------------------------------------------------- parsing

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """``(kind, value, column)`` with kind ``(``, ``)``, ``name`` or ``kw``."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UsageError(f"formula {text!r}: cannot read from column {pos + 1}")
        col = m.start() + len(m.group(0)) - len(m.group(0).lstrip()) + 1
        if m.group(1):
            out.append(("(", "(", col))
        elif m.group(2):
            out.append((")", ")", col))
        elif m.group(3) is not None:
            out.append(("name", re.sub(r"\\(.)", r"\1", m.group(3)), col))
        else:
            word = m.group(4)
            out.append(("kw" if word in _KEYWORDS else "name", word, col))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, resolve: Callable[[str], int]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.resolve = resolve

    def fail(self, what: str) -> UsageError:
        col = self.toks[self.i][2] if self.i < len(self.toks) else len(self.text) + 1
        return UsageError(f"formula {self.text!r}: {what} at column {col}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def expr(self) -> Formula:
        f = self.term()
        while (t := self.peek()) is not None and t[:2] == ("kw", "OR"):
            self.i += 1
            f = f.join(OR, self.term())
        return f

    def term(self) -> Formula:
        f = self.atom()
        while (t := self.peek()) is not None and t[:2] == ("kw", "AND"):
            self.i += 1
            nxt = self.peek()
            op = AND
            if nxt is not None and nxt[:2] == ("kw", "NOT"):
                self.i += 1
                op = ANDNOT
            f = f.join(op, self.atom())
        return f

    def atom(self) -> Formula:
        t = self.peek()
        if t is None:
            raise self.fail("a concept or '(' is missing")
        if t[0] == "(":
            self.i += 1
            f = self.expr()
            close = self.peek()
            if close is None or close[0] != ")":
                raise self.fail("')' expected")
            self.i += 1
            return f
        if t[0] != "name":
            raise self.fail(f"a concept expected, not {t[1]!r}")
        self.i += 1
        return Formula.leaf(self.resolve(t[1]))

    def parse(self) -> Formula:
        f = self.expr()
        if self.peek() is not None:
            raise self.fail("unexpected text")
        return f


def parse(text: str, names: Sequence[str]) -> Formula:
    """Read the text form; leaves are looked up in ``names`` (a UsageError names an unknown
    or ambiguous concept)."""
    index: dict[str, int] = {}
    twice: set[str] = set()
    for i, n in enumerate(names):
        if n in index:
            twice.add(n)
        index.setdefault(n, i)

    def resolve(name: str) -> int:
        if name in twice:
            raise UsageError(f"formula {text!r}: concept {name!r} names several labels")
        if name not in index:
            raise UsageError(f"formula {text!r}: unknown concept {name!r}")
        return index[name]

    return _Parser(text, resolve).parse()


# ----------------------------------------------------------------------------- identity

Key = tuple[object, ...]


def canonical(f: Formula) -> Key:
    """Equal for formulas equal up to the order and grouping of AND / OR operands."""
    if f.is_leaf:
        return ("c", f.concept)
    left, right = f.children()
    if f.op == ANDNOT:
        return (ANDNOT, canonical(left), canonical(right))
    parts: list[Key] = []
    for side in (left, right):
        key = canonical(side)
        if key[0] == f.op:
            parts.extend(key[1:])  # type: ignore[arg-type]
        else:
            parts.append(key)
    return (f.op, *sorted(parts, key=repr))
