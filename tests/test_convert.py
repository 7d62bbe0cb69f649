"""`conceptkit convert`: the pipeline end to end, NetDissect-Lite's reading rules, bad input."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conceptkit import broden
from conceptkit.cli import main
from conceptkit.convert import ConvertOptions, convert
from conceptkit.errors import FormatError
from conceptkit.outdir import MARKER

LABELS = ["car", "tree", "road"]


def make_export(
    root: Path, n: int = 12, w: int = 64, h: int = 48, extra: dict[int, list[dict]] | None = None
) -> Path:
    """A LabelMe export of ``n`` images: a car, a tree, a road rectangle; image flag 'outdoor'."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"im{i:03d}.jpg", quality=95)
        shapes = [
            {"label": "road", "points": [[0, h * 0.6], [w - 1, h - 1]], "shape_type": "rectangle"},
            {
                "label": "Car",
                "points": [[5, 5], [30, 8], [28, 30], [6, 25]],
                "shape_type": "polygon",
            },
            {"label": "tree", "points": [[40, 10], [50, 10]], "shape_type": "circle"},
        ]
        shapes += (extra or {}).get(i, [])
        doc = {
            "version": "5.5.0",
            "flags": {"outdoor": True, "night": False},
            "shapes": shapes,
            "imagePath": f"im{i:03d}.jpg",
            "imageData": None,
            "imageHeight": h,
            "imageWidth": w,
        }
        (root / f"im{i:03d}.json").write_text(json.dumps(doc))
    return root


def run_cli(args: list[str]) -> int:
    try:
        main(["convert", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


# ----------------------------------------------------------------------------- a NetDissect-Lite reader


def netdissect_read(root: Path, img_size: int) -> dict[str, Any]:
    """Read a Broden folder by NetDissect-Lite's rules (loadseg.py), checking what it relies on.

    index cells: ';'-split, empty dropped, all digits = image label, else PNG under images/
    decoded as R + 256 * G; label.csv category field is cat(n)[;cat(m)]; every image is
    img_size x img_size; every plane is sh x sw.
    """
    with open(root / "category.csv") as fh:
        categories = [r["name"] for r in csv.DictReader(fh)]
    labels: dict[int, dict[str, int]] = {}
    with open(root / "label.csv") as fh:
        for r in csv.DictReader(fh):
            cats = {}
            for item in r["category"].split(";"):
                m = re.match(r"^(\w+)\((\d+)\)$", item)
                assert m, f"label.csv category {r['category']!r}"
                cats[m.group(1)] = int(m.group(2))
            labels[int(r["number"])] = cats
    for cat in categories:
        with open(root / f"c_{cat}.csv") as fh:
            codes = list(csv.DictReader(fh))
        assert [int(c["code"]) for c in codes] == list(range(1, len(codes) + 1))
        assert all(cat in labels[int(c["number"])] for c in codes)
    seen: dict[tuple[str, int], int] = {}
    with open(root / "index.csv") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        with Image.open(root / "images" / r["image"]) as im:
            assert im.size == (img_size, img_size) == (int(r["iw"]), int(r["ih"]))
        for cat in categories:
            found: set[int] = set()
            for item in [x for x in r[cat].split(";") if x]:
                if item.isdigit():
                    found.add(int(item))
                    continue
                rgb = np.asarray(Image.open(root / "images" / item).convert("RGB")).astype(int)
                assert rgb.shape[:2] == (int(r["sh"]), int(r["sw"]))
                plane = rgb[..., 0] + 256 * rgb[..., 1]
                found |= set(np.unique(plane).tolist()) - {0}
            for n in found:
                assert cat in labels[n], f"label {n} in column {cat} but not in label.csv"
                seen[(cat, n)] = seen.get((cat, n), 0) + 1
    for n, cats in labels.items():
        for cat, count in cats.items():
            assert seen.get((cat, n)) == count, f"label {n} {cat}: frequency {count}"
    return {"categories": categories, "labels": labels, "rows": rows}


def validate_errors(root: Path) -> list[str]:
    try:
        from conceptkit.validate import validate
    except ImportError:
        return []
    return [f"{f.code} {f.message}" for f in validate(root) if f.severity == "error"]


# ----------------------------------------------------------------------------- conversion


def test_convert_reads_as_netdissect_and_validates(tmp_path: Path) -> None:
    src = make_export(tmp_path / "exp")
    assert run_cli([str(src)]) == 2  # FORMAT missing -> usage error
    assert run_cli(["labelme", str(src)]) == 0
    out = tmp_path / "exp_broden"
    nd = netdissect_read(out, 224)
    assert nd["categories"] == ["object", "scene"]
    names = {r.number: r.name for r in broden.read_labels(out)}
    assert sorted(names.values()) == ["car", "outdoor", "road", "tree"]
    assert nd["labels"][[k for k, v in names.items() if v == "outdoor"][0]] == {"scene": 12}
    row = nd["rows"][0]
    assert (row["image"], row["sh"], row["sw"]) == ("im000.jpg", "112", "112")
    assert row["object"] == "im000_object.png" and row["scene"].isdigit()
    assert validate_errors(out) == []
    assert (out / "concepts.csv").read_text().startswith("name,category,synonyms\ncar,object,")


def test_planes_are_nearest_samples_of_native_rasterisation(tmp_path: Path) -> None:
    src = make_export(tmp_path / "exp", n=2)
    convert(
        "labelme",
        [src],
        tmp_path / "native",
        ConvertOptions(size=None, min_images=1, plane_scale=1),
    )
    convert("labelme", [src], tmp_path / "half", ConvertOptions(size=None, min_images=1))
    convert("labelme", [src], tmp_path / "s", ConvertOptions(size=16, min_images=1))
    full = broden.decode_plane(tmp_path / "native/images/im000_object.png")
    assert full.shape == (48, 64)
    half = broden.decode_plane(tmp_path / "half/images/im000_object.png")
    assert (half == full[1::2, 1::2]).all()  # floor((k + .5) * 2) = 2k + 1
    small = broden.decode_plane(tmp_path / "s/images/im000_object.png")
    rows, cols = (
        np.floor((np.arange(8) + 0.5) * 6).astype(int),
        np.floor((np.arange(8) + 0.5) * 8).astype(int),
    )
    assert (small == full[np.ix_(rows, cols)]).all()
    with Image.open(tmp_path / "s/images/im000.jpg") as im:
        assert im.size == (16, 16)


def test_labelme_fixture_at_native_size_matches_labelme2voc(
    formats_dir: Path, tmp_path: Path
) -> None:
    base = formats_dir / "labelme/semantic_segmentation"
    out = tmp_path / "voc"
    convert(
        "labelme",
        [base / "data_annotated"],
        out,
        ConvertOptions(size=None, min_images=1, plane_scale=1),
    )
    voc = [n for n in (base / "data_dataset_voc/class_names.txt").read_text().split("\n") if n]
    ours = {r.number: r.name for r in broden.read_labels(out)}
    to_voc = np.zeros(max(ours) + 1, dtype=np.int32)
    for num, name in ours.items():
        to_voc[num] = voc.index(name)
    total = diff = 0
    for row in broden.read_index(out):
        stem = row.image.rsplit(".", 1)[0]
        got = to_voc[broden.decode_plane(out / "images" / row.planes["object"][0])]
        ref = np.load(base / f"data_dataset_voc/SegmentationClassNpy/{stem}.npy")
        ref = np.where(ref < 0, 0, ref)
        total += ref.size
        diff += int((got != ref).sum())
    assert diff / total <= 1e-4 and diff <= 1


def test_output_independent_of_workers_and_repeatable(tmp_path: Path) -> None:
    src = make_export(tmp_path / "exp", n=6)
    opts = dict(min_images=1, size=32)
    convert("labelme", [src], tmp_path / "a", ConvertOptions(workers=1, **opts))  # type: ignore[arg-type]
    convert("labelme", [src], tmp_path / "b", ConvertOptions(workers=2, **opts))  # type: ignore[arg-type]
    convert(
        "labelme",
        [src],
        tmp_path / "c",
        ConvertOptions(concepts=tmp_path / "a/concepts.csv", **opts),  # type: ignore[arg-type]
    )
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) == 6 * 2 + 6 + 1  # images, planes, tables + concepts.csv, the marker
    assert Path(MARKER) in files
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "c" / f).read_bytes(), f


def test_min_images_drops_rare_labels_with_a_warning(tmp_path: Path, capsys: Any) -> None:
    extra = {0: [{"label": "kite", "points": [[1, 1], [3, 1], [2, 3]], "shape_type": "polygon"}]}
    src = make_export(tmp_path / "exp", n=10, extra=extra)
    assert run_cli(["labelme", str(src), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "dropped 1 rare labels: kite" in out and "kite (1)" in out
    assert "kite" not in (tmp_path / "o/label.csv").read_text()


def test_overlap_planes_and_crop(tmp_path: Path) -> None:
    extra = {
        i: [{"label": "tree", "points": [[10, 10], [20, 20]], "shape_type": "rectangle"}]
        for i in range(2)
    }
    src = make_export(tmp_path / "exp", n=2, extra=extra)
    convert(
        "labelme", [src], tmp_path / "o", ConvertOptions(overlap="planes", min_images=1, size=None)
    )
    row = broden.read_index(tmp_path / "o")[0]
    assert row.planes["object"] == ("im000_object_1.png", "im000_object_2.png")
    p1, p2 = (broden.decode_plane(tmp_path / "o/images" / p) for p in row.planes["object"])
    names = {r.name: r.number for r in broden.read_labels(tmp_path / "o")}
    assert p1[7, 7] == names["tree"] and p2[7, 7] == names["car"]  # car hidden behind the tree
    convert("labelme", [src], tmp_path / "c", ConvertOptions(fit="crop", min_images=1, size=24))
    plane = broden.decode_plane(tmp_path / "c/images/im000_object.png")
    convert(
        "labelme", [src], tmp_path / "n", ConvertOptions(min_images=1, size=None, plane_scale=1)
    )
    full = broden.decode_plane(tmp_path / "n/images/im000_object.png")
    assert plane.shape == (12, 12)
    k = np.arange(12)
    assert (plane == full[np.ix_(4 * k + 2, 8 + 4 * k + 2)]).all()  # centred 48x48 crop


def test_image_twice_in_one_src_is_refused_or_first_kept(tmp_path: Path, capsys: Any) -> None:
    """The rule of conceptkit.sources: a repeat in one export is an error naming the image and
    the export; with --keep-going the first annotation is kept and the repeat warned about."""
    src = make_export(tmp_path / "exp", n=2)
    (src / "sub").mkdir()
    _edit(src, 1, lambda d: d["shapes"].pop(0))  # im001 has no road
    twin = json.loads((src / "im001.json").read_text())
    twin["imagePath"] = "../im001.jpg"
    twin["shapes"] = []
    (src / "sub" / "im001.json").write_text(json.dumps(twin))
    assert run_cli(["labelme", str(src), "-o", str(tmp_path / "o"), "--min-images", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'im001.jpg' is annotated twice in one export" in err
    assert "sub/im001.json" in err or "im001.json" in err
    assert not (tmp_path / "o").exists()
    args = ["labelme", str(src), "-o", str(tmp_path / "k"), "--min-images", "1", "--keep-going"]
    assert run_cli(args) == 0
    assert "annotated twice; the first is kept" in capsys.readouterr().out
    rows = broden.read_index(tmp_path / "k")
    assert [r.image for r in rows] == ["im000.jpg", "im001.jpg"]
    assert rows[1].planes  # the first annotation (car, tree), not the empty twin


def test_several_annotators_with_consistency(tmp_path: Path) -> None:
    a = make_export(tmp_path / "alice", n=3)
    b = make_export(tmp_path / "bob", n=3)
    summary = convert(
        "labelme", [a, b], tmp_path / "o", ConvertOptions(min_images=1, consensus="first")
    )
    assert summary.images == 3 and summary.consistency
    assert len(broden.read_index(tmp_path / "o")) == 3


# ----------------------------------------------------------------------------- bad input


def _bad(tmp_path: Path, capsys: Any, args: list[str], expected: str, code: int = 1) -> None:
    out = tmp_path / "out"
    assert run_cli([*args, "-o", str(out)]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(expected, err), err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def _edit(src: Path, i: int, fn: Any) -> None:
    p = src / f"im{i:03d}.json"
    doc = json.loads(p.read_text())
    fn(doc)
    p.write_text(json.dumps(doc))


def test_bad_malformed_json(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=2)
    (src / "im001.json").write_text('{"shapes": [}')
    _bad(tmp_path, capsys, ["labelme", str(src)], r"im001\.json: line 1, column 13: malformed JSON")


def test_bad_missing_and_unreadable_image(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=2)
    (src / "im001.jpg").unlink()
    _bad(
        tmp_path,
        capsys,
        ["labelme", str(src)],
        r"im001\.json: \$\.imagePath: image 'im001\.jpg' not found",
    )
    (src / "im001.jpg").write_bytes(b"not a jpeg")
    _bad(tmp_path, capsys, ["labelme", str(src)], r"im001\.json: image .*im001\.jpg cannot be read")


def test_bad_image_size_contradicts_annotation(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=2)
    _edit(src, 1, lambda d: d.update(imageWidth=100))
    _bad(
        tmp_path,
        capsys,
        ["labelme", str(src)],
        r"im001\.json: image .* is 64x48, the annotation says 100x48",
    )


def test_bad_polygon_with_two_points(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=2)
    _edit(src, 1, lambda d: d["shapes"][1].update(points=[[1, 1], [5, 5]]))
    _bad(
        tmp_path,
        capsys,
        ["labelme", str(src)],
        r"im001\.json: \$\.shapes\[1\]\.points: a polygon needs at least 3 points, found 2",
    )


def test_bad_coordinates_far_outside(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=2)
    _edit(src, 0, lambda d: d["shapes"][1].update(points=[[1, 1], [5000, 5], [3, 9]]))
    _bad(
        tmp_path,
        capsys,
        ["labelme", str(src)],
        r"im000\.json: \$\.shapes\[1\]\.points: point \(5000, 5\) lies far outside the 64x48 image",
    )


def test_bad_unknown_format(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=1)
    _bad(tmp_path, capsys, ["pascal", str(src)], r"unknown FORMAT 'pascal'", code=2)


def test_bad_path_outside_src(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=2)
    (tmp_path / "secret.jpg").write_bytes((src / "im000.jpg").read_bytes())
    _edit(src, 1, lambda d: d.update(imagePath="..\\secret.jpg"))
    _bad(
        tmp_path,
        capsys,
        ["labelme", str(src)],
        r"im001\.json: \$\.imagePath: image path .* points outside SRC",
    )


def test_bad_xml_entity_bomb(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=1)
    ents = "".join(f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 12))
    (src / "bomb.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a0 "x">{ents}]><annotation>&a11;</annotation>'
    )
    _bad(
        tmp_path,
        capsys,
        ["labelme", str(src)],
        r"bomb\.xml: line 1: a <!DOCTYPE b> declaration is refused \(entity expansion",
    )


def test_bad_existing_target_needs_force(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=1)
    out = tmp_path / "out"
    args = ["labelme", str(src), "-o", str(out), "--min-images", "1"]
    assert run_cli(args) == 0
    (out / "x").write_text("mine")
    assert run_cli(args) == 2
    assert "--force" in capsys.readouterr().err
    assert run_cli([*args, "--force"]) == 0  # conceptkit wrote it: replaced
    assert not (out / "x").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("keep")
    assert run_cli(["labelme", str(src), "-o", str(foreign), "--force"]) == 2
    assert "was not written by conceptkit" in capsys.readouterr().err
    assert (foreign / "x").read_text() == "keep"


def test_self_intersection_is_warned_not_fatal(tmp_path: Path, capsys: Any) -> None:
    extra = {
        0: [
            {
                "label": "car",
                "points": [[1, 1], [20, 20], [20, 1], [1, 20]],
                "shape_type": "polygon",
            }
        ]
    }
    src = make_export(tmp_path / "exp", n=1, extra=extra)
    assert run_cli(["labelme", str(src), "-o", str(tmp_path / "o"), "--min-images", "1"]) == 0
    assert (
        "$.shapes[3].points: self-intersecting polygon, filled even-odd" in capsys.readouterr().out
    )


def test_keep_going_skips_bad_images(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=3)
    _edit(src, 1, lambda d: d["shapes"][1].update(points=[[1, 1], [5, 5]]))
    (src / "im002.jpg").write_bytes(b"broken")
    summary = convert(
        "labelme", [src], tmp_path / "o", ConvertOptions(min_images=1, keep_going=True)
    )
    assert summary.images == 1 and summary.skipped == 2
    assert [r.image for r in broden.read_index(tmp_path / "o")] == ["im000.jpg"]
    with pytest.raises(FormatError):
        convert("labelme", [src], tmp_path / "p", ConvertOptions(min_images=1))


def test_exif_orientation_applied_as_labelme(tmp_path: Path) -> None:
    """A JPEG stored sideways with EXIF orientation 6 is annotated (and converted) upright."""
    src = tmp_path / "exp"
    src.mkdir()
    stored = np.zeros((40, 60, 3), dtype=np.uint8)  # stored 60 wide, 40 high
    stored[:, :30] = (250, 0, 0)  # left half red: after rotating 90 clockwise it is the top
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(src / "a.jpg", exif=exif.tobytes(), quality=100)
    doc = {
        "shapes": [{"label": "top", "points": [[0, 0], [39, 29]], "shape_type": "rectangle"}],
        "imagePath": "a.jpg",
        "imageData": None,
        "imageHeight": 60,
        "imageWidth": 40,
    }
    (src / "a.json").write_text(json.dumps(doc))
    convert(
        "labelme", [src], tmp_path / "o", ConvertOptions(size=None, min_images=1, plane_scale=1)
    )
    img = np.asarray(Image.open(tmp_path / "o/images/a.jpg"))
    assert img.shape == (60, 40, 3)
    assert img[5, 20, 0] > 200 and img[55, 20, 0] < 50
    plane = broden.decode_plane(tmp_path / "o/images/a_object.png")
    assert plane[:30].all() and not plane[31:].any()


def test_ignore_regions_from_readers_clear_and_never_count(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from conceptkit.annotations import ImageAnnotation, Shape

    src = make_export(tmp_path / "exp", n=1)

    def fake_read(path: Path, options: Any) -> Any:
        for i in range(2):
            ann = ImageAnnotation(
                key=f"im{i}.jpg", width=64, height=48, image_path=src / "im000.jpg", source="f.json"
            )
            ann.shapes = [
                Shape(
                    "car", "rectangle", np.array([[0.0, 0], [40, 40]]), order=0, convention="center"
                ),
                Shape(
                    "crowd",
                    "rectangle",
                    np.array([[0.0, 0], [20, 20]]),
                    order=1,
                    convention="center",
                ),
            ]
            ann.shapes[1].ignore = True  # type: ignore[attr-defined]
            yield ann

    monkeypatch.setattr("conceptkit.convert.get_reader", lambda name: fake_read)
    convert("fake", [src], tmp_path / "o", ConvertOptions(size=None, min_images=1, plane_scale=1))
    assert [r.name for r in broden.read_labels(tmp_path / "o")] == ["car"]
    plane = broden.decode_plane(tmp_path / "o/images/im0_object.png")
    assert (
        not plane[:20, :20].any() and plane[30, 30] == 1 and plane[:40, :40].sum() == 40 * 40 - 400
    )


def test_labelme_xml_fixture_converts(formats_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    convert("labelme", [formats_dir / "labelme-xml"], out, ConvertOptions(min_images=1, size=None))
    assert [r.name for r in broden.read_labels(out)] == ["license plate", "window"]
    plane = broden.decode_plane(out / "images/img1_object.png")
    assert plane.shape == (960, 1280)
    # the window polygon covers x 1078..1126, y 854..940 natively; half-size pixel k samples
    # native 2k + 1, so x k = 539 (1079) .. 562 (1125), y k = 427 (855) .. 469 (939)
    window = [r.number for r in broden.read_labels(out) if r.name == "window"][0]
    ys, xs = np.nonzero(plane == window)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (539, 562, 427, 469)
    # native size keeps the 4:3 image, which NetDissect-Lite cannot take (and says so)
    assert [e.split()[0] for e in validate_errors(out)] in ([], ["E204"])


def test_usage_errors(tmp_path: Path, capsys: Any) -> None:
    src = make_export(tmp_path / "exp", n=1)
    assert run_cli(["labelme", str(src), "--size", "abc"]) == 2
    assert "--size must be a number of pixels or 'native'" in capsys.readouterr().err
    assert run_cli(["labelme", str(tmp_path / "nothing")]) == 2
    assert "nothing: does not exist" in capsys.readouterr().err
    assert not (tmp_path / "exp_broden").exists()


def test_validation_runs_on_the_result(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    from types import SimpleNamespace

    src = make_export(tmp_path / "exp", n=1)
    summary = convert("labelme", [src], tmp_path / "n", ConvertOptions(min_images=1, size=None))
    assert summary.validation == []  # native size: NetDissect-only checks are not asked for
    seen: list[Any] = []

    def fake(path: Any, **kw: Any) -> list[Any]:
        seen.append((Path(path), kw))
        return [SimpleNamespace(code="E999", severity="error", file="index.csv", message="bad")]

    monkeypatch.setattr("conceptkit.convert._pipeline.validate", fake)
    assert run_cli(["labelme", str(src), "-o", str(tmp_path / "o"), "--min-images", "1"]) == 1
    assert "validate: E999 index.csv: bad" in capsys.readouterr().out
    assert seen == [(tmp_path / "o", {"netdissect": True})]


def test_semicolons_and_control_characters_in_image_names_become_underscores(
    tmp_path: Path,
) -> None:
    from conceptkit.convert._pipeline import image_name

    assert image_name("a;b.jpg") == "a_b.jpg"
    assert image_name("sub\\x;y\nz.png") == "x_y_z.jpg"
    assert image_name("plain.JPG") == "plain.jpg"
    src = make_export(tmp_path / "exp", n=1)
    for ext in ("jpg", "json"):
        (src / f"im000.{ext}").rename(src / f"i;m.{ext}")
    _edit_path = src / "i;m.json"
    doc = json.loads(_edit_path.read_text())
    doc["imagePath"] = "i;m.jpg"
    _edit_path.write_text(json.dumps(doc))
    convert("labelme", [src], tmp_path / "o", ConvertOptions(min_images=1))
    row = broden.read_index(tmp_path / "o")[0]
    assert row.image == "i_m.jpg" and row.planes["object"] == ("i_m_object.png",)
    assert (tmp_path / "o/images/i_m_object.png").is_file()


def test_a_reader_forcing_a_category_the_layout_cannot_hold_is_refused(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from conceptkit.annotations import ImageAnnotation, Shape

    src = make_export(tmp_path / "exp", n=1)

    def fake_read(path: Path, options: Any) -> Any:
        shape = Shape("car", "rectangle", np.array([[0.0, 0], [9, 9]]), category="../up")
        shape.place = "$.shapes[0]"
        yield ImageAnnotation(
            key="im0.jpg", width=64, height=48, image_path=src / "im000.jpg", source="f.json"
        )
        yield ImageAnnotation(
            key="im1.jpg",
            width=64,
            height=48,
            image_path=src / "im000.jpg",
            source="g.json",
            shapes=[shape],
        )

    monkeypatch.setattr("conceptkit.convert.get_reader", lambda name: fake_read)
    with pytest.raises(FormatError, match=r"g.json: \$.shapes\[0\]: category '../up' must be"):
        convert("fake", [src], tmp_path / "o", ConvertOptions(min_images=1))
    assert not (tmp_path / "o").exists() and not (tmp_path / "up.png").exists()


def test_cvat_project_subsets_reusing_file_names_convert(tmp_path: Path) -> None:
    """images/Train/img0.jpg and images/Test/img0.jpg are two images (issue 14's failure)."""
    from PIL import Image

    meta = "<meta><project><name>p</name></project></meta>"
    body = "".join(
        f'<image id="{i}" name="img0.jpg" subset="{sub}" width="20" height="10">'
        f'<box label="car" xtl="{x0}" ytl="0" xbr="{x0 + 10}" ybr="10" z_order="0"/></image>'
        for i, (sub, x0) in enumerate((("Train", 0), ("Test", 10)))
    )
    src = tmp_path / "export"
    src.mkdir()
    (src / "annotations.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>{meta}{body}</annotations>'
    )
    for sub in ("Train", "Test"):
        (src / "images" / sub).mkdir(parents=True)
        Image.new("RGB", (20, 10), (9, 9, 9)).save(src / "images" / sub / "img0.jpg")
    out = tmp_path / "data"
    summary = convert("cvat", [src], out, ConvertOptions(min_images=1, size=None))
    assert summary.images == 2
    rows = broden.read_index(out)
    assert sorted(r.image for r in rows) == ["Test_img0.jpg", "img0.jpg"]
    assert sorted(r.split for r in rows) == ["test", "train"]
    # each image keeps its own box: the car covers the left half of Train's, the right of Test's
    by_name = {r.image: r for r in rows}
    left = broden.decode_plane(out / "images" / by_name["img0.jpg"].planes["object"][0])
    right = broden.decode_plane(out / "images" / by_name["Test_img0.jpg"].planes["object"][0])
    assert left[:, :5].all() and not left[:, 15:].any()
    assert right[:, 15:].all() and not right[:, :5].any()


def test_convert_auto_detects_and_says_what_it_chose(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from conceptkit.cli import cli

    src = Path(__file__).resolve().parents[1] / "examples" / "data" / "cvat"
    result = CliRunner().invoke(
        cli, ["convert", "auto", str(src), "-o", str(tmp_path / "out"), "--min-images", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "format: cvat (" in result.output
    assert (tmp_path / "out" / "index.csv").is_file()
