"""CamVid (colour masks with label_colors.txt / class_dict.csv, or SegNet index masks).

Layout under ``src`` (the dataset root)::

    train.txt, val.txt, test.txt    "<image path> <mask path>" per line (absolute paths as
                                    SegNet writes them are rebased on ``src``: the last two
                                    parts, ``train/x.png``, are kept)
    train/ trainannot/ ...          images and their masks (without list files: every
                                    ``<name>annot/`` folder holds the masks of ``<name>/``)
    label_colors.txt                ``R G B<tab>Name`` per line (original CamVid), or
    class_dict.csv                  ``name,r,g,b`` (the Kaggle CamVid)

Masks are told apart by their PNG mode. RGB masks are colour masks, decoded through the root's
colour table, else CamVid's own 32 colours (:data:`COLOURS`); ``Void`` (0, 0, 0) is
unlabelled. Grey or palette masks are SegNet's class indices (:data:`SEGNET`: 0 Sky ... 10
Bicyclist, 11 void, unlabelled). A colour or index that the table does not name is a
FormatError naming the mask and its first pixel.

Shapes: one ``mask`` Shape per class (pixels exact). Split: the list file's name, else the
image folder's name (``train``, ``val``, ``test``; anything else ``train``). Mask headers are
checked against the limits before decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from conceptkit.converters import ReadOptions, each_record, inside
from conceptkit.converters._masks import (
    boxes,
    files_under,
    lookup,
    mask_shape,
    read_labels,
    read_text,
    regions,
)

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.errors import FormatError

DESCRIPTION = "CamVid (colour masks with label_colors.txt / class_dict.csv, or SegNet index masks)"
EXAMPLE = "conceptkit convert camvid CamVid/ -o broden_camvid"

#: CamVid's 32 colours (label_colors.txt of the original release; Void first)
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("Void", (0, 0, 0)),
    ("Animal", (64, 128, 64)),
    ("Archway", (192, 0, 128)),
    ("Bicyclist", (0, 128, 192)),
    ("Bridge", (0, 128, 64)),
    ("Building", (128, 0, 0)),
    ("Car", (64, 0, 128)),
    ("CartLuggagePram", (64, 0, 192)),
    ("Child", (192, 128, 64)),
    ("Column_Pole", (192, 192, 128)),
    ("Fence", (64, 64, 128)),
    ("LaneMkgsDriv", (128, 0, 192)),
    ("LaneMkgsNonDriv", (192, 0, 64)),
    ("Misc_Text", (128, 128, 64)),
    ("MotorcycleScooter", (192, 0, 192)),
    ("OtherMoving", (128, 64, 64)),
    ("ParkingBlock", (64, 192, 128)),
    ("Pedestrian", (64, 64, 0)),
    ("Road", (128, 64, 128)),
    ("RoadShoulder", (128, 128, 192)),
    ("Sidewalk", (0, 0, 192)),
    ("SignSymbol", (192, 128, 128)),
    ("Sky", (128, 128, 128)),
    ("SUVPickupTruck", (64, 128, 192)),
    ("TrafficCone", (0, 0, 64)),
    ("TrafficLight", (0, 64, 64)),
    ("Train", (192, 64, 128)),
    ("Tree", (128, 128, 0)),
    ("Truck_Bus", (192, 128, 192)),
    ("Tunnel", (64, 0, 64)),
    ("VegetationMisc", (192, 192, 0)),
    ("Wall", (64, 192, 0)),
)
#: SegNet's CamVid classes by index; 11 is void
SEGNET = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
SEGNET_VOID = 11
_VOID_NAMES = {"void", "unlabelled", "unlabeled"}
_SPLITS = ("train", "val", "test")


def _byte(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) <= 255 else None


def read_colours(root: Path) -> tuple[tuple[str, tuple[int, int, int]], ...]:
    """The colour table of ``root``: ``label_colors.txt``, ``class_dict.csv``, else :data:`COLOURS`."""
    txt, csv = root / "label_colors.txt", root / "class_dict.csv"
    if txt.exists():
        path, rows = (
            txt,
            [(i, line.split()) for i, line in enumerate(read_text(txt, what="colour table"), 1)],
        )
        rows = [(i, f[3:] + f[:3]) for i, f in rows if f]
    elif csv.exists():
        path = csv
        lines = read_text(csv, what="colour table")
        rows = [(i, line.split(",")) for i, line in enumerate(lines, 1) if line.strip()][1:]
    else:
        return COLOURS
    table: list[tuple[str, tuple[int, int, int]]] = []
    for i, fields in rows:
        rgb = [b for f in fields[-3:] if (b := _byte(f)) is not None] if len(fields) >= 4 else []
        name = " ".join(fields[:-3]).strip()
        if len(rgb) != 3 or not name:
            raise FormatError("expected a name and three colour values 0-255", path, f"line {i}")
        table.append((name, (rgb[0], rgb[1], rgb[2])))
    return tuple(table)


def _rebase(root: Path, text: str, list_file: Path, line: int) -> Path:
    """A list file's path on ``root``: its last two parts (``train/x.png``)."""
    parts = [p for p in PurePosixPath(text.replace("\\", "/")).parts if p not in ("/", "")]
    if len(parts) < 1 or ".." in parts[-2:]:
        raise FormatError(f"path {text!r} is not a dataset file", list_file, f"line {line}")
    path = root.joinpath(*parts[-2:])
    if not inside(root, path):
        raise FormatError(f"path {text!r} points outside SRC ({root})", list_file, f"line {line}")
    return path


def pairs(root: Path) -> list[tuple[Path, Path, str, str]]:
    """(image, mask, split, where) for every listed (or paired) image of ``root``."""
    found = []
    lists = [root / f"{s}.txt" for s in _SPLITS if (root / f"{s}.txt").is_file()]
    for list_file in lists:
        for i, line in enumerate(read_text(list_file, what="image list"), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise FormatError("expected '<image path> <mask path>'", list_file, f"line {i}")
            image, mask = (_rebase(root, f, list_file, i) for f in fields)
            found.append((image, mask, list_file.stem, f"{list_file.name} line {i}"))
    if lists:
        return found
    for mask in files_under(root, "*.png"):
        folder = mask.parent.name
        if folder.endswith("annot") and mask.parent.parent == root:
            image_dir = root / folder[: -len("annot")]
            split = image_dir.name if image_dir.name in _SPLITS else "train"
            found.append((image_dir / mask.name, mask, split, mask.name))
    return found


def read_image(
    root: Path, image: Path, mask: Path, split: str, colours: dict[int, int], names: list[str]
) -> ImageAnnotation:
    """The annotation of one image from its ``mask``."""
    plane, colour = read_labels(mask, file=mask, place="header", what="mask")
    if colour:
        # the regions of the colours themselves (the table maps colours one to one), taken in
        # the order of their classes
        found = boxes(plane)
        index = [colours.get(v, -1) for v in found.values]
        if min(index) < 0:  # names the first pixel of a colour the table lacks
            lookup(plane, colours, file=mask, place="pixels", what="mask", describe=True)
        found = found.take(sorted(range(len(index)), key=index.__getitem__))
        labelled = [(names[colours[r.value]], r) for r in regions(plane, set(), found)]
    else:
        table = {i: i for i in range(len(SEGNET))} | {SEGNET_VOID: SEGNET_VOID}
        index_plane = lookup(plane, table, file=mask, place="pixels", what="mask")
        labels = list(SEGNET) + ["Void"]
        labelled = [(labels[r.value], r) for r in regions(index_plane, set())]
    shapes: list[Shape] = []
    for label, region in labelled:
        if label.casefold() in _VOID_NAMES:
            continue
        shapes.append(mask_shape(label, region, order=len(shapes), place=f"class {label}"))
    return ImageAnnotation(
        key=image.name,
        width=plane.shape[1],
        height=plane.shape[0],
        shapes=shapes,
        image_path=image,
        source=str(mask),
        annotator=root.name,
        split=split,
    )


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one annotation per listed (or paired) mask of the CamVid root ``src``, in order."""
    src = Path(src)
    if not src.is_dir():
        raise FormatError("is not a folder; point at the CamVid root (it holds train.txt)", src)
    table = read_colours(src)
    names = [name for name, _ in table]
    colours = {(r << 16) | (g << 8) | b: i for i, (_, (r, g, b)) in enumerate(table)}
    found = pairs(src)
    if not found:
        raise FormatError("holds no CamVid list file (train.txt) nor <name>annot/ folder", src)

    def one(pair: tuple[Path, Path, str, str]) -> ImageAnnotation:
        image, mask, split, where = pair
        if not inside(src, mask):
            raise FormatError(f"mask {mask.name!r} points outside SRC ({src})", src, where)
        return read_image(src, image, mask, split, colours, names)

    yield from each_record(found, one, options, " (skipped)")
