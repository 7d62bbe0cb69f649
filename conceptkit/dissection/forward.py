"""The forward pass of a dissection, and of everything that recomputes a run's features.

A run's masks depend on the exact activations, so ``explain``, ``chance``, ``embed`` and
``segment`` must recompute features the way the dissection computed them. :class:`Forward`
is that one way: the model on its device in eval mode, inference mode, the memory layout and
the (optional) reduced precision, recorded in results.json (:meth:`Forward.describe`) and
rebuilt from it (:meth:`Forward.of_run`).

- Memory layout: channels-last (NHWC) makes convolutions faster on CPUs and GPUs alike (this
  project's 2-core AVX-512 CPU, float32, 16 images of 224 px, whole forward: ResNet-18 0.85x
  the time, ResNet-50 0.82x, VGG-11 0.79x, AlexNet 0.86x, DenseNet-121 0.71x, MobileNetV2
  0.68x, GoogLeNet 0.55x; bench/dissect measures it for ResNet-18). ``auto`` uses it when
  convolutions hold most of the model's parameters (a ViT's patch embedding alone does not
  count). The values are those of another summation order: equal to the plain layout's within
  float32 rounding (relative differences around 1e-7), so a pixel at a unit's threshold can
  flip; ``off`` keeps the plain layout.
- ``autocast`` (``bf16`` / ``fp16``) runs the forward in reduced precision: faster where the
  hardware has it, and it changes the activations, so it is off unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.settings import AUTOCASTS


def conv_share(model: nn.Module) -> float:
    """The fraction of the model's parameters that sit in 2-D convolutions."""
    total = sum(p.numel() for p in model.parameters())
    conv = sum(
        p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()
    )
    return conv / total if total else 0.0


def use_channels_last(model: nn.Module, choice: str) -> bool:
    """``on``, ``off``, or ``auto``: on for a model whose convolutions hold most parameters."""
    if choice == "off" or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return False
    return choice == "on" or conv_share(model) > 0.5


@contextmanager
def precision(dev: torch.device, kind: str | None) -> Iterator[None]:
    """Inference mode, and autocast to ``kind`` (``bf16``/``fp16``) when given."""
    with torch.inference_mode():
        if kind is None:
            yield
            return
        dtype = torch.bfloat16 if kind == "bf16" else torch.float16
        with torch.autocast(device_type=dev.type, dtype=dtype):
            yield


@dataclass
class Forward:
    """``model`` prepared on ``device`` (eval mode, channels-last when ``channels_last``);
    call it with hooks and an input batch."""

    model: nn.Module
    device: torch.device
    channels_last: bool = False
    autocast: str | None = None

    @classmethod
    def choose(
        cls,
        model: nn.Module,
        device: torch.device,
        channels_last: str = "auto",
        autocast: str | None = None,
    ) -> Forward:
        """The forward a new run uses (``channels_last``: ``auto``/``on``/``off``)."""
        return cls(model, device, use_channels_last(model, channels_last), autocast).prepared()

    @classmethod
    def of_run(cls, model: nn.Module, device: torch.device, recorded: Mapping[str, Any]) -> Forward:
        """The forward a finished run used, from results.json's ``settings`` (a run made
        before the layout was recorded used the plain layout on the CPU)."""
        cl = recorded.get("channels_last")
        if not isinstance(cl, bool):
            cl = device.type == "cuda" and use_channels_last(model, "auto")
        kind = recorded.get("autocast")
        return cls(model, device, cl, kind if kind in AUTOCASTS else None).prepared()

    def prepared(self) -> Forward:
        self.model = self.model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        return self

    def describe(self) -> dict[str, Any]:
        """What results.json records so that :meth:`of_run` can rebuild this forward."""
        return {"channels_last": self.channels_last, "autocast": self.autocast}

    def __call__(
        self,
        hooks: FeatureHooks,
        images: torch.Tensor,
        stop_after: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """``images: (B, 3, H, W)`` already preprocessed -> ``{layer: (B, C, h, w) float32}``
        (only ``stop_after``'s layers, the forward ended after them, when given)."""
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with precision(self.device, self.autocast):
            feats = hooks.run(self.model, x, stop_after=stop_after)
        if self.autocast is not None:
            feats = {n: f.float() for n, f in feats.items()}
        return feats
