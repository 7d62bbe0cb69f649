"""The common in-memory model every converter produces.

A converter reads one tool's export and yields :class:`ImageAnnotation` records, one per image,
each holding :class:`Shape` objects in that image's pixel coordinates plus image-level tags.
Nothing here touches pixels: :mod:`conceptkit.rasterize` turns shapes into label planes, so the
pixel conventions of every tool live in one place.

Coordinates are ``(x, y)`` floats in the original image's pixel frame, x to the right, y down,
the way every supported tool writes them (pixel (i, j) has its centre at (j + 0.5, i + 0.5) in
pycocotools' convention and at (j, i) in PIL's; see rasterize.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

#: Geometric kinds of shape. ``polyline`` and ``linestrip`` are the same open path; ``line`` is a
#: two-point path; ``points`` is a set of unconnected points.
ShapeKind = Literal[
    "polygon",
    "rectangle",
    "oriented_rectangle",
    "circle",
    "ellipse",
    "line",
    "linestrip",
    "point",
    "points",
    "mask",
]

#: How a polygon maps to pixels. ``inclusive``: PIL/labelme, the boundary is painted (the square
#: (0,0)-(9,9) is 100 pixels). ``center``: pycocotools, a pixel is in when its centre is inside
#: (the same square is 81 pixels).
Convention = Literal["inclusive", "center"]


@dataclass
class Shape:
    """One annotated shape.

    ``points``: ``(K, 2) float64`` (x, y) vertices. Per kind: polygon/linestrip/line/points: the
    vertices; rectangle: two opposite corners; oriented_rectangle: four corners in order;
    circle: centre then a point on the circumference; ellipse: centre then (rx, ry) stored as
    the point (cx + rx, cy + ry) with ``angle`` in degrees; point: one vertex; mask: empty.
    ``mask``: for kind ``mask``, a ``(h, w) bool`` patch whose top-left pixel is ``origin``
    ``(x0, y0)`` (integers) in the image.
    ``instance``: shapes with the same label and instance key are one object (LabelMe
    group_id, CVAT group); None = the shape is its own instance.
    ``z``: higher is in front; ties go to document order (``order``), later in front.
    ``category``: a category forced by the format (``part`` for LabelMe XML parts), else None
    and the concept vocabulary decides. ``parent``: ``order`` of the whole this is a part of.
    ``convention``: the pixel convention of the tool that made the export.
    ``width``: stroke width in pixels for open paths and points (tool default when None).
    ``place``: where in the source the shape was read (JSON path or XML element and line), for
    error messages.
    ``ignore``: an ignore region, not a label (COCO ``iscrowd=1``): its pixels are to be set to
    0 (unlabelled) in the label plane and the label is not counted for it.
    """

    label: str
    kind: ShapeKind
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    mask: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)
    instance: str | None = None
    z: int = 0
    order: int = 0
    angle: float = 0.0
    category: str | None = None
    parent: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    occluded: bool = False
    convention: Convention = "inclusive"
    width: float | None = None
    place: str = ""
    ignore: bool = False


@dataclass
class ImageAnnotation:
    """All annotations of one image from one export.

    ``key``: the image file name without folders, used to match the same image across
    annotators. ``image_path``: where the image file is (None when embedded). ``image_data``:
    encoded image bytes embedded in the export (LabelMe ``imageData``), else None.
    ``width``/``height``: the size the export declares (after EXIF orientation, as the tool
    showed it). ``tags``: image-level labels (scene tags, LabelMe flags set true, CVAT tags).
    ``source``: the export file the record came from; ``annotator``: who made it (the export's
    folder name unless the format says).
    """

    key: str
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    image_path: Path | None = None
    image_data: bytes | None = None
    source: str = ""
    annotator: str = ""
    split: str = "train"
    warnings: list[str] = field(default_factory=list)

    def painting_order(self) -> list[Shape]:
        """Shapes from back to front: by ``z``, then document order (later in front)."""
        return sorted(self.shapes, key=lambda s: (s.z, s.order))
