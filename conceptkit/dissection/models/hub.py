"""Models of timm and Hugging Face transformers: ``timm:NAME[:WEIGHTS]`` and ``hf:PATH[:none]``.

Both libraries are optional extras (``pip install 'conceptkit[timm]'`` / ``'conceptkit[hf]'``);
without them the spec is a one-line ModelLoadError saying so. Nothing is ever downloaded:

``timm:NAME``
    the model's default pretrained weights, looked up in the Hugging Face cache only
    (``try_to_load_from_cache``); a missing entry names the hub repository to put there.
``timm:NAME:FILE``
    weights from a local ``.safetensors`` file, or a ``.pth`` / ``.pt`` / ``.bin`` state_dict
    that :mod:`~conceptkit.dissection.models.untrusted` finds to hold tensors only.
``hf:PATH``
    a local transformers model folder (or its ``config.json``): the architecture from the
    config, the weights from ``model.safetensors`` beside it; ``trust_remote_code`` is never set.
``timm:NAME:none``, ``hf:PATH:none``
    random weights (seed 0), built from the name or the config alone.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conceptkit.dissection.models import untrusted
from conceptkit.dissection.models._text import one_line
from conceptkit.errors import ModelLoadError


def _import(name: str, extra: str, spec: str) -> Any:
    try:
        return __import__(name)
    except ImportError as e:
        raise ModelLoadError(
            f"{name} is not installed: pip install 'conceptkit[{extra}]'", file=spec
        ) from e


def _fail(what: str, e: Exception, spec: str) -> ModelLoadError:
    return ModelLoadError(f"{what}: {type(e).__name__}: {one_line(str(e))[:160]}", file=spec)


def _state_from_file(path: Path, spec: str) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file or a tensors-only torch file (never unpickled code)."""
    if not path.is_file():
        raise ModelLoadError(f"weights file {path} not found", file=spec)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as e:
            raise _fail(f"cannot read {path.name}", e, spec) from e
    untrusted.refuse_untrusted(untrusted.scan(path, spec), spec)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise _fail(f"cannot load {path.name}", e, spec) from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path.name} holds no state_dict", file=spec)
    return obj


def _timm_random(timm: Any, name: str, num_classes: int | None) -> nn.Module:
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    torch.manual_seed(0)
    model: nn.Module = timm.create_model(name, pretrained=False, **kwargs)
    return model


def _timm_cached(timm: Any, name: str, spec: str) -> Path:
    """The cached weights file of timm ``name``'s default pretrained tag; never downloads."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None)
    if not repo:
        raise ModelLoadError(
            f"timm {name} has no Hugging Face hub weights to look up; pass timm:{name}:FILE "
            f"or timm:{name}:none",
            file=spec,
        )
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    raise ModelLoadError(
        f"weights of timm {name} are not in the Hugging Face cache and this tool never "
        f"downloads: put {repo} (model.safetensors) into {HF_HUB_CACHE}, or pass "
        f"timm:{name}:FILE or timm:{name}:none",
        file=spec,
    )


def load_timm(spec: str, num_classes: int | None) -> tuple[nn.Module, str]:
    """(model, description) for ``timm:NAME[:WEIGHTS]``; see the module docstring."""
    _, _, rest = spec.partition(":")
    name, _, weights = rest.partition(":")
    if not name:
        raise ModelLoadError(f"{spec!r}: expected timm:NAME or timm:NAME:WEIGHTS", file=spec)
    timm = _import("timm", "timm", spec)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"timm has no model {name!r}{hint}", file=spec)
    if weights.lower() == "none":
        return _timm_random(timm, name, num_classes), f"{name} from timm, random init (seed 0)"
    path = Path(weights) if weights else _timm_cached(timm, name, spec)
    state = _state_from_file(path, spec)
    model = _timm_random(timm, name, num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise _fail(f"load_state_dict failed for timm {name}", e, spec) from e
    where = path.name if weights else f"the Hugging Face cache ({path.name})"
    return model, f"{name} from timm with weights from {where}"


def load_hf(spec: str) -> tuple[nn.Module, str]:
    """(model, description) for ``hf:PATH[:none]``; see the module docstring."""
    rest = spec[len("hf:") :]
    random = rest.lower().endswith(":none")
    folder = Path(rest[: -len(":none")] if random else rest)
    if folder.name == "config.json":
        folder = folder.parent
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"no config.json in {folder} (hf:PATH is a local model folder)", file=spec
        )
    _import("transformers", "hf", spec)
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:
        raise _fail(f"cannot read {folder / 'config.json'}", e, spec) from e
    kind = type(config).__name__.removesuffix("Config")
    if random:
        torch.manual_seed(0)
        try:
            model: nn.Module = AutoModel.from_config(config, trust_remote_code=False)
        except Exception as e:
            raise _fail(f"cannot build a {kind} model from the config", e, spec) from e
        return model, f"{kind} from {folder / 'config.json'}, random init (seed 0)"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(
            f"no weights: put model.safetensors into {folder}, or pass {spec}:none for random "
            "weights",
            file=spec,
        )
    try:
        model = AutoModel.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, trust_remote_code=False
        )
    except Exception as e:
        raise _fail(f"cannot load {weights}", e, spec) from e
    return model, f"{kind} from {folder} (model.safetensors)"
