"""Annotations -> instance planes: the pixels every consistency measure is computed on.

One annotator's :class:`~conceptkit.annotations.ImageAnnotation` becomes an :class:`InstancePlane`
per category (object, part, ...):
``ids: (H, W) int32``, 0 = unlabelled, ``i > 0`` = the i-th instance, painted back to front
(``painting_order``: later / higher ``z`` shapes in front; ignore regions, ``Shape.ignore``
or labelme's ``__ignore__``, paint 0). Shapes with the
same canonical name and instance key are one instance; a shape without an instance key is its own.
Names and categories come from the concept vocabulary by the same rule ``convert`` uses
(:meth:`conceptkit.concepts.Vocabulary.resolve_shape`; without a file: normalised names, empty
names left out): every category has its own plane, as in the Broden output.

Annotations of the same image at different sizes are brought to the first one's size: each shape
is rasterised at its own annotation's size and its mask is resampled to the first size with
:func:`conceptkit.rasterize.resample_labels` (a dimension mismatch that is not a rescale of the aspect ratio within 2% is an error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from conceptkit import images
from conceptkit.annotations import Convention, ImageAnnotation, Shape
from conceptkit.concepts import IGNORE_CATEGORY, Vocabulary, normalise
from conceptkit.errors import FormatError, UsageError
from conceptkit.rasterize import resample_labels, shape_mask

#: shape -> (canonical name, category), or None for a shape left out (category ``drop``).
Resolver = Callable[[Shape], "tuple[str, str] | None"]


def resolver(vocabulary: Any = None) -> Resolver:
    """shape -> (canonical name, category) through ``vocabulary``, without side effects.

    Every rule is :meth:`conceptkit.concepts.Vocabulary.resolve_shape`'s (the one used by
    ``convert``), with nothing recorded. ``vocabulary``: None (an empty vocabulary: names
    normalised, category = the shape's forced category or ``object``, ``__ignore__`` ->
    ``ignore``, empty names left out), a :class:`~conceptkit.concepts.Vocabulary`, or a mapping /
    callable raw name -> canonical name (the category and the ignore / empty rules stay those of
    the empty vocabulary; a mapping is looked up with the raw name, then the normalised one).
    """
    if vocabulary is None:
        vocabulary = Vocabulary()
    if isinstance(vocabulary, Vocabulary):
        vocab = vocabulary
        return lambda shape: vocab.resolve_shape(shape, record=False)
    if isinstance(vocabulary, Mapping):
        mapping = vocabulary

        def rename(raw: str) -> str:
            key = normalise(raw)
            return str(mapping.get(raw, mapping.get(key, key)))
    elif callable(vocabulary):
        rename = vocabulary
    else:
        raise UsageError(f"cannot use {type(vocabulary).__name__} as a concept vocabulary")
    plain = Vocabulary()

    def renamed(shape: Shape) -> tuple[str, str] | None:
        got = plain.resolve_shape(shape, record=False)
        if got is None or got[1] == IGNORE_CATEGORY:
            return got
        return rename(shape.label), got[1]

    return renamed


@dataclass
class InstancePlane:
    """One annotator's view of one image.

    ``ids: (H, W) int32``: 0 = unlabelled, i = instance i (1-based). ``names[i - 1]``: the
    canonical name of instance i. ``categories``: canonical name -> a category forced by the
    format (e.g. ``part``), when any shape forced one.
    """

    annotator: str
    ids: np.ndarray
    names: list[str]
    categories: dict[str, str] = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        """Instances with at least one visible pixel."""
        counts = np.bincount(self.ids.ravel(), minlength=len(self.names) + 1)
        return int(np.count_nonzero(counts[1:]))

    def label_plane(self, index: dict[str, int]) -> np.ndarray:
        """``(H, W) int32`` name numbers (``index`` maps name -> number >= 1), 0 = unlabelled."""
        lut = np.zeros(len(self.names) + 1, dtype=np.int32)
        for i, name in enumerate(self.names):
            lut[i + 1] = index[name]
        return lut[self.ids]


def instance_planes(
    ann: ImageAnnotation,
    annotator: str,
    resolve: Resolver,
    size: tuple[int, int] | None = None,
    convention: str | None = None,
) -> dict[str, InstancePlane]:
    """Paint ``ann`` into one :class:`InstancePlane` of ``size = (H, W)`` per category.

    Each category (object, part, ...) has its own plane, as in the Broden output: a part does
    not cut a hole into its whole. Ignore regions (``Shape.ignore`` or category ``ignore``)
    clear every plane behind them; shapes of category ``drop`` are left out.
    """
    height, width = size if size is not None else (ann.height, ann.width)
    conv = cast(Convention | None, convention)
    images.check_size(ann.width, ann.height, file=ann.source or None, place=f"image {ann.key}")
    rescale = (ann.height, ann.width) != (height, width)
    if rescale:
        ratio_a = ann.width / ann.height
        ratio_b = width / height
        if abs(ratio_a - ratio_b) > 0.02 * ratio_b:
            raise FormatError(
                f"annotated at {ann.width}x{ann.height} by {annotator!r} but at "
                f"{width}x{height} by another annotator; not a rescale of the same image",
                file=ann.source or None,
                place=f"image {ann.key}",
            )
    planes: dict[str, InstancePlane] = {}
    keys: dict[tuple[str, str, str], int] = {}
    for shape in ann.painting_order():
        got = resolve(shape)
        if got is None:
            continue
        name, layer = got
        mask = shape_mask(shape, ann.height, ann.width, convention=conv)
        if rescale:
            mask = resample_labels(mask, height, width)
        if layer == IGNORE_CATEGORY:
            for plane in planes.values():
                plane.ids[mask] = 0
            continue
        if layer not in planes:
            planes[layer] = InstancePlane(annotator, np.zeros((height, width), np.int32), [])
        plane = planes[layer]
        if shape.instance is None:
            plane.names.append(name)
            number = len(plane.names)
        else:
            key = (layer, name, shape.instance)
            if key not in keys:
                plane.names.append(name)
                keys[key] = len(plane.names)
            number = keys[key]
        if shape.category and name not in plane.categories:
            plane.categories[name] = shape.category
        plane.ids[mask] = number
    return planes
