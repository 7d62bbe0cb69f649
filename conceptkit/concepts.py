"""The concept vocabulary: raw annotation names -> (canonical name, Broden category).

A vocabulary file is a CSV with the header ``name,category,synonyms`` and an optional fourth
column ``plural``::

    name,category,synonyms,plural
    car,object,automobile;auto,yes
    wheel,part,,yes
    kitchen,scene,,

``synonyms`` are ``;``-separated raw names merged into ``name``. ``plural`` = yes/true/1 also
accepts the English plural forms of the name and its synonyms (``cars``, ``buses``,
``ladies``). Names are normalised before matching: case-folded, surrounding whitespace stripped,
runs of whitespace collapsed to one space. Two special categories: ``ignore`` (the region is
unknown: it clears every plane behind it, as labelme2voc's ``__ignore__``) and ``drop`` (the
shape is left out).

Without a file (or for names a file does not list) the defaults are: shapes -> ``object``,
LabelMe XML parts -> ``part``, image tags and flags -> ``scene``, ``__ignore__`` -> ``ignore``;
the canonical name is the normalised raw name. A name may be listed once per category; a lookup
prefers the row whose category is the default for where the name was used.

:meth:`Vocabulary.write_csv` writes the mapping a run actually used (``concepts.csv`` in the
output dataset), so ``--concepts OUT/concepts.csv`` repeats the run.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from conceptkit import limits
from conceptkit.annotations import Shape
from conceptkit.errors import FormatError

HEADER = ("name", "category", "synonyms")
IGNORE_CATEGORY = "ignore"
DROP_CATEGORY = "drop"
#: Category order of the output (Broden's), then any other category alphabetically.
CATEGORY_ORDER = ("object", "part", "material", "scene", "texture", "color")
_SPACE = re.compile(r"\s+")
_TRUE = {"yes", "true", "1", "y"}
_FALSE = {"no", "false", "0", "n", ""}
_CATEGORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: how to rename a label, for the errors of :func:`check_name`
RENAME_HINT = (
    "rename it through the concept vocabulary: --concepts FILE, a CSV with the header "
    "name,category,synonyms and a row NEW NAME,CATEGORY,OLD NAME"
)


def normalise(name: str) -> str:
    """Case-folded, stripped, inner whitespace collapsed: ``'  Traffic  Light'`` -> ``'traffic light'``."""
    return _SPACE.sub(" ", name).strip().casefold()


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a label of the output, or None when it can.

    A label name is written into ``label.csv``, ``c_<cat>.csv`` and ``concepts.csv``, files a
    user opens in a spreadsheet: it may not hold ``;`` (the item separator of Broden's CSV cells
    and of the vocabulary's synonyms) or a control character, and may not start like a formula
    (``=``, ``+``, ``@``, or ``-`` not followed by digits only; ``-`` alone is Broden's
    "unlabelled").
    """
    if ";" in name:
        return "holds ';', which separates items in Broden's CSV files"
    if _CONTROL.search(name):
        return "holds a control character"
    if name[:1] in ("=", "+", "@") or (name[:1] == "-" and not name[1:].isdigit()):
        return f"starts with {name[:1]!r}, which a spreadsheet runs as a formula"
    return None


def valid_category(category: str) -> bool:
    """A category name the layout can hold (it becomes ``c_<category>.csv`` and plane file
    names): letters, digits, ``_`` and ``-``, starting with a letter or digit."""
    return _CATEGORY.fullmatch(category) is not None


def plural_forms(name: str) -> set[str]:
    """English plural forms of a (normalised) name; only its last word is inflected."""
    if not name:
        return set()
    forms = {name + "s"}
    if re.search(r"(s|x|z|ch|sh)$", name):
        forms.add(name + "es")
    if re.search(r"[^aeiou]y$", name):
        forms.add(name[:-1] + "ies")
    if name.endswith("f"):
        forms.add(name[:-1] + "ves")
    if name.endswith("fe"):
        forms.add(name[:-2] + "ves")
    return forms


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every row of a vocabulary CSV; FormatError when unreadable."""
    try:
        limits.check("file_bytes", path.stat().st_size, file=path)
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror or exc})", file=path) from None
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"is not UTF-8 text (byte {exc.start})", file=path, place="vocabulary CSV"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            for cell in row:
                limits.check(
                    "csv_field_chars", len(cell), file=path, place=f"line {reader.line_num}"
                )
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise FormatError(
            f"is not a valid CSV ({exc})", file=path, place=f"line {reader.line_num}"
        ) from None
    return rows


def category_rank(category: str) -> tuple[int, str]:
    """Sort key putting Broden's categories first, in Broden's order."""
    if category in CATEGORY_ORDER:
        return (CATEGORY_ORDER.index(category), "")
    return (len(CATEGORY_ORDER), category)


@dataclass
class Vocabulary:
    """Name -> (canonical name, category) lookups, remembering what was used.

    ``table[normalised raw name]`` lists ``(canonical, category)`` candidates in file order.
    """

    table: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    source: str | None = None
    used: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @classmethod
    def from_csv(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary CSV; FormatError naming the line for malformed rows."""
        path = Path(path)
        rows = _read_rows(path)
        if not rows or [h.strip().lower() for h in rows[0][1][:3]] != list(HEADER):
            raise FormatError(
                "header must be 'name,category,synonyms' (optionally ',plural')",
                file=path,
                place="line 1",
            )
        vocab = cls(source=str(path))
        for line, row in rows[1:]:
            if row and any(c.strip() for c in row):
                vocab._add_row(row, path, line)
        return vocab

    def _add_row(self, row: list[str], path: Path, line: int) -> None:
        """One vocabulary row; FormatError naming the line and column when it is malformed."""
        name = normalise(row[0])
        category = row[1].strip() if len(row) > 1 else ""
        if not name or not category:
            raise FormatError("needs a name and a category", file=path, place=f"line {line}")
        problem = name_problem(name)
        if problem:
            raise FormatError(
                f"name {name!r} {problem}", file=path, place=f"line {line}, column name"
            )
        if not _CATEGORY.fullmatch(category):
            raise FormatError(
                f"category {category!r} must be letters, digits, '_' or '-' "
                "(starting with a letter or digit)",
                file=path,
                place=f"line {line}, column category",
            )
        syns = [normalise(s) for s in (row[2] if len(row) > 2 else "").split(";")]
        flag = row[3].strip().lower() if len(row) > 3 else ""
        if flag not in _TRUE | _FALSE:
            raise FormatError(
                f"plural must be yes or no (or true/false, 1/0, empty), not {row[3]!r}",
                file=path,
                place=f"line {line}, column plural",
            )
        raw = {name, *(s for s in syns if s)}
        if flag in _TRUE:
            raw |= {p for r in raw for p in plural_forms(r)}
        for r in sorted(raw):
            entry = (name, category)
            if entry not in self.table.setdefault(r, []):
                self.table[r].append(entry)

    def lookup(self, raw: str, default: str) -> tuple[str, str] | None:
        """(canonical name, category) of ``raw`` used where ``default`` is the default category.

        The one place for the rules: the name is normalised; a listed name takes the row of
        ``default`` when it has one, else its first row; an unlisted name keeps its normalised
        form and ``default`` (``__ignore__``: the ``ignore`` category). None for names mapped to
        ``drop`` and for empty names. Records nothing (see :meth:`resolve`).
        """
        chosen = self._choose(normalise(raw), default)
        if chosen[1] == DROP_CATEGORY or not chosen[0]:
            return None
        return chosen

    def resolve(self, raw: str, default: str) -> tuple[str, str] | None:
        """:meth:`lookup`, remembering the mapping for :meth:`csv_text` and :meth:`unknown`."""
        key = normalise(raw)
        chosen = self._choose(key, default)
        self.used.setdefault(chosen, set()).add(key)
        if chosen[1] == DROP_CATEGORY or not chosen[0]:
            return None
        return chosen

    def resolve_shape(self, shape: Shape, record: bool = True) -> tuple[str, str] | None:
        """(canonical name, category) of a shape; its default category is the one the format
        forced (``Shape.category``) or ``object``. An ignore region (``Shape.ignore``, COCO
        crowd) is ``(its label, ignore)`` whatever its name, and is never recorded."""
        if shape.ignore:
            return (shape.label, IGNORE_CATEGORY)
        default = shape.category or "object"
        return self.resolve(shape.label, default) if record else self.lookup(shape.label, default)

    def _choose(self, key: str, default: str) -> tuple[str, str]:
        candidates = self.table.get(key)
        if candidates:
            return next((c for c in candidates if c[1] == default), candidates[0])
        if key == "__ignore__":
            return (key, IGNORE_CATEGORY)
        return (key, default)

    def canonical(self, raw: str) -> str:
        """The canonical name of ``raw`` (no category needed; nothing recorded)."""
        key = normalise(raw)
        candidates = self.table.get(key)
        return candidates[0][0] if candidates else key

    def unknown(self) -> list[str]:
        """Names used that a vocabulary file did not list (empty without a file)."""
        if self.source is None:
            return []
        return sorted({k for syns in self.used.values() for k in syns if k not in self.table})

    def csv_text(self) -> str:
        """The mapping used, as a vocabulary CSV (sorted by category, then name).

        A synonyms cell that would start like a spreadsheet formula starts with ``;`` instead
        (an empty piece, dropped on reading), so the file still repeats the run.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        for name, category in sorted(self.used, key=lambda k: (category_rank(k[1]), k[0])):
            syns = ";".join(sorted(self.used[(name, category)] - {name}))
            if syns[:1] in ("=", "+", "@", "-"):
                # a raw name like '=cmd' first: a spreadsheet would run the cell; a leading ';'
                # is an empty piece, dropped when the file is read back
                syns = ";" + syns
            writer.writerow([name, category, syns])
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> None:
        """Write :meth:`csv_text` to ``path``."""
        Path(path).write_text(self.csv_text(), encoding="utf-8")
