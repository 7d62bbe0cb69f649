"""Which torchvision architecture a bare state_dict belongs to, from its keys and shapes alone.

A state_dict given without ``--arch`` is compared with the key -> shape signature of every
torchvision classification architecture. Candidates are built on the meta device (no memory, no
initialisation), only for the model families whose top-level key names match the file's, and
their signatures are cached on disk per torch and torchvision version. A head of another size
(``fc.weight: (365, 512)``) is recognised and reported as ``num_classes``.

The same signatures tell :mod:`~conceptkit.dissection.models.loading` why a state_dict does not
fit the architecture the user named (missing keys, unexpected keys, shape mismatches).
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from conceptkit.dissection.models._text import SHOW, names, shape
from conceptkit.errors import ModelLoadError

Signature = dict[str, tuple[int, ...]]

_AUX = frozenset({"AuxLogits", "aux1", "aux2"})  # inception_v3 / googlenet auxiliary heads
_SIG_MEMO: dict[str, Signature] = {}
_DISK_READ: set[str] = set()  # cache files already merged into _SIG_MEMO


# --------------------------------------------------------------------------------------------
# torchvision's architectures


def tv() -> Any:
    """``torchvision.models``, imported on first use (it costs about a second)."""
    import torchvision.models as tvm

    return tvm


def classification_names() -> list[str]:
    """Sorted names of torchvision's classification models (``alexnet`` ... ``wide_resnet101_2``)."""
    tvm = tv()
    return sorted(tvm.list_models(module=tvm))


def segmentation_names() -> list[str]:
    """Sorted names of torchvision's segmentation models (``deeplabv3_resnet50``, ``fcn_*``, ...)."""
    tvm = tv()
    return sorted(tvm.list_models(module=tvm.segmentation))


def is_known(arch: str) -> bool:
    """Whether ``arch`` names a torchvision classification or segmentation model."""
    return arch in classification_names() + segmentation_names()


def default_classes(arch: str) -> int:
    """The builder's default head size: 21 for segmentation models, 1000 for classification."""
    return 21 if arch in segmentation_names() else 1000


def builder_kwargs(name: str, num_classes: int | None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``torchvision.models.get_model``: no weights, no backbone download."""
    tvm = tv()
    kwargs: dict[str, Any] = {"weights": None}
    params = inspect.signature(tvm.get_model_builder(name)).parameters
    if "weights_backbone" in params:
        kwargs["weights_backbone"] = None
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs.update(extra)
    return kwargs


def unknown_arch(arch: str, spec: str | None) -> ModelLoadError:
    """The error for an ``--arch`` that torchvision does not know, with close names."""
    known = classification_names() + segmentation_names()
    close = difflib.get_close_matches(arch, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
    return ModelLoadError(
        f"unknown architecture {arch!r} (not a torchvision classification or segmentation "
        f"model, nor 'package.module:callable'); {hint}",
        file=spec,
    )


# --------------------------------------------------------------------------------------------
# building on the meta device

# constructors that take a shape and no data: inside _ShapedOnMeta they make meta tensors
_SHAPED = frozenset(
    {torch.empty, torch.empty_strided, torch.zeros, torch.ones, torch.full}
    | {torch.rand, torch.randn, torch.randint}
)


class _ShapedOnMeta(TorchFunctionMode):
    """Like ``with torch.device("meta")``, but tensors made from data stay on the CPU.

    For builders that compute with tensors while building (regnet derives its stage widths with
    ``torch.arange(...).tolist()``, which a meta tensor cannot answer). Parameters and buffers
    (made by ``torch.empty`` / ``zeros`` / ``ones``) land on meta as under ``torch.device``;
    ``torch.tensor(0)`` scalars such as BatchNorm's ``num_batches_tracked`` stay on the CPU.
    Active only inside the ``with`` block, like any torch function mode.
    """

    def __torch_function__(
        self, func: Any, types: Any, args: Any = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _SHAPED and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def meta_model(name: str, **kwargs: Any) -> nn.Module:
    """Build torchvision model ``name`` without allocating or initialising weights.

    ``kwargs`` go to the builder (``num_classes``, ``aux_logits``, ...); every parameter is a
    meta tensor.
    """
    tvm = tv()
    num_classes = kwargs.pop("num_classes", None)
    full = builder_kwargs(name, num_classes, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return tvm.get_model(name, **full)
        except NotImplementedError:
            with _ShapedOnMeta():
                return tvm.get_model(name, **full)


def signature(module: nn.Module) -> Signature:
    """``{state_dict key: shape}`` of ``module``."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------------------------
# signatures, memoised and cached on disk


def _cache_file() -> Path:
    root = os.environ.get("CONCEPTKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "conceptkit"
    )
    import torchvision

    tag = f"torch-{torch.__version__}-torchvision-{torchvision.__version__}"
    return Path(root) / f"arch_signatures-{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}.json"


def _read_cache(path: Path) -> None:
    """Merge the disk cache ``path`` into the memo once; an unreadable cache is ignored."""
    if str(path) in _DISK_READ or not path.is_file():
        return
    _DISK_READ.add(str(path))
    try:
        raw = json.loads(path.read_text())
        for n, sig in raw.items():
            _SIG_MEMO.setdefault(n, {k: tuple(int(d) for d in s) for k, s in sig.items()})
    except (OSError, ValueError, AttributeError, TypeError):
        pass


def _write_cache(path: Path) -> None:
    """Write the memo to ``path`` atomically (temporary file, then rename); errors are ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        data = {n: {k: list(s) for k, s in v.items()} for n, v in sorted(_SIG_MEMO.items())}
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        _DISK_READ.add(str(path))
    except OSError:
        pass


def signatures(model_names: list[str], use_disk_cache: bool = True) -> dict[str, Signature]:
    """Key -> shape signature of each torchvision model in ``model_names``, at its default head.

    Built on the meta device (no weights allocated), memoised in process and cached as JSON on
    disk (``$CONCEPTKIT_CACHE`` or ``~/.cache/conceptkit``, one file per torch and torchvision
    version; unreadable caches are ignored). A model that cannot be built gets ``{}``.
    """
    path = _cache_file()
    if use_disk_cache:
        _read_cache(path)
    new = False
    for n in model_names:
        if n not in _SIG_MEMO:
            new = True
            try:
                _SIG_MEMO[n] = signature(meta_model(n))
            except Exception:  # an architecture that cannot be built on meta is skipped
                _SIG_MEMO[n] = {}
    if new and use_disk_cache:
        _write_cache(path)
    return {n: _SIG_MEMO[n] for n in model_names}


def _top(sig: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k.split(".", 1)[0] for k in sig)


def candidate_signatures(file_sig: Signature) -> dict[str, Signature]:
    """Signatures of the classification models that can fit ``file_sig``.

    Models are grouped by the torchvision module that defines them (resnet.py holds resnet*,
    resnext*, wide_resnet*); within a group every model has the same top-level key names
    (checked for torchvision 0.29), so one model per group is built first and the rest of a
    group only when its top-level names equal the file's (an auxiliary head may be absent).
    """
    tvm = tv()
    groups: dict[str, list[str]] = {}
    for n in classification_names():
        groups.setdefault(tvm.get_model_builder(n).__module__, []).append(n)
    want = _top(file_sig)
    out: dict[str, Signature] = {}
    for members in groups.values():
        rep = _top(signatures(members[:1])[members[0]])
        if want == rep or want == rep - _AUX:
            out.update(signatures(members))
    return out


# --------------------------------------------------------------------------------------------
# fitting a state_dict to a signature


@dataclass
class Fit:
    """How a file's state_dict fits a model's signature."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # name, file, model

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def fit(file_sig: Signature, model_sig: Signature) -> Fit:
    """Compare a file's signature with a model's, key by key."""
    return Fit(
        missing=[k for k in model_sig if k not in file_sig],
        unexpected=[k for k in file_sig if k not in model_sig],
        mismatched=[
            (k, file_sig[k], s) for k, s in model_sig.items() if k in file_sig and file_sig[k] != s
        ],
    )


def head_classes(result: Fit, default: int) -> int | None:
    """The num_classes that explains every shape mismatch, or None.

    A mismatch is explained when the file's tensor differs from the model's only in dim 0 and the
    model's dim 0 is the builder's default class count (1000 for classification, 21 for
    segmentation): the classifier head's weight and bias.
    """
    if result.missing or result.unexpected or not result.mismatched:
        return None
    found: set[int] = set()
    for _, fs, ms in result.mismatched:
        if len(fs) != len(ms) or not fs or fs[1:] != ms[1:] or ms[0] != default:
            return None
        found.add(fs[0])
    return found.pop() if len(found) == 1 else None


def fit_message(result: Fit, what: str) -> str:
    """``state_dict does not fit WHAT: 2 missing keys (a, b); 1 shape mismatches (...)``."""
    parts = []
    if result.missing:
        parts.append(f"{len(result.missing)} missing keys ({names(result.missing)})")
    if result.unexpected:
        parts.append(f"{len(result.unexpected)} unexpected keys ({names(result.unexpected)})")
    if result.mismatched:
        shown = ", ".join(
            f"{k}: file {shape(fs)} vs model {shape(ms)}" for k, fs, ms in result.mismatched[:SHOW]
        )
        more = ", ..." if len(result.mismatched) > SHOW else ""
        parts.append(f"{len(result.mismatched)} shape mismatches ({shown}{more})")
    return f"state_dict does not fit {what}: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------
# detection


def detect_arch(state: Mapping[str, torch.Tensor]) -> list[tuple[str, int]]:
    """Torchvision classification architectures whose keys and shapes fit ``state``.

    Returns ``[(arch, num_classes), ...]`` sorted by name; num_classes comes from the head shape.
    """
    file_sig = {k: tuple(v.shape) for k, v in state.items()}
    out: list[tuple[str, int]] = []
    for name, full in sorted(candidate_signatures(file_sig).items()):
        sig = full
        if not _top(file_sig) & _AUX:
            sig = {k: v for k, v in full.items() if k.split(".", 1)[0] not in _AUX}
        if not sig or len(sig) != len(file_sig):
            continue
        result = fit(file_sig, sig)
        if result.ok:
            out.append((name, 1000))
        else:
            n = head_classes(result, 1000)
            if n is not None:
                out.append((name, n))
    return out


def arch_error(state: Mapping[str, torch.Tensor], spec: str, hint: str | None) -> ModelLoadError:
    """The error for a state_dict loaded without ``--arch``: names the architectures it fits.

    ``hint`` is the ``arch`` entry of the checkpoint dict, quoted when nothing fits.
    """
    found = detect_arch(state)
    if len(found) == 1:
        name, n = found[0]
        extra = f" --num-classes {n}" if n != 1000 else ""
        return ModelLoadError(
            f"file is a state_dict with no architecture; it looks like {name} "
            f"(num_classes={n}): pass --arch {name}{extra}",
            file=spec,
        )
    if found:
        listed = ", ".join(f"{a} (num_classes={n})" for a, n in found)
        return ModelLoadError(
            f"file is a state_dict with no architecture; it fits {len(found)} torchvision "
            f"architectures: {listed}; pass --arch NAME",
            file=spec,
        )
    hint_text = f" (the checkpoint says arch={hint!r})" if hint else ""
    return ModelLoadError(
        "file is a state_dict with no architecture and it fits no torchvision classification "
        f"architecture{hint_text}; pass --arch NAME or --arch package.module:callable",
        file=spec,
    )
