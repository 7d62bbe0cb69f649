"""Images as the annotation tools show them, opened safely: one place for every reader and convert.

Annotation tools (labelme, CVAT, ...) display a photograph upright, applying its EXIF
orientation tag (0x0112) before anyone draws on it, so every coordinate in an export refers to
the upright image. :func:`orientation` reads the tag of any format Pillow opens (1 where there
is none); :func:`upright_size` is the size the tool showed; :func:`make_upright` turns decoded
pixels the same way.

Images come from strangers: a 300-byte PNG can declare 50000 x 50000 pixels. :func:`open_image`
opens one (header only), checks its declared size against the limits ``image_side`` and
``image_pixels`` (:mod:`conceptkit.limits`) before any pixel is decoded, and turns every
failure, while opening or while decoding inside its ``with`` block, into one FormatError naming
the file and the place (Pillow's own decompression-bomb error and warning never escape).
:func:`check_size` applies the same limits to a size an annotation declares.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conceptkit import limits
from conceptkit.errors import FormatError

#: EXIF orientation -> the PIL transpose that shows the image upright (values: PIL.Image.Transpose)
_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}
_EXIF_ORIENTATION = 0x0112
#: what Pillow raises on a malformed or truncated file, besides its own UnidentifiedImageError
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)


def orientation(im: Any) -> int:
    """The EXIF orientation (1..8) of an open PIL image; 1 when it has none or a bad one."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except _DECODE_ERRORS:  # a malformed EXIF block: no usable orientation
        return 1
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


def check_size(
    width: int, height: int, *, file: str | Path | None, place: str | None, what: str = "image"
) -> None:
    """FormatError unless ``width x height`` is positive and within ``image_side``/``image_pixels``."""
    if width < 1 or height < 1:
        raise FormatError(f"{what} size {width}x{height} is not positive", file, place)
    for name, side in (("width", width), ("height", height)):
        limits.check("image_side", side, file=file, place=place, what=f"{what} {name}")
    limits.check(
        "image_pixels", width * height, file=file, place=place, what=f"{what} ({width}x{height})"
    )


@contextmanager
def open_image(
    source: Path | bytes, *, file: str | Path | None, place: str | None, what: str = "image"
) -> Iterator[Any]:
    """Open ``source`` (a path or the file's bytes) with Pillow, its declared size checked.

    Yields the open PIL image (nothing decoded yet). A file that is missing, unreadable, not an
    image, over the size limits or broken while decoding in the ``with`` block raises
    FormatError ``{what} cannot be read (...)`` (``{what} not found``, ...) naming ``file`` (the
    annotation that refers to the image) and ``place``; ``what`` names the image in it
    (``"image"``, ``"mask 'a.png'"``).
    """
    from PIL import Image, UnidentifiedImageError

    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        # conceptkit's own limits decide (checked below, before any decoding): Pillow's check,
        # a warning past 89 M pixels and an error past twice that, is off while the header is read
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(stream)
    except FileNotFoundError:
        raise FormatError(f"{what} not found", file, place) from None
    except IsADirectoryError:
        raise FormatError(f"{what} is a folder, not an image file", file, place) from None
    except Image.DecompressionBombError as exc:
        raise FormatError(f"{what} declares too many pixels ({exc})", file, place) from None
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise FormatError(f"{what} cannot be read ({exc})", file, place) from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    with im:
        width, height = im.size
        check_size(width, height, file=file, place=place, what=what)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield im
        except (UnidentifiedImageError, Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
            raise FormatError(f"{what} cannot be read ({exc})", file, place) from None
