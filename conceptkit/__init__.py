"""conceptkit: concept datasets in the Broden layout, and Network Dissection of PyTorch models.

The public API, importable from the package itself::

    import conceptkit

    conceptkit.convert("labelme", ["export/"], "data", conceptkit.ConvertOptions(min_images=1))
    findings = conceptkit.validate("data")  # [Finding, ...]
    model = conceptkit.load_model("torchvision:resnet18").module
    result = conceptkit.dissect(model, "data", layers=["layer4"])  # DissectResult
    result.save("run")
    conceptkit.build_report("run")  # run/html, run/plots

=====================  =========================================================
name                   what it is
=====================  =========================================================
``convert``            :func:`conceptkit.convert.convert`, with ``ConvertOptions``
``validate``           :func:`conceptkit.validate.validate`, returning ``Finding`` s
``load_model``         :func:`conceptkit.dissection.models.load_model`
``dissect``            :func:`conceptkit.dissection.run.dissect` -> ``DissectResult``
``analyse``            :func:`conceptkit.consistency.analyse` -> ``ConsistencyReport``
``consensus``          :func:`conceptkit.consistency.consensus`
``build_report``       :func:`conceptkit.report.build` (a run's html/ and plots/)
``compare_runs``       :func:`conceptkit.report.compare` (several runs side by side)
``BrodenDataset``      :class:`conceptkit.dissection.data.BrodenDataset`
``read_meta``          :func:`conceptkit.broden.read_meta` -> ``BrodenMeta``
``read_index``         :func:`conceptkit.broden.read_index` -> ``[IndexRow, ...]``
=====================  =========================================================

Everything is imported on first use (PEP 562), so ``import conceptkit`` loads neither torch nor
pandas nor matplotlib.

``conceptkit.convert`` and ``conceptkit.validate`` are also the names of the modules that
define those functions. Importing such a module sets the package attribute of the same name to
the module (that is how ``import a.b`` works), which would replace a function stored there. So
the package attribute *is* the module, made callable: ``conceptkit.convert(...)`` calls the
function :func:`conceptkit.convert.convert`, and ``conceptkit.convert.ConvertOptions``,
``from conceptkit.convert import ...`` and ``import conceptkit.convert as m`` keep working, in
any import order.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from conceptkit.broden import BrodenMeta, IndexRow, read_index, read_meta
    from conceptkit.consistency import ConsistencyReport, analyse, consensus
    from conceptkit.convert import ConvertOptions, convert
    from conceptkit.dissection.data import BrodenDataset
    from conceptkit.dissection.models import LoadedModel, load_model
    from conceptkit.dissection.results import DissectResult
    from conceptkit.dissection.run import dissect
    from conceptkit.report import build as build_report
    from conceptkit.report import compare as compare_runs
    from conceptkit.validate import Finding, validate

# public name -> (module, attribute in it)
_EXPORTS: dict[str, tuple[str, str]] = {
    "BrodenDataset": ("conceptkit.dissection.data", "BrodenDataset"),
    "BrodenMeta": ("conceptkit.broden", "BrodenMeta"),
    "ConsistencyReport": ("conceptkit.consistency", "ConsistencyReport"),
    "ConvertOptions": ("conceptkit.convert", "ConvertOptions"),
    "DissectResult": ("conceptkit.dissection.results", "DissectResult"),
    "Finding": ("conceptkit.validate", "Finding"),
    "IndexRow": ("conceptkit.broden", "IndexRow"),
    "LoadedModel": ("conceptkit.dissection.models", "LoadedModel"),
    "analyse": ("conceptkit.consistency", "analyse"),
    "build_report": ("conceptkit.report", "build"),
    "compare_runs": ("conceptkit.report", "compare"),
    "consensus": ("conceptkit.consistency", "consensus"),
    "dissect": ("conceptkit.dissection.run", "dissect"),
    "load_model": ("conceptkit.dissection.models", "load_model"),
    "read_index": ("conceptkit.broden", "read_index"),
    "read_meta": ("conceptkit.broden", "read_meta"),
}
# submodules whose package attribute is the module itself, callable as its function of that name
_CALLABLE_MODULES = ("convert", "validate")

__all__ = [
    "BrodenDataset",
    "BrodenMeta",
    "ConsistencyReport",
    "ConvertOptions",
    "DissectResult",
    "Finding",
    "IndexRow",
    "LoadedModel",
    "__version__",
    "analyse",
    "build_report",
    "compare_runs",
    "consensus",
    "convert",
    "dissect",
    "load_model",
    "read_index",
    "read_meta",
    "validate",
]


class _CallableModule(types.ModuleType):
    """A module that can be called: ``module(...)`` is ``module.<its last name>(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        func = self.__dict__[self.__name__.rpartition(".")[2]]
        return func(*args, **kwargs)


def _callable(module: types.ModuleType) -> types.ModuleType:
    if type(module) is types.ModuleType:
        module.__class__ = _CallableModule
    return module


class _Package(types.ModuleType):
    """The package's own module type: a submodule in ``_CALLABLE_MODULES`` becomes callable the
    moment the import system stores it as a package attribute, however it was imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_MODULES and isinstance(value, types.ModuleType):
            value = _callable(value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name in _CALLABLE_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
