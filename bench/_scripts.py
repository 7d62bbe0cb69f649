"""The scripts of bench/ (files without a .py suffix) as modules, for the ones that reuse
another's code (bench/dissect's synthetic Broden writer above all)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent


def load(name: str) -> ModuleType:
    """bench/NAME, executed as the module ``bench_NAME``."""
    loader = importlib.machinery.SourceFileLoader(f"bench_{name}", str(BENCH / name))
    spec = importlib.util.spec_from_loader(f"bench_{name}", loader)
    if spec is None:
        raise ImportError(f"cannot load bench/{name}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
