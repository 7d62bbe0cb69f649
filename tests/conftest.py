"""Shared fixtures: the test data in tests/data (cut from the project's shared fixtures), helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
FIXTURES = DATA / "fixtures"
GOLDEN = DATA / "golden" / "netdissect-lite" / "resnet18-seed0-mini_broden"


def _need(path: Path) -> Path:
    """The test data lives in the repository: a missing piece is a failure, never a skip."""
    if not path.exists():
        pytest.fail(f"{path} is missing from the repository's test data", pytrace=False)
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


def broden_slice(src: Path, dst: Path, n: int) -> Path:
    """A Broden folder of the first ``n`` rows of ``src`` (CSV tables rewritten, images linked)."""
    from conceptkit.broden import read_index, read_meta, write_index, write_tables

    meta = read_meta(src)
    dst.mkdir()
    write_tables(dst, meta.categories, meta.labels, meta.codes)
    write_index(dst, read_index(src)[:n], meta.index_categories)
    (dst / "images").symlink_to(src / "images", target_is_directory=True)
    return dst


@pytest.fixture
def mini_slice(mini_broden: Path, tmp_path: Path) -> Callable[[int], Path]:
    """``mini_slice(n)``: the first ``n`` images of mini_broden as a Broden folder in tmp_path."""
    return lambda n: broden_slice(mini_broden, tmp_path / f"mini{n}", n)


def resnet18_weights(path: Path, seed: int = 0) -> Path:
    """Save a random-init torchvision ResNet-18 state_dict (seeded) to ``path``."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def run_dissect_cli(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """``python -m conceptkit dissect ARGS`` in a subprocess, outside any torchrun environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "conceptkit", "dissect", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        **kw,
    )
