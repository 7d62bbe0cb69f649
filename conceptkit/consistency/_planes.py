"""Annotations -> instance planes: the pixels every consistency measure is computed on.

One annotator's :class:`~conceptkit.annotations.ImageAnnotation` becomes an :class:`InstancePlane`
per category (object, part, ...):
``ids: (H, W) int32``, 0 = unlabelled, ``i > 0`` = the i-th instance, painted back to front
(``painting_order``: later / higher ``z`` shapes in front; ignore regions, ``Shape.ignore``
or labelme's ``__ignore__``, paint 0). Shapes with the
same canonical name and instance key are one instance; a shape without an instance key is its own.
Names are normalised through the concept vocabulary (or case-folded/stripped without one), which
also gives each shape's category: every category has its own plane, as in the Broden output.

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

#: shape -> (canonical name, category), or None for a shape left out (category ``drop``).
Resolver = Callable[[Shape], "tuple[str, str] | None"]

IGNORE_LAYER = "ignore"
DROP_LAYER = "drop"


def _basic(name: str) -> str:
    """Case-folded, stripped, inner whitespace collapsed."""
    return " ".join(name.split()).casefold()


def resolver(vocabulary: Any = None) -> Resolver:
    """shape -> (canonical name, category) through ``vocabulary``, without side effects.

    ``vocabulary``: None (names case-folded and stripped; category = the shape's forced
    category or ``object``; labelme's ``__ignore__`` -> ``ignore``), a
    :class:`conceptkit.concepts.Vocabulary` (looked up as ``Vocabulary.resolve`` does, preferring
    the row of the shape's default category, but recording nothing), a mapping raw name ->
    canonical name, or a callable raw name -> canonical name.
    """
    table = getattr(vocabulary, "table", None)
    if vocabulary is not None and isinstance(table, dict):
        from conceptkit.concepts import normalise

        def from_table(shape: Shape) -> tuple[str, str] | None:
            default = shape.category or "object"
            key = normalise(shape.label)
            candidates = table.get(key)
            if candidates:
                chosen = next((c for c in candidates if c[1] == default), candidates[0])
            elif key == "__ignore__":
                chosen = (key, IGNORE_LAYER)
            else:
                chosen = (key, default)
            if chosen[1] == DROP_LAYER or not chosen[0]:
                return None
            return chosen[0], chosen[1]

        return from_table
    if vocabulary is None:
        rename: Callable[[str], str] = _basic
    elif hasattr(vocabulary, "get") and not callable(vocabulary):
        mapping = vocabulary

        def rename(name: str) -> str:
            return str(mapping.get(name, mapping.get(_basic(name), _basic(name))))
    elif callable(vocabulary):
        rename = vocabulary
    else:
        raise UsageError(f"cannot use {type(vocabulary).__name__} as a concept vocabulary")

    def plain(shape: Shape) -> tuple[str, str] | None:
        name = rename(shape.label)
        if _basic(shape.label) == "__ignore__":
            return name, IGNORE_LAYER
        return name, shape.category or "object"

    return plain


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
    planes: dict[str, InstancePlane] = {}
    keys: dict[tuple[str, str, str], int] = {}
    for shape in ann.painting_order():
        got = resolve(shape)
        if got is None:
            continue
        name, layer = got
        mask = shape_mask(shape, ann.height, ann.width, convention)
        if rescale:
            mask = _resize_nearest(mask, height, width)
        if shape.ignore or layer == IGNORE_LAYER:
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
