"""Reader of MIT LabelMe XML (the LabelMe web tool; CVAT's "LabelMe 3.0" export).

One ``<annotation>`` per image::

    annotation/filename, folder, imagesize/{nrows, ncols}
    annotation/object{name, deleted, occluded, attributes, id,
                      parts{hasparts, ispartof}, polygon{pt{x, y}} | segm{box, mask}}

Objects with ``deleted`` = 1 are skipped. ``polygon`` -> a polygon shape (pixel convention
``inclusive``, as labelme). ``segm`` -> a mask shape read from the PNG named by ``mask``, looked
up in ``Masks/<folder>/`` beside ``Annotations/`` (the web tool's layout) or next to the XML; a
pixel is in the mask when its alpha (RGBA) or first channel is non-zero. An object whose ``ispartof`` names
another object's ``id`` is a part: category ``part``, ``Shape.parent`` = the whole's order.

The image is ``Images/<folder>/<filename>`` beside ``Annotations/``, else ``<filename>`` next to
the XML. XML is parsed by the shared :func:`conceptkit.converters._xml.parse`, which refuses
DOCTYPE and ENTITY declarations, so an entity-expansion bomb is one clear error and never expands;
every error names the file and the element's line. Numbers (``<x>``, ``<nrows>``, ...) are read
strictly (finite, ASCII digits); the declared image size, mask PNG headers and coordinates are
checked against :mod:`conceptkit.limits` before anything is allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from conceptkit.converters import ReadOptions, check_points, inside
from conceptkit.converters._xml import Node, number, parse

from conceptkit import images
from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError


def _text(elem: Node | None, tag: str, default: str = "") -> str:
    """The stripped text of ``elem``'s child ``tag``; ``default`` if absent or empty."""
    if elem is None:
        return default
    child = elem.find(tag)
    return child.text.strip() if child is not None and child.text else default


def _number(elem: Node, tag: str, file: Path) -> float:
    child = elem.find(tag)
    text = child.text.strip() if child is not None else ""
    value = number(text)
    if value is None:
        raise FormatError(
            f"<{tag}> must be a finite number, found {text[:40]!r}",
            file,
            (child if child is not None else elem).place,
        )
    return value


def _find_file(xml: Path, src_root: Path, kind: str, folder: str, name: str) -> Path:
    """``<Kind>/<folder>/<name>`` beside ``Annotations/``, else ``<name>`` next to the XML."""
    candidates = []
    annotations = next((p for p in xml.parents if p.name == "Annotations"), None)
    if annotations is not None:
        candidates.append(annotations.parent / kind / folder / name)
        candidates.append(annotations.parent / kind / name)
    candidates.append(xml.parent / name)
    for c in candidates:
        if c.is_file():
            return c
    return candidates[-1]


def _image(root: Node, path: Path, src_root: Path, options: ReadOptions) -> tuple[Path, str, str]:
    """(the image file, ``<filename>``, ``<folder>``) of an ``<annotation>``; paths checked."""
    filename = _text(root, "filename")
    if not filename:
        raise FormatError("<filename> is missing or empty", path, root.place)
    folder = _text(root, "folder")
    for text in (filename, folder):
        if text.startswith(("/", "\\")) or ".." in text.replace("\\", "/").split("/"):
            raise FormatError(f"path {text!r} points outside SRC", path, root.place)
    image = _find_file(path, src_root, "Images", folder, filename)
    if options.check_paths and not inside(src_root, image):
        raise FormatError(f"image {filename!r} points outside SRC", path, root.place)
    if not image.is_file():
        raise FormatError(f"image {filename!r} not found (looked for {image})", path, root.place)
    return image, filename, folder


def _size(root: Node, image: Path, path: Path) -> tuple[int, int]:
    """(width, height): ``<imagesize>`` when it is there, else the image header."""
    size = root.find("imagesize")
    if size is not None and size.find("nrows") is not None:
        height = int(_number(size, "nrows", path))
        width = int(_number(size, "ncols", path))
        images.check_size(width, height, file=path, place=size.place)
        return width, height
    from conceptkit.converters.labelme import image_size

    return image_size(image, None, path, root.place)


def _shape(
    obj: Node, i: int, path: Path, src_root: Path, folder: str, size: tuple[int, int]
) -> Shape:
    """The Shape of ``<object>`` number ``i`` (its polygon or its segm mask)."""
    attrs = {}
    if _text(obj, "attributes"):
        attrs["attributes"] = _text(obj, "attributes")
    shape = Shape(
        label=_text(obj, "name"),
        kind="polygon",
        order=i,
        occluded=_text(obj, "occluded", "no").lower() in ("yes", "1", "true"),
        attributes=attrs,
        convention="inclusive",
        place=obj.place,
    )
    poly = obj.find("polygon")
    segm = obj.find("segm")
    if poly is not None:
        pts = [(_number(pt, "x", path), _number(pt, "y", path)) for pt in poly.findall("pt")]
        shape.points = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        shape.place = poly.place
        check_points(shape.points, path, poly.place)
    elif segm is not None:
        mask_name = _text(segm, "mask")
        if not mask_name or "/" in mask_name or "\\" in mask_name:
            raise FormatError(f"<mask> {mask_name!r} is not a file name", path, segm.place)
        mask_path = _find_file(path, src_root, "Masks", folder, mask_name)
        shape.kind = "mask"
        shape.mask = _read_mask(mask_path, path, segm, *size)
        shape.place = segm.place
    else:
        raise FormatError("object has neither <polygon> nor <segm>", path, obj.place)
    return shape


def read_file(path: Path, src_root: Path, options: ReadOptions) -> ImageAnnotation:
    """Read one MIT LabelMe XML file."""
    root = parse(path, root_tag="annotation")
    image, filename, folder = _image(root, path, src_root, options)
    width, height = _size(root, image, path)
    ann = ImageAnnotation(
        key=filename,
        width=width,
        height=height,
        image_path=image,
        source=str(path),
        annotator=src_root.name,
    )
    ids: dict[str, int] = {}
    parents: dict[int, str] = {}
    for i, obj in enumerate(root.findall("object")):
        if _text(obj, "deleted", "0") == "1":
            continue
        shape = _shape(obj, i, path, src_root, folder, (width, height))
        ids[_text(obj, "id", str(i))] = i
        parent = _text(obj.find("parts"), "ispartof")
        if parent:
            parents[i] = parent
        ann.shapes.append(shape)
    for shape in ann.shapes:
        if shape.order in parents:
            whole = parents[shape.order]
            if whole not in ids:
                options.warn(
                    f"{path}: {shape.place}: <ispartof> names object {whole!r}, which is absent"
                )
            shape.category = "part"
            shape.parent = ids.get(whole)
    return ann


def _read_mask(mask_path: Path, xml: Path, segm: Node, width: int, height: int) -> np.ndarray:
    """A full-image segm mask PNG -> ``(height, width) bool`` (alpha or first channel > 0)."""
    name = mask_path.name
    with images.open_image(mask_path, file=xml, place=segm.place, what=f"mask {name!r}") as im:
        if im.size != (width, height):  # checked on the header, before decoding
            raise FormatError(
                f"mask {name!r} is {im.size[0]}x{im.size[1]}, the image is {width}x{height}",
                xml,
                segm.place,
            )
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 3] if arr.shape[-1] == 4 else arr[..., 0]
    return arr > 0


def read(src: Path, options: ReadOptions) -> Any:
    """Yield annotations of every ``*.xml`` under ``src`` (delegates to the LabelMe reader)."""
    from conceptkit.converters.labelme import read as read_labelme

    return read_labelme(src, options)
