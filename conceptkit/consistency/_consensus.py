"""consensus(): one annotation of an image from several annotators' annotations.

Methods:

- ``majority``: a per-pixel vote in two steps. (1) Labelled or not: a pixel is labelled when
  more than half of the annotators labelled it (a tie leaves it unlabelled: two annotators of
  whom one drew an object and one did not give no object). (2) Which name: the name most
  annotators gave it; a tie between names goes to the name of the annotator listed first.
- ``staple``: SimpleITK's STAPLE (Warfield et al. 2004) run per concept on the annotators'
  binary masks; a pixel takes the concept whose probability is highest and at least 0.5 (ties:
  the name first in sorted order). Also returns each annotator's estimated sensitivity and
  specificity per concept. Needs the optional extra ``pip install conceptkit[staple]``.
- ``first``: the first annotation as it is.

Every category (object, part, ...) is voted on its own plane, so parts never cut holes into
wholes. The result is an :class:`ImageAnnotation` at the first annotation's size whose shapes are
``mask`` shapes, one per consensus label region (the pixels of one name; instances are not kept),
named by their canonical names, with ``category`` set for categories other than ``object``;
image-level tags are those more than half of the annotators gave (as the first one spelled them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.concepts import normalise
from conceptkit.consistency._analyse import planes_of
from conceptkit.consistency._planes import InstancePlane, resolver
from conceptkit.consistency._report import StapleEstimate
from conceptkit.errors import UsageError

METHODS = ("majority", "staple", "first")


@dataclass
class Consensus:
    """A consensus annotation and, for STAPLE, what it estimated of every annotator.

    ``sensitivity[annotator][concept]`` and ``specificity[...]``: STAPLE's estimates (empty for
    the other methods). ``pixels[concept]``: the concept's pixels in the consensus.
    """

    annotation: ImageAnnotation
    method: str
    annotators: list[str]
    sensitivity: dict[str, dict[str, float]] = field(default_factory=dict)
    specificity: dict[str, dict[str, float]] = field(default_factory=dict)
    pixels: dict[str, int] = field(default_factory=dict)


def majority_vote(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Two-step majority of ``labels``: m ``(H, W) int`` planes (0 = unlabelled) -> ``(H, W)``.

    Labelled where more than half labelled; then the most frequent label, ties to the label of
    the earliest plane.
    """
    m = len(labels)
    stack = np.stack([np.asarray(lab, dtype=np.int64) for lab in labels])
    labelled = (stack > 0).sum(axis=0)
    # score of annotator a's label at each pixel: raters agreeing with it, then earlier first;
    # the earliest annotator among those with the most agreeing raters is the label's first
    # voter, so taking its label applies both rules at once.
    best = np.zeros(stack.shape[1:], dtype=np.int64)
    best_score = np.full(stack.shape[1:], -1, dtype=np.int64)
    for a in range(m):
        count = (stack == stack[a]).sum(axis=0)
        score = np.where(stack[a] > 0, count * (m + 1) + (m - a), -1)
        better = score > best_score
        best[better] = stack[a][better]
        best_score[better] = score[better]
    return np.where(2 * labelled > m, best, 0)


def _staple(
    labels: Sequence[np.ndarray], names: list[str], annotators: list[str]
) -> tuple[np.ndarray, dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    try:
        import SimpleITK as sitk
    except ImportError:
        raise UsageError(
            "the staple consensus needs SimpleITK: pip install conceptkit[staple]"
        ) from None
    shape = labels[0].shape
    prob = np.zeros((len(names) + 1, *shape), dtype=np.float64)
    # "unlabelled" sits just below 0.5: a pixel is labelled when some concept reaches 0.5
    prob[0] = np.nextafter(0.5, 0.0)
    sens: dict[str, dict[str, float]] = {a: {} for a in annotators}
    spec: dict[str, dict[str, float]] = {a: {} for a in annotators}
    for k, name in enumerate(names, start=1):
        masks = [(lab == k).astype(np.uint8) for lab in labels]
        if all(np.array_equal(masks[0], m) for m in masks[1:]):
            prob[k] = masks[0]
            for a in annotators:
                sens[a][name], spec[a][name] = 1.0, 1.0
            continue
        filt = sitk.STAPLEImageFilter()
        filt.SetForegroundValue(1.0)
        out = filt.Execute([sitk.GetImageFromArray(m) for m in masks])
        prob[k] = sitk.GetArrayFromImage(out)
        for a, se, sp in zip(annotators, filt.GetSensitivity(), filt.GetSpecificity()):
            sens[a][name], spec[a][name] = float(se), float(sp)
    return prob.argmax(axis=0), sens, spec


def _shapes(
    result: np.ndarray, names: list[str], planes: list[InstancePlane], layer: str, start: int
) -> list[Shape]:
    """One ``mask`` shape per name of ``result: (H, W) int`` (name numbers, 0 = none)."""
    shapes: list[Shape] = []
    categories: dict[str, str] = {}
    for p in planes:
        for name, cat in p.categories.items():
            categories.setdefault(name, cat)
    for k, name in enumerate(names, start=1):
        mask = result == k
        if not mask.any():
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        shapes.append(
            Shape(
                label=name,
                kind="mask",
                mask=mask[y0:y1, x0:x1].copy(),
                origin=(x0, y0),
                order=start + len(shapes),
                category=categories.get(name) or (None if layer == "object" else layer),
                place=f"consensus region {name!r}",
            )
        )
    return shapes


def consensus_details(
    anns: list[ImageAnnotation],
    method: str = "majority",
    vocabulary: Any = None,
    convention: str | None = None,
) -> Consensus:
    """:func:`consensus`, with STAPLE's per-annotator estimates. See the module docstring."""
    if method not in METHODS:
        raise UsageError(
            f"unknown consensus method {method!r}; expected one of: {', '.join(METHODS)}"
        )
    if not anns:
        raise UsageError("consensus of no annotations")
    first = anns[0]
    if method == "first" or len(anns) == 1:
        names = [a.annotator for a in anns]
        only = dataclasses.replace(first, annotator=f"consensus:{method}")
        return Consensus(annotation=only, method=method, annotators=names)
    annotators, layers, by_layer = planes_of(anns, first.key, resolver(vocabulary), convention)
    sens: dict[str, dict[str, float]] = {a: {} for a in annotators}
    spec: dict[str, dict[str, float]] = {a: {} for a in annotators}
    pixels: dict[str, int] = {}
    shapes: list[Shape] = []
    for layer in layers:
        planes = by_layer[layer]
        names = sorted({n for p in planes for n in p.names})
        index = {n: i + 1 for i, n in enumerate(names)}
        labels = [p.label_plane(index) for p in planes]
        if method == "majority":
            result = majority_vote(labels)
        else:
            result, se, sp = _staple(labels, names, annotators)
            for a in annotators:
                sens[a].update(se[a])
                spec[a].update(sp[a])
        for k, n in enumerate(names, start=1):
            pixels[n] = pixels.get(n, 0) + int((result == k).sum())
        shapes.extend(_shapes(result, names, planes, layer, len(shapes)))
    if method == "majority":
        sens, spec = {}, {}
    tag_votes: dict[str, list[Any]] = {}
    for ann in anns:
        for tag in dict.fromkeys(ann.tags):
            slot = tag_votes.setdefault(normalise(tag), [tag, 0])
            slot[1] += 1
    tags = sorted(t for t, n in tag_votes.values() if 2 * n > len(anns))
    annotation = ImageAnnotation(
        key=first.key,
        width=first.width,
        height=first.height,
        shapes=shapes,
        tags=tags,
        image_path=next((a.image_path for a in anns if a.image_path is not None), None),
        image_data=next((a.image_data for a in anns if a.image_data is not None), None),
        source=";".join(a.source for a in anns if a.source),
        annotator=f"consensus:{method}",
        split=first.split,
    )
    return Consensus(
        annotation=annotation,
        method=method,
        annotators=annotators,
        sensitivity=sens,
        specificity=spec,
        pixels=pixels,
    )


def consensus(
    anns: list[ImageAnnotation],
    method: str = "majority",
    vocabulary: Any = None,
    convention: str | None = None,
) -> ImageAnnotation:
    """One annotation of an image from its annotators' ``anns`` (``majority``, ``staple``,
    ``first``); ``mask`` shapes, one per consensus label region. See the module docstring."""
    return consensus_details(anns, method, vocabulary, convention).annotation


def staple_estimates(results: Sequence[Consensus]) -> list[StapleEstimate]:
    """Per annotator and concept: STAPLE's sensitivity and specificity over the images, each
    image weighted by the concept's consensus pixels (plain mean when it has none anywhere)."""
    sums: dict[tuple[str, str], list[float]] = {}
    for r in results:
        for a, per in r.sensitivity.items():
            for name, se in per.items():
                sp = r.specificity.get(a, {}).get(name, float("nan"))
                px = r.pixels.get(name, 0)
                slot = sums.setdefault((a, name), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
                slot[0] += se * px
                slot[1] += sp * px
                slot[2] += px
                slot[3] += se
                slot[4] += sp
                slot[5] += 1
    rows = []
    for (a, name), (wse, wsp, weight, se, sp, n) in sorted(sums.items()):
        rows.append(
            StapleEstimate(
                annotator=a,
                concept=name,
                images=int(n),
                pixels=int(weight),
                sensitivity=wse / weight if weight else se / n,
                specificity=wsp / weight if weight else sp / n,
            )
        )
    return rows
