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
import re
from dataclasses import dataclass, field
from pathlib import Path

from conceptkit.annotations import Shape
from conceptkit.errors import FormatError

HEADER = ("name", "category", "synonyms")
IGNORE_CATEGORY = "ignore"
DROP_CATEGORY = "drop"
#: Category order of the output (Broden's), then any other category alphabetically.
CATEGORY_ORDER = ("object", "part", "material", "scene", "texture", "color")
_SPACE = re.compile(r"\s+")
_TRUE = {"yes", "true", "1", "y"}


def normalise(name: str) -> str:
    """Case-folded, stripped, inner whitespace collapsed: ``'  Traffic  Light'`` -> ``'traffic light'``."""
    return _SPACE.sub(" ", name).strip().casefold()


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
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise FormatError(f"cannot be read ({exc.strerror})", file=path) from None
        rows = list(csv.reader(text.splitlines()))
        if not rows or [h.strip().lower() for h in rows[0][:3]] != list(HEADER):
            raise FormatError(
                "header must be 'name,category,synonyms' (optionally ',plural')",
                file=path,
                place="line 1",
            )
        vocab = cls(source=str(path))
        for line, row in enumerate(rows[1:], start=2):
            if not row or not any(c.strip() for c in row):
                continue
            name = normalise(row[0])
            category = row[1].strip() if len(row) > 1 else ""
            if not name or not category:
                raise FormatError("needs a name and a category", file=path, place=f"line {line}")
            if not re.fullmatch(r"[A-Za-z0-9_-]+", category):
                raise FormatError(
                    f"category {category!r} must be letters, digits, '_' or '-'",
                    file=path,
                    place=f"line {line}, column category",
                )
            syns = [normalise(s) for s in (row[2] if len(row) > 2 else "").split(";")]
            plural = len(row) > 3 and row[3].strip().lower() in _TRUE
            raw = {name, *(s for s in syns if s)}
            if plural:
                raw |= {p for r in raw for p in plural_forms(r)}
            for r in sorted(raw):
                entry = (name, category)
                if entry not in vocab.table.setdefault(r, []):
                    vocab.table[r].append(entry)
        return vocab

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
        """The mapping used, as a vocabulary CSV (sorted by category, then name)."""
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        for name, category in sorted(self.used, key=lambda k: (category_rank(k[1]), k[0])):
            syns = sorted(self.used[(name, category)] - {name})
            writer.writerow([name, category, ";".join(syns)])
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> None:
        """Write :meth:`csv_text` to ``path``."""
        Path(path).write_text(self.csv_text(), encoding="utf-8")
