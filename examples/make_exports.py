"""Write the example dataset's tool exports from its hand-written annotations.

The single source of truth is ``examples/data/source/annotations.py`` (polygons and image tags
per image, in the pixel frame of the JPEGs in ``examples/data/source/images/``). This script
writes, each in the real format of its tool:

- ``labelme/``: LabelMe 5.x JSON per image (``imagePath`` relative, ``imageData`` null,
  polygons, ``group_id`` joining the polygons of one object, image ``flags`` for the tags),
  the JPEGs beside them;
- ``labelme_annotator2/``: the second annotator's LabelMe export of half of the images;
- ``cvat/``: a "CVAT for images 1.1" task export, ``annotations.xml`` plus ``images/``
  (polygons with ``z_order`` and ``group_id``, ``<tag>`` for the image tags);
- ``coco/``: COCO instances, ``annotations/instances_default.json`` plus ``images/``
  (polygon segmentation, bbox, area from pycocotools, iscrowd 0; image tags have no place in
  COCO instances and are left out);
- ``concepts.csv``: the concept vocabulary (name -> Broden category: object, part, material,
  scene, texture) for ``conceptkit convert --concepts``.

The output is deterministic: rerunning gives byte-identical files (tests/test_examples.py
checks it against the committed exports).

Usage::

    python examples/make_exports.py                # rewrite the exports in examples/data/
    python examples/make_exports.py --out /tmp/ex  # write them elsewhere
    python examples/make_exports.py --images       # re-create source/images from the packages
"""

from __future__ import annotations

import argparse
import json
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SOURCE = DATA / "source"
IMAGES = SOURCE / "images"

#: Folders this script writes under the output folder.
EXPORTS = ("labelme", "labelme_annotator2", "cvat", "coco")

#: The concept vocabulary written beside them (``conceptkit convert --concepts``).
VOCABULARY = "concepts.csv"

#: The LabelMe release whose file layout the JSON follows (keys and their order as 5.x writes).
LABELME_VERSION = "5.4.1"

#: Fixed times so that the exports are byte-identical on every run.
CREATED = "2026-11-25 12:00:00.000000+00:00"
DUMPED = "2026-11-25 12:30:00.000000+00:00"

#: CVAT label colours, assigned in label order.
PALETTE = (
    "#fa3253",
    "#33ddff",
    "#34d1b7",
    "#ff007c",
    "#ddff33",
    "#24b353",
    "#b83df5",
    "#66ff66",
    "#32b7fa",
    "#ffcc33",
    "#83e070",
    "#fafa37",
    "#5986b3",
    "#8c78f0",
    "#ff6a4d",
    "#f078f0",
    "#2a7dd1",
    "#b25050",
    "#cc3366",
    "#cc9933",
    "#aaf0d1",
    "#ff00cc",
    "#3df53d",
    "#fa32b7",
    "#3d3df5",
    "#733380",
    "#ff355e",
    "#b2ebf2",
    "#ffb6c1",
    "#fa7dbb",
    "#b8860b",
    "#0047ab",
    "#6b8e23",
    "#f0e68c",
    "#cd5c5c",
    "#708090",
    "#d2691e",
    "#9acd32",
    "#ff8c00",
    "#4682b4",
)

Point = tuple[float, float]
Shape = tuple[str, "int | None", list[Point]]
Annotations = dict[str, dict[str, Any]]


def load_source(path: Path = SOURCE / "annotations.py") -> dict[str, Any]:
    """The hand-written annotation module as a dict (ANNOTATOR_1, ANNOTATOR_2, CATEGORIES...)."""
    return runpy.run_path(str(path))


def image_size(name: str) -> tuple[int, int]:
    """``(width, height)`` of a shipped image."""
    from PIL import Image

    with Image.open(IMAGES / name) as im:
        return im.size


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _json_text(data: object) -> str:
    """JSON the way labelme writes it: ``json.dump(..., ensure_ascii=False, indent=2)``."""
    return json.dumps(data, ensure_ascii=False, indent=2)


def labelme_document(name: str, entry: dict[str, Any], flag_names: list[str]) -> dict[str, Any]:
    """One LabelMe 5.x file: shapes in document order, every image flag listed (true or false)."""
    width, height = image_size(name)
    shapes = [
        {
            "label": label,
            "points": [[float(x), float(y)] for x, y in points],
            "group_id": group,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
            "mask": None,
        }
        for label, group, points in entry["shapes"]
    ]
    return {
        "version": LABELME_VERSION,
        "flags": {flag: flag in entry["tags"] for flag in flag_names},
        "shapes": shapes,
        "imagePath": name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_labelme(out: Path, annotations: Annotations, flag_names: list[str]) -> None:
    """A LabelMe folder: ``<stem>.json`` beside ``<name>`` for every image."""
    out.mkdir(parents=True, exist_ok=True)
    for name in sorted(annotations):
        doc = labelme_document(name, annotations[name], flag_names)
        (out / f"{_stem(name)}.json").write_text(_json_text(doc), encoding="utf-8")
        shutil.copyfile(IMAGES / name, out / name)


def _labels_in_order(annotations: Annotations, categories: dict[str, str]) -> list[str]:
    """Labels used by ``annotations`` (shapes and tags), in the order of ``categories``."""
    used = {label for entry in annotations.values() for label, _, _ in entry["shapes"]}
    used |= {tag for entry in annotations.values() for tag in entry["tags"]}
    return [name for name in categories if name in used]


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def cvat_xml(annotations: Annotations, categories: dict[str, str]) -> str:
    """The ``annotations.xml`` of a CVAT for images 1.1 task export."""
    names = sorted(annotations)
    tag_labels = {tag for entry in annotations.values() for tag in entry["tags"]}
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<annotations>",
        "  <version>1.1</version>",
        "  <meta>",
        "    <task>",
        "      <id>7</id>",
        "      <name>conceptkit example</name>",
        f"      <size>{len(names)}</size>",
        "      <mode>annotation</mode>",
        "      <overlap>0</overlap>",
        "      <bugtracker></bugtracker>",
        f"      <created>{CREATED}</created>",
        f"      <updated>{DUMPED}</updated>",
        "      <subset>default</subset>",
        "      <start_frame>0</start_frame>",
        f"      <stop_frame>{len(names) - 1}</stop_frame>",
        "      <frame_filter></frame_filter>",
        "      <segments>",
        "        <segment>",
        "          <id>9</id>",
        "          <start>0</start>",
        f"          <stop>{len(names) - 1}</stop>",
        "          <url>http://localhost:8080/api/jobs/9</url>",
        "        </segment>",
        "      </segments>",
        "      <owner>",
        "        <username>annotator1</username>",
        "        <email></email>",
        "      </owner>",
        "      <assignee></assignee>",
        "      <labels>",
    ]
    for i, label in enumerate(_labels_in_order(annotations, categories)):
        kind = "tag" if label in tag_labels else "polygon"
        lines += [
            "        <label>",
            f"          <name>{escape(label)}</name>",
            f"          <color>{PALETTE[i % len(PALETTE)]}</color>",
            f"          <type>{kind}</type>",
            "          <attributes>",
            "          </attributes>",
            "        </label>",
        ]
    lines += ["      </labels>", "    </task>", f"    <dumped>{DUMPED}</dumped>", "  </meta>"]
    for image_id, name in enumerate(names):
        entry = annotations[name]
        width, height = image_size(name)
        lines.append(
            f'  <image id="{image_id}" name={quoteattr(name)} width="{width}" height="{height}">'
        )
        for z, (label, group, points) in enumerate(entry["shapes"]):
            pts = ";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
            group_attr = f' group_id="{group}"' if group is not None else ""
            lines.append(
                f'    <polygon label={quoteattr(label)} source="manual" occluded="0" '
                f'points="{pts}" z_order="{z}"{group_attr}>'
            )
            lines.append("    </polygon>")
        for tag in entry["tags"]:
            lines.append(f'    <tag label={quoteattr(tag)} source="manual">')
            lines.append("    </tag>")
        lines.append("  </image>")
    lines.append("</annotations>")
    return "\n".join(lines) + "\n"


def write_cvat(out: Path, annotations: Annotations, categories: dict[str, str]) -> None:
    """A CVAT for images 1.1 task export: ``annotations.xml`` and ``images/``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations.xml").write_text(cvat_xml(annotations, categories), encoding="utf-8")
    for name in sorted(annotations):
        shutil.copyfile(IMAGES / name, out / "images" / name)


def _polygon_groups(shapes: list[Shape]) -> list[tuple[str, list[list[Point]]]]:
    """Shapes joined by group: one ``(label, [polygon, ...])`` per object, in document order."""
    objects: list[tuple[str, list[list[Point]]]] = []
    index: dict[tuple[str, int], int] = {}
    for label, group, points in shapes:
        if group is not None and (label, group) in index:
            objects[index[(label, group)]][1].append(points)
            continue
        if group is not None:
            index[(label, group)] = len(objects)
        objects.append((label, [points]))
    return objects


def coco_document(annotations: Annotations, categories: dict[str, str]) -> dict[str, Any]:
    """COCO instances: polygons only; area from pycocotools, bbox from the vertices."""
    from pycocotools import mask as mask_utils

    shape_labels = [
        name
        for name in _labels_in_order(annotations, categories)
        if any(name == s[0] for entry in annotations.values() for s in entry["shapes"])
    ]
    cat_id = {name: i + 1 for i, name in enumerate(shape_labels)}
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for image_id, name in enumerate(sorted(annotations), start=1):
        width, height = image_size(name)
        images.append(
            {
                "id": image_id,
                "width": width,
                "height": height,
                "file_name": name,
                "license": 0,
                "flickr_url": "",
                "coco_url": "",
                "date_captured": 0,
            }
        )
        for label, polygons in _polygon_groups(annotations[name]["shapes"]):
            segmentation = [[float(v) for x, y in poly for v in (x, y)] for poly in polygons]
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            xs = [x for poly in polygons for x, _ in poly]
            ys = [y for poly in polygons for _, y in poly]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat_id[label],
                    "segmentation": segmentation,
                    "area": float(mask_utils.area(rle)),
                    "bbox": [
                        float(min(xs)),
                        float(min(ys)),
                        float(max(xs) - min(xs)),
                        float(max(ys) - min(ys)),
                    ],
                    "iscrowd": 0,
                    "attributes": {"occluded": False},
                }
            )
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {
            "contributor": "conceptkit",
            "date_created": "2026-11-25",
            "description": "conceptkit example dataset (see examples/README.md)",
            "url": "",
            "version": "1.0",
            "year": "2026",
        },
        "categories": [
            {"id": cat_id[name], "name": name, "supercategory": categories[name]}
            for name in shape_labels
        ],
        "images": images,
        "annotations": anns,
    }


def write_coco(out: Path, annotations: Annotations, categories: dict[str, str]) -> None:
    """A COCO export: ``annotations/instances_default.json`` and ``images/``."""
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    doc = coco_document(annotations, categories)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    (out / "annotations" / "instances_default.json").write_text(text, encoding="utf-8")
    for name in sorted(annotations):
        shutil.copyfile(IMAGES / name, out / "images" / name)


def vocabulary_csv(categories: dict[str, str]) -> str:
    """The concept vocabulary (``name,category,synonyms``) in the order of ``categories``.

    No synonyms on purpose: ``mug`` and ``cup`` stay apart, so the naming disagreement between
    the annotators shows in the consistency analysis.
    """
    rows = ["name,category,synonyms"] + [f"{name},{cat}," for name, cat in categories.items()]
    return "\n".join(rows) + "\n"


def write_exports(out: Path) -> None:
    """Write every export folder under ``out`` (existing export folders are replaced)."""
    src = load_source()
    first: Annotations = src["ANNOTATOR_1"]
    second: Annotations = src["ANNOTATOR_2"]
    categories: dict[str, str] = src["CATEGORIES"]
    flag_names = [name for name in categories if categories[name] in ("scene", "texture")]
    for folder in EXPORTS:
        if (out / folder).exists():
            shutil.rmtree(out / folder)
    write_labelme(out / "labelme", first, flag_names)
    write_labelme(out / "labelme_annotator2", second, flag_names)
    write_cvat(out / "cvat", first, categories)
    write_coco(out / "coco", first, categories)
    (out / VOCABULARY).write_text(vocabulary_csv(categories), encoding="utf-8")


def make_images(out: Path = IMAGES, max_side: int = 512, quality: int = 90) -> None:
    """Re-create the shipped JPEGs from the packages that distribute the photographs.

    Resized (Lanczos) so the longer side is at most ``max_side``, saved as RGB JPEG. The bytes
    depend on the Pillow/libjpeg build, so the committed images are the reference; after a
    re-creation the annotations still fit (same sizes), only pixel noise differs.
    """
    import matplotlib.cbook as cbook
    import numpy as np
    import skimage.data as skdata
    from PIL import Image
    from sklearn.datasets import load_sample_images

    arrays: dict[str, Any] = {
        name: getattr(skdata, name)()
        for name in ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass")
        + ("gravel", "rocket")
    }
    samples = load_sample_images()
    arrays["china"], arrays["flower"] = samples.images
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        arrays["grace_hopper"] = np.asarray(im.convert("RGB"))
    out.mkdir(parents=True, exist_ok=True)
    for name, array in sorted(arrays.items()):
        image = Image.fromarray(array).convert("RGB")
        w, h = image.size
        scale = max_side / max(w, h)
        if scale < 1:
            image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        image.save(out / f"{name}.jpg", quality=quality)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA, help="folder to write the exports in")
    parser.add_argument(
        "--images", action="store_true", help="re-create source/images from the packages first"
    )
    args = parser.parse_args(argv)
    if args.images:
        make_images()
    write_exports(args.out)
    print(f"wrote {', '.join(EXPORTS)} under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
