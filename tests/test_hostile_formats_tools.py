"""Hostile exports of the annotation tools through `conceptkit convert FORMAT SRC -o OUT`.

Five or more cases per reader (Label Studio, VIA, VoTT, Labelbox, SageMaker, Vertex AI, Azure
ML): malformed JSON, numbers that are not numbers, an image that is a symbolic link leading
outside SRC, absurd declared sizes (in the JSON or in a PNG header), values of the wrong type.
Each runs under :func:`hostile.run_hostile`: exit 1, one error line naming the file and the
place, no traceback, nothing left behind.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile import run_hostile
from PIL import Image


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` (its pixels are never there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def image(path: Path, size: tuple[int, int] = (20, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)


def outside_link(src: Path, name: str) -> None:
    """``src/name`` -> an image outside SRC."""
    target = src.parent.parent / "secret.png"
    image(target)
    (src / name).symlink_to(target)


Builder = Callable[[Path], tuple[str, Path, list[str]]]

# ----------------------------------------------------------------------------- Label Studio


def _ls(src: Path, value: Any = None, **result: Any) -> tuple[str, Path, list[str]]:
    value = (
        value
        if value is not None
        else {"points": [[0, 0], [50, 0], [0, 50]], "polygonlabels": ["a"]}
    )
    res = {"id": "r", "value": value, "original_width": 20, "original_height": 10, **result}
    (src / "export.json").write_text(
        json.dumps([{"data": {"image": "/up/a.png"}, "annotations": [{"result": [res]}]}])
    )
    return "labelstudio", src, ["export.json"]


def ls_malformed(src: Path) -> tuple[str, Path, list[str]]:
    (src / "export.json").write_text('[{"data": {"image": "a.png"}, "annotations": [')
    return "labelstudio", src, ["export.json", "line 1"]


def ls_bad_number(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _ls(src, {"points": [[0, "1"], [50, 0], [0, 50]], "polygonlabels": ["a"]})
    return fmt, path, [*names, "$[0].annotations[0].result[0].value.points[0]"]


def ls_outside(src: Path) -> tuple[str, Path, list[str]]:
    outside_link(src, "a.png")
    (src / "export.json").write_text(
        json.dumps(
            [
                {
                    "data": {"image": "a.png"},
                    "annotations": [
                        {
                            "result": [
                                {
                                    "id": "b",
                                    "value": {"format": "rle", "rle": [0], "brushlabels": ["x"]},
                                }
                            ]
                        }
                    ],
                }
            ]
        )
    )
    return "labelstudio", src, ["export.json", "$[0].data", "symbolic link"]


def ls_absurd_size(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _ls(src, original_width=10**9)
    return fmt, path, [*names, "$[0].annotations[0].result", "limit"]


def ls_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    (src / "export.json").write_text(
        json.dumps([{"data": {"image": "a.png"}, "annotations": [{"result": "polygon"}]}])
    )
    return "labelstudio", src, ["export.json", "$[0].annotations[0].result", "expected a list"]


def ls_rle_count(src: Path) -> tuple[str, Path, list[str]]:
    rle = list((0xFFFFFFFF).to_bytes(4, "big")) + [0] * 4
    fmt, path, names = _ls(src, {"format": "rle", "rle": rle, "brushlabels": ["x"]})
    return fmt, path, [*names, "value.rle", "4,294,967,295 values"]


# ----------------------------------------------------------------------------- VIA


def _via(src: Path, shape: Any, regions: Any = None) -> tuple[str, Path, list[str]]:
    regs = (
        regions
        if regions is not None
        else [{"shape_attributes": shape, "region_attributes": {"label": "a"}}]
    )
    (src / "via.json").write_text(
        json.dumps({"a.png1": {"filename": "a.png", "size": 1, "regions": regs}})
    )
    return "via", src, ["via.json"]


def via_malformed(src: Path) -> tuple[str, Path, list[str]]:
    (src / "via.json").write_text('{"a.png1": {"filename": "a.png", "regions": [NaN]}}')
    return "via", src, ["via.json", "line 1", "NaN"]


def via_bad_number(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _via(src, {"name": "circle", "cx": "1", "cy": 2, "r": 3})
    return fmt, path, [*names, "regions[0].shape_attributes.cx"]


def via_outside(src: Path) -> tuple[str, Path, list[str]]:
    outside_link(src, "a.png")
    fmt, path, names = _via(src, {"name": "circle", "cx": 1, "cy": 2, "r": 3})
    return fmt, path, [*names, "filename", "symbolic link"]


def via_absurd_size(src: Path) -> tuple[str, Path, list[str]]:
    (src / "a.png").write_bytes(png_header(100_000, 100_000))
    fmt, path, names = _via(src, {"name": "circle", "cx": 1, "cy": 2, "r": 3})
    return fmt, path, [*names, "filename", "limit"]


def via_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _via(src, None, regions="polygon")
    return fmt, path, [*names, ".regions", "expected a list"]


def via_huge_coordinate(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _via(
        src, {"name": "polygon", "all_points_x": [0, 1e300, 3], "all_points_y": [0, 1, 2]}
    )
    return fmt, path, [*names, "regions[0].shape_attributes", "limit"]


# ----------------------------------------------------------------------------- VoTT


def _vott(src: Path, size: Any = None, regions: Any = None) -> tuple[str, Path, list[str]]:
    asset = {"name": "a.png", "path": "file:/x/a.png", "size": size or {"width": 20, "height": 10}}
    regs = (
        regions
        if regions is not None
        else [
            {
                "id": "r",
                "type": "RECTANGLE",
                "tags": ["a"],
                "boundingBox": {"left": 0, "top": 0, "width": 5, "height": 5},
            }
        ]
    )
    (src / "abc-asset.json").write_text(json.dumps({"asset": asset, "regions": regs}))
    return "vott", src, ["abc-asset.json"]


def vott_malformed(src: Path) -> tuple[str, Path, list[str]]:
    (src / "abc-asset.json").write_bytes(b"\xff\xfe\x00garbage")
    return "vott", src, ["abc-asset.json"]


def vott_bad_number(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _vott(src, {"width": "20", "height": 10})
    return fmt, path, [*names, "$.asset.size.width"]


def vott_outside(src: Path) -> tuple[str, Path, list[str]]:
    outside_link(src, "a.png")
    fmt, path, names = _vott(src)
    return fmt, path, [*names, "$.asset.name", "symbolic link"]


def vott_absurd_size(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _vott(src, {"width": 10**7, "height": 10**7})
    return fmt, path, [*names, "$.asset.size", "limit"]


def vott_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _vott(
        src, regions=[{"id": "r", "type": "POLYGON", "tags": ["a"], "points": [1, 2, 3]}]
    )
    return fmt, path, [*names, "$.regions[0].points[0]", "expected an object"]


# ----------------------------------------------------------------------------- Labelbox


def _lb(src: Path, objects: Any) -> tuple[str, Path, list[str]]:
    (src / "export.json").write_text(
        json.dumps([{"External ID": "a.png", "Label": {"objects": objects}}])
    )
    return "labelbox", src, ["export.json"]


def lb_malformed(src: Path) -> tuple[str, Path, list[str]]:
    (src / "export.json").write_text("[" * 100_000)
    return "labelbox", src, ["export.json"]


def lb_bad_number(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _lb(
        src, [{"title": "a", "bbox": {"top": True, "left": 0, "height": 1, "width": 1}}]
    )
    return fmt, path, [*names, "$[0].Label.objects[0].bbox.top"]


def lb_outside(src: Path) -> tuple[str, Path, list[str]]:
    outside_link(src, "a.png")
    fmt, path, names = _lb(src, [])
    return fmt, path, [*names, "External ID", "symbolic link"]


def lb_absurd_mask(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    (src / "bitmasks").mkdir()
    (src / "bitmasks" / "f1.png").write_bytes(png_header(70_000, 70_000))
    fmt, path, names = _lb(src, [{"title": "a", "featureId": "f1", "instanceURI": "https://x"}])
    return fmt, path, [*names, "$[0].Label.objects[0]", "limit"]


def lb_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _lb(src, {"title": "a"})
    return fmt, path, [*names, "$[0].Label.objects", "expected a list"]


# ----------------------------------------------------------------------------- SageMaker


def _sm(src: Path, line: Any) -> tuple[str, Path, list[str]]:
    (src / "output.manifest").write_text(json.dumps(line) + "\n")
    return "sagemaker", src, ["output.manifest", "line 1"]


def _semantic(colour: str = "#2ca02c") -> dict[str, Any]:
    cmap = {
        "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
        "1": {"class-name": "cat", "hex-color": colour},
    }
    meta = {"internal-color-map": cmap, "type": "groundtruth/semantic-segmentation"}
    return {
        "source-ref": "s3://b/a.png",
        "job-ref": "s3://b/m/a_mask.png",
        "job-ref-metadata": meta,
    }


def sm_malformed(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    (src / "output.manifest").write_text('{"source-ref": "s3://b/a.png"}\n{"source-ref": \n')
    return "sagemaker", src, ["output.manifest", "line 2"]


def sm_bad_colour(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _sm(src, _semantic("#2ca0zz"))
    return fmt, path, [*names, "internal-color-map"]


def sm_outside(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    outside_link(src, "a_mask.png")
    fmt, path, names = _sm(src, _semantic())
    return fmt, path, [*names, "job-ref", "symbolic link"]


def sm_absurd_mask(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    (src / "a_mask.png").write_bytes(png_header(65_536, 2))
    fmt, path, names = _sm(src, _semantic())
    return fmt, path, [*names, "job-ref", "limit"]


def sm_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _sm(src, {"source-ref": 17})
    return fmt, path, [*names, "source-ref", "expected a string"]


def sm_bad_box(src: Path) -> tuple[str, Path, list[str]]:
    body = {
        "image_size": [{"width": 20, "height": 10}],
        "annotations": [{"class_id": 0, "left": "1", "top": 0, "width": 1, "height": 1}],
    }
    meta = {"class-map": {"0": "cat"}, "type": "groundtruth/object-detection"}
    fmt, path, names = _sm(src, {"source-ref": "s3://b/a.png", "od": body, "od-metadata": meta})
    return fmt, path, [*names, "annotations[0].left"]


# ----------------------------------------------------------------------------- Vertex AI


def _vx(src: Path, line: Any) -> tuple[str, Path, list[str]]:
    (src / "data.jsonl").write_text(json.dumps(line) + "\n")
    return "vertex", src, ["data.jsonl", "line 1"]


def vx_malformed(src: Path) -> tuple[str, Path, list[str]]:
    (src / "data.jsonl").write_text('{"imageGcsUri": "gs://a/a.png", "x": Infinity}\n')
    return "vertex", src, ["data.jsonl", "line 1", "Infinity"]


def vx_bad_colour(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    Image.new("RGB", (20, 10)).save(src / "m.png")
    ann = {
        "maskGcsUri": "gs://a/m.png",
        "annotationSpecColors": [{"displayName": "x", "color": {"red": 255}}],
    }
    fmt, path, names = _vx(src, {"imageGcsUri": "gs://a/a.png", "maskAnnotation": ann})
    return fmt, path, [*names, "maskAnnotation.annotationSpecColors[0].color.red", "0-1"]


def vx_outside(src: Path) -> tuple[str, Path, list[str]]:
    outside_link(src, "a.png")
    fmt, path, names = _vx(src, {"imageGcsUri": "gs://a/a.png"})
    return fmt, path, [*names, "imageGcsUri", "symbolic link"]


def vx_absurd_size(src: Path) -> tuple[str, Path, list[str]]:
    (src / "a.png").write_bytes(png_header(2, 100_000))
    fmt, path, names = _vx(src, {"imageGcsUri": "gs://a/a.png"})
    return fmt, path, [*names, "imageGcsUri", "limit"]


def vx_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    image(src / "a.png")
    fmt, path, names = _vx(
        src,
        {
            "imageGcsUri": "gs://a/a.png",
            "polygonAnnotation": {"vertexes": "0,0", "displayName": "x"},
        },
    )
    return fmt, path, [*names, "polygonAnnotation.vertexes", "expected a list"]


# ----------------------------------------------------------------------------- Azure ML


def _az(src: Path, details: Any = None, label: Any = None) -> tuple[str, Path, list[str]]:
    line = {
        "image_url": "azureml://x/paths/a.png",
        "image_details": details or {"width": 20, "height": 10},
        "label": label or [],
    }
    (src / "train.jsonl").write_text(json.dumps(line) + "\n")
    return "azure", src, ["train.jsonl", "line 1"]


def az_malformed(src: Path) -> tuple[str, Path, list[str]]:
    (src / "train.jsonl").write_text('{"image_url": "a.png", "label": [}\n')
    return "azure", src, ["train.jsonl", "line 1"]


def az_bad_number(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _az(src, {"width": "400cm", "height": 10})
    return fmt, path, [*names, "image_details.width"]


def az_outside(src: Path) -> tuple[str, Path, list[str]]:
    outside_link(src, "a.png")
    fmt, path, names = _az(src)
    return fmt, path, [*names, "image_url", "symbolic link"]


def az_absurd_size(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _az(src, {"width": 10**9, "height": 10**9})
    return fmt, path, [*names, "image_details", "limit"]


def az_wrong_type(src: Path) -> tuple[str, Path, list[str]]:
    fmt, path, names = _az(src, label=[{"label": "a", "polygon": [["0", "0", "1", "0", "1", "1"]]}])
    return fmt, path, [*names, "label[0].polygon[0]", "expected a number"]


def az_coco_bad_id(src: Path) -> tuple[str, Path, list[str]]:
    coco = {
        "images": [{"id": "one", "file_name": "a.png", "width": 20, "height": 10}],
        "annotations": [],
        "categories": [],
    }
    (src / "coco.json").write_text(json.dumps(coco))
    return "azure", src, ["coco.json", "$.images[0]"]


CASES: dict[str, Builder] = {
    f.__name__: f
    for f in (
        ls_malformed,
        ls_bad_number,
        ls_outside,
        ls_absurd_size,
        ls_wrong_type,
        ls_rle_count,
        via_malformed,
        via_bad_number,
        via_outside,
        via_absurd_size,
        via_wrong_type,
        via_huge_coordinate,
        vott_malformed,
        vott_bad_number,
        vott_outside,
        vott_absurd_size,
        vott_wrong_type,
        lb_malformed,
        lb_bad_number,
        lb_outside,
        lb_absurd_mask,
        lb_wrong_type,
        sm_malformed,
        sm_bad_colour,
        sm_outside,
        sm_absurd_mask,
        sm_wrong_type,
        sm_bad_box,
        vx_malformed,
        vx_bad_colour,
        vx_outside,
        vx_absurd_size,
        vx_wrong_type,
        az_malformed,
        az_bad_number,
        az_outside,
        az_absurd_size,
        az_wrong_type,
        az_coco_bad_id,
    )
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_tool_export(name: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    src = ws / "src"
    src.mkdir(parents=True)
    fmt, path, names = CASES[name](src)
    run_hostile(["convert", fmt, path, "-o", ws / "out", "--min-images", "1"], ws, names=names)


def test_at_least_five_cases_per_reader() -> None:
    prefixes = [name.split("_")[0] for name in CASES]
    assert {p: prefixes.count(p) >= 5 for p in set(prefixes)} == dict.fromkeys(
        ("ls", "via", "vott", "lb", "sm", "vx", "az"), True
    )
