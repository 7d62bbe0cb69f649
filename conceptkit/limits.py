"""Limits on what a file may declare, checked before anything is allocated.

Files from strangers can declare sizes that would take gigabytes to honour (a 300-byte PNG that
claims 50000x50000 pixels, an RLE mask of 10^12 pixels, a label number of 2**31). Every reader
checks the sizes a file declares against these limits first and refuses with one line naming
the file, the place, the declared value and the limit.

The defaults are generous for real data (Broden's largest image is far below them). Raise one
for a run with the environment variable ``CONCEPTKIT_LIMIT_<NAME>`` (upper case), e.g.
``CONCEPTKIT_LIMIT_IMAGE_PIXELS=400000000``. ``conceptkit limits`` is not a command; the table
is in the README's "Safety" section and in :data:`LIMITS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from conceptkit.errors import FormatError, UsageError


@dataclass(frozen=True)
class Limit:
    """One limit: its default and what it bounds."""

    name: str
    default: int
    what: str


#: every limit, by name
LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        Limit("image_pixels", 178_956_970, "pixels of one image or mask (width x height)"),
        Limit("image_side", 65_535, "width or height of one image, mask or label plane"),
        Limit("file_bytes", 2 << 30, "bytes of one annotation document read into memory"),
        Limit("zip_member_bytes", 1 << 30, "expanded bytes of one zip member"),
        Limit("zip_total_bytes", 16 << 30, "expanded bytes of all members of one zip"),
        Limit("zip_ratio", 1_000, "expansion ratio of one zip member (expanded / compressed)"),
        Limit("zip_members", 1_000_000, "members of one zip archive"),
        Limit("json_depth", 200, "nesting depth of a JSON document"),
        Limit("xml_attribute_chars", 10 << 20, "characters of one XML attribute value"),
        Limit("xml_depth", 200, "nesting depth of an XML document"),
        Limit("video_frames", 1_000_000, "frames of one annotated video"),
        Limit("label_number", 1 << 20, "a label number in label.csv, an index cell or a plane"),
        Limit("csv_field_chars", 128 << 10, "characters of one CSV field"),
        Limit("points", 10_000_000, "vertices of one polygon or polyline"),
        Limit("model_pickle_bytes", 256 << 20, "bytes of one pickle inside a model file"),
    )
}


def _env_name(name: str) -> str:
    return f"CONCEPTKIT_LIMIT_{name.upper()}"


def get(name: str) -> int:
    """The limit ``name`` in force: ``CONCEPTKIT_LIMIT_<NAME>`` if set, else the default."""
    limit = LIMITS[name]
    env = _env_name(name)
    text = os.environ.get(env)
    if text is None or text == "":
        return limit.default
    text = text.strip().replace("_", "")
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise UsageError(f"{env}={os.environ[env]!r} is not a positive whole number")
    return int(text)


def check(
    name: str,
    value: int | float,
    *,
    file: str | Path | None = None,
    place: str | None = None,
    what: str | None = None,
    error: type[Exception] = FormatError,
) -> None:
    """Raise ``error`` (FormatError by default) when ``value`` exceeds the limit ``name``.

    The message names the declared value, the limit and how to raise it; ``what`` overrides the
    limit's own description of the value (e.g. "mask 50000x50000").
    """
    limit = get(name)
    if value > limit:
        desc = what or LIMITS[name].what
        message = f"{desc} declares {value:,}, over the limit of {limit:,}"
        hint = f"raise it with {_env_name(name)}=N if the file is trusted"
        raise error(message, file=file, place=place, hint=hint)  # type: ignore[call-arg]


def describe() -> list[tuple[str, int, str, str]]:
    """``(name, value in force, environment variable, what)`` for every limit (for docs/CLI)."""
    return [(n, get(n), _env_name(n), lim.what) for n, lim in LIMITS.items()]
