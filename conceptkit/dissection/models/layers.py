"""A model's layers: their names and output shapes, the default layer, a name's module.

Layers are named by their dotted path (``layer4``, ``features.18``, ``layer4.1.conv2``), the names
of ``model.named_modules()``. :func:`list_layers` gives every module's output shape from one dummy
forward pass; :func:`resolve_layer` is the one lookup of a name (the hooks use it too);
:func:`default_layers` picks the last convolutional stage by this rule:

    Candidates are the model's direct children, plus the direct children of any direct child
    that is an ``nn.Sequential`` or returns something other than a tensor (a backbone returning a
    dict). A candidate must contain an ``nn.Conv*d`` and return a 4-D map ``(N, C, H, W)`` with
    ``H > 1`` and ``W > 1``; when the model's own output is a 4-D map (segmentation; or the
    ``'out'`` entry of a dict), a child with as many channels as that output is a prediction
    head and is skipped together with its children. The default is the candidate that
    *finishes* last in the forward pass.

So resnet -> ``layer4`` (it finishes after ``layer4.1``), mobilenet_v2 / vgg / densenet /
efficientnet -> ``features``, alexnet -> ``features`` (its 6x6 ``avgpool`` holds no conv),
inception_v3 -> ``Mixed_7c``, googlenet -> ``inception5b``, deeplabv3_resnet50 ->
``backbone.layer4``. Before that rule, two families: a transformer (the longest list of
same-typed blocks returning ``(N, T, C)`` tokens: torchvision ``encoder.layers``, timm
``blocks``, Hugging Face ``layers``) gets four evenly spaced blocks, a ConvNeXt or Swin
(torchvision, timm) its stages; Swin's channels-last ``(N, H, W, C)`` stage outputs are read
by :mod:`~conceptkit.dissection.tokens`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from conceptkit.dissection import tokens
from conceptkit.dissection.models._text import names, one_line
from conceptkit.errors import ModelLoadError, UsageError


@dataclass
class LayerInfo:
    """One named module and what it returned in the dummy forward pass.

    out_shape: the output tensor's shape, e.g. ``(1, 512, 7, 7)``; None when the module returned
    something other than a tensor or was not called. read: how the dissection turns it into a
    map (:meth:`~conceptkit.dissection.tokens.LayerReader.describe`), ``-`` when it cannot.
    """

    name: str
    type: str
    out_shape: tuple[int, ...] | None
    read: str = "-"  # how dissection reads it: map, channels-last, tokens: 1 prefix + 14x14


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted path ``name``; UsageError listing close names if absent.

    Works for TorchScript modules too (``get_submodule`` does not).
    """
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    top = [n for n, _ in model.named_children()]
    hint = f"close matches: {', '.join(close)}" if close else f"top-level: {names(top)}"
    raise UsageError(f"model has no layer {name!r}; {hint} (list them with --list-layers)")


@dataclass
class _Trace:
    shapes: dict[str, tuple[int, ...] | None]
    finished: list[str]  # module names in the order their forward returned
    out_channels: int | None  # dim 1 of the model's (N, K, H, W) output, or its dict's 'out'


def _hook_all(model: nn.Module, shapes: dict[str, Any], finished: list[str]) -> list[Any]:
    """Register a forward hook on every named module recording its first output's shape."""
    handles: list[Any] = []

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
    return handles


def _trace(model: nn.Module, input_size: int) -> _Trace:
    """One no-grad forward pass of a seeded random (1, 3, S, S) image, hooking every module."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    finished: list[str] = []
    handles = _hook_all(model, shapes, finished)
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
            f"{type(e).__name__}: {one_line(str(e))[:160]}"
        ) from e
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if isinstance(out, Mapping) and "out" in out:
        out = out["out"]
    dense = isinstance(out, torch.Tensor) and out.dim() == 4
    return _Trace(shapes, finished, int(out.shape[1]) if dense else None)


def _read(model: nn.Module, name: str, shape: tuple[int, ...] | None, size: int, grid: Any) -> str:
    if shape is None or len(shape) not in (3, 4):
        return "-"
    return tokens.layer_reader(model, name, shape, grid).describe((size, size), shape[1])


def list_layers(
    model: nn.Module, input_size: int = 224, grid: tuple[int, int] | None = None
) -> list[LayerInfo]:
    """Every named module (definition order) with its output shape for a (1, 3, S, S) input.

    Shapes come from one no-grad forward pass with forward hooks. out_shape is None for a module
    that returned a non-tensor (tuple, dict) or was not called. For a TorchScript module, which
    cannot be hooked, every out_shape is None. ``read`` says how each would be dissected.
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
            _read(model, name, shapes.get(name), input_size, grid),
        )
        for name, mod in model.named_modules()
        if name
    ]


def _has_conv(mod: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in mod.modules())


def evenly_spaced(n: int, k: int = 4) -> list[int]:
    """``k`` of ``n`` block indices, evenly spaced and ending at the last: 12 -> 2, 5, 8, 11."""
    k = min(k, n)
    return [round(n * (j + 1) / k) - 1 for j in range(k)]


def _token_blocks(model: nn.Module, tr: _Trace) -> list[str]:
    """The longest list of same-typed blocks that all return ``(B, N, C)`` tokens, evenly spaced."""
    best: list[str] = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential | nn.ModuleList) or len(mod) < 2:
            continue
        kids = [f"{name}.{sub}" if name else sub for sub, _ in mod.named_children()]
        same = len({type(c) for c in mod.children()}) == 1
        shapes = [tr.shapes.get(k) for k in kids]
        if same and all(s is not None and len(s) == 3 for s in shapes) and len(kids) > len(best):
            best = kids
    return [best[i] for i in evenly_spaced(len(best))] if best else []


_STAGE_BLOCKS = frozenset({"CNBlock", "SwinTransformerBlock", "SwinTransformerBlockV2"})


def _hierarchical_stages(model: nn.Module) -> list[str]:
    """A ConvNeXt's or Swin's stages: timm ``stages.*`` / ``layers.*``, torchvision's
    ``features.*`` made of CNBlocks or Swin blocks."""
    if not type(model).__name__.startswith(("ConvNeXt", "SwinTransformer")):
        return []
    for attr in ("stages", "layers"):
        stages = getattr(model, attr, None)
        if isinstance(stages, nn.Sequential | nn.ModuleList):
            return [f"{attr}.{i}" for i in range(len(stages))]
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        return []
    return [
        f"features.{i}"
        for i, child in enumerate(features)
        if isinstance(child, nn.Sequential)
        and all(type(b).__name__ in _STAGE_BLOCKS for b in child.children())
    ]


def default_layers(model: nn.Module, input_size: int = 224) -> list[str]:
    """The default layers: by family, else the last convolutional stage (module docstring).

    A transformer (a list of blocks returning ``(B, N, C)`` tokens) gets four evenly spaced
    blocks (3, 6, 9, 12 of 12), a ConvNeXt or Swin its stages. Otherwise the rule above gives one
    name; ModelLoadError when no candidate returns a 4-D map with H, W > 1.
    """
    tr = _trace(model, input_size)
    family = _token_blocks(model, tr) or _hierarchical_stages(model)
    if family:
        return family

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
