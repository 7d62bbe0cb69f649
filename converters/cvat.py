"""Reader of CVAT XML exports: "CVAT for images 1.1" and "CVAT for video 1.1".

``src`` may be:

- a folder holding ``annotations.xml`` (CVAT's own layout) or, failing that, one XML file per
  subset (``train.xml``, ``val.xml``: datumaro's layout), with the images under ``images/``;
- a ``.zip`` as CVAT downloads it (``annotations.xml`` + ``images/``), read member by member
  without extracting it: an entry whose name leads outside the archive (``../``, absolute,
  drive letter) is refused up front, and image bytes are handed on as ``image_data``;
- one ``.xml`` file (images looked for beside it).

The XML is streamed (:mod:`conceptkit.converters._xml`): one ``<image>`` element at a time, so a
10,000-image export is read in memory bounded by one image's annotations. ``DOCTYPE``/``ENTITY``
declarations are refused.

What is read, per ``<image name width height [subset]>``:

- ``box`` (``xtl ytl xbr ybr [rotation]``) -> ``rectangle`` (``oriented_rectangle`` when rotated,
  clockwise degrees about the centre, as CVAT draws it); ``polygon`` (>= 3 points) ->
  ``polygon``; ``polyline`` -> ``linestrip``; ``points`` -> ``points``; ``ellipse`` (``cx cy rx
  ry [rotation]``) -> ``ellipse``; ``mask`` (``rle left top width height``) -> ``mask`` with a
  ``(height, width) bool`` patch at ``(left, top)``. The RLE counts are comma or comma-space
  separated, run row-major over the patch, first run zeros; counts that do not sum to
  ``width * height`` raise FormatError naming the element and line.
- ``tag`` -> ``ImageAnnotation.tags``.
- ``skeleton`` and ``cuboid`` are not concepts with an area: skipped with a warning.
- Shape fields: ``z`` = ``z_order`` (higher in front), ``order`` = document order in the image,
  ``instance`` = ``group_id`` (``0``/absent: its own instance), ``occluded``, the
  ``<attribute name=...>`` children in ``attributes``, ``convention = "center"`` (CVAT's mask
  export rasterises through pycocotools), ``place`` = ``<element> line N``.
- ``label=""`` (it occurs in real exports, e.g. datumaro's test export): the shape or tag has
  no concept to carry, so it is **skipped with a warning** naming the element and line.
- A shape with ``outside="1"`` (a track's end, split into frames) is skipped.

Splits: the image's ``subset`` attribute (project exports), else the file's subset
(``train.xml``), else the task's ``<subset>``, else ``train``; lower-cased, ``default`` and
empty -> ``train``, ``validation`` -> ``val``. Images: ``images/<subset>/<name>``, then
``images/<name>``, then ``<name>`` beside the XML, the first that exists (the first when none
does: the pipeline reports the missing file). A name leading outside ``src`` is a FormatError.
Keys: the image's file name; in a project export (images with a ``subset``)
``<subset>/<file name>``, since subsets may reuse file names (:func:`image_key`).

"CVAT for video 1.1" (``<track id label [group_id]>`` holding per-frame ``box``/``polygon``/...
with ``frame outside keyframe``): the tracks are gathered (they are the annotation file itself),
then every frame of the task (``meta/task/size``, else up to the last annotated frame) is
produced as one image ``frame_NNNNNN`` (with the extension found under ``images/``). Between two
listed frames of a track, boxes, ellipses, points, polylines and polygons with equal point counts
are interpolated linearly; otherwise (or with a mask) the earlier shape is held. ``outside=1``
ends the track until its next listed frame; after its last listed frame a track persists to the
end of the task, as in CVAT. ``annotator`` = the source folder name (the zip's or folder's).

Limits (:mod:`conceptkit.limits`), checked before anything is allocated: numbers are read
strictly (finite, ASCII digits: no ``nan``, ``1e999``, ``²``); image and mask-patch sizes
(``image_side``, ``image_pixels``); coordinates (within ``image_side``); frame counts and track
frames (``video_frames``); zip members' count, declared expanded sizes and expansion ratios
(``zip_members``, ``zip_member_bytes``, ``zip_total_bytes``, ``zip_ratio``), all before any
member is read; XML attribute length and depth (:mod:`conceptkit.converters._xml`).
"""

from __future__ import annotations

import bisect
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from conceptkit.converters import ReadOptions, check_points, within
from conceptkit.converters._xml import Node, iter_elements, number

from conceptkit import images, limits
from conceptkit.annotations import ImageAnnotation, Shape, ShapeKind
from conceptkit.errors import FormatError

SHAPE_TAGS = ("box", "polygon", "polyline", "points", "ellipse", "mask")
SKIPPED_TAGS = ("skeleton", "cuboid")
_SPLITS = {"": "train", "default": "train", "validation": "val"}
_RLE_SEP = re.compile(r"\s*,\s*")


# --------------------------------------------------------------------------- pure helpers


def decode_rle(text: str, width: int, height: int) -> np.ndarray:
    """CVAT mask RLE -> ``(height, width) bool`` patch.

    ``text``: counts separated by ``,`` or ``, ``; runs alternate zeros, ones, ... starting with
    zeros, row-major. Raises ValueError when a count is not a non-negative integer or the
    counts do not sum to ``width * height``.
    """
    stripped = text.strip()
    pieces = _RLE_SEP.split(stripped) if stripped else []
    if not all(p.isascii() and p.isdigit() for p in pieces):
        raise ValueError("RLE counts must be non-negative integers separated by commas")
    counts = [int(p) for p in pieces]
    total = sum(counts)
    if total != width * height:
        raise ValueError(
            f"RLE counts sum to {total}, expected width x height = {width} x {height} = "
            f"{width * height}"
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(height, width)


def rotated_box(xtl: float, ytl: float, xbr: float, ybr: float, degrees: float) -> np.ndarray:
    """The four corners ``(4, 2)`` of a box rotated clockwise (y down) about its centre."""
    cx, cy = (xtl + xbr) / 2, (ytl + ybr) / 2
    corners = np.array([[xtl, ytl], [xbr, ytl], [xbr, ybr], [xtl, ybr]], dtype=np.float64)
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (corners - [cx, cy]) @ rot.T + [cx, cy]


def image_key(name: str, subset: str) -> str:
    """The key of an image: its file name, prefixed ``<subset>/`` in project exports.

    A project export's subsets may reuse file names (``images/Train/img0.jpg`` and
    ``images/Test/img0.jpg`` are two images), so there an image is named by subset and file.
    """
    base = PurePosixPath(name.replace("\\", "/")).name
    return f"{subset}/{base}" if subset else base


def normalise_split(subset: str) -> str:
    """CVAT subset name -> split: lower-cased; ``default``/empty -> train, validation -> val."""
    s = subset.strip().lower()
    return _SPLITS.get(s, s)


# --------------------------------------------------------------------------- element parsing


def _num(node: Node, key: str, file: str, default: str | None = None) -> float:
    value = node.get(key, default)
    if value is None:
        raise FormatError(f"missing attribute {key!r}", file, node.place)
    parsed = number(value)
    if parsed is None:
        raise FormatError(
            f"attribute {key}={value[:40]!r} is not a finite number", file, node.place
        )
    return parsed


def _int(node: Node, key: str, file: str, default: str | None = None) -> int:
    value = _num(node, key, file, default)
    if value != int(value):
        raise FormatError(f"attribute {key}={value!r} is not an integer", file, node.place)
    return int(value)


def _points(node: Node, file: str) -> np.ndarray:
    """``points="x0,y0;x1,y1;..."`` -> ``(K, 2) float64``, each coordinate finite and bounded."""
    text = node.get("points")
    if text is None:
        raise FormatError("missing attribute 'points'", file, node.place)
    try:
        if not text.isascii() or "_" in text:
            raise ValueError(text)
        pts = [[float(v) for v in p.split(",")] for p in text.strip().split(";") if p.strip()]
        arr = np.array(pts, dtype=np.float64).reshape(-1, 2)
    except ValueError:
        raise FormatError(
            f"points={text[:40]!r} is not 'x0,y0;x1,y1;...'", file, node.place
        ) from None
    check_points(arr, file, node.place)
    return arr


def _mask(node: Node, file: str) -> _Geometry:
    """A ``<mask rle left top width height>``: its patch, size-checked before it is decoded."""
    left, top = _int(node, "left", file), _int(node, "top", file)
    width, height = _int(node, "width", file), _int(node, "height", file)
    if width < 0 or height < 0:
        raise FormatError(f"mask patch {width} x {height} is negative", file, node.place)
    what = f"mask patch {width}x{height}"
    for side in (width, height):
        limits.check("image_side", side, file=file, place=node.place, what=what)
    limits.check("image_pixels", width * height, file=file, place=node.place, what=what)
    check_points(np.array([[left, top]], dtype=np.float64), file, node.place)
    try:
        patch = decode_rle(node.get("rle") or "", width, height)
    except ValueError as exc:
        raise FormatError(f"mask rle: {exc}", file, node.place) from None
    return _Geometry("mask", np.zeros((0, 2)), mask=patch, origin=(left, top))


@dataclass
class _Geometry:
    kind: ShapeKind
    points: np.ndarray
    angle: float = 0.0
    mask: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)


def _geometry(node: Node, file: str) -> _Geometry:
    """The geometry of a ``box|polygon|polyline|points|ellipse|mask`` element."""
    tag = node.tag
    if tag == "box":
        xtl, ytl = _num(node, "xtl", file), _num(node, "ytl", file)
        xbr, ybr = _num(node, "xbr", file), _num(node, "ybr", file)
        rotation = _num(node, "rotation", file, "0")
        corners = np.array([[xtl, ytl], [xbr, ybr]], dtype=np.float64)
        check_points(corners, file, node.place)
        if rotation % 360:
            return _Geometry("oriented_rectangle", rotated_box(xtl, ytl, xbr, ybr, rotation))
        return _Geometry("rectangle", corners)
    if tag == "ellipse":
        cx, cy = _num(node, "cx", file), _num(node, "cy", file)
        rx, ry = _num(node, "rx", file), _num(node, "ry", file)
        angle = _num(node, "rotation", file, "0")
        pts = np.array([[cx, cy], [cx + rx, cy + ry]], dtype=np.float64)
        check_points(pts, file, node.place)
        return _Geometry("ellipse", pts, angle=angle)
    if tag == "mask":
        return _mask(node, file)
    pts = _points(node, file)
    if tag == "polygon":
        if len(pts) < 3:
            raise FormatError(
                f"a polygon needs at least 3 points, this one has {len(pts)}", file, node.place
            )
        return _Geometry("polygon", pts)
    if tag == "polyline":
        if len(pts) < 2:
            raise FormatError(
                f"a polyline needs at least 2 points, this one has {len(pts)}", file, node.place
            )
        return _Geometry("linestrip", pts)
    if len(pts) < 1:
        raise FormatError("points holds no point", file, node.place)
    return _Geometry("points", pts)


def _attributes(node: Node) -> dict[str, str]:
    return {a.get("name") or "": a.text.strip() for a in node.findall("attribute")}


def _instance(node: Node) -> str | None:
    group = (node.get("group_id") or "").strip()
    return group if group not in ("", "0") else None


def _shape(node: Node, geometry: _Geometry, order: int, file: str, z: int) -> Shape:
    return Shape(
        label=node.get("label") or "",
        kind=geometry.kind,
        points=geometry.points,
        mask=geometry.mask,
        origin=geometry.origin,
        instance=_instance(node),
        z=z,
        order=order,
        angle=geometry.angle,
        attributes=_attributes(node),
        occluded=(node.get("occluded") or "0").strip() == "1",
        convention="center",
        place=node.place,
    )


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    """One XML document of an export and how to find its images."""

    name: str  # for messages: the file (or zip!member)
    open: Callable[[], IO[bytes]]
    split: str | None  # from the file name (datumaro's train.xml), else None
    image: Callable[[str, str, str], tuple[Path | None, bytes | None]]
    image_names: Callable[[], list[str]] = field(default=lambda: [])


def _safe_relative(name: str) -> bool:
    """True when ``name`` (``/`` or ``\\`` separated) is relative and never climbs out."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return False
    return not posixpath.normpath(norm).startswith("..")


def _file_split(name: str) -> str | None:
    """The split a file name states (datumaro's ``train.xml``), else None."""
    stem = normalise_split(PurePosixPath(name).stem)
    return stem if stem in ("train", "val", "test") else None


def _candidates(name: str, subset: str) -> list[str]:
    norm = name.replace("\\", "/")
    out = [f"images/{norm}", norm]
    if subset:
        out.insert(0, f"images/{subset}/{norm}")
    return out


def _folder_image(
    base: Path, file: str, listing: Callable[[], list[str]]
) -> Callable[[str, str, str], tuple[Path | None, None]]:
    """Image lookup in a folder export; ``listing`` names the files under ``images/`` (cached)."""
    root = base.resolve()
    known: set[str] | None = None

    def find(name: str, subset: str, place: str) -> tuple[Path | None, None]:
        nonlocal known
        if not _safe_relative(name):
            raise FormatError(f"image name {name!r} leads outside {base}", file, place)
        if known is None:
            known = set(listing())
        cands = _candidates(name, subset)
        for c in cands:
            hit = c[len("images/") :] in known if c.startswith("images/") else (base / c).is_file()
            if hit:
                path = base / c
                if not path.resolve().is_relative_to(root):  # a symbolic link leading out
                    raise FormatError(f"image {c!r} leads outside {base}", file, place)
                return path, None
        return base / cands[-2 if len(cands) > 1 else 0], None

    return find


def _open_file(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot be read ({exc.strerror or exc})", path) from None


def _folder_sources(folder: Path, xmls: list[Path]) -> list[_Source]:
    cache: list[list[str]] = []

    def names() -> list[str]:
        if not cache:
            images = folder / "images"
            found = images.rglob("*") if images.is_dir() else iter(())
            cache.append(sorted(p.relative_to(images).as_posix() for p in found if p.is_file()))
        return cache[0]

    out = []
    for xml in xmls:
        out.append(
            _Source(
                str(xml),
                (lambda p=xml: _open_file(p)),  # type: ignore[misc]
                _file_split(xml.name),
                _folder_image(xml.parent, str(xml), names),
                names,
            )
        )
    return out


#: what reading a broken or unsupported zip member raises
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)


def _check_members(archive: zipfile.ZipFile, path: Path) -> list[str]:
    """The member names, after checking every member's declared sizes and name up front.

    Refused: more members than ``zip_members``; a member whose name leads outside the archive
    (absolute, drive letter, ``..``), whose expanded size is over ``zip_member_bytes`` or whose
    expansion ratio is over ``zip_ratio``; expanded sizes summing past ``zip_total_bytes``.
    (zipfile never expands a member past its declared size: it stops there and checks the CRC.)
    """
    infos = archive.infolist()
    limits.check("zip_members", len(infos), file=path, what="the member count")
    total = 0
    for info in infos:
        place = f"zip entry {info.filename!r}"
        if not _safe_relative(info.filename):
            raise FormatError(
                "the entry leads outside the archive's folder (absolute path or '..')", path, place
            )
        size = info.file_size
        limits.check("zip_member_bytes", size, file=path, place=place, what="the expanded size")
        if size > 0:
            ratio = size / max(info.compress_size, 1)
            limits.check("zip_ratio", ratio, file=path, place=place, what="the expansion ratio")
        total += size
    limits.check("zip_total_bytes", total, file=path, what="the expanded size of all members")
    return [info.filename for info in infos]


def _zip_sources(path: Path, stack: ExitStack) -> list[_Source]:
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FormatError(f"not a readable zip archive ({exc})", path) from None
    members = _check_members(archive, path)
    member_set = set(members)
    top_xml = sorted(m for m in members if "/" not in m.strip("/") and m.endswith(".xml"))
    xmls = ["annotations.xml"] if "annotations.xml" in member_set else top_xml
    if not xmls:
        raise FormatError("no annotations.xml (nor any top-level .xml) in the archive", path)

    def read(member: str) -> bytes:
        try:
            return archive.read(member)
        except _ZIP_ERRORS as exc:
            raise FormatError(
                f"cannot be read from the archive ({exc})", f"{path}!{member}"
            ) from None

    def open_member(member: str) -> IO[bytes]:
        try:
            return archive.open(member)
        except _ZIP_ERRORS as exc:
            raise FormatError(
                f"cannot be read from the archive ({exc})", f"{path}!{member}"
            ) from None

    def find(name: str, subset: str, place: str) -> tuple[Path | None, bytes | None]:
        if not _safe_relative(name):
            raise FormatError(f"image name {name!r} leads outside the archive", path, place)
        cands = _candidates(name, subset)
        for c in cands:
            if c in member_set:
                return None, read(c)
        return path / cands[-2 if len(cands) > 1 else 0], None

    def names() -> list[str]:
        return sorted(m[len("images/") :] for m in members if m.startswith("images/"))

    return [
        _Source(
            f"{path}!{m}",
            (lambda m=m: open_member(m)),  # type: ignore[misc]
            _file_split(m),
            find,
            names,
        )
        for m in xmls
    ]


def _sources(src: Path, stack: ExitStack) -> list[_Source]:
    if src.is_dir():
        main = src / "annotations.xml"
        if main.is_file():
            return _folder_sources(src, within(src, [main]))
        if main.exists():
            raise FormatError("is not a regular file, expected CVAT's annotations.xml", main)
        xmls = sorted(p for p in src.glob("*.xml") if p.is_file())
        if not xmls:
            raise FormatError("no annotations.xml (nor any .xml file) in the folder", src)
        return _folder_sources(src, within(src, xmls))
    if src.is_file() and src.suffix.lower() == ".zip":
        return _zip_sources(src, stack)
    if src.is_file():
        return _folder_sources(src.parent, [src])
    raise FormatError("no such file or folder (expected a folder, a .zip or an .xml)", src)


# --------------------------------------------------------------------------- the reader


@dataclass
class _Meta:
    subset: str = ""
    size: int | None = None
    width: int | None = None
    height: int | None = None
    labels: set[str] = field(default_factory=set)


def _whole(text: str) -> int | None:
    """``text`` as a whole number when it is one in ASCII digits (``"²"`` is not), else None."""
    stripped = text.strip()
    return int(stripped) if stripped.isascii() and stripped.isdigit() else None


def _read_meta(node: Node, file: str) -> _Meta:
    meta = _Meta()
    task = node.find("task") or node.find("project")
    if task is None:
        return meta
    meta.subset = task.findtext("subset")
    meta.size = _whole(task.findtext("size"))
    if meta.size is not None:
        limits.check("video_frames", meta.size, file=file, place=task.place, what="<size>")
    w = _whole(task.findtext("original_size/width"))
    h = _whole(task.findtext("original_size/height"))
    if w is not None and h is not None:
        images.check_size(w, h, file=file, place=task.place, what="<original_size>")
        meta.width, meta.height = w, h
    labels = task.find("labels")
    if labels is not None:
        meta.labels = {lab.findtext("name") for lab in labels.findall("label")}
    return meta


def _image(
    node: Node, source: _Source, meta: _Meta, annotator: str, options: ReadOptions
) -> ImageAnnotation:
    file = source.name
    name = node.get("name")
    if not name:
        raise FormatError("an <image> needs a name", file, node.place)
    if "\0" in name:
        raise FormatError(f"image name {name!r} holds a NUL character", file, node.place)
    width, height = _int(node, "width", file), _int(node, "height", file)
    if width <= 0 or height <= 0:
        raise FormatError(f"image size {width} x {height} is not positive", file, node.place)
    images.check_size(width, height, file=file, place=node.place)
    subset = node.get("subset") or ""
    split = normalise_split(subset) if subset else source.split or normalise_split(meta.subset)
    image_path, image_data = source.image(name, subset, node.place)
    record = ImageAnnotation(
        key=image_key(name, subset),
        width=width,
        height=height,
        image_path=image_path,
        image_data=image_data,
        source=file,
        annotator=annotator,
        split=split,
    )
    order = 0
    for child in node.children:
        if child.tag in SKIPPED_TAGS:
            options.warn(f"{file}: {child.place}: <{child.tag}> is not read (no area); skipped")
            continue
        if child.tag not in SHAPE_TAGS and child.tag != "tag":
            continue
        label = child.get("label") or ""
        if not label.strip():
            options.warn(f'{file}: {child.place}: label="" (no concept to carry); skipped')
            continue
        if child.tag == "tag":
            record.tags.append(label)
            continue
        if (child.get("outside") or "0").strip() == "1":
            continue
        geometry = _geometry(child, file)
        z = _int(child, "z_order", file, "0")
        record.shapes.append(_shape(child, geometry, order, file, z))
        order += 1
    return record


@dataclass
class _Key:
    """One listed frame of a track."""

    frame: int
    outside: bool
    node: Node
    geometry: _Geometry


@dataclass
class _Track:
    node: Node
    keys: list[_Key]


def _read_track(node: Node, file: str) -> _Track:
    if not (node.get("label") or "").strip():
        raise FormatError('label="" on a track', file, node.place)
    keys = []
    for child in node.children:
        if child.tag not in SHAPE_TAGS:
            continue
        frame = _int(child, "frame", file)
        if frame < 0:
            raise FormatError(f"frame {frame} is negative", file, child.place)
        limits.check("video_frames", frame + 1, file=file, place=child.place, what="frame")
        keys.append(
            _Key(
                frame,
                (child.get("outside") or "0").strip() == "1",
                child,
                _geometry(child, file),
            )
        )
    keys.sort(key=lambda k: k.frame)
    return _Track(node, keys)


def _track_geometry(track: _Track, frame: int) -> tuple[_Key, _Geometry] | None:
    """The track's shape at ``frame`` (interpolated between listed frames), or None."""
    frames = [k.frame for k in track.keys]
    i = bisect.bisect_right(frames, frame) - 1
    if i < 0:
        return None
    key = track.keys[i]
    if key.outside:
        return None
    if key.frame == frame or i + 1 == len(track.keys):
        return key, key.geometry
    nxt = track.keys[i + 1]
    a, b = key.geometry, nxt.geometry
    if nxt.outside or a.kind != b.kind or a.kind == "mask" or a.points.shape != b.points.shape:
        return key, a
    t = (frame - key.frame) / (nxt.frame - key.frame)
    return key, _Geometry(
        a.kind,
        a.points + t * (b.points - a.points),
        angle=a.angle + t * (b.angle - a.angle),
    )


def _frames(
    tracks: list[_Track], source: _Source, meta: _Meta, annotator: str, options: ReadOptions
) -> Iterator[ImageAnnotation]:
    """Per-frame records of a "CVAT for video 1.1" export."""
    file = source.name
    if meta.width is None or meta.height is None:
        raise FormatError("a video export needs meta/task/original_size", file, "<meta>")
    last = max((k.frame for t in tracks for k in t.keys), default=-1)
    count = meta.size if meta.size is not None else last + 1  # both within video_frames
    stems = {PurePosixPath(n).stem: n for n in source.image_names()}
    for frame in range(count):
        stem = f"frame_{frame:06d}"
        name = stems.get(stem, f"{stem}.png")
        image_path, image_data = source.image(name, "", f"frame {frame}")
        record = ImageAnnotation(
            key=PurePosixPath(name).name,
            width=meta.width,
            height=meta.height,
            image_path=image_path,
            image_data=image_data,
            source=file,
            annotator=annotator,
            split=source.split or normalise_split(meta.subset),
        )
        for order, track in enumerate(tracks):
            found = _track_geometry(track, frame)
            if found is None:
                continue
            key, geometry = found
            shape = _shape(key.node, geometry, order, file, _int(key.node, "z_order", file, "0"))
            shape.label = track.node.get("label") or ""
            shape.instance = f"track{track.node.get('id', str(order))}"
            shape.place = f"{track.node.place}, frame {frame}"
            record.shapes.append(shape)
        yield record


def _read_source(
    source: _Source, annotator: str, options: ReadOptions
) -> Iterator[ImageAnnotation]:
    meta = _Meta()
    tracks: list[_Track] = []
    with source.open() as stream:
        for node in iter_elements(stream, source.name, depth=1, root_tag="annotations"):
            if node.tag == "meta":
                meta = _read_meta(node, source.name)
            elif node.tag == "image":
                try:
                    record = _image(node, source, meta, annotator, options)
                except FormatError as exc:
                    if not options.keep_going:
                        raise
                    options.warn(f"{exc}; image skipped")
                    continue
                yield record
            elif node.tag == "track":
                try:
                    tracks.append(_read_track(node, source.name))
                except FormatError as exc:
                    if not options.keep_going:
                        raise
                    options.warn(f"{exc}; track skipped")
    if tracks:
        yield from _frames(tracks, source, meta, annotator, options)


def read(src: Path, options: ReadOptions) -> Iterator[ImageAnnotation]:
    """Yield one ImageAnnotation per image (or video frame) of the CVAT export at ``src``."""
    src = Path(src)
    annotator = src.stem if src.is_file() and src.suffix.lower() == ".zip" else src.name
    if src.is_file() and src.suffix.lower() != ".zip":
        annotator = src.parent.name
    with ExitStack() as stack:
        for source in _sources(src, stack):
            yield from _read_source(source, annotator, options)
