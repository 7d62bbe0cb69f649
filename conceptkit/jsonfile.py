"""JSON documents from strangers, read whole within limits: one FormatError for every way they fail.

:func:`load` reads one JSON file (LabelMe, COCO) and refuses, each with one line naming the
file and, where there is one, the line and column:

- a folder or anything but a regular file where the file is expected; a file that cannot be
  read; a file larger than the limit ``file_bytes`` (checked before it is read);
- an empty file; text that is not UTF-8 (or UTF-16/32 with the byte-order mark JSON allows);
- malformed JSON; the non-standard constants ``NaN``, ``Infinity`` and ``-Infinity`` that
  Python's parser accepts by default; integers too long for Python to convert;
- a document nested deeper than the limit ``json_depth`` (a document nested 100,000 deep gives
  this line, not a RecursionError).

A float too large for a double (``1e999``) parses as infinity; each reader refuses non-finite
numbers where it uses them, naming the JSON path (:func:`finite`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit import limits
from conceptkit.errors import FormatError

#: a JSON string token (for locating a bad token outside strings and for the depth scan)
_STRING = r'"(?:[^"\\]|\\.)*"'
_STRUCTURE = re.compile(rb'"[^"]*"')
#: every byte but the brackets, braces and quotes (deleted before the depth scan)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_SCAN_CHUNK = 1 << 24


class _Constant(ValueError):
    """Raised by the parser's hook on ``NaN``/``Infinity``; carries the token."""


def _refuse_constant(token: str) -> Any:
    raise _Constant(token)


def _where(text: str, token: str) -> str:
    """``line L, column C`` of the first ``token`` (a regex) outside strings in ``text``."""
    match = next(
        (m for m in re.finditer(f"{_STRING}|({token})", text) if m.group(1) is not None), None
    )
    if match is None:  # pragma: no cover - the parser saw the token, so it is there
        return "line 1"
    start = match.start(1)
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return f"line {line}, column {column}"


def depth(raw: bytes) -> int:
    """The nesting depth of the valid JSON document ``raw`` (``[]`` is 1, a bare number 0).

    Escaped backslashes and quotes are removed, then everything but brackets, braces and
    quotes, then the strings (they may hold brackets), so the count runs over a few bytes per
    container, in chunks of bounded memory.
    """
    if b"\\" in raw:  # escaped backslashes, then escaped quotes, so only real quotes remain
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = _STRUCTURE.sub(b"", raw.translate(None, _NOT_STRUCTURE))
    deepest = level = 0
    for start in range(0, len(skeleton), _SCAN_CHUNK):
        a = np.frombuffer(skeleton, np.uint8, min(_SCAN_CHUNK, len(skeleton) - start), start)
        steps = np.where((a == ord("[")) | (a == ord("{")), 1, -1).astype(np.int64)
        run = np.cumsum(steps) + level
        deepest = max(deepest, int(run.max()))
        level = int(run[-1])
    return deepest


def _read(path: Path, what: str) -> bytes:
    """The bytes of ``path`` after the checks that need no reading (kind, size)."""
    try:
        if path.is_dir():
            raise FormatError(f"is a folder, expected a {what} file", path)
        size = path.stat().st_size
        if not path.is_file():
            raise FormatError(f"is not a regular file, expected a {what} file", path)
        limits.check("file_bytes", size, file=path, what=f"the {what} file")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror or exc})", path) from None


def _text(raw: bytes, path: Path) -> str:
    if not raw.strip():
        raise FormatError("is empty, expected a JSON document", path)
    try:
        return raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise FormatError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None


def load(path: Path, what: str = "JSON") -> Any:
    """Parse the JSON file ``path``; every problem is one FormatError (see the module docstring)."""
    raw = _read(path, what)
    text = _text(raw, path)
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"malformed JSON: {exc.msg}", path, f"line {exc.lineno}, column {exc.colno}"
        ) from None
    except _Constant as exc:
        raise FormatError(
            f"malformed JSON: {exc} is not a JSON number", path, _where(text, re.escape(str(exc)))
        ) from None
    except RecursionError:
        limits.check("json_depth", depth(raw), file=path, what="the nesting depth")
        raise FormatError("is nested too deeply for Python's JSON parser", path) from None
    except ValueError:  # an integer past Python's digit limit for conversions
        digits = sys.get_int_max_str_digits()
        raise FormatError(
            f"malformed JSON: an integer of more than {digits} digits",
            path,
            _where(text, rf"\d{{{digits + 1},}}"),
        ) from None
    limits.check("json_depth", depth(raw), file=path, what="the nesting depth")
    return data


def finite(values: Any) -> bool:
    """True when every number in ``values`` (a number or a nested list of numbers) is finite."""
    if isinstance(values, float):
        return math.isfinite(values)
    if isinstance(values, int):
        return True
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).all())
