"""Exception families a user can act on.

Every error carries the file, the place inside it (CSV row and column, JSON path, XML element and
line, pixel) and what was expected. The CLI prints ``str(error)`` as one line and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class ConceptkitError(Exception):
    """Base class: a problem with the user's input, reported as one line."""

    kind = "error"

    def __init__(
        self,
        message: str,
        file: str | Path | None = None,
        place: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.place = place
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.place:
                where += f": {self.place}"
            where += ": "
        elif self.place:
            where = f"{self.place}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class FormatError(ConceptkitError):
    """An annotation export (LabelMe, CVAT, COCO) is malformed or contradicts itself."""

    kind = "format error"


class LayoutError(ConceptkitError):
    """A Broden-layout folder is missing files or holds inconsistent ones."""

    kind = "layout error"


class ModelLoadError(ConceptkitError):
    """A model file could not be loaded into a module."""

    kind = "model error"


class UsageError(ConceptkitError):
    """Options that do not fit together, or a target that exists without --force."""

    kind = "usage error"
