"""Images as the annotation tools show them: EXIF orientation, in one place for every reader.

Annotation tools (labelme, CVAT, ...) display a photograph upright, applying its EXIF
orientation tag (0x0112) before anyone draws on it, so every coordinate in an export refers to
the upright image. :func:`orientation` reads the tag of any format Pillow opens (1 where there
is none); :func:`upright_size` is the size the tool showed; :func:`make_upright` turns decoded
pixels the same way.
"""

from __future__ import annotations

from typing import Any

#: EXIF orientation -> the PIL transpose that shows the image upright (values: PIL.Image.Transpose)
_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}
_EXIF_ORIENTATION = 0x0112


def orientation(im: Any) -> int:
    """The EXIF orientation (1..8) of an open PIL image; 1 when it has none or a bad one."""
    value = im.getexif().get(_EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(im: Any) -> tuple[int, int]:
    """``(width, height)`` of an open PIL image after its EXIF orientation (header only)."""
    w, h = im.size
    return (h, w) if orientation(im) in (5, 6, 7, 8) else (w, h)


def make_upright(image: Any, orient: int) -> Any:
    """``image`` (a decoded PIL image) transposed the way EXIF orientation ``orient`` asks."""
    from PIL import Image

    if orient in _TRANSPOSE:
        return image.transpose(Image.Transpose(_TRANSPOSE[orient]))
    return image
