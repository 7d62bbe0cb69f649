"""Load the model to dissect, name its layers, and pick the default layer.

One entry point, :func:`load_model`, turns what the user typed after ``conceptkit dissect`` into an
``nn.Module`` in eval mode, with a one-line description and a fingerprint of its weights. The forms
of ``spec``:

``PATH`` + ``arch``
    a state_dict, or a checkpoint dict holding one under ``state_dict`` or ``model`` (``module.``
    prefixes from DataParallel and ``_orig_mod.`` from torch.compile are stripped, as the Places365
    models ship), built with ``arch`` = a torchvision classification or segmentation name
    (``resnet18``, ``mobilenet_v2``, ``deeplabv3_resnet50``) or ``package.module:callable`` for the
    user's own code. ``num_classes`` is given to the builder, or inferred from the head's shape.
``PATH`` to a TorchScript archive
    loaded with ``torch.jit.load`` (recognised by the ``code/`` folder inside the zip).
``torchvision:NAME[:WEIGHTS]``
    torchvision's own weights from its cache (``torch.hub.get_dir()/checkpoints``), never
    downloaded; ``WEIGHTS`` defaults to ``DEFAULT``; ``none`` means random initialisation.
``PATH`` to a pickled ``nn.Module``
    only with ``trust_pickle=True``: unpickling runs code from the file. Every other load uses
    ``torch.load(weights_only=True)``.

A state_dict without ``arch`` is compared with the key/shape signatures of every torchvision
classification architecture (built on the meta device, no memory; only the model families whose
top-level key names match; cached on disk per torch and torchvision version), and the error names
the architecture that fits.

Every failure is a :class:`~conceptkit.errors.ModelLoadError` whose message is one line.

Layers are named by their dotted path (``layer4``, ``features.18``, ``layer4.1.conv2``).
:func:`list_layers` gives every module's output shape from one dummy forward pass;
:func:`default_layers` picks the last convolutional stage by this rule:

    Candidates are the model's direct children, plus the direct children of any direct child
    that is an ``nn.Sequential`` or returns something other than a tensor (a backbone returning a
    dict). A candidate must contain an ``nn.Conv*d`` and return a 4-D map ``(N, C, H, W)`` with
    ``H > 1`` and ``W > 1``; when the model's own output is a 4-D map (segmentation; or the
    ``'out'`` entry of a dict), a child with as many channels as that output is a prediction
    head and is skipped together with its children. The default is the candidate that *finishes* last in the forward pass.

So resnet -> ``layer4`` (it finishes after ``layer4.1``), mobilenet_v2 / vgg / densenet /
efficientnet -> ``features``, alexnet -> ``features`` (its 6x6 ``avgpool`` holds no conv),
inception_v3 -> ``Mixed_7c``, googlenet -> ``inception5b``, deeplabv3_resnet50 ->
``backbone.layer4``. Known weak: vit picks ``conv_proj`` (the patch embedding, the only 4-D map)
and swin's ``features`` returns channels-last ``(N, H, W, C)``, which the rule cannot tell apart.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import inspect
import json
import os
import re
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conceptkit.errors import ModelLoadError

__all__ = [
    "LayerInfo",
    "LoadedModel",
    "default_layers",
    "detect_arch",
    "fingerprint",
    "list_layers",
    "load_model",
    "resolve_layer",
]

_PREFIXES = ("module.", "_orig_mod.")
_SHOW = 3  # how many names an error message lists


@dataclass
class LoadedModel:
    """A model ready for dissection.

    module: the network, in eval mode, on the requested device.
    description: one line saying what was loaded and how.
    fingerprint: sha256 hex of the weights (see :func:`fingerprint`).
    """

    module: nn.Module
    description: str
    fingerprint: str


@dataclass
class LayerInfo:
    """One named module and what it returned in the dummy forward pass.

    out_shape: the output tensor's shape, e.g. ``(1, 512, 7, 7)``; None when the module returned
    something other than a tensor or was not called.
    """

    name: str
    type: str
    out_shape: tuple[int, ...] | None


# --------------------------------------------------------------------------------------------
# fingerprint


def fingerprint(module: nn.Module) -> str:
    """sha256 hex over the state_dict: per key in sorted order, its name, dtype, shape, bytes.

    Deterministic across runs and devices; changes when any weight or buffer changes.
    """
    h = hashlib.sha256()
    state = module.state_dict()
    for key in sorted(state):
        t = state[key]
        h.update(key.encode())
        h.update(b"\0")
        h.update(str(t.dtype).encode())
        h.update(b"\0")
        h.update(",".join(str(d) for d in t.shape).encode())
        h.update(b"\0")
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.is_quantized:
        flat = flat.int_repr()
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


# --------------------------------------------------------------------------------------------
# torchvision architectures


def _tv() -> Any:
    import torchvision.models as tvm

    return tvm


def _classification_names() -> list[str]:
    tvm = _tv()
    return sorted(tvm.list_models(module=tvm))


def _segmentation_names() -> list[str]:
    tvm = _tv()
    return sorted(tvm.list_models(module=tvm.segmentation))


def _builder_kwargs(name: str, num_classes: int | None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``torchvision.models.get_model``: no weights, no backbone download."""
    tvm = _tv()
    kwargs: dict[str, Any] = {"weights": None}
    params = inspect.signature(tvm.get_model_builder(name)).parameters
    if "weights_backbone" in params:
        kwargs["weights_backbone"] = None
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs.update(extra)
    return kwargs


@contextlib.contextmanager
def _params_on_meta() -> Iterator[None]:
    """Move every parameter and buffer to the meta device as it is registered.

    Fallback for builders that compute with tensors while building (regnet), which fails inside
    ``with torch.device("meta")``. The CPU tensors are created empty and dropped at once.
    """
    orig_param = nn.Module.register_parameter
    orig_buffer = nn.Module.register_buffer

    def register_parameter(self: nn.Module, name: str, param: Any) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        orig_param(self, name, param)

    def register_buffer(self: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        if tensor is not None:
            tensor = tensor.to("meta")
        orig_buffer(self, name, tensor, persistent)

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = orig_param  # type: ignore[method-assign]
        nn.Module.register_buffer = orig_buffer  # type: ignore[method-assign]


def _meta_model(name: str, **kwargs: Any) -> nn.Module:
    """Build torchvision model ``name`` without allocating or initialising weights."""
    tvm = _tv()
    num_classes = kwargs.pop("num_classes", None)
    full = _builder_kwargs(name, num_classes, **kwargs)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return tvm.get_model(name, **full)
        except NotImplementedError:
            with _params_on_meta():
                return tvm.get_model(name, **full)


Signature = dict[str, tuple[int, ...]]


def _signature(module: nn.Module) -> Signature:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


_SIG_MEMO: dict[str, Signature] = {}


def _cache_file() -> Path:
    root = os.environ.get("CONCEPTKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "conceptkit"
    )
    import torchvision

    tag = f"torch-{torch.__version__}-torchvision-{torchvision.__version__}"
    return Path(root) / f"arch_signatures-{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}.json"


_DISK_READ: set[str] = set()  # cache files already merged into _SIG_MEMO
_AUX = frozenset({"AuxLogits", "aux1", "aux2"})  # inception_v3 / googlenet auxiliary heads


def _signatures(names: list[str], use_disk_cache: bool = True) -> dict[str, Signature]:
    """Key -> shape signature of each torchvision model in ``names``, at its default head.

    Built on the meta device (no weights allocated), memoised in process and cached as JSON on
    disk (``$CONCEPTKIT_CACHE`` or ``~/.cache/conceptkit``, one file per torch and torchvision
    version; unreadable caches are ignored). A model that cannot be built gets ``{}``.
    """
    path = _cache_file()
    if use_disk_cache and str(path) not in _DISK_READ and path.is_file():
        _DISK_READ.add(str(path))
        try:
            raw = json.loads(path.read_text())
            for n, sig in raw.items():
                _SIG_MEMO.setdefault(n, {k: tuple(int(d) for d in s) for k, s in sig.items()})
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    new = False
    for n in names:
        if n not in _SIG_MEMO:
            new = True
            try:
                _SIG_MEMO[n] = _signature(_meta_model(n))
            except Exception:  # an architecture that cannot be built on meta is skipped
                _SIG_MEMO[n] = {}
    if new and use_disk_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            data = {n: {k: list(s) for k, s in v.items()} for n, v in sorted(_SIG_MEMO.items())}
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
            _DISK_READ.add(str(path))
        except OSError:
            pass
    return {n: _SIG_MEMO[n] for n in names}


def _all_signatures(use_disk_cache: bool = True) -> dict[str, Signature]:
    """Signatures of every torchvision classification model (about 5 s cold, 80 models)."""
    return _signatures(_classification_names(), use_disk_cache)


def _top(sig: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k.split(".", 1)[0] for k in sig)


def _candidate_signatures(file_sig: Signature) -> dict[str, Signature]:
    """Signatures of the classification models that can fit ``file_sig``.

    Models are grouped by the torchvision module that defines them (resnet.py holds resnet*,
    resnext*, wide_resnet*); within a group every model has the same top-level key names
    (checked for torchvision 0.29), so one model per group is built first and the rest of a
    group only when its top-level names equal the file's (an auxiliary head may be absent).
    """
    tvm = _tv()
    groups: dict[str, list[str]] = {}
    for n in _classification_names():
        groups.setdefault(tvm.get_model_builder(n).__module__, []).append(n)
    want = _top(file_sig)
    out: dict[str, Signature] = {}
    for members in groups.values():
        rep = _top(_signatures(members[:1])[members[0]])
        if want == rep or want == rep - _AUX:
            out.update(_signatures(members))
    return out


@dataclass
class _Fit:
    """How a file's state_dict fits a model's signature."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # name, file, model

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def _fit(file_sig: Signature, model_sig: Signature) -> _Fit:
    return _Fit(
        missing=[k for k in model_sig if k not in file_sig],
        unexpected=[k for k in file_sig if k not in model_sig],
        mismatched=[
            (k, file_sig[k], s) for k, s in model_sig.items() if k in file_sig and file_sig[k] != s
        ],
    )


def _head_classes(fit: _Fit, default_classes: int) -> int | None:
    """The num_classes that explains every shape mismatch, or None.

    A mismatch is explained when the file's tensor differs from the model's only in dim 0 and the
    model's dim 0 is the builder's default class count (1000 for classification, 21 for
    segmentation): the classifier head's weight and bias.
    """
    if fit.missing or fit.unexpected or not fit.mismatched:
        return None
    found: set[int] = set()
    for _, fs, ms in fit.mismatched:
        if len(fs) != len(ms) or not fs or fs[1:] != ms[1:] or ms[0] != default_classes:
            return None
        found.add(fs[0])
    return found.pop() if len(found) == 1 else None


def detect_arch(state: Mapping[str, torch.Tensor]) -> list[tuple[str, int]]:
    """Torchvision classification architectures whose keys and shapes fit ``state``.

    Returns ``[(arch, num_classes), ...]`` sorted by name; num_classes comes from the head shape.
    """
    file_sig = {k: tuple(v.shape) for k, v in state.items()}
    out: list[tuple[str, int]] = []
    for name, full in sorted(_candidate_signatures(file_sig).items()):
        sig = full
        if not _top(file_sig) & _AUX:
            sig = {k: v for k, v in full.items() if k.split(".", 1)[0] not in _AUX}
        if not sig or len(sig) != len(file_sig):
            continue
        fit = _fit(file_sig, sig)
        if fit.ok:
            out.append((name, 1000))
        else:
            n = _head_classes(fit, 1000)
            if n is not None:
                out.append((name, n))
    return out


# --------------------------------------------------------------------------------------------
# messages


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (", ..." if len(items) > _SHOW else "")


def _shape(s: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in s) + ")"


def _fit_message(fit: _Fit, what: str) -> str:
    parts = []
    if fit.missing:
        parts.append(f"{len(fit.missing)} missing keys ({_names(fit.missing)})")
    if fit.unexpected:
        parts.append(f"{len(fit.unexpected)} unexpected keys ({_names(fit.unexpected)})")
    if fit.mismatched:
        shown = ", ".join(
            f"{k}: file {_shape(fs)} vs model {_shape(ms)}" for k, fs, ms in fit.mismatched[:_SHOW]
        )
        more = ", ..." if len(fit.mismatched) > _SHOW else ""
        parts.append(f"{len(fit.mismatched)} shape mismatches ({shown}{more})")
    return f"state_dict does not fit {what}: " + "; ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# reading files


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def _looks_like_torch_file(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _torch_load(path: Path, spec: str, trust_pickle: bool) -> Any:
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        text = str(e)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if m and not trust_pickle:
            raise ModelLoadError(
                f"file holds a pickled Python object ({m.group(1)}), not just tensors; "
                "unpickling it runs code from the file: pass --trust-pickle if you trust its "
                "source, or save model.state_dict() instead",
                file=spec,
            ) from e
        raise ModelLoadError(f"not a torch file ({_one_line(text)[:120]})", file=spec) from e
    except Exception as e:
        if not _looks_like_torch_file(path):
            raise ModelLoadError(
                "not a torch file (neither a torch.save zip archive nor a pickle)", file=spec
            ) from e
        raise ModelLoadError(
            f"cannot load with torch.load: {type(e).__name__}: {_one_line(str(e))[:160]}",
            file=spec,
        ) from e


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop ``module.`` / ``_orig_mod.`` when every key carries it (possibly repeatedly)."""
    out = dict(state)
    stripped: list[str] = []
    changed = True
    while changed and out:
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in out):
                out = {k[len(p) :]: v for k, v in out.items()}
                stripped.append(p)
                changed = True
    return out, stripped


def _extract_state(obj: Any, spec: str) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """From what torch.load returned: (state_dict, how it was found, checkpoint's arch hint)."""
    how = "state_dict"
    hint = None
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if key in obj and _is_state_dict(obj[key]):
                how = f"checkpoint['{key}']"
                if isinstance(obj.get("arch"), str):
                    hint = obj["arch"]
                obj = obj[key]
                break
        else:
            keys = [str(k) for k in list(obj)[:5]]
            raise ModelLoadError(
                "checkpoint dict holds no state_dict (expected tensors, or a dict of tensors "
                f"under 'state_dict' or 'model'; found keys: {', '.join(keys)})",
                file=spec,
            )
    if not _is_state_dict(obj):
        raise ModelLoadError(
            f"file holds a {type(obj).__name__}, not a state_dict, checkpoint dict or nn.Module",
            file=spec,
        )
    state, stripped = _strip_prefixes(obj)
    if stripped:
        how += " (stripped " + ", ".join(f"'{p}'" for p in stripped) + " prefix)"
    return state, how, hint


# --------------------------------------------------------------------------------------------
# building


def _import_callable(arch: str, spec: str) -> Any:
    mod_name, _, attr = arch.partition(":")
    if not mod_name or not attr:
        raise ModelLoadError(f"--arch {arch!r} must look like 'package.module:callable'", file=spec)
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:
        raise ModelLoadError(
            f"cannot import {mod_name!r} for --arch {arch}: {type(e).__name__}: "
            f"{_one_line(str(e))}",
            file=spec,
        ) from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"module {mod_name!r} has no attribute {attr!r}", file=spec)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelLoadError(f"--arch {arch}: {attr!r} is not callable", file=spec)
    return obj


def _unknown_arch(arch: str, spec: str | None) -> ModelLoadError:
    names = _classification_names() + _segmentation_names()
    close = difflib.get_close_matches(arch, names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
    return ModelLoadError(
        f"unknown architecture {arch!r} (not a torchvision classification or segmentation "
        f"model, nor 'package.module:callable'); {hint}",
        file=spec,
    )


def _default_classes(arch: str) -> int:
    return 21 if arch in _segmentation_names() else 1000


def _build_torchvision(
    arch: str, state: Mapping[str, torch.Tensor], num_classes: int | None, spec: str
) -> tuple[nn.Module, int]:
    """Build torchvision ``arch`` to fit ``state`` and load it strictly. Returns (model, classes)."""
    tvm = _tv()
    extra: dict[str, Any] = {}
    if arch in _segmentation_names():
        extra["aux_loss"] = any(k.startswith("aux_classifier.") for k in state)
    if arch == "inception_v3" or arch == "googlenet":
        extra["aux_logits"] = any(k.startswith(("AuxLogits.", "aux1.")) for k in state)
        extra["init_weights"] = False
    file_sig = {k: tuple(v.shape) for k, v in state.items()}
    if num_classes is None:
        default = _default_classes(arch)
        sig = _signature(_meta_model(arch, **extra))
        fit = _fit(file_sig, sig)
        num_classes = default if fit.ok else (_head_classes(fit, default) or default)
    meta = _meta_model(arch, num_classes=num_classes, **extra)
    fit = _fit(file_sig, _signature(meta))
    if not fit.ok:
        message = _fit_message(fit, f"{arch}(num_classes={num_classes})")
        found = [a for a, _ in detect_arch(state) if a != arch]
        if found:
            message += f"; it looks like {' or '.join(found)} (pass --arch {found[0]})"
        raise ModelLoadError(message, file=spec)
    # The meta model takes the file's tensors as they are (no random init of weights that are
    # overwritten anyway: vgg16 builds in 0.05 s instead of 2-4 s), cast to the model's dtypes
    # as load_state_dict's copy would. Only when the state_dict covers every parameter and
    # buffer; otherwise (non-persistent buffers) the model is built for real on CPU.
    meta_state = meta.state_dict()
    covered = {k for k, _ in meta.named_parameters()} | {k for k, _ in meta.named_buffers()}
    if covered <= set(meta_state):
        cast = {k: v.to(meta_state[k].dtype) for k, v in state.items()}
        meta.load_state_dict(cast, strict=True, assign=True)
        return meta, num_classes
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tvm.get_model(arch, **_builder_kwargs(arch, num_classes, **extra))
    model.load_state_dict(state, strict=True)
    return model, num_classes


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], what: str, spec: str) -> None:
    fit = _fit({k: tuple(v.shape) for k, v in state.items()}, _signature(model))
    if not fit.ok:
        raise ModelLoadError(_fit_message(fit, what), file=spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(
            f"load_state_dict failed for {what}: {_one_line(str(e))[:200]}", file=spec
        ) from e


def _arch_error(state: Mapping[str, torch.Tensor], spec: str, hint: str | None) -> ModelLoadError:
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
        names = ", ".join(f"{a} (num_classes={n})" for a, n in found)
        return ModelLoadError(
            f"file is a state_dict with no architecture; it fits {len(found)} torchvision "
            f"architectures: {names}; pass --arch NAME",
            file=spec,
        )
    hint_text = f" (the checkpoint says arch={hint!r})" if hint else ""
    return ModelLoadError(
        "file is a state_dict with no architecture and it fits no torchvision classification "
        f"architecture{hint_text}; pass --arch NAME or --arch package.module:callable",
        file=spec,
    )


# --------------------------------------------------------------------------------------------
# the entry point


def _finish(model: nn.Module, description: str, device: str) -> LoadedModel:
    model = model.to(device)
    model.eval()
    return LoadedModel(
        module=model, description=_one_line(description), fingerprint=fingerprint(model)
    )


def _load_torchvision(spec: str, num_classes: int | None, device: str) -> LoadedModel:
    tvm = _tv()
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ModelLoadError(
            f"{spec!r}: expected torchvision:NAME or torchvision:NAME:WEIGHTS", file=spec
        )
    name = parts[1]
    wname = parts[2] if len(parts) == 3 else "DEFAULT"
    if name not in _classification_names() + _segmentation_names():
        raise _unknown_arch(name, spec)
    import warnings

    if wname.lower() == "none":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = _builder_kwargs(name, num_classes)
            if name == "inception_v3" or name == "googlenet":
                kwargs["init_weights"] = True
            torch.manual_seed(0)
            model = tvm.get_model(name, **kwargs)
        return _finish(model, f"{name} from torchvision, random init (seed 0)", device)
    try:
        enum = tvm.get_model_weights(name)
        weights = enum[wname] if wname != "DEFAULT" else enum.DEFAULT
    except (KeyError, ValueError) as e:
        choices = [w.name for w in tvm.get_model_weights(name)] + ["DEFAULT", "none"]
        raise ModelLoadError(
            f"torchvision {name} has no weights {wname!r}; choose one of {', '.join(choices)}",
            file=spec,
        ) from e
    filename = os.path.basename(weights.url)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if not (cache / filename).is_file():
        raise ModelLoadError(
            f"weights {name}:{weights.name} are not in the torch cache and this tool never "
            f"downloads: put {filename} (from {weights.url}) into {cache}",
            file=spec,
        )
    if num_classes is not None and num_classes != len(weights.meta.get("categories") or []):
        raise ModelLoadError(
            f"--num-classes {num_classes} does not fit pretrained weights {weights.name}", file=spec
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = tvm.get_model(name, weights=weights)
    except Exception as e:
        raise ModelLoadError(
            f"cannot load cached weights {cache / filename}: {type(e).__name__}: "
            f"{_one_line(str(e))[:160]}",
            file=spec,
        ) from e
    return _finish(model, f"{name} from torchvision, weights {weights.name} ({filename})", device)


def load_model(
    spec: str,
    arch: str | None = None,
    num_classes: int | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
) -> LoadedModel:
    """Load a model for dissection; see the module docstring for the forms of ``spec``.

    Raises ModelLoadError (one-line message, ``file=spec``) on every failure.
    """
    if spec.startswith("torchvision:"):
        if arch is not None:
            raise ModelLoadError("--arch does not go with a torchvision:NAME model", file=spec)
        return _load_torchvision(spec, num_classes, device)
    path = Path(spec)
    if not path.exists():
        raise ModelLoadError("model file not found", file=spec)
    if not path.is_file():
        raise ModelLoadError("model path is not a file", file=spec)
    if _is_torchscript(path):
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise ModelLoadError(
                f"cannot load TorchScript archive: {type(e).__name__}: {_one_line(str(e))[:160]}",
                file=spec,
            ) from e
        return _finish(model, f"TorchScript module from {path.name}", device)
    obj = _torch_load(path, spec, trust_pickle)
    if isinstance(obj, Mapping):
        for key in ("model", "module"):
            if isinstance(obj.get(key), nn.Module):
                obj = obj[key]
                break
    if isinstance(obj, nn.Module):
        desc = f"pickled {type(obj).__module__}.{type(obj).__name__} from {path.name} (trusted)"
        return _finish(obj, desc, device)
    state, how, hint = _extract_state(obj, spec)
    if arch is None:
        raise _arch_error(state, spec, hint)
    if ":" in arch:
        builder = _import_callable(arch, spec)
        try:
            model = builder(num_classes=num_classes) if num_classes is not None else builder()
        except Exception as e:
            raise ModelLoadError(
                f"--arch {arch} raised {type(e).__name__}: {_one_line(str(e))[:160]}", file=spec
            ) from e
        if not isinstance(model, nn.Module):
            raise ModelLoadError(
                f"--arch {arch} returned a {type(model).__name__}, not an nn.Module", file=spec
            )
        _load_into(model, state, arch, spec)
        nc = f", num_classes={num_classes}" if num_classes is not None else ""
        return _finish(model, f"{arch}(){nc} with {how} from {path.name}", device)
    if arch not in _classification_names() + _segmentation_names():
        raise _unknown_arch(arch, spec)
    model, n = _build_torchvision(arch, state, num_classes, spec)
    return _finish(
        model, f"torchvision {arch}(num_classes={n}) with {how} from {path.name}", device
    )


# --------------------------------------------------------------------------------------------
# layers


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted path ``name``; ModelLoadError listing close names if absent."""
    modules = dict(model.named_modules())  # works for TorchScript too (get_submodule does not)
    if name and name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    top = [n for n, _ in model.named_children()]
    hint = f"close matches: {', '.join(close)}" if close else f"top-level: {_names(top)}"
    raise ModelLoadError(f"model has no layer {name!r}; {hint} (list them with --list-layers)")


@dataclass
class _Trace:
    shapes: dict[str, tuple[int, ...] | None]
    finished: list[str]  # module names in the order their forward returned
    out_channels: int | None  # dim 1 of the model's (N, K, H, W) output, or its dict's 'out'


def _trace(model: nn.Module, input_size: int) -> _Trace:
    """One no-grad forward pass of a seeded random (1, 3, S, S) image, hooking every module."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    finished: list[str] = []
    handles = []

    def make_hook(name: str) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            if name not in shapes:
                shapes[name] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
                finished.append(name)

        return hook

    try:
        for name, mod in model.named_modules():
            if name:
                handles.append(mod.register_forward_hook(make_hook(name)))
    except (NotImplementedError, RuntimeError) as e:
        for h in handles:
            h.remove()
        raise ModelLoadError(
            f"cannot hook this model's layers ({type(model).__name__}): TorchScript modules "
            "do not support forward hooks; load a state_dict with --arch instead"
        ) from e
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, input_size, input_size, generator=gen).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:
        raise ModelLoadError(
            f"dummy forward pass of a (1, 3, {input_size}, {input_size}) image failed: "
            f"{type(e).__name__}: {_one_line(str(e))[:160]}"
        ) from e
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if isinstance(out, Mapping) and "out" in out:
        out = out["out"]
    dense = isinstance(out, torch.Tensor) and out.dim() == 4
    return _Trace(shapes, finished, int(out.shape[1]) if dense else None)


def list_layers(model: nn.Module, input_size: int = 224) -> list[LayerInfo]:
    """Every named module (definition order) with its output shape for a (1, 3, S, S) input.

    Shapes come from one no-grad forward pass with forward hooks. out_shape is None for a module
    that returned a non-tensor (tuple, dict) or was not called. For a TorchScript module, which
    cannot be hooked, every out_shape is None.
    """
    try:
        shapes = _trace(model, input_size).shapes
    except ModelLoadError:
        if not isinstance(model, torch.jit.ScriptModule):
            raise
        shapes = {}
    return [
        LayerInfo(
            name,
            type(mod).__name__
            if not isinstance(mod, torch.jit.ScriptModule)
            else mod.original_name,
            shapes.get(name),
        )
        for name, mod in model.named_modules()
        if name
    ]


def _has_conv(mod: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in mod.modules())


def default_layers(model: nn.Module, input_size: int = 224) -> list[str]:
    """The last convolutional stage, by the rule in the module docstring, as a one-name list.

    Raises ModelLoadError when no candidate returns a 4-D map with H, W > 1.
    """
    tr = _trace(model, input_size)

    def is_map(name: str) -> bool:
        s = tr.shapes.get(name)
        return s is not None and len(s) == 4 and s[2] > 1 and s[3] > 1

    def is_head(name: str) -> bool:  # the dense prediction head of a segmentation model
        s = tr.shapes.get(name)
        return is_map(name) and s is not None and tr.out_channels == s[1]

    candidates: list[str] = []
    for name, child in model.named_children():
        if is_head(name):
            continue
        candidates.append(name)
        if isinstance(child, nn.Sequential) or (name in tr.shapes and tr.shapes[name] is None):
            candidates.extend(f"{name}.{sub}" for sub, _ in child.named_children())
    good = {
        n for n in candidates if is_map(n) and not is_head(n) and _has_conv(resolve_layer(model, n))
    }
    ordered = [n for n in tr.finished if n in good]
    if not ordered:
        raise ModelLoadError(
            "found no convolutional stage returning an (N, C, H, W) map with H, W > 1; "
            "name the layers to dissect with --layer"
        )
    return [ordered[-1]]


def _main() -> None:  # pragma: no cover - manual timing aid: python -m conceptkit.dissection.models
    t0 = time.perf_counter()
    sigs = _all_signatures(use_disk_cache=False)
    print(f"{len(sigs)} signatures in {time.perf_counter() - t0:.2f} s", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    _main()
