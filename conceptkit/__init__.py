"""conceptkit: concept datasets in the Broden layout, and Network Dissection of PyTorch models.

Public API (imported lazily so that `import conceptkit` stays cheap):

- :func:`conceptkit.dissect` -- probe a model's units against a Broden-layout dataset.
- :mod:`conceptkit.broden` -- read and write the Broden layout.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "dissect"]


def dissect(*args: Any, **kwargs: Any) -> Any:
    """Run Network Dissection; see :func:`conceptkit.dissection.run.dissect`."""
    from conceptkit.dissection.run import dissect as _dissect

    return _dissect(*args, **kwargs)
