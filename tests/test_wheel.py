"""A wheel built from the repository installs into a fresh virtual environment and works from
any folder: the schemas and the report's assets are in it, and ``conceptkit convert`` and
``conceptkit validate`` run from the installed package, not from the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

# what a wheel is built from (pyproject.toml names the packages; README.md is its readme)
SOURCES = ("pyproject.toml", "README.md", "conceptkit", "converters", "schemas")
REPORT_ASSETS = ("page.html", "report.css", "report.js")


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"$ {' '.join(map(str, args))}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"  # nothing from the network: the wheel and the system packages
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (a build writes build/ and *.egg-info
    next to them; the repository stays untouched)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = root / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", src,
         "-w", dist],
        root,
        _clean_env(),
    )  # fmt: skip
    (found,) = dist.glob("conceptkit-*.whl")
    return found


def _modules() -> set[str]:
    """Dotted names of every module of the sources, as installed."""
    names = set()
    tops = (
        ("conceptkit", "conceptkit"),
        ("converters", "conceptkit.converters"),
        ("schemas", "conceptkit.schemas"),
    )
    for top, package in tops:
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO / top).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1:] != ("__main__",):
                names.add(".".join((package, *parts)))
    return names


def test_wheel_holds_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = sorted(p.name for p in (REPO / "schemas").glob("*.json"))
    assert schemas, "the repository has schemas/*.json"
    for name in schemas:
        assert f"conceptkit/schemas/{name}" in names
    for name in REPORT_ASSETS:
        assert f"conceptkit/report/{name}" in names
    converters = sorted(p.name for p in (REPO / "converters").glob("*.py"))
    for name in converters:
        assert f"conceptkit/converters/{name}" in names
    subpackages = {p.parent.relative_to(REPO).as_posix() for p in REPO.glob("conceptkit/**/*.py")}
    for sub in subpackages:
        assert any(n.startswith(sub + "/") for n in names), f"{sub} is not in the wheel"


def test_wheel_installs_and_runs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    env = _clean_env()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path, env)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "--no-deps", wheel], tmp_path, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()
    where = _run([py, "-c", "import conceptkit; print(conceptkit.__file__)"], work, env)
    site = Path(
        _run(
            [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work, env
        ).strip()
    )
    assert Path(where.strip()).is_relative_to(site), where  # the venv's copy, not the sources
    examples = REPO / "examples" / "data"
    cli = venv / "bin" / "conceptkit"
    out = _run(
        [cli, "convert", "labelme", examples / "labelme", "-o", "X",
         "--concepts", examples / "concepts.csv", "--min-images", "1"],
        work,
        env,
    )  # fmt: skip
    assert "12 images" in out
    assert (work / "X" / "index.csv").is_file()
    out = _run([cli, "validate", "X"], work, env)
    assert "0 errors" in out or "no problem" in out.lower(), out
    # every module of the sources is imported from the venv (a module missing from the wheel
    # would otherwise be found in the sources through the system's editable install)
    modules = sorted(_modules())
    code = (
        "import importlib, sys; "
        f"print('\\n'.join(importlib.import_module(m).__file__ for m in {modules!r}))"
    )
    files = _run([py, "-c", code], work, env).split()
    assert len(files) == len(modules)
    outside = [m for m, f in zip(modules, files) if not Path(f).is_relative_to(site)]
    assert outside == [], f"imported from outside the venv: {outside}"
    # the schemas and report assets are read from the installed package
    code = (
        "from importlib import resources; import conceptkit.report, conceptkit.schemas; "
        "print(resources.files('conceptkit.schemas').joinpath('broden_index.json').is_file(), "
        "resources.files('conceptkit.report').joinpath('page.html').is_file(), "
        "str(resources.files('conceptkit.report')))"
    )
    shown = _run([py, "-c", code], work, env).split()
    assert shown[:2] == ["True", "True"] and Path(shown[2]).is_relative_to(site)
