"""The model to dissect: load it, fingerprint it, name its layers, pick the default layer.

- :mod:`~conceptkit.dissection.models.loading`      ``load_model(spec, ...)``: state_dicts and
  checkpoints with ``--arch``, TorchScript, ``torchvision:NAME[:WEIGHTS]``, trusted pickles;
  ``fingerprint`` of the weights.
- :mod:`~conceptkit.dissection.models.hub`          ``timm:NAME[:WEIGHTS]`` and ``hf:PATH[:none]``
  (optional extras; local weights only).
- :mod:`~conceptkit.dissection.models.architecture` which torchvision architecture a bare
  state_dict fits (``detect_arch``), from key/shape signatures built on the meta device.
- :mod:`~conceptkit.dissection.models.layers`       ``list_layers``, ``default_layers`` and
  ``resolve_layer``, the one lookup of a dotted layer name.
"""

from __future__ import annotations

from conceptkit.dissection.models.architecture import detect_arch
from conceptkit.dissection.models.layers import (
    LayerInfo,
    default_layers,
    list_layers,
    resolve_layer,
)
from conceptkit.dissection.models.loading import LoadedModel, fingerprint, load_model

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
