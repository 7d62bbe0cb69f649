"""Shared fixtures: paths to ../shared (skipped with a reason where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
GOLDEN = SHARED / "golden" / "netdissect-lite" / "resnet18-seed0-mini_broden"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared fixtures live beside the repository)")
    return path


@pytest.fixture
def mini_broden() -> Path:
    """The shared 200-image Broden-layout fixture."""
    return _need(FIXTURES / "mini_broden")


@pytest.fixture
def formats_dir() -> Path:
    """Real exports of LabelMe, CVAT and COCO."""
    return _need(FIXTURES / "formats")


@pytest.fixture
def golden_dir() -> Path:
    """NetDissect-Lite's outputs on mini_broden for the seeded ResNet-18."""
    return _need(GOLDEN)
