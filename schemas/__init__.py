"""Machine-readable schemas of every file format conceptkit reads or writes.

- ``broden_*.json``: Frictionless Table Schemas of the Broden-layout CSV files.
- format schemas (JSON Schema) of the annotation exports conceptkit reads.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """Return the parsed schema ``name`` (file name with or without ``.json``)."""
    if not name.endswith(".json"):
        name += ".json"
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
