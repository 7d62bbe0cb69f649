"""Annotations -> instance planes: the pixels every consistency measure is computed on.

One annotator's :class:`~conceptkit.annotations.ImageAnnotation` becomes an :class:`InstancePlane`:
``ids: (H, W) int32``, 0 = unlabelled, ``i > 0`` = the i-th instance, painted back to front
(``painting_order``: later / higher ``z`` shapes in front; ignore regions, ``Shape.ignore``
or labelme's ``__ignore__``, paint 0). Shapes with the
same canonical name and instance key are one instance; a shape without an instance key is its own.
Names are normalised through the concept vocabulary (or lower-case/strip without one).

Annotations of the same image at different sizes are brought to the first one's size: each shape
is rasterised at its own annotation's size and its mask is resized with nearest-neighbour
sampling (a dimension mismatch that is not a rescale of the aspect ratio within 2% is an error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from conceptkit.annotations import Convention, ImageAnnotation, Shape
from conceptkit.errors import FormatError, UsageError

Normaliser = Callable[[str], str]


def normaliser(vocabulary: Any = None) -> Normaliser:
    """A function name -> canonical name for ``vocabulary`` (None: lower-case and strip).

    Accepts a :class:`conceptkit.concepts.Vocabulary` (its ``canonical``/``normalise``/``lookup``
    method, whichever it has; a returned ``(name, category)`` tuple gives the name), a mapping
    name -> canonical name, or any callable.
    """

    def basic(name: str) -> str:
        return " ".join(name.strip().lower().split())

    if vocabulary is None:
        return basic
    for attr in ("canonical", "normalise", "normalize", "lookup", "resolve"):
        method = getattr(vocabulary, attr, None)
        if callable(method):
            return _wrap(method, basic)
    if hasattr(vocabulary, "get") and not callable(vocabulary):
        mapping = vocabulary

        def from_mapping(name: str) -> str:
            key = basic(name)
            value = mapping.get(name, mapping.get(key, key))
            return _first(value, key)

        return from_mapping
    if callable(vocabulary):
        return _wrap(vocabulary, basic)
    raise UsageError(f"cannot use {type(vocabulary).__name__} as a concept vocabulary")


def _first(value: Any, fallback: str) -> str:
    if value is None:
        return fallback
    if isinstance(value, tuple | list):
        value = value[0] if value else None
        if value is None:
            return fallback
    if not isinstance(value, str):
        value = getattr(value, "name", None) or fallback
    return str(value)


def _wrap(method: Callable[[str], Any], basic: Normaliser) -> Normaliser:
    def call(name: str) -> str:
        return _first(method(name), basic(name))

    return call


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


def _mask_fallback(shape: Shape, height: int, width: int) -> np.ndarray:
    """Rasterise a ``mask`` shape: paste its patch at ``origin`` (clipped to the image)."""
    out = np.zeros((height, width), dtype=bool)
    if shape.mask is None:
        return out
    patch = np.asarray(shape.mask, dtype=bool)
    x0, y0 = int(shape.origin[0]), int(shape.origin[1])
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + patch.shape[0], height), min(x0 + patch.shape[1], width)
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = patch[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return out


def shape_mask(shape: Shape, height: int, width: int, convention: str | None) -> np.ndarray:
    """``(H, W) bool`` pixels of ``shape``, through :func:`conceptkit.rasterize.shape_mask`."""
    try:
        from conceptkit.rasterize import shape_mask as rasterize_shape
    except ImportError:
        if shape.kind == "mask":
            return _mask_fallback(shape, height, width)
        raise UsageError(
            f"cannot rasterise a {shape.kind!r} shape: conceptkit.rasterize is not available"
        ) from None
    conv = cast(Convention | None, convention)
    return np.asarray(rasterize_shape(shape, height, width, convention=conv), dtype=bool)


def _resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(h, w) bool`` -> ``(height, width) bool`` by nearest-neighbour sampling of centres."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return mask[np.ix_(rows, cols)]


def instance_plane(
    ann: ImageAnnotation,
    annotator: str,
    normalise: Normaliser,
    size: tuple[int, int] | None = None,
    convention: str | None = None,
) -> InstancePlane:
    """Paint ``ann`` into an :class:`InstancePlane` of ``size = (H, W)`` (default: its own)."""
    height, width = size if size is not None else (ann.height, ann.width)
    if ann.height <= 0 or ann.width <= 0:
        raise FormatError(
            f"image size {ann.width}x{ann.height} is not positive",
            file=ann.source or None,
            place=f"image {ann.key}",
        )
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
    ids = np.zeros((height, width), dtype=np.int32)
    names: list[str] = []
    categories: dict[str, str] = {}
    keys: dict[tuple[str, str], int] = {}
    for shape in ann.painting_order():
        mask = shape_mask(shape, ann.height, ann.width, convention)
        if rescale:
            mask = _resize_nearest(mask, height, width)
        if shape.ignore or shape.label == "__ignore__":
            ids[mask] = 0
            continue
        name = normalise(shape.label)
        if shape.instance is None:
            names.append(name)
            number = len(names)
        else:
            key = (name, shape.instance)
            if key not in keys:
                names.append(name)
                keys[key] = len(names)
            number = keys[key]
        if shape.category and name not in categories:
            categories[name] = shape.category
        ids[mask] = number
    return InstancePlane(annotator=annotator, ids=ids, names=names, categories=categories)
