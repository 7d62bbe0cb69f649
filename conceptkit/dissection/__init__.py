"""Network Dissection of any PyTorch model against a Broden-layout folder.

- :mod:`~conceptkit.dissection.models`      load a model from a file or torchvision; list layers.
- :mod:`~conceptkit.dissection.preprocess`  uint8 images -> model input (imagenet, netdissect).
- :mod:`~conceptkit.dissection.hooks`       capture named layers' outputs in one forward pass.
- :mod:`~conceptkit.dissection.data`        the Broden folder as a torch Dataset; collate, loader.
- :mod:`~conceptkit.dissection.stats`       exact quantile, top-N images, IoU tally (pure tensors).
- :mod:`~conceptkit.dissection.settings`    ``DissectSettings``: science, cache and run settings.
- :mod:`~conceptkit.dissection.cache`       pass 1's features kept for pass 2 (memory, then disk).
- :mod:`~conceptkit.dissection.checkpoint`  statistics saved during a run, so a rerun resumes.
- :mod:`~conceptkit.dissection.distributed` ranks under torchrun, batch shards, exact merges.
- :mod:`~conceptkit.dissection.run`         the two-pass run: ``dissect(model, data, layers)``.
- :mod:`~conceptkit.dissection.results`     ``DissectResult``: tally rows, unique detectors, files.

``DissectSettings``, ``Dissection`` and ``dissect`` are importable from here; they load on
first use, so importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CacheSettings",
    "DissectSettings",
    "Dissection",
    "RunSettings",
    "ScienceSettings",
    "dissect",
]

_LAZY = {
    "CacheSettings": "conceptkit.dissection.settings",
    "DissectSettings": "conceptkit.dissection.settings",
    "RunSettings": "conceptkit.dissection.settings",
    "ScienceSettings": "conceptkit.dissection.settings",
    "Dissection": "conceptkit.dissection.run",
    "dissect": "conceptkit.dissection.run",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
