"""conceptkit.limits: defaults, environment overrides, the one-line refusal."""

from __future__ import annotations

import pytest

from conceptkit import limits
from conceptkit.errors import FormatError, UsageError


def test_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limits.get("json_depth") == 200
    monkeypatch.setenv("CONCEPTKIT_LIMIT_JSON_DEPTH", "5_000")
    assert limits.get("json_depth") == 5000
    monkeypatch.setenv("CONCEPTKIT_LIMIT_JSON_DEPTH", "-3")
    with pytest.raises(UsageError, match="CONCEPTKIT_LIMIT_JSON_DEPTH"):
        limits.get("json_depth")
    monkeypatch.setenv("CONCEPTKIT_LIMIT_JSON_DEPTH", "nan")
    with pytest.raises(UsageError):
        limits.get("json_depth")


def test_check_names_file_place_value_and_limit() -> None:
    limits.check("image_side", 65_535, file="a.png", place="header")  # at the limit: fine
    with pytest.raises(FormatError) as info:
        limits.check("image_side", 50_000 * 2, file="a.png", place="header", what="width")
    text = str(info.value)
    assert text.startswith("a.png: header: width declares 100,000, over the limit of 65,535")
    assert "CONCEPTKIT_LIMIT_IMAGE_SIDE" in text


def test_every_limit_is_described() -> None:
    rows = limits.describe()
    assert {r[0] for r in rows} == set(limits.LIMITS)
    assert all(r[1] > 0 and r[2].startswith("CONCEPTKIT_LIMIT_") and r[3] for r in rows)
