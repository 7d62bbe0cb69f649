"""Turn what the user typed after ``conceptkit dissect --model`` into a module ready to dissect.

:func:`load_model` returns an ``nn.Module`` in eval mode, with a one-line description and a
fingerprint of its weights. The forms of ``spec``:

``PATH`` + ``arch``
    a state_dict, or a checkpoint dict holding one under ``state_dict`` or ``model`` (``module.``
    prefixes from DataParallel and ``_orig_mod.`` from torch.compile are stripped, as the Places365
    models ship), built with ``arch`` = a torchvision classification or segmentation name
    (``resnet18``, ``mobilenet_v2``, ``deeplabv3_resnet50``) or ``package.module:callable`` for the
    user's own code. ``num_classes`` is given to the builder, or inferred from the head's shape.
``PATH`` to a TorchScript archive
    only with ``trust_pickle=True``: ``torch.jit.load`` runs the archive's code.
``torchvision:NAME[:WEIGHTS]``
    torchvision's own weights from its cache (``torch.hub.get_dir()/checkpoints``), never
    downloaded; ``WEIGHTS`` defaults to ``DEFAULT``; ``none`` means random initialisation.
``timm:NAME[:WEIGHTS]``, ``hf:PATH[:none]``
    timm and Hugging Face transformers models, local weights only
    (:mod:`~conceptkit.dissection.models.hub`).
``PATH`` to a pickled ``nn.Module``
    only with ``trust_pickle=True``: unpickling runs code from the file. Every other load uses
    ``torch.load(weights_only=True)``, after :mod:`~conceptkit.dissection.models.untrusted` has
    read the file's pickles opcode by opcode and found nothing but tensors in them.

A state_dict without ``arch`` is matched against torchvision's architectures
(:mod:`~conceptkit.dissection.models.architecture`) and the error names the one that fits.
Every failure is a :class:`~conceptkit.errors.ModelLoadError` whose message is one line.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conceptkit.dissection.models import architecture as A
from conceptkit.dissection.models import hub, untrusted
from conceptkit.dissection.models._text import one_line
from conceptkit.errors import ModelLoadError

_PREFIXES = ("module.", "_orig_mod.")


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
# reading files


def _load_torchscript(path: Path, spec: str) -> nn.Module:
    try:
        model: nn.Module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise ModelLoadError(
            f"cannot load TorchScript archive: {type(e).__name__}: {one_line(str(e))[:160]}",
            file=spec,
        ) from e
    return model


def _torch_load(path: Path, spec: str, trust_pickle: bool) -> Any:
    """``torch.load`` on the CPU; weights only unless trusted. Any failure is one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:
        refused = isinstance(e, pickle.UnpicklingError) and not trust_pickle
        hint = (
            " (torch.load(weights_only=True) refused it: pass --trust-pickle only if you trust "
            "its source)"
            if refused
            else ""
        )
        raise ModelLoadError(
            f"cannot load with torch.load: {type(e).__name__}: {one_line(str(e))[:160]}{hint}",
            file=spec,
        ) from e


def _pickled_module(obj: Any) -> nn.Module | None:
    """The ``nn.Module`` a trusted pickle held, itself or under ``'model'`` / ``'module'``."""
    if isinstance(obj, Mapping):
        for key in ("model", "module"):
            if isinstance(obj.get(key), nn.Module):
                return obj[key]  # type: ignore[no-any-return]
    return obj if isinstance(obj, nn.Module) else None


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
# building a module for a state_dict


def _import_callable(arch: str, spec: str) -> Any:
    mod_name, _, attr = arch.partition(":")
    if not mod_name or not attr:
        raise ModelLoadError(f"--arch {arch!r} must look like 'package.module:callable'", file=spec)
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:
        raise ModelLoadError(
            f"cannot import {mod_name!r} for --arch {arch}: {type(e).__name__}: {one_line(str(e))}",
            file=spec,
        ) from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"module {mod_name!r} has no attribute {attr!r}", file=spec)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelLoadError(f"--arch {arch}: {attr!r} is not callable", file=spec)
    return obj


def _build_user(
    arch: str, state: Mapping[str, torch.Tensor], num_classes: int | None, spec: str
) -> nn.Module:
    """Call the user's ``package.module:callable`` and load ``state`` into what it returns."""
    builder = _import_callable(arch, spec)
    try:
        model = builder(num_classes=num_classes) if num_classes is not None else builder()
    except Exception as e:
        raise ModelLoadError(
            f"--arch {arch} raised {type(e).__name__}: {one_line(str(e))[:160]}", file=spec
        ) from e
    if not isinstance(model, nn.Module):
        raise ModelLoadError(
            f"--arch {arch} returned a {type(model).__name__}, not an nn.Module", file=spec
        )
    _load_into(model, state, arch, spec)
    return model


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], what: str, spec: str) -> None:
    result = A.fit({k: tuple(v.shape) for k, v in state.items()}, A.signature(model))
    if not result.ok:
        raise ModelLoadError(A.fit_message(result, what), file=spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(
            f"load_state_dict failed for {what}: {one_line(str(e))[:200]}", file=spec
        ) from e


def _torchvision_extra(arch: str, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Builder options that the state_dict decides: auxiliary heads present or not."""
    extra: dict[str, Any] = {}
    if arch in A.segmentation_names():
        extra["aux_loss"] = any(k.startswith("aux_classifier.") for k in state)
    if arch == "inception_v3" or arch == "googlenet":
        extra["aux_logits"] = any(k.startswith(("AuxLogits.", "aux1.")) for k in state)
        extra["init_weights"] = False
    return extra


def _build_torchvision(
    arch: str, state: Mapping[str, torch.Tensor], num_classes: int | None, spec: str
) -> tuple[nn.Module, int]:
    """Build torchvision ``arch`` to fit ``state`` and load it strictly. Returns (model, classes)."""
    extra = _torchvision_extra(arch, state)
    file_sig = {k: tuple(v.shape) for k, v in state.items()}
    if num_classes is None:
        default = A.default_classes(arch)
        result = A.fit(file_sig, A.signature(A.meta_model(arch, **extra)))
        num_classes = default if result.ok else (A.head_classes(result, default) or default)
    meta = A.meta_model(arch, num_classes=num_classes, **extra)
    result = A.fit(file_sig, A.signature(meta))
    if not result.ok:
        message = A.fit_message(result, f"{arch}(num_classes={num_classes})")
        found = [a for a, _ in A.detect_arch(state) if a != arch]
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = A.tv().get_model(arch, **A.builder_kwargs(arch, num_classes, **extra))
    model.load_state_dict(state, strict=True)
    return model, num_classes


# --------------------------------------------------------------------------------------------
# torchvision:NAME[:WEIGHTS]


def _torchvision_random(name: str, num_classes: int | None) -> nn.Module:
    """torchvision ``name`` with random weights, seeded (0) so the fingerprint is stable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = A.builder_kwargs(name, num_classes)
        if name == "inception_v3" or name == "googlenet":
            kwargs["init_weights"] = True
        torch.manual_seed(0)
        model: nn.Module = A.tv().get_model(name, **kwargs)
    return model


def _torchvision_weights(name: str, wname: str, spec: str) -> Any:
    """The ``WeightsEnum`` member ``wname`` (or ``DEFAULT``) of torchvision model ``name``."""
    tvm = A.tv()
    try:
        enum = tvm.get_model_weights(name)
        return enum[wname] if wname != "DEFAULT" else enum.DEFAULT
    except (KeyError, ValueError) as e:
        choices = [w.name for w in tvm.get_model_weights(name)] + ["DEFAULT", "none"]
        raise ModelLoadError(
            f"torchvision {name} has no weights {wname!r}; choose one of {', '.join(choices)}",
            file=spec,
        ) from e


def _torchvision_pretrained(
    name: str, wname: str, num_classes: int | None, spec: str
) -> tuple[nn.Module, str]:
    """(model, description) for torchvision weights found in torch's cache; never downloads."""
    weights = _torchvision_weights(name, wname, spec)
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
            model: nn.Module = A.tv().get_model(name, weights=weights)
    except Exception as e:
        raise ModelLoadError(
            f"cannot load cached weights {cache / filename}: {type(e).__name__}: "
            f"{one_line(str(e))[:160]}",
            file=spec,
        ) from e
    return model, f"{name} from torchvision, weights {weights.name} ({filename})"


def _load_torchvision(spec: str, num_classes: int | None) -> tuple[nn.Module, str]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ModelLoadError(
            f"{spec!r}: expected torchvision:NAME or torchvision:NAME:WEIGHTS", file=spec
        )
    name = parts[1]
    wname = parts[2] if len(parts) == 3 else "DEFAULT"
    if not A.is_known(name):
        raise A.unknown_arch(name, spec)
    if wname.lower() == "none":
        model = _torchvision_random(name, num_classes)
        return model, f"{name} from torchvision, random init (seed 0)"
    return _torchvision_pretrained(name, wname, num_classes, spec)


# --------------------------------------------------------------------------------------------
# the entry point


def _load_file(
    path: Path, spec: str, arch: str | None, num_classes: int | None, trust_pickle: bool
) -> tuple[nn.Module, str]:
    """(module, description) for a model file, by the forms in the module docstring."""
    found = untrusted.scan(path, spec)
    if not trust_pickle:
        untrusted.refuse_untrusted(found, spec)
    if found.torchscript:
        return _load_torchscript(path, spec), f"TorchScript module from {path.name} (trusted)"
    obj = _torch_load(path, spec, trust_pickle)
    module = _pickled_module(obj)
    if module is not None:
        kind = f"{type(module).__module__}.{type(module).__name__}"
        return module, f"pickled {kind} from {path.name} (trusted)"
    state, how, hint = _extract_state(obj, spec)
    if arch is None:
        raise A.arch_error(state, spec, hint)
    if ":" in arch:
        model = _build_user(arch, state, num_classes, spec)
        nc = f", num_classes={num_classes}" if num_classes is not None else ""
        return model, f"{arch}(){nc} with {how} from {path.name}"
    if not A.is_known(arch):
        raise A.unknown_arch(arch, spec)
    model, n = _build_torchvision(arch, state, num_classes, spec)
    return model, f"torchvision {arch}(num_classes={n}) with {how} from {path.name}"


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
    if spec.startswith(("timm:", "hf:")):
        if arch is not None:
            raise ModelLoadError("--arch does not go with a timm: or hf: model", file=spec)
        if spec.startswith("timm:"):
            model, description = hub.load_timm(spec, num_classes)
        else:
            model, description = hub.load_hf(spec)
    elif spec.startswith("torchvision:"):
        if arch is not None:
            raise ModelLoadError("--arch does not go with a torchvision:NAME model", file=spec)
        model, description = _load_torchvision(spec, num_classes)
    else:
        path = Path(spec)
        if not path.exists():
            raise ModelLoadError("model file not found", file=spec)
        if not path.is_file():
            raise ModelLoadError("model path is not a file", file=spec)
        model, description = _load_file(path, spec, arch, num_classes, trust_pickle)
    model = model.to(device)
    model.eval()
    return LoadedModel(
        module=model, description=one_line(description), fingerprint=fingerprint(model)
    )
