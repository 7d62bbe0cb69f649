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
- Batch norms folded into the convolutions before them (:mod:`~conceptkit.dissection.fold`;
  ``fold_bn="auto"``, on by default): one pass less over those activations (ResNet-18 here
  0.87x the channels-last forward's time); the model itself is left as it is (the forward runs
  a folded copy, :attr:`Forward.net`), the layers read are never folded away, and the values are
  again those of another rounding. The pairs folded are recorded, so a rebuilt forward folds the
  same ones.
- ``autocast`` (``bf16`` / ``fp16``) runs the forward in reduced precision: faster where the
  hardware has it, and it changes the activations, so it is off unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from conceptkit.dissection.fold import conv_bn_pairs, folded
from conceptkit.dissection.hooks import FeatureHooks
from conceptkit.dissection.settings import AUTOCASTS
from conceptkit.errors import UsageError


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
    call it with hooks (made on :attr:`net`) and an input batch.

    ``folds``: the (convolution, batch norm) pairs folded in :attr:`net`, the module the
    forward runs (``model`` itself when there are none).
    """

    model: nn.Module
    device: torch.device
    channels_last: bool = False
    autocast: str | None = None
    folds: list[tuple[str, str]] = field(default_factory=list)
    net: nn.Module = field(init=False)

    @classmethod
    def choose(
        cls,
        model: nn.Module,
        device: torch.device,
        channels_last: str = "auto",
        autocast: str | None = None,
        fold_bn: str = "auto",
        layers: Sequence[str] = (),
    ) -> Forward:
        """The forward a new run uses (``channels_last``: ``auto``/``on``/``off``;
        ``fold_bn``: ``auto`` folds what can be folded outside ``layers``, ``off`` nothing)."""
        fwd = cls(model, device, use_channels_last(model, channels_last), autocast)
        fwd.model = fwd.model.to(device).eval()
        if fold_bn != "off":
            fwd.folds = conv_bn_pairs(fwd.model, keep=layers)
        return fwd.prepared()

    @classmethod
    def of_run(cls, model: nn.Module, device: torch.device, recorded: Mapping[str, Any]) -> Forward:
        """The forward a finished run used, from results.json's ``settings`` (a run made
        before the layout was recorded used the plain layout on the CPU; one made before
        folding was recorded folded nothing). A recorded fold the model does not have is a
        UsageError (another model than the run's)."""
        cl = recorded.get("channels_last")
        if not isinstance(cl, bool):
            cl = device.type == "cuda" and use_channels_last(model, "auto")
        kind = recorded.get("autocast")
        fwd = cls(model, device, cl, kind if kind in AUTOCASTS else None)
        fwd.model = fwd.model.to(device).eval()
        fwd.folds = _recorded_folds(fwd.model, recorded.get("fold_bn"))
        return fwd.prepared()

    def prepared(self) -> Forward:
        self.model = self.model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = folded(self.model, self.folds) if self.folds else self.model
        return self

    def hooks(self, layers: Sequence[str], **options: Any) -> FeatureHooks:
        """:class:`FeatureHooks` on the module this forward runs (``options``: theirs)."""
        return FeatureHooks(self.net, layers, **options)

    def describe(self) -> dict[str, Any]:
        """What results.json records so that :meth:`of_run` can rebuild this forward."""
        return {
            "channels_last": self.channels_last,
            "autocast": self.autocast,
            "fold_bn": [list(p) for p in self.folds],
        }

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
            feats = hooks.run(self.net, x, stop_after=stop_after)
        if self.autocast is not None:
            feats = {n: f.float() for n, f in feats.items()}
        return feats


def _recorded_folds(model: nn.Module, recorded: Any) -> list[tuple[str, str]]:
    """The folds a run recorded (``[[conv, bn], ...]``; none when absent), each checked to be
    a foldable pair of ``model``."""
    if recorded is None:
        return []
    ok = (
        isinstance(recorded, list)
        and all(isinstance(p, list) and len(p) == 2 for p in recorded)
        and all(isinstance(n, str) for p in recorded for n in p)
    )
    if not ok:
        raise UsageError("results.json: settings.fold_bn must be a list of [conv, bn] names")
    pairs = [(p[0], p[1]) for p in recorded]
    missing = sorted(set(pairs) - set(conv_bn_pairs(model)))
    if missing:
        raise UsageError(
            f"the run folded batch norm {missing[0][1]!r} into {missing[0][0]!r}, which this "
            "model cannot fold: is it the run's model?"
        )
    return pairs
