"""conceptkit.images: EXIF orientation, and image headers checked against the limits."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conceptkit import images
from conceptkit.errors import FormatError


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` (its pixel data is far too short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def error(source: Path | bytes, **kw: str) -> str:
    with pytest.raises(FormatError) as info:
        with images.open_image(source, file="a.json", place="$.imageData", **kw) as im:
            im.load()
    return str(info.value)


def test_check_size_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    images.check_size(65535, 2730, file="f", place="p")  # 178,910,550 pixels: within both
    with pytest.raises(FormatError, match=r"^f: p: image size 0x5 is not positive$"):
        images.check_size(0, 5, file="f", place="p")
    with pytest.raises(
        FormatError, match=r"f: p: mask width declares 65,536, over the limit of 65,535"
    ):
        images.check_size(65536, 1, file="f", place="p", what="mask")
    with pytest.raises(
        FormatError, match=r"image \(20000x10000\) declares 200,000,000, over the limit"
    ):
        images.check_size(20000, 10000, file="f", place="p")
    monkeypatch.setenv("CONCEPTKIT_LIMIT_IMAGE_PIXELS", "100")
    with pytest.raises(FormatError, match="CONCEPTKIT_LIMIT_IMAGE_PIXELS=N"):
        images.check_size(11, 10, file="f", place="p")
    images.check_size(10, 10, file="f", place="p")


def test_open_image_reads_a_real_image(tmp_path: Path) -> None:
    data = png(np.arange(12, dtype=np.uint8).reshape(3, 4))
    path = tmp_path / "a.png"
    path.write_bytes(data)
    for source in (data, path):
        with images.open_image(source, file="a.json", place="p") as im:
            assert im.size == (4, 3)
            assert np.asarray(im).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_a_bomb_header_is_refused_before_decoding() -> None:
    text = error(png_claiming(50000, 50000))
    assert text.startswith("a.json: $.imageData: image (50000x50000) declares 2,500,000,000")
    assert "over the limit of 178,956,970" in text
    assert "image width" in error(png_claiming(70000, 1))


def test_our_limit_rules_not_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    # 100 M pixels: past Pillow's warning threshold (89 M), within conceptkit's limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with images.open_image(png_claiming(10000, 10000), file="a", place=None) as im:
            assert im.size == (10000, 10000)
    assert not caught
    # 200 M pixels: Pillow alone would refuse it; a raised conceptkit limit opens its header
    monkeypatch.setenv("CONCEPTKIT_LIMIT_IMAGE_PIXELS", "300000000")
    with images.open_image(png_claiming(20000, 10000), file="a", place=None) as im:
        assert im.size == (20000, 10000)
    assert Image.MAX_IMAGE_PIXELS == pillow_limit


def test_unreadable_sources_are_one_line(tmp_path: Path) -> None:
    assert error(tmp_path / "gone.png", what="image 'gone.png'").endswith(
        "image 'gone.png' not found"
    )
    assert error(tmp_path, what="mask 'm.png'").endswith(
        "mask 'm.png' is a folder, not an image file"
    )
    assert "image cannot be read" in error(b"not an image at all")
    # the header is fine, the pixels are missing: the decode inside the block fails
    text = error(png_claiming(4, 3))
    assert text.startswith("a.json: $.imageData: image cannot be read (") and "\n" not in text


def test_exif_orientation(tmp_path: Path) -> None:
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show upright
    path = tmp_path / "o.png"
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    with images.open_image(path, file="a", place=None) as im:
        assert images.orientation(im) == 6 and images.upright_size(im) == (2, 3)
        upright = images.make_upright(im.convert("L"), 6)
    # turned a quarter clockwise: the left column, read bottom-up, becomes the top row
    assert np.asarray(upright).tolist() == [[3, 0], [4, 1], [5, 2]]
    plain = tmp_path / "p.png"
    plain.write_bytes(png(pixels))
    with images.open_image(plain, file="a", place=None) as im:
        assert images.orientation(im) == 1 and images.upright_size(im) == (3, 2)
        assert images.make_upright(im, 1) is im
