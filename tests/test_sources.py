"""conceptkit.sources: format detection, annotator names, the one image-grouping rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conceptkit.converters import ReadOptions
from PIL import Image

from conceptkit.annotations import ImageAnnotation
from conceptkit.errors import FormatError, UsageError
from conceptkit.sources import (
    Source,
    annotator_names,
    detect_format,
    first_in_source,
    group_by_image,
    parse_source,
    read_groups,
    resolve_sources,
)


def _labelme(folder: Path, names: list[str], label: str = "car") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (8, 6)).save(folder / name)
        doc = {
            "version": "5.4.1",
            "flags": {},
            "shapes": [{"label": label, "points": [[1, 1], [5, 4]], "shape_type": "rectangle"}],
            "imagePath": name,
            "imageData": None,
            "imageHeight": 6,
            "imageWidth": 8,
        }
        (folder / (Path(name).stem + ".json")).write_text(json.dumps(doc), encoding="utf-8")
    return folder


def test_parse_source() -> None:
    assert parse_source("cvat:exportB/") == ("cvat", Path("exportB/"))
    assert parse_source("COCO:a.json") == ("coco", Path("a.json"))
    assert parse_source("C:/data/x") == (None, Path("C:/data/x"))  # a drive, not a format


def test_detect_format(tmp_path: Path) -> None:
    lm = _labelme(tmp_path / "lm", ["a.jpg"])
    assert detect_format(lm) == "labelme"
    assert detect_format(lm / "a.json") == "labelme"
    cv = tmp_path / "cv"
    cv.mkdir()
    (cv / "annotations.xml").write_text("<annotations/>")
    assert detect_format(cv) == "cvat"
    assert detect_format(cv / "annotations.xml") == "cvat"
    (tmp_path / "t.zip").write_bytes(b"PK")
    assert detect_format(tmp_path / "t.zip") == "cvat"
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "instances.json").write_text('{"images": [], "annotations": []}')
    assert detect_format(coco) == "coco"
    assert detect_format(coco / "instances.json") == "coco"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="cannot tell the export format") as err:
        detect_format(tmp_path / "empty")
    assert "FORMAT:PATH" in str(err.value) and "empty" in str(err.value)
    with pytest.raises(UsageError, match="does not exist"):
        detect_format(tmp_path / "nothing")


def test_resolve_sources_formats(tmp_path: Path) -> None:
    lm = _labelme(tmp_path / "lm", ["a.jpg"])
    got = resolve_sources([str(lm), f"labelme-xml:{lm}"], ("auto",))
    assert [(s.fmt, s.path) for s in got] == [("labelme", lm), ("labelme-xml", lm)]
    assert [s.fmt for s in resolve_sources([str(lm), str(lm)], ("coco", "cvat"))] == [
        "coco",
        "cvat",
    ]
    with pytest.raises(UsageError, match="--format given 2 times for 3 sources"):
        resolve_sources(["a", "b", "c"], ("coco", "cvat"))


def test_annotator_names() -> None:
    a = Source("labelme", Path("x/alice"), "x/alice")
    b = Source("labelme", Path("y/alice"), "labelme:y/alice")
    c = Source("cvat", Path("task.zip"), "task.zip")
    assert annotator_names([a, c], [{"ann-a"}, {"", "t1", "t2"}]) == ["ann-a", "task.zip"]
    # two sources would both be 'alice': every source is named as typed
    assert annotator_names([a, b], [{"alice"}, {"alice"}]) == ["x/alice", "labelme:y/alice"]


def _ann(key: str, source: str = "s.json") -> ImageAnnotation:
    return ImageAnnotation(key=key, width=4, height=4, source=source)


def test_first_in_source_refuses_or_keeps_the_first() -> None:
    seen: set[str] = set()
    assert first_in_source(_ann("a.jpg"), seen, ReadOptions())
    with pytest.raises(FormatError, match="'a.jpg' is annotated twice in one export") as err:
        first_in_source(_ann("a.jpg", "t.json"), seen, ReadOptions())
    assert str(err.value).startswith("t.json: ") and "--keep-going" in str(err.value)
    warned: list[str] = []
    assert not first_in_source(_ann("a.jpg", "t.json"), seen, ReadOptions(True, warned.append))
    assert warned == ["t.json: image 'a.jpg' is annotated twice; the first is kept"]


def test_group_by_image() -> None:
    anns = [(0, _ann("a")), (0, _ann("b")), (1, _ann("a")), (1, _ann("c")), (1, _ann("a"))]
    warned: list[str] = []
    groups = group_by_image(
        anns, ["alice", "bob"], ReadOptions(True, warned.append), keep=lambda i, a: a.key != "c"
    )
    assert {k: [a.annotator for a in v] for k, v in groups.items()} == {
        "a": ["alice", "bob"],
        "b": ["alice"],
    }
    assert groups["a"][1] is anns[2][1]  # bob's first 'a', not his repeat
    assert len(warned) == 1


def test_read_groups_two_annotators(tmp_path: Path) -> None:
    alice = _labelme(tmp_path / "alice", ["a.jpg", "b.jpg"])
    bob = _labelme(tmp_path / "bob", ["b.jpg", "c.jpg"], label="auto")
    groups, names = read_groups([str(alice), str(bob)], (), ReadOptions())
    assert names == ["alice", "bob"]
    assert sorted(groups) == ["a.jpg", "b.jpg", "c.jpg"]
    assert [(a.annotator, a.shapes[0].label) for a in groups["b.jpg"]] == [
        ("alice", "car"),
        ("bob", "auto"),
    ]
