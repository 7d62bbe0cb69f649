"""Pascal VOC segmentation (SegmentationClass/SegmentationObject PNGs, Annotations XML).

Layout of a dataset root (``VOC2012/``, or labelme2voc's output)::

    JPEGImages/<id>.jpg            the image (.jpg, .jpeg or .png)
    SegmentationClass/<id>.png     class index per pixel: 0 background, 1 aeroplane ... 20
                                   tvmonitor, 255 void (unlabelled, never a label)
    SegmentationObject/<id>.png    object index k per pixel = the k-th <object> of
                                   Annotations/<id>.xml (0 none, 255 void)
    Annotations/<id>.xml           <object><name> per object (optional)
    ImageSets/Segmentation/{train,val,test}.txt   one id per line -> the split (optional)
    class_names.txt                labelme2voc's class table (index = line), when present

``src`` is such a root, or a folder holding roots (found by their ``SegmentationClass`` or
``SegmentationObject`` folder), read in sorted order. Images are the ids of the mask PNGs in
sorted order; an id listed in ``val.txt`` (``test.txt``) gets that split, every other one
``train``.

Vocabulary: the root's ``class_names.txt`` when present (labelme's ``_background_`` reads as
``background``), else VOC's own 21 names (:data:`CLASSES`); ``background`` is a label, as VOC
evaluates it (drop it with ``--concepts``: ``background,drop,``). Palette PNGs are read as
their indices, never as colours; RGB masks (datumaro writes them) are mapped back through the
VOC colour map (:func:`colormap`). A value the table does not name is a FormatError naming the
pixel.

Shapes (``mask``, pixels exact): with SegmentationObject, one per object (instance = its index),
named by the XML's k-th object, or, without the XML, by the class that covers most of its
pixels in SegmentationClass; then one per class for the class pixels outside every object
(background). Without SegmentationObject, one per class. Mask PNG headers are checked against
the limits and the image size before their pixels are decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
from conceptkit.converters import ReadOptions, each_record, within
from conceptkit.converters._masks import (
    colour_codes,
    files_under,
    image_in,
    lookup,
    mask_shape,
    read_labels,
    read_text,
    regions,
)
from conceptkit.converters._xml import parse

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError

DESCRIPTION = "Pascal VOC segmentation (SegmentationClass/SegmentationObject PNGs, Annotations XML)"
EXAMPLE = "conceptkit convert voc VOCdevkit/VOC2012 -o broden_voc"

#: VOC's class names by index (0 = background); 255 is void
CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOID = 255
_FOLDERS = ("SegmentationClass", "SegmentationObject")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def colormap(n: int = 256) -> np.ndarray:
    """VOC's colour map ``(n, 3) uint8``: the bits of index i interleaved into R, G, B from the
    high bit down (0 black, 1 (128, 0, 0), 255 (224, 224, 192))."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


_COLOUR_TO_INDEX = {int(c): i for i, c in enumerate(colour_codes(colormap()[None])[0].tolist())}


def _indices(path: Path, size: tuple[int, int] | None, what: str) -> np.ndarray:
    """The ``(H, W)`` indices of a VOC mask PNG (palette/grey as is, RGB via the colour map)."""
    plane, colour = read_labels(path, file=path, place="header", what=what, size=size)
    if colour:
        plane = lookup(
            plane,
            _COLOUR_TO_INDEX,
            file=path,
            place="pixels",
            what=what,
            describe=True,
        )
    return plane


def class_names(root: Path) -> tuple[str, ...]:
    """The class table of ``root``: its ``class_names.txt`` when present, else :data:`CLASSES`."""
    path = root / "class_names.txt"
    if not path.exists():
        return CLASSES
    names = []
    for i, line in enumerate(read_text(path, what="class table"), 1):
        name = line.strip()
        if not name:
            raise FormatError("an empty class name", path, f"line {i}")
        names.append("background" if name == "_background_" else name)
    return tuple(n for n in names if n != "__ignore__")


def splits(root: Path) -> dict[str, str]:
    """id -> split from ``ImageSets/Segmentation/{train,val,test}.txt`` (val, test win over train)."""
    folder = root / "ImageSets" / "Segmentation"
    found: dict[str, str] = {}
    for split in ("train", "test", "val"):
        path = folder / f"{split}.txt"
        if path.is_file():
            for line in read_text(path, what="image list"):
                if line.strip():
                    found[line.split()[0]] = split
    return found


def _object_names(xml: Path) -> list[str] | None:
    """The ``<object><name>`` of ``Annotations/<id>.xml`` in document order; None if absent."""
    if not xml.exists():
        return None
    root = parse(xml, root_tag="annotation")
    names = []
    for obj in root.findall("object"):
        name = obj.findtext("name").strip()
        if not name:
            raise FormatError("<object> has no <name>", xml, obj.place)
        names.append(name)
    return names


def _class_name(names: tuple[str, ...], index: int, path: Path) -> str:
    if not 0 <= index < len(names):
        raise FormatError(
            f"class index {index} is not in the class table ({len(names)} classes, 255 void)",
            path,
            "pixels",
        )
    return names[index]


def _object_shapes(
    objects: np.ndarray,
    classes: np.ndarray | None,
    xml_names: list[str] | None,
    names: tuple[str, ...],
    path: Path,
) -> list[Shape]:
    """One Shape per object index of ``objects`` (named by the XML, else by majority class)."""
    shapes: list[Shape] = []
    for region in regions(objects, {0, VOID}):
        k = region.value
        if xml_names is not None:
            if k > len(xml_names):
                raise FormatError(
                    f"object index {k} is in the mask, the XML lists {len(xml_names)} objects",
                    path,
                    "pixels",
                )
            label = xml_names[k - 1]
        elif classes is not None:
            x0, y0 = region.origin
            h, w = region.mask.shape
            under = classes[y0 : y0 + h, x0 : x0 + w][region.mask]
            under = under[under != VOID]
            if not under.size:
                continue
            label = _class_name(names, int(np.bincount(under).argmax()), path)
        else:
            raise FormatError("needs SegmentationClass/ or Annotations/ to name its objects", path)
        shapes.append(
            mask_shape(label, region, order=len(shapes), place=f"object {k}", instance=str(k))
        )
    return shapes


def _read_key(
    root: Path, names: tuple[str, ...], split_of: dict[str, str], key: str
) -> ImageAnnotation:
    """:func:`read_image` of ``key`` in its split (``train`` when no list names it)."""
    return read_image(root, key, names, split_of.get(key, "train"))


def read_image(root: Path, key: str, names: tuple[str, ...], split: str) -> ImageAnnotation:
    """The annotation of image ``key`` of the VOC root ``root``."""
    class_png = root / "SegmentationClass" / f"{key}.png"
    object_png = root / "SegmentationObject" / f"{key}.png"
    first = class_png if class_png.exists() else object_png
    classes = _indices(class_png, None, "class mask") if class_png.exists() else None
    size = None if classes is None else (classes.shape[1], classes.shape[0])
    objects = _indices(object_png, size, "object mask") if object_png.exists() else None
    plane = classes if classes is not None else objects
    assert plane is not None  # one of the two exists: the key came from its file name
    height, width = plane.shape
    shapes: list[Shape] = []
    rest = classes
    if objects is not None:
        xml_names = _object_names(root / "Annotations" / f"{key}.xml")
        shapes = _object_shapes(objects, classes, xml_names, names, object_png)
        if classes is not None:
            rest = np.where(objects == 0, classes, VOID)
    if rest is not None:
        for region in regions(rest, {VOID}):
            label = _class_name(names, region.value, class_png)
            shapes.append(
                mask_shape(label, region, order=len(shapes), place=f"class {region.value}")
            )
    image = image_in(
        root, [root / "JPEGImages" / f"{key}{s}" for s in _IMAGE_SUFFIXES], first, "image"
    )
    return ImageAnnotation(
        key=image.name,
        width=width,
        height=height,
        shapes=shapes,
        image_path=image,
        source=str(first),
        annotator=root.name,
        split=split,
    )


def roots(src: Path) -> list[Path]:
    """The VOC roots at or under ``src`` (folders holding SegmentationClass/ or SegmentationObject/)."""
    if not src.is_dir():
        raise FormatError("is not a folder; point at a VOC root (it holds SegmentationClass/)", src)
    if any((src / f).is_dir() for f in _FOLDERS):
        return [src]
    found = {p.parent for f in _FOLDERS for p in src.rglob(f) if p.is_dir()}
    return within(src, sorted(found, key=lambda p: p.relative_to(src).as_posix()))


def _keys(root: Path) -> list[str]:
    found: set[str] = set()
    for folder in _FOLDERS:
        if (root / folder).is_dir():
            found.update(
                p.stem for p in files_under(root / folder, "*.png") if p.parent == root / folder
            )
    return sorted(found)


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one annotation per mask id of every VOC root under ``src``, sorted."""
    src = Path(src)
    found = roots(src)
    if not found:
        raise FormatError("holds no VOC root (a folder with SegmentationClass/)", src)
    for root in found:
        names = class_names(root)
        split_of = splits(root)
        yield from each_record(
            _keys(root),
            partial(_read_key, root, names, split_of),
            options,
            " (skipped)",
        )
