"""Hostile exports through `conceptkit convert FORMAT SRC -o OUT`, for every reader.

Each case writes one bad export (a declared size over a limit, a number that is not one, a
folder where a file belongs, a path leading out, a bomb) and checks the promise with
:func:`hostile.run_hostile`: exit 1, exactly one error line naming the file and the place, no
traceback, nothing left behind, within 2 GiB of memory. The cases are in CASES: name ->
builder; a builder writes SRC under the workspace and returns what the command needs.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile import run_hostile
from PIL import Image


@dataclass
class Case:
    """What a builder returns: ``conceptkit convert FORMAT SRC``, the names the error must hold."""

    fmt: str
    src: Path
    names: list[str]
    env: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- bytes


def png(width: int, height: int) -> bytes:
    """A real 8-bit grey PNG (all zeros) of ``width x height``."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A ~70-byte PNG whose header claims ``width x height`` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


#: a number that json.dumps writes as itself, replaced by "1e999" in :func:`overflowing`
SENTINEL = 7777777.25


def overflowing(doc: Any) -> bytes:
    """``doc`` as JSON text with every SENTINEL written ``1e999`` (a double overflows to inf)."""
    return json.dumps(doc).replace(repr(SENTINEL), "1e999").encode()


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_xml(depth: int) -> str:
    return "<a>" * depth + "</a>" * depth


# ----------------------------------------------------------------------------- LabelMe JSON


def labelme_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [{"label": "cat", "points": [[1, 1], [6, 1], [6, 4]], "shape_type": "polygon"}],
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": 6,
        "imageWidth": 8,
    }
    doc.update(over)
    return doc


def labelme(ws: Path, doc: Any, *, image: bytes | None = None, raw: bytes | None = None) -> Path:
    src = ws / "src"
    src.mkdir()
    (src / "a.png").write_bytes(image if image is not None else png(8, 6))
    text = raw if raw is not None else json.dumps(doc, allow_nan=True).encode()
    (src / "a.json").write_bytes(text)
    return src


def lm(names: list[str], doc: Any = None, **kw: Any) -> Callable[[Path], Case]:
    def build(ws: Path) -> Case:
        return Case("labelme", labelme(ws, doc if doc is not None else labelme_doc(), **kw), names)

    return build


def lm_shape(shape: dict[str, Any], names: list[str]) -> Callable[[Path], Case]:
    return lm(names, labelme_doc(shapes=[shape]))


def lm_raw(text: str | bytes, names: list[str]) -> Callable[[Path], Case]:
    return lm(names, raw=text.encode() if isinstance(text, str) else text)


def lm_mask(points: Any, mask: str, names: list[str]) -> Callable[[Path], Case]:
    shape = {"label": "m", "points": points, "shape_type": "mask", "mask": mask}
    return lm_shape(shape, names)


MASK_3X2 = base64.b64encode(png(3, 2)).decode()
BOMB_B64 = base64.b64encode(png_claiming(50000, 50000)).decode()
NO_SIZES = {"imageHeight": None, "imageWidth": None}


def lm_folder_as_file(ws: Path) -> Case:
    src = ws / "src" / "a.json"
    src.mkdir(parents=True)
    return Case("labelme", src, ["a.json", "holds no LabelMe"])


def outside_image(ws: Path) -> Path:
    """An image in the workspace but outside SRC, for symbolic links that lead out."""
    path = ws / "outside.png"
    path.write_bytes(png(8, 6))
    return path


def lm_symlink_out(ws: Path) -> Case:
    case = lm(["a.json", "$.imagePath", "outside SRC"])(ws)
    (case.src / "a.png").unlink()
    (case.src / "a.png").symlink_to(outside_image(ws))
    return case


def linked_out(path: Path, ws: Path) -> None:
    """Move ``path`` out of SRC (into the workspace) and leave a symbolic link to it in its place."""
    target = ws / f"moved-{path.name}"
    path.rename(target)
    path.symlink_to(target)


def lm_annotation_linked_out(ws: Path) -> Case:
    case = lm(["a.json", "symbolic link leading outside SRC"])(ws)
    linked_out(case.src / "a.json", ws)
    return case


def lm_file_limit(ws: Path) -> Case:
    case = lm(["a.json", "file_bytes".upper()])(ws)
    case.env = {"CONCEPTKIT_LIMIT_FILE_BYTES": "100"}
    return case


LABELME_CASES: dict[str, Callable[[Path], Case]] = {
    "lm-declared-size": lm(
        ["a.json", "$.imageWidth", "over the limit"],
        labelme_doc(imageWidth=50000, imageHeight=50000),
    ),
    "lm-png-header-bomb": lm(
        ["a.json", "$.imagePath", "2,500,000,000"],
        labelme_doc(**NO_SIZES),
        image=png_claiming(50000, 50000),
    ),
    "lm-image-bomb-in-convert": lm(["a.json", "50000x50000"], image=png_claiming(50000, 50000)),
    "lm-imagedata-bomb": lm(
        ["a.json", "$.imageData", "over the limit"], labelme_doc(imageData=BOMB_B64, **NO_SIZES)
    ),
    "lm-nan-point": lm_raw(
        '{"shapes": [{"label": "a", "points": [[NaN, 1], [2, 2], [3, 1]]}], "imagePath": "a.png"}',
        ["a.json", "line 1, column 40", "NaN"],
    ),
    "lm-infinity": lm_raw(
        '{"shapes": [], "imagePath": "a.png",\n "imageWidth": -Infinity}',
        ["a.json", "line 2, column 16", "Infinity"],
    ),
    "lm-1e999": lm(
        ["a.json", "$.shapes[0].points", "not a finite number"],
        raw=overflowing(
            labelme_doc(shapes=[{"label": "a", "points": [[SENTINEL, 1], [2, 2], [3, 1]]}])
        ),
    ),
    "lm-huge-coordinate": lm_shape(
        {"label": "a", "points": [[1e300, 1], [2, 2], [3, 1]]},
        ["a.json", "$.shapes[0].points", "coordinate"],
    ),
    "lm-superscript-width": lm(["a.json", "$.imageWidth"], labelme_doc(imageWidth="²")),
    "lm-boolean-width": lm(["a.json", "$.imageWidth"], labelme_doc(imageWidth=True)),
    "lm-negative-height": lm(["a.json", "$.imageHeight"], labelme_doc(imageHeight=-5)),
    "lm-zero-width": lm(["a.json", "$.imageWidth"], labelme_doc(imageWidth=0)),
    "lm-boolean-point": lm_shape(
        {"label": "a", "points": [[True, 1], [2, 2], [3, 1]]}, ["a.json", "$.shapes[0].points"]
    ),
    "lm-huge-integer": lm_raw(
        '{"shapes": [], "imagePath": "a.png", "imageWidth": ' + "9" * 5000 + "}",
        ["a.json", "line 1, column 52", "digits"],
    ),
    "lm-mask-nan-box": lm_raw(
        '{"shapes": [{"label": "m", "shape_type": "mask", "mask": "' + MASK_3X2 + '", '
        '"points": [[0, 0], [NaN, 1]]}], "imagePath": "a.png"}',
        ["a.json", "NaN"],
    ),
    "lm-mask-huge-box": lm_mask([[0, 0], [1e12, 1e12]], MASK_3X2, ["a.json", "$.shapes[0].points"]),
    "lm-mask-png-bomb": lm_mask([[0, 0], [2, 1]], BOMB_B64, ["a.json", "$.shapes[0].mask"]),
    "lm-mask-not-base64": lm_mask([[0, 0], [2, 1]], "!!!", ["a.json", "$.shapes[0].mask"]),
    "lm-mask-box-mismatch": lm_mask([[0, 0], [5, 5]], MASK_3X2, ["a.json", "$.shapes[0].mask"]),
    "lm-nested-100000": lm_raw(deep_json(100_000), ["a.json", "nesting depth"]),
    "lm-empty-file": lm_raw(b"", ["a.json", "is empty"]),
    "lm-not-utf8": lm_raw(b'{"shapes": [], "imagePath": "\xe9.png"}', ["a.json", "UTF-8"]),
    "lm-folder-as-file": lm_folder_as_file,
    "lm-escaping-path": lm(
        ["a.json", "$.imagePath", "outside SRC"], labelme_doc(imagePath="../x.png")
    ),
    "lm-absolute-path": lm(
        ["a.json", "$.imagePath", "absolute"], labelme_doc(imagePath="/etc/x.png")
    ),
    "lm-nul-path": lm(["a.json", "$.imagePath", "NUL"], labelme_doc(imagePath="a\x00.png")),
    "lm-file-bytes-limit": lm_file_limit,
    "lm-symlink-out": lm_symlink_out,
    "lm-annotation-linked-out": lm_annotation_linked_out,
}


# ----------------------------------------------------------------------------- MIT LabelMe XML


def lmx_doc(
    nrows: str = "6", ncols: str = "8", x: str = "1", filename: str = "img1.png", extra: str = ""
) -> str:
    return (
        f"<annotation><filename>{filename}</filename><folder>f</folder>"
        f"<imagesize><nrows>{nrows}</nrows><ncols>{ncols}</ncols></imagesize>"
        f"<object><name>cat</name><deleted>0</deleted><id>0</id><polygon>"
        f"<pt><x>{x}</x><y>1</y></pt><pt><x>6</x><y>1</y></pt><pt><x>6</x><y>4</y></pt>"
        f"</polygon></object>{extra}</annotation>"
    )


def lmx(
    names: list[str],
    text: str | bytes,
    mask: bytes | None = None,
    env: dict[str, str] | None = None,
) -> Callable[[Path], Case]:
    def build(ws: Path) -> Case:
        src = ws / "src"
        (src / "Annotations" / "f").mkdir(parents=True)
        (src / "Images" / "f").mkdir(parents=True)
        (src / "Images" / "f" / "img1.png").write_bytes(png(8, 6))
        if mask is not None:
            (src / "Masks" / "f").mkdir(parents=True)
            (src / "Masks" / "f" / "m.png").write_bytes(mask)
        data = text.encode() if isinstance(text, str) else text
        (src / "Annotations" / "f" / "img1.xml").write_bytes(data)
        return Case("labelme-xml", src, names, env or {})

    return build


def lmx_symlink_out(ws: Path) -> Case:
    case = lmx(["img1.xml", "<annotation> line 1", "outside SRC"], lmx_doc())(ws)
    image = case.src / "Images" / "f" / "img1.png"
    image.unlink()
    image.symlink_to(outside_image(ws))
    return case


SEGM = "<object><name>m</name><id>1</id><segm><mask>m.png</mask></segm></object>"
BOMB_XML = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
    "<annotation><filename>&lol2;</filename></annotation>"
)

LABELME_XML_CASES: dict[str, Callable[[Path], Case]] = {
    "lmx-nan-rows": lmx(["img1.xml", "<nrows> line 1", "finite"], lmx_doc(nrows="nan")),
    "lmx-superscript-cols": lmx(["img1.xml", "<ncols> line 1"], lmx_doc(ncols="²")),
    "lmx-1e999-x": lmx(["img1.xml", "<x> line 1"], lmx_doc(x="1e999")),
    "lmx-inf-x": lmx(["img1.xml", "<x> line 1"], lmx_doc(x="-inf")),
    "lmx-huge-x": lmx(["img1.xml", "<polygon> line 1", "coordinate"], lmx_doc(x="1e300")),
    "lmx-declared-size": lmx(
        ["img1.xml", "<imagesize> line 1", "over the limit"], lmx_doc("50000", "50000")
    ),
    "lmx-negative-size": lmx(
        ["img1.xml", "<imagesize> line 1", "not positive"], lmx_doc(nrows="-5")
    ),
    "lmx-escaping-filename": lmx(
        ["img1.xml", "<annotation> line 1", "outside SRC"], lmx_doc(filename="../../x.png")
    ),
    "lmx-entity-bomb": lmx(["img1.xml", "line 1", "DOCTYPE"], BOMB_XML),
    "lmx-long-attribute": lmx(
        ["img1.xml", "<object> line 1", "over the limit"],
        lmx_doc(extra=f'<object a="{"x" * 5000}"/>'),
        env={"CONCEPTKIT_LIMIT_XML_ATTRIBUTE_CHARS": "1000"},
    ),
    "lmx-nested-100000": lmx(
        ["img1.xml", "nesting depth"], f"<annotation>{deep_xml(100_000)}</annotation>"
    ),
    "lmx-mask-bomb": lmx(
        ["img1.xml", "<segm> line 1", "over the limit"],
        lmx_doc(extra=SEGM),
        mask=png_claiming(50000, 50000),
    ),
    "lmx-mask-folder": lmx(
        ["img1.xml", "<segm> line 1"], lmx_doc(extra=SEGM.replace("m.png", ".."))
    ),
    "lmx-symlink-out": lmx_symlink_out,
    "lmx-empty-file": lmx(["img1.xml", "line 1", "no element found"], ""),
    "lmx-not-utf8": lmx(
        ["img1.xml", "line 1", "malformed XML"],
        lmx_doc(filename="\udce9.png").encode("utf-8", "surrogateescape"),
    ),
}


# ----------------------------------------------------------------------------- CVAT


def cvat_xml(body: str, meta: str = "<task><size>1</size></task>") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
        f"<meta>{meta}</meta>\n{body}\n</annotations>\n"
    )


def image_xml(shapes: str = "", width: str = "8", height: str = "6", name: str = "a.png") -> str:
    return cvat_xml(
        f'<image id="0" name="{name}" width="{width}" height="{height}">\n{shapes}\n</image>'
    )


def cvat(names: list[str], text: str, env: dict[str, str] | None = None) -> Callable[[Path], Case]:
    def build(ws: Path) -> Case:
        src = ws / "src"
        (src / "images").mkdir(parents=True)
        (src / "images" / "a.png").write_bytes(png(8, 6))
        (src / "annotations.xml").write_text(text)
        return Case("cvat", src, names, env or {})

    return build


def box(**attrs: str) -> str:
    a = {"label": "car", "xtl": "1", "ytl": "1", "xbr": "5", "ybr": "4", "z_order": "0"}
    a.update(attrs)
    return "<box " + " ".join(f'{k}="{v}"' for k, v in a.items()) + "/>"


def mask(**attrs: str) -> str:
    a = {"label": "car", "rle": "2, 3, 1", "left": "1", "top": "1", "width": "3", "height": "2"}
    a.update(attrs)
    return "<mask " + " ".join(f'{k}="{v}"' for k, v in a.items()) + "/>"


VIDEO_META = "<task><size>{size}</size><original_size><width>8</width><height>6</height></original_size></task>"


def track(frame: str = "0") -> str:
    return f'<track id="1" label="car">{box(frame=frame, outside="0")}</track>'


def cvat_image_bomb(ws: Path) -> Case:
    case = cvat(["annotations.xml", "50000x50000"], image_xml(box()))(ws)
    (case.src / "images" / "a.png").write_bytes(png_claiming(50000, 50000))
    return case


def cvat_symlink_out(ws: Path) -> Case:
    case = cvat(["annotations.xml", "<image> line 5", "leads outside"], image_xml(box()))(ws)
    (case.src / "images" / "a.png").unlink()
    (case.src / "images" / "a.png").symlink_to(outside_image(ws))
    return case


def cvat_annotation_linked_out(ws: Path) -> Case:
    case = cvat(["annotations.xml", "symbolic link leading outside SRC"], image_xml(box()))(ws)
    linked_out(case.src / "annotations.xml", ws)
    return case


def cvat_images_is_a_file(ws: Path) -> Case:
    case = cvat(["annotations.xml", "images/a.png", "Not a directory"], image_xml(box()))(ws)
    (case.src / "images" / "a.png").unlink()
    (case.src / "images").rmdir()
    (case.src / "images").write_bytes(png(8, 6))
    return case


def cvat_folder_as_file(ws: Path) -> Case:
    src = ws / "src"
    (src / "annotations.xml").mkdir(parents=True)
    return Case("cvat", src, ["annotations.xml", "not a regular file"])


CVAT_CASES: dict[str, Callable[[Path], Case]] = {
    "cvat-nan-width": cvat(["annotations.xml", "<image> line 5", "finite"], image_xml(width="nan")),
    "cvat-superscript-width": cvat(["annotations.xml", "<image> line 5"], image_xml(width="²")),
    "cvat-arabic-digit-width": cvat(["annotations.xml", "<image> line 5"], image_xml(width="٣")),
    "cvat-1e999-height": cvat(["annotations.xml", "<image> line 5"], image_xml(height="1e999")),
    "cvat-boolean-width": cvat(["annotations.xml", "<image> line 5"], image_xml(width="true")),
    "cvat-zero-width": cvat(
        ["annotations.xml", "<image> line 5", "not positive"], image_xml(width="0")
    ),
    "cvat-declared-size": cvat(
        ["annotations.xml", "<image> line 5", "over the limit"],
        image_xml(width="50000", height="50000"),
    ),
    "cvat-inf-box": cvat(["annotations.xml", "<box> line 6"], image_xml(box(xtl="inf"))),
    "cvat-huge-box": cvat(
        ["annotations.xml", "<box> line 6", "coordinate"], image_xml(box(xbr="1e300"))
    ),
    "cvat-nan-polygon": cvat(
        ["annotations.xml", "<polygon> line 6"],
        image_xml('<polygon label="car" points="nan,1;2,3;4,5"/>'),
    ),
    "cvat-digit-separator-points": cvat(
        ["annotations.xml", "<polygon> line 6"],
        image_xml('<polygon label="car" points="1_0,1;2,3;4,5"/>'),
    ),
    "cvat-nan-z-order": cvat(["annotations.xml", "<box> line 6"], image_xml(box(z_order="nan"))),
    "cvat-mask-declared-size": cvat(
        ["annotations.xml", "<mask> line 6", "mask patch"],
        image_xml(mask(width="50000", height="50000")),
    ),
    "cvat-mask-huge-left": cvat(
        ["annotations.xml", "<mask> line 6", "coordinate"],
        image_xml(mask(left="100000000000000000000")),
    ),
    "cvat-mask-rle-sum": cvat(
        ["annotations.xml", "<mask> line 6", "RLE counts sum to"], image_xml(mask(rle="2, 3, 9"))
    ),
    "cvat-mask-rle-superscript": cvat(
        ["annotations.xml", "<mask> line 6", "non-negative integers"],
        image_xml(mask(rle="2, ², 1")),
    ),
    "cvat-mask-negative": cvat(
        ["annotations.xml", "<mask> line 6", "negative"], image_xml(mask(width="-3"))
    ),
    "cvat-video-size": cvat(
        ["annotations.xml", "<task> line 4", "over the limit"],
        cvat_xml(track(), VIDEO_META.format(size="1000000000000")),
    ),
    "cvat-video-frame": cvat(
        ["annotations.xml", "<box> line 5", "over the limit"],
        cvat_xml(track("1000000000"), VIDEO_META.format(size="")),
    ),
    "cvat-video-negative-frame": cvat(
        ["annotations.xml", "<box> line 5", "negative"],
        cvat_xml(track("-3"), VIDEO_META.format(size="4")),
    ),
    "cvat-escaping-name": cvat(
        ["annotations.xml", "<image> line 5", "leads outside"], image_xml(name="../../etc/passwd")
    ),
    "cvat-long-attribute": cvat(
        ["annotations.xml", "<polygon> line 6", "over the limit"],
        image_xml(f'<polygon label="car" points="{"1,1;" * 400}"/>'),
        env={"CONCEPTKIT_LIMIT_XML_ATTRIBUTE_CHARS": "1000"},
    ),
    "cvat-nested-100000": cvat(["annotations.xml", "nesting depth"], cvat_xml(deep_xml(100_000))),
    "cvat-entity-bomb": cvat(
        ["annotations.xml", "DOCTYPE"], BOMB_XML.replace("annotation>", "annotations>")
    ),
    "cvat-empty-file": cvat(["annotations.xml", "line 1", "no element found"], ""),
    "cvat-folder-as-file": cvat_folder_as_file,
    "cvat-image-bomb-in-convert": cvat_image_bomb,
    "cvat-symlink-out": cvat_symlink_out,
    "cvat-annotation-linked-out": cvat_annotation_linked_out,
    "cvat-images-is-a-file": cvat_images_is_a_file,
}


# ----------------------------------------------------------------------------- CVAT zip


def zipped(
    names: list[str],
    members: list[tuple[str, bytes]],
    env: dict[str, str] | None = None,
    mangle: Callable[[bytes], bytes] | None = None,
) -> Callable[[Path], Case]:
    def build(ws: Path) -> Case:
        ws.mkdir(exist_ok=True)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members:
                z.writestr(name, data)
        raw = buf.getvalue()
        path = ws / "export.zip"
        path.write_bytes(mangle(raw) if mangle else raw)
        return Case("cvat", path, names, env or {})

    return build


GOOD_MEMBERS = [("annotations.xml", image_xml(box()).encode()), ("images/a.png", png(8, 6))]


def corrupt_member(raw: bytes) -> bytes:
    """Flip a byte inside the compressed data of the first member (its CRC then fails)."""
    data = bytearray(raw)
    data[40] ^= 0xFF
    return bytes(data)


def lying_size(raw: bytes) -> bytes:
    """The image member's expanded size declared as 10 bytes (in both headers): a lie."""
    data = bytearray(raw)
    name = b"images/a.png"
    for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        at = data.find(signature)
        while data[at + name_at : at + name_at + len(name)] != name:
            at = data.find(signature, at + 1)
        struct.pack_into("<I", data, at + size_at, 10)
    return bytes(data)


ZIP_CASES: dict[str, Callable[[Path], Case]] = {
    "zip-ratio-bomb": zipped(
        ["export.zip", "images/a.png", "expansion ratio"],
        [GOOD_MEMBERS[0], ("images/a.png", b"\x00" * (1 << 20))],
        env={"CONCEPTKIT_LIMIT_ZIP_RATIO": "50"},
    ),
    "zip-deflate-bomb": zipped(
        ["export.zip", "images/a.png", "expansion ratio"],
        [GOOD_MEMBERS[0], ("images/a.png", b"\x00" * (20 << 20))],
    ),
    "zip-member-size": zipped(
        ["export.zip", "annotations.xml", "expanded size"],
        GOOD_MEMBERS,
        env={"CONCEPTKIT_LIMIT_ZIP_MEMBER_BYTES": "100"},
    ),
    "zip-total-size": zipped(
        ["export.zip", "expanded size of all members"],
        GOOD_MEMBERS,
        env={"CONCEPTKIT_LIMIT_ZIP_TOTAL_BYTES": "200"},
    ),
    "zip-member-count": zipped(
        ["export.zip", "member count"], GOOD_MEMBERS, env={"CONCEPTKIT_LIMIT_ZIP_MEMBERS": "1"}
    ),
    "zip-escaping-member": zipped(
        ["export.zip", "'../evil.png'", "outside"], [*GOOD_MEMBERS, ("../evil.png", b"x")]
    ),
    "zip-absolute-member": zipped(
        ["export.zip", "'/etc/evil'", "outside"], [*GOOD_MEMBERS, ("/etc/evil", b"x")]
    ),
    "zip-truncated": zipped(
        ["export.zip", "not a readable zip"], GOOD_MEMBERS, mangle=lambda raw: raw[: len(raw) // 2]
    ),
    "zip-corrupt-member": zipped(
        ["export.zip", "annotations.xml", "cannot be read from the archive"],
        GOOD_MEMBERS,
        mangle=corrupt_member,
    ),
    "zip-image-bomb-in-convert": zipped(
        ["export.zip!annotations.xml", "50000x50000"],
        [GOOD_MEMBERS[0], ("images/a.png", png_claiming(50000, 50000))],
    ),
    "zip-lying-size": zipped(
        ["export.zip!images/a.png", "cannot be read from the archive", "CRC"],
        [GOOD_MEMBERS[0], ("images/a.png", png(8, 6))],
        mangle=lying_size,
    ),
    "zip-no-annotations": zipped(["export.zip", "no annotations.xml"], [GOOD_MEMBERS[1]]),
    "zip-nan-width": zipped(
        ["export.zip!annotations.xml", "<image> line 5"],
        [("annotations.xml", image_xml(width="nan").encode())],
    ),
}


# ----------------------------------------------------------------------------- COCO


def coco_doc(**ann: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "segmentation": [[0, 0, 4, 0, 4, 4]],
    }
    a.update(ann)
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
        "annotations": [a],
        "categories": [{"id": 1, "name": "thing"}],
    }


def with_image(**img: Any) -> dict[str, Any]:
    doc = coco_doc()
    doc["images"][0].update(img)
    return doc


def coco(
    names: list[str], doc: Any = None, raw: bytes | None = None, env: dict[str, str] | None = None
) -> Callable[[Path], Case]:
    def build(ws: Path) -> Case:
        src = ws / "src"
        (src / "annotations").mkdir(parents=True)
        (src / "images" / "train").mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(src / "images" / "train" / "a.jpg")
        text = (
            raw
            if raw is not None
            else json.dumps(doc if doc is not None else coco_doc(), allow_nan=True).encode()
        )
        (src / "annotations" / "instances_train.json").write_bytes(text)
        return Case("coco", src, names, env or {})

    return build


def coco_image_bomb(ws: Path) -> Case:
    case = coco([J, "50000x50000"])(ws)
    (case.src / "images" / "train" / "a.jpg").write_bytes(png_claiming(50000, 50000))
    return case


def coco_symlink_out(ws: Path) -> Case:
    case = coco([J, "$.images[0].file_name", "leads outside"])(ws)
    image = case.src / "images" / "train" / "a.jpg"
    image.unlink()
    image.symlink_to(outside_image(ws))
    return case


def coco_annotation_linked_out(ws: Path) -> Case:
    case = coco([J, "symbolic link leading outside SRC"])(ws)
    linked_out(case.src / "annotations" / J, ws)
    return case


def coco_folder_as_file(ws: Path) -> Case:
    src = ws / "src"
    (src / "annotations" / "instances_default.json").mkdir(parents=True)
    return Case("coco", src, ["instances_default.json", "is a folder"])


def rle_string(runs: list[int], h: int = 6, w: int = 8) -> str:
    from pycocotools import mask as mask_utils

    counts: bytes = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"]
    return counts.decode()


J = "instances_train.json"
COCO_CASES: dict[str, Callable[[Path], Case]] = {
    "coco-huge-integer-width": coco([J, "$.images[0]", "over the limit"], with_image(width=1e300)),
    "coco-declared-size": coco(
        [J, "$.images[0]", "over the limit"], with_image(width=50000, height=50000)
    ),
    "coco-superscript-width": coco([J, "$.images[0].width"], with_image(width="²")),
    "coco-boolean-width": coco([J, "$.images[0].width"], with_image(width=True)),
    "coco-negative-height": coco([J, "$.images[0].height"], with_image(height=-3)),
    "coco-zero-width": coco([J, "$.images[0].width"], with_image(width=0)),
    "coco-boolean-category": coco([J, "$.annotations[0].category_id"], coco_doc(category_id=True)),
    "coco-rle-size": coco(
        [J, "$.annotations[0].segmentation.size"],
        coco_doc(segmentation={"size": [50000, 50000], "counts": [0, 48]}),
    ),
    "coco-rle-list-total": coco(
        [J, "$.annotations[0].segmentation.counts", "sum to"],
        coco_doc(segmentation={"size": [6, 8], "counts": [0, 10**15]}),
    ),
    "coco-rle-bad-characters": coco(
        [J, "$.annotations[0].segmentation.counts", "bad compressed"],
        coco_doc(segmentation={"size": [6, 8], "counts": "35n0 ~"}),
    ),
    "coco-rle-truncated-string": coco(
        [J, "$.annotations[0].segmentation.counts", "bad compressed"],
        coco_doc(segmentation={"size": [6, 8], "counts": "35k"}),
    ),
    "coco-rle-short-string": coco(
        [J, "$.annotations[0].segmentation.counts", "sum to 38"],
        coco_doc(segmentation={"size": [6, 8], "counts": rle_string([3, 5, 30])}),
    ),
    "coco-rle-long-string": coco(
        [J, "$.annotations[0].segmentation.counts", "sum to more"],
        coco_doc(segmentation={"size": [6, 8], "counts": rle_string([3, 5, 30, 2000], 1, 2038)}),
    ),
    "coco-nan-polygon": coco(
        [J, "line 1", "NaN"],
        raw=b'{"images": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[NaN, 0, 1, 1, 2, 2]]}], "categories": []}',
    ),
    "coco-1e999-polygon": coco(
        [J, "$.annotations[0].segmentation[0]", "not a finite number"],
        raw=overflowing(coco_doc(segmentation=[[SENTINEL, 0, 4, 0, 4, 4]])),
    ),
    "coco-infinity-bbox": coco(
        [J, "line 1, column", "Infinity is not a JSON number"],
        coco_doc(segmentation=[], bbox=[0, 0, float("inf"), 2]),
    ),
    "coco-1e999-bbox": coco(
        [J, "$.annotations[0].bbox", "not a finite number"],
        raw=overflowing(coco_doc(segmentation=[], bbox=[0, 0, SENTINEL, 2])),
    ),
    "coco-huge-bbox": coco(
        [J, "$.annotations[0].bbox", "coordinate"], coco_doc(segmentation=[], bbox=[0, 0, 1e300, 2])
    ),
    "coco-nested-100000": coco([J, "nesting depth"], raw=deep_json(100_000).encode()),
    "coco-deep-attributes": coco(
        [J, "nesting depth"], coco_doc(attributes={"a": json.loads(deep_json(300))})
    ),
    "coco-folder-as-file": coco_folder_as_file,
    "coco-image-bomb-in-convert": coco_image_bomb,
    "coco-symlink-out": coco_symlink_out,
    "coco-annotation-linked-out": coco_annotation_linked_out,
    "coco-empty-file": coco([J, "is empty"], raw=b"\n"),
    "coco-not-utf8": coco([J, "UTF-8"], raw=b'{"images": [], "x": "\xff\xfe"}'),
    "coco-escaping-file-name": coco(
        [J, "$.images[0].file_name", "leads outside"], with_image(file_name="../../x.jpg")
    ),
    "coco-absolute-file-name": coco(
        [J, "$.images[0].file_name", "leads outside"], with_image(file_name="/etc/passwd")
    ),
    "coco-string-iscrowd": coco([J, "$.annotations[0].iscrowd"], coco_doc(iscrowd="1")),
    "coco-file-bytes-limit": coco([J, "over the limit"], env={"CONCEPTKIT_LIMIT_FILE_BYTES": "50"}),
}

CASES = {**LABELME_CASES, **LABELME_XML_CASES, **CVAT_CASES, **ZIP_CASES, **COCO_CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_export(name: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    case = CASES[name](ws)
    args = ["convert", case.fmt, case.src, "-o", ws / "out"]
    run_hostile(args, ws, names=case.names, env=case.env)


def test_there_are_enough_cases() -> None:
    per_format = {
        fmt: sum(k.startswith(fmt) for k in CASES)
        for fmt in ("lm-", "lmx-", "cvat-", "zip-", "coco-")
    }
    assert len(CASES) >= 50 and min(per_format.values()) >= 10, per_format
