"""Agreement between annotators and consensus of their annotations.

- :func:`analyse`: pixel agreement, Cohen's / Fleiss' kappa, per-concept IoU, the three error
  types (naming, quantity, quality) as shares of the disagreeing pixels, boundary F-score,
  segment counts and naming-vocabulary drift, per image, per concept, per annotator pair;
  returns a :class:`ConsistencyReport` (``summary()``, ``to_dict()``, ``write(folder)``).
- :func:`consensus`: one annotation from several (per-pixel majority, STAPLE, or the first).

Everything is computed on instance planes painted from the shapes by
:mod:`conceptkit.rasterize`, so each reader's pixel convention is respected.
"""

from __future__ import annotations

from conceptkit.consistency._analyse import analyse
from conceptkit.consistency._consensus import (
    Consensus,
    consensus,
    consensus_details,
    staple_estimates,
)
from conceptkit.consistency._report import ConsistencyReport

__all__ = [
    "Consensus",
    "ConsistencyReport",
    "analyse",
    "consensus",
    "consensus_details",
    "staple_estimates",
]
