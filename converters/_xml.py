"""Safe, streaming XML parsing with line numbers, for the XML readers (CVAT, LabelMe XML).

Built on the standard library's expat parser, which reports the line of every start tag. Any
``<!DOCTYPE ...>`` (and so any ``<!ENTITY ...>`` declaration) is refused with one
:class:`~conceptkit.errors.FormatError`: annotation exports never need one, and refusing it
rules out entity-expansion bombs ("billion laughs") and external entities.

- :func:`iter_elements` streams: it yields each element at a chosen depth (1 = the children of the
  root) as soon as its end tag is read, with its whole subtree, and keeps nothing else, so a
  10,000-image CVAT file is read in memory bounded by the largest single element.
- :func:`parse` reads a whole (small) document, from a file or from bytes, into one
  :class:`Node` tree; :attr:`Node.place` (``<tag> line N``) names an element in errors.
- :func:`number` reads a number from an attribute or text strictly (finite, ASCII digits).

Limits (:mod:`conceptkit.limits`): nesting deeper than ``xml_depth`` and an attribute value
longer than ``xml_attribute_chars`` are refused (expat's time on one token grows with the
square of its length, so an over-long run without ``<`` is refused before expat reads it all).

Malformed XML raises FormatError naming the file, the line and the column.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.parsers import expat

from conceptkit import limits
from conceptkit.errors import FormatError

_CHUNK = 1 << 16
#: bytes a run without '<' may exceed the attribute limit by (the rest of its tag) before the
#: run alone is refused; values themselves are checked exactly when their tag is complete
_RUN_SLACK = 1 << 16


def number(text: str) -> float | None:
    """The finite number ``text`` states (spaces around allowed), else None.

    Stricter than ``float``: no ``nan``/``inf``, no ``1e999`` (it overflows), no digit
    separators (``1_0``) and no digits other than ASCII ``0``-``9`` (``float`` takes ``٣``).
    Among ASCII strings without ``_``, ``float`` accepts only decimal notation and the
    non-finite words, so those two tests and finiteness make it strict.
    """
    if not text.isascii() or "_" in text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(eq=False, slots=True)
class Node:
    """One XML element: ``tag``, ``attrib``, ``line`` (of its start tag), ``children``, ``text``.

    ``text`` is the element's own character data (all pieces joined, children's excluded).
    """

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[Node] = field(default_factory=list)
    text: str = ""

    @property
    def place(self) -> str:
        """``<tag> line N``: the element and its line, for error messages."""
        return f"<{self.tag}> line {self.line}"

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def find(self, tag: str) -> Node | None:
        """The first child named ``tag`` (a ``a/b`` path descends), else None."""
        node: Node | None = self
        for part in tag.split("/"):
            assert node is not None
            node = next((c for c in node.children if c.tag == part), None)
            if node is None:
                return None
        return node

    def findall(self, tag: str) -> list[Node]:
        """Every child named ``tag``."""
        return [c for c in self.children if c.tag == tag]

    def findtext(self, tag: str, default: str = "") -> str:
        """The stripped text of the first child named ``tag`` (path allowed), else ``default``."""
        node = self.find(tag)
        return node.text.strip() if node is not None else default


class _Builder:
    """The expat handlers of :func:`iter_elements`: build the elements at ``depth`` and below."""

    def __init__(
        self, parser: Any, file: str | Path, depth: int, root_tag: str | None, max_depth: int
    ) -> None:
        self.parser = parser
        self.file = file
        self.depth = depth
        self.root_tag = root_tag
        self.max_depth = max_depth
        self.max_attribute = limits.get("xml_attribute_chars")
        self.stack: list[Node] = []
        self.text: list[list[str]] = []
        self.ready: deque[Node] = deque()

    def where(self) -> str:
        return f"line {self.parser.CurrentLineNumber}"

    def refuse_doctype(self, name: str, *_: object) -> None:
        raise FormatError(
            f"a <!DOCTYPE {name}> declaration is refused (entity expansion and external "
            "entities are not allowed in annotation exports)",
            self.file,
            self.where(),
        )

    def refuse_entity(self, name: str, *_: object) -> None:
        raise FormatError(
            f"an <!ENTITY {name}> declaration is refused (entity expansion is not allowed)",
            self.file,
            self.where(),
        )

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        node = Node(tag, attrib, self.parser.CurrentLineNumber)
        if not self.stack and self.root_tag is not None and tag != self.root_tag:
            raise FormatError(
                f"the root element is <{tag}>, expected <{self.root_tag}>", self.file, node.place
            )
        if len(self.stack) >= self.max_depth:
            limits.check(
                "xml_depth",
                len(self.stack) + 1,
                file=self.file,
                place=node.place,
                what="the XML nesting depth",
            )
        for key, value in attrib.items():
            if len(value) > self.max_attribute:
                limits.check(
                    "xml_attribute_chars",
                    len(value),
                    file=self.file,
                    place=node.place,
                    what=f"attribute {key!r}",
                )
        if len(self.stack) > self.depth:
            self.stack[-1].children.append(node)
        self.stack.append(node)
        self.text.append([])

    def end(self, tag: str) -> None:
        node = self.stack.pop()
        pieces = self.text.pop()
        if pieces:
            node.text = "".join(pieces)
        if len(self.stack) == self.depth:
            self.ready.append(node)

    def chars(self, data: str) -> None:
        if len(self.stack) > self.depth:
            self.text[-1].append(data)


def _parser(file: str | Path, depth: int, root_tag: str | None) -> tuple[Any, _Builder]:
    """A namespace-free expat parser wired to a new :class:`_Builder`."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    builder = _Builder(parser, file, depth, root_tag, limits.get("xml_depth"))
    parser.StartDoctypeDeclHandler = builder.refuse_doctype
    parser.EntityDeclHandler = builder.refuse_entity
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.chars
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser, builder


class _Feeder:
    """Feeds chunks to expat, refusing a run without ``<`` longer than the attribute limit.

    XML forbids ``<`` inside an attribute value, so a longer run is an over-long attribute (or
    text run): it is refused before expat, whose time on one token grows with its square,
    sees it all.
    """

    def __init__(self, parser: Any, file: str | Path) -> None:
        self.parser = parser
        self.file = file
        self.run = 0
        self.limit = limits.get("xml_attribute_chars") + _RUN_SLACK

    def feed(self, data: bytes, final: bool) -> None:
        last = data.rfind(b"<")
        run = self.run + len(data) if last < 0 else len(data) - last - 1
        longest = self.run + (len(data) if last < 0 else data.find(b"<"))
        if max(run, longest) > self.limit:
            limits.check(
                "xml_attribute_chars",
                max(run, longest),
                file=self.file,
                place=f"after line {self.parser.CurrentLineNumber}",
                what="a run of XML without '<' (an attribute value or text)",
            )
        self.run = run
        try:
            self.parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise FormatError(
                f"malformed XML: {expat.ErrorString(exc.code)}",
                self.file,
                f"line {exc.lineno}, column {exc.offset + 1}",
            ) from None


def iter_elements(
    stream: IO[bytes],
    file: str | Path,
    depth: int = 1,
    root_tag: str | None = None,
) -> Iterator[Node]:
    """Yield every element at ``depth`` below the root, complete, in document order.

    ``depth`` 0 yields the root itself (the whole tree) at the end. Elements above ``depth``
    are not kept (their text and children are dropped). ``root_tag``: the expected root
    element; another root raises FormatError. Documents nested deeper than the limit
    ``xml_depth`` and attribute values longer than ``xml_attribute_chars`` are refused.
    """
    parser, builder = _parser(file, depth, root_tag)
    feeder = _Feeder(parser, file)
    while True:
        chunk = _read(stream, file)
        if not chunk:
            break
        feeder.feed(chunk, False)
        while builder.ready:
            yield builder.ready.popleft()
    feeder.feed(b"", True)
    while builder.ready:
        yield builder.ready.popleft()


def _read(stream: IO[bytes], file: str | Path) -> bytes:
    """The next chunk of ``stream``; a read error (a bad zip member, I/O) is a FormatError."""
    try:
        return stream.read(_CHUNK)
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror or exc})", file) from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise FormatError(f"cannot be read from the archive ({exc})", file) from None


def parse(path: Path, root_tag: str | None = None, *, data: bytes | None = None) -> Node:
    """The whole document at ``path`` (or ``data``, named ``path``) as one tree, for small files.

    A folder, a file over the limit ``file_bytes`` or one that cannot be opened raises
    FormatError.
    """
    try:
        if data is None:
            if path.is_dir():
                raise FormatError("is a folder, expected an XML file", path)
            limits.check("file_bytes", path.stat().st_size, file=path, what="the XML file")
        stream: IO[bytes] = io.BytesIO(data) if data is not None else open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror})", file=path) from None
    with stream:
        for root in iter_elements(stream, path, depth=0, root_tag=root_tag):
            return root
    raise FormatError("empty XML document", path, "line 1")  # pragma: no cover
