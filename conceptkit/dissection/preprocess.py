"""Input preprocessing for dissection: uint8 images -> normalised float32 model input.

Three kinds, all mapping ``(B, 3, H, W) uint8`` RGB to ``(B, 3, H, W) float32``:

- ``imagenet``: torchvision's convention, ``(x / 255 - mean) / std`` with the ImageNet mean/std.
- ``netdissect``: NetDissect-Lite's actual arithmetic, ``(x - (124.6901, 118.6897, 109.5388)) /
  57.12`` on the 0..255 scale with ONE scalar divisor (255 * 0.224), rounded as the reference
  rounds: the subtraction in float64 stored as float32, then a float32 division. Needed to
  reproduce its numbers.
- custom: ``(x / 255 - mean) / std`` with a user mean/std on the 0..1 scale.

With ``input_size=N`` (``--input-size``) every kind then resizes the batch to ``N x N``
(bilinear, antialiased, ``align_corners=False``) for models that need another size than the
dataset's images (a ViT at 224 on a 227 Broden, Inception at 299); the runner upsamples the
activation maps to the label planes as always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from conceptkit.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NETDISSECT_MEAN = (124.6901, 118.6897, 109.5388)
NETDISSECT_DIVISOR = 255.0 * 0.224


@dataclass(frozen=True)
class Preprocess:
    """``(x / scale - mean) / std`` per channel; ``x`` is the uint8 image as float.

    ``name`` is what results.json records; ``reference`` selects NetDissect-Lite's rounding
    (float64 subtraction stored as float32, then a float32 division).
    """

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 255.0
    reference: bool = False
    input_size: int | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``images: (B, 3, H, W) uint8`` -> ``(B, 3, S, S) float32`` (S = input_size, or H, W)."""
        x = self._normalise(images)
        if self.input_size is None or tuple(x.shape[-2:]) == (self.input_size, self.input_size):
            return x
        size = (self.input_size, self.input_size)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    @cached_property
    def table(self) -> torch.Tensor:
        """``(3, 256) float32``: :meth:`_normalise` of every uint8 value of each channel, on
        the CPU; a uint8 CPU batch is normalised by looking values up in it (the same bits,
        in one pass: :mod:`conceptkit.dissection._preprocess_cpu`)."""
        values = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
        return self._arithmetic(values.contiguous()).reshape(3, 256).contiguous()

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        if images.device.type != "cpu" or images.dtype != torch.uint8 or images.dim() != 4:
            return self._arithmetic(images)
        b, c, h, w = images.shape
        if c != 3:
            return self._arithmetic(images)
        from conceptkit.dissection._preprocess_cpu import lookup_kernel

        flat = images.contiguous().reshape(b, c, h * w).numpy()
        return torch.from_numpy(lookup_kernel(flat, self.table.numpy())).view(b, c, h, w)

    def _arithmetic(self, images: torch.Tensor) -> torch.Tensor:
        dev = images.device
        if self.reference:
            mean64 = torch.tensor(self.mean, dtype=torch.float64, device=dev).view(1, 3, 1, 1)
            centred = (images.to(torch.float64) - mean64).to(torch.float32)
            std32 = torch.tensor(self.std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
            return centred / std32
        x = images.to(torch.float32)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        if self.scale != 1.0:
            x = x / self.scale
        return (x - mean) / std


def get_preprocess(
    name: str = "imagenet",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
) -> Preprocess:
    """Build a :class:`Preprocess` by name; ``mean``/``std`` (0..1 scale) override imagenet's;
    ``input_size`` resizes to ``input_size x input_size`` after normalising."""
    if input_size is not None and not 1 <= input_size <= 4096:
        raise UsageError(f"--input-size must lie between 1 and 4096, not {input_size}")
    if name == "netdissect":
        if mean is not None or std is not None:
            raise UsageError("--mean/--std cannot be combined with --preprocess netdissect")
        d = NETDISSECT_DIVISOR
        return Preprocess(
            "netdissect", NETDISSECT_MEAN, (d, d, d), 1.0, reference=True, input_size=input_size
        )
    if name != "imagenet":
        raise UsageError(f"unknown preprocessing {name!r}; expected imagenet or netdissect")
    m = tuple(float(v) for v in (mean if mean is not None else IMAGENET_MEAN))
    s = tuple(float(v) for v in (std if std is not None else IMAGENET_STD))
    if len(m) != 3 or len(s) != 3:
        raise UsageError("--mean and --std need three numbers each (R,G,B on the 0..1 scale)")
    if any(v <= 0 for v in s):
        raise UsageError("--std values must be positive")
    custom = mean is not None or std is not None
    kind = "custom" if custom else "imagenet"
    return Preprocess(kind, m, s, input_size=input_size)  # type: ignore[arg-type]
