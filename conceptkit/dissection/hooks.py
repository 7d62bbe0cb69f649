"""Capture the outputs of several modules, named by dotted path, in one forward pass.

``layer4``, ``layer4.1.conv2`` and ``features.18`` all work: the names are those of
``model.named_modules()``, at any depth (NetDissect-Lite could only hook top-level modules),
looked up by :func:`~conceptkit.dissection.models.layers.resolve_layer` (an unknown name is a
UsageError that lists close names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from conceptkit.dissection.models.layers import resolve_layer
from conceptkit.errors import UsageError


class FeatureHooks:
    """Forward hooks that store each named module's output tensor in :attr:`features`.

    Use as a context manager; the hooks are removed on exit. After ``model(x)``,
    ``features[name]`` is a copy of that module's output ``(B, C, h, w)`` (detached, safe from
    later in-place ops). A module that returns a tuple contributes its first tensor.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.names = list(names)
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []
        for name in self.names:
            module = resolve_layer(model, name)
            self._handles.append(module.register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = output
            if isinstance(out, (tuple, list)):
                out = next((o for o in out if isinstance(o, torch.Tensor)), None)
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(output)
                raise UsageError(
                    f"layer {name!r} gives {shape}, expected a (B, C, h, w) feature map",
                    hint="dissect convolutional layers",
                )
            # a copy: a later in-place op (ReLU(inplace=True) after a conv) must not change it
            self.features[name] = out.detach().clone()

        return hook

    def run(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward ``x`` once and return ``{name: (B, C, h, w)}`` for every hooked layer."""
        self.features = {}
        model(x)
        missing = [n for n in self.names if n not in self.features]
        if missing:
            raise UsageError(f"layer(s) {', '.join(missing)} were not called in the forward pass")
        return {n: self.features[n] for n in self.names}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FeatureHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
