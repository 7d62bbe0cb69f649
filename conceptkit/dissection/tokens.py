"""Token maps: turn a layer's output into the ``(B, C, h, w)`` map that dissection needs.

Three kinds of output are read (a :class:`LayerReader` per layer says which):

- ``map``: ``(B, C, h, w)`` as it is (convolutional layers).
- ``tokens``: ``(B, N, C)`` with ``N = prefix + h * w``. The ``prefix`` tokens (CLS,
  distillation, registers) are counted from the model's own attributes, never guessed from
  the position: timm's ``num_prefix_tokens``, else the sizes of the ``class_token`` (torchvision
  ViT), ``cls_token``, ``dist_token`` / ``distillation_token``, ``reg_token`` /
  ``register_tokens`` (timm, Hugging Face) tensors of the model or its modules. The grid
  ``h x w`` is the input size divided by the model's patch size (torchvision ``patch_size``,
  timm ``patch_embed.patch_size``, Hugging Face ``config.patch_size``), or given (``--grid
  14x14``). Patch ``t`` (row-major) becomes cell ``(t // w, t % w)``. An output of exactly
  ``h * w`` tokens (a patch embedding, before the prefix is added) has no prefix to drop.
- ``channels_last``: ``(B, h, w, C)``, permuted to ``(B, C, h, w)``: the output of a
  ``LayerNorm`` over the last dimension of a 4-D tensor (ConvNeXt blocks), or any 4-D output
  with ``h == w`` and ``C != h`` in a model that declares channels-last stages (torchvision
  Swin, timm models with ``output_fmt == "NHWC"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from conceptkit.errors import UsageError

_PREFIX_ATTRS = (
    "class_token",
    "cls_token",
    "dist_token",
    "distillation_token",
    "reg_token",
    "register_tokens",
)


def parse_grid(text: str) -> tuple[int, int]:
    """``"14x14"`` -> ``(14, 14)``; UsageError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UsageError(f"--grid {text!r}: expected HxW like 14x14")
    return int(m.group(1)), int(m.group(2))


def prefix_tokens(model: nn.Module) -> int:
    """How many tokens come before the patches, from the model's attributes (0 if none)."""
    n = getattr(model, "num_prefix_tokens", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    for module in model.modules():
        found = [getattr(module, a, None) for a in _PREFIX_ATTRS]
        tensors = [t for t in found if isinstance(t, torch.Tensor)]
        if tensors:
            return sum(int(t.shape[-2]) if t.dim() >= 2 else 1 for t in tensors)
    return 0


def _pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    return None


def patch_size(model: nn.Module) -> tuple[int, int] | None:
    """The model's patch size ``(ph, pw)`` from its attributes, or None."""
    config = getattr(model, "config", None)
    for holder in (model, getattr(model, "patch_embed", None), config):
        p = _pair(getattr(holder, "patch_size", None)) if holder is not None else None
        if p is not None:
            return p
    for module in model.modules():
        p = _pair(getattr(module, "patch_size", None))
        if p is not None:
            return p
    return None


def declares_channels_last(model: nn.Module) -> bool:
    """Whether the model says its stages return ``(B, h, w, C)``: torchvision Swin, timm NHWC."""
    if getattr(model, "output_fmt", None) in ("NHWC",):
        return True
    return type(model).__name__ == "SwinTransformer" and type(model).__module__.startswith(
        "torchvision."
    )


@dataclass(frozen=True)
class LayerReader:
    """How one layer's output becomes ``(B, C, h, w)``.

    kind: ``map``, ``tokens`` or ``channels_last`` (see the module docstring); prefix: tokens
    dropped before the patches; patch: the patch size that gives the grid from the input size;
    grid: a fixed grid (overrides patch).
    """

    layer: str
    kind: str
    prefix: int = 0
    patch: tuple[int, int] | None = None
    grid: tuple[int, int] | None = None

    def describe(self, input_hw: tuple[int, int] | None = None, tokens: int | None = None) -> str:
        """One short phrase for ``--list-layers``: ``map``, ``tokens: 1 prefix + 14x14``
        (the grid at ``input_hw``, else the patch size; 0 prefix where ``tokens`` is the
        grid alone: a patch embedding, before the prefix tokens are added)."""
        if self.kind != "tokens":
            return self.kind.replace("_", "-")
        at = self.grid_for(input_hw) if input_hw is not None else self.grid
        grid = f"{at[0]}x{at[1]}" if at else None
        patch = f"patch {self.patch[0]}x{self.patch[1]}" if self.patch else "no patch size"
        prefix = 0 if at is not None and tokens == at[0] * at[1] else self.prefix
        return f"tokens: {prefix} prefix + {grid or patch}"

    def grid_for(self, input_hw: tuple[int, int]) -> tuple[int, int] | None:
        if self.grid is not None:
            return self.grid
        if self.patch is None:
            return None
        return input_hw[0] // self.patch[0], input_hw[1] // self.patch[1]

    def __call__(self, out: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
        """``out`` (as above) -> ``(B, C, h, w)``; UsageError naming the layer if it does not fit."""
        if out.dim() != (3 if self.kind == "tokens" else 4):
            raise UsageError(
                f"layer {self.layer!r} gives {tuple(out.shape)}, expected a (B, C, h, w) feature map or "
                "(B, N, C) tokens",
                hint="dissect convolutional layers or transformer blocks",
            )
        if self.kind == "tokens":
            return self._tokens(out, input_hw)
        if self.kind == "channels_last":
            return out.permute(0, 3, 1, 2)
        return out

    def _tokens(self, out: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
        grid = self.grid_for(input_hw)
        b, n, c = out.shape
        if grid is None:
            raise UsageError(
                f"layer {self.layer!r} gives {n} tokens and the model names no patch size; "
                "give the grid with --grid HxW"
            )
        h, w = grid
        prefix = 0 if n == h * w else self.prefix  # 0: before the prefix tokens are added
        if n != prefix + h * w:
            raise UsageError(
                f"layer {self.layer!r} gives {n} tokens, not {self.prefix} prefix + {h}x{w} "
                f"patches (input {input_hw[0]}x{input_hw[1]}); give the grid with --grid HxW"
            )
        return out[:, prefix:, :].reshape(b, h, w, c).permute(0, 3, 1, 2)


def _is_last_dim_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1


def layer_reader(
    model: nn.Module,
    name: str,
    out_shape: Sequence[int],
    grid: tuple[int, int] | None = None,
) -> LayerReader:
    """The reader of layer (or graph node) ``name`` of ``model`` whose output has ``out_shape``.

    A 3-D output is read as tokens; a LayerNorm over the last dimension of a 4-D output, or a
    4-D output ``(B, h, h, C)`` of a channels-last model, as channels-last; anything else as a
    map (the reader then refuses what is not 4-D).
    """
    shape = tuple(out_shape)
    if len(shape) == 3:
        return LayerReader(name, "tokens", prefix_tokens(model), patch_size(model), grid)
    if len(shape) == 4:
        module = dict(model.named_modules()).get(name)
        if module is not None and _is_last_dim_norm(module) and shape[-1] != shape[1]:
            return LayerReader(name, "channels_last")
        if declares_channels_last(model) and shape[1] == shape[2] and shape[3] != shape[1]:
            return LayerReader(name, "channels_last")
    return LayerReader(name, "map")
