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

Malformed XML raises FormatError naming the file, the line and the column.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from xml.parsers import expat

from conceptkit.errors import FormatError

_CHUNK = 1 << 16


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


def iter_elements(
    stream: IO[bytes],
    file: str | Path,
    depth: int = 1,
    root_tag: str | None = None,
) -> Iterator[Node]:
    """Yield every element at ``depth`` below the root, complete, in document order.

    ``depth`` 0 yields the root itself (the whole tree) at the end. Elements above ``depth``
    are not kept (their text and children are dropped). ``root_tag``: the expected root
    element; another root raises FormatError.
    """
    parser = expat.ParserCreate()
    parser.buffer_text = True
    stack: list[Node] = []
    text: list[list[str]] = []
    ready: deque[Node] = deque()

    def refuse_doctype(name: str, *_: object) -> None:
        raise FormatError(
            f"a <!DOCTYPE {name}> declaration is refused (entity expansion and external "
            "entities are not allowed in annotation exports)",
            file,
            f"line {parser.CurrentLineNumber}",
        )

    def refuse_entity(name: str, *_: object) -> None:
        raise FormatError(
            f"an <!ENTITY {name}> declaration is refused (entity expansion is not allowed)",
            file,
            f"line {parser.CurrentLineNumber}",
        )

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = Node(tag, attrib, parser.CurrentLineNumber)
        if not stack and root_tag is not None and tag != root_tag:
            raise FormatError(
                f"the root element is <{tag}>, expected <{root_tag}>", file, node.place
            )
        if len(stack) > depth:
            stack[-1].children.append(node)
        stack.append(node)
        text.append([])

    def end(tag: str) -> None:
        node = stack.pop()
        pieces = text.pop()
        if pieces:
            node.text = "".join(pieces)
        if len(stack) == depth:
            ready.append(node)

    def chars(data: str) -> None:
        if len(stack) > depth:
            text[-1].append(data)

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    except AttributeError:  # pragma: no cover - every CPython build has it
        pass

    def feed(data: bytes, final: bool) -> None:
        try:
            parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise FormatError(
                f"malformed XML: {expat.ErrorString(exc.code)}",
                file,
                f"line {exc.lineno}, column {exc.offset + 1}",
            ) from None

    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        feed(chunk, False)
        while ready:
            yield ready.popleft()
    feed(b"", True)
    while ready:
        yield ready.popleft()


def parse(path: Path, root_tag: str | None = None, *, data: bytes | None = None) -> Node:
    """The whole document at ``path`` (or ``data``, named ``path``) as one tree, for small files.

    A file that cannot be opened raises FormatError ``cannot be read (reason)``.
    """
    try:
        stream: IO[bytes] = io.BytesIO(data) if data is not None else open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror})", file=path) from None
    with stream:
        for root in iter_elements(stream, path, depth=0, root_tag=root_tag):
            return root
    raise FormatError("empty XML document", path, "line 1")  # pragma: no cover
