"""Tests of conceptkit.consistency: agreement, error types, kappas, consensus, report files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from conceptkit.annotations import ImageAnnotation, Shape
from conceptkit.consistency import _metrics as M
from conceptkit.consistency import analyse, consensus, consensus_details, staple_estimates
from conceptkit.errors import FormatError, UsageError

SIZE = 200
NAMES = ["car", "tree", "person", "road", "sky", "dog"]


def _disc(h: int, w: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 / (h / 2) ** 2 + (xx - (w - 1) / 2) ** 2 / (w / 2) ** 2 <= 1


def make_truth(n_images: int = 4, seed: int = 0) -> list[ImageAnnotation]:
    """Images of SIZE x SIZE with 6 objects each (mask shapes) on a 3 x 2 grid, never touching."""
    rng = np.random.default_rng(seed)
    images = []
    for k in range(n_images):
        shapes = []
        for i in range(6):
            row, col = divmod(i, 3)
            h, w = int(rng.integers(30, 50)), int(rng.integers(30, 50))
            x0 = 10 + col * 65 + int(rng.integers(0, 8))
            y0 = 15 + row * 95 + int(rng.integers(0, 8))
            patch = _disc(h, w, 0) if i % 2 else np.ones((h, w), dtype=bool)
            shapes.append(
                Shape(
                    label=NAMES[(i + k) % len(NAMES)],
                    kind="mask",
                    mask=patch,
                    origin=(x0, y0),
                    order=i,
                )
            )
        images.append(
            ImageAnnotation(
                key=f"img{k}.jpg", width=SIZE, height=SIZE, shapes=shapes, annotator="truth"
            )
        )
    return images


def full(shape: Shape) -> np.ndarray:
    out = np.zeros((SIZE, SIZE), dtype=bool)
    x0, y0 = shape.origin
    assert shape.mask is not None
    out[y0 : y0 + shape.mask.shape[0], x0 : x0 + shape.mask.shape[1]] = shape.mask
    return out


def derive(
    truth: ImageAnnotation,
    name: str,
    shift: tuple[int, ...] = (),
    rename: tuple[int, ...] = (),
    delete: tuple[int, ...] = (),
    dx: int = 4,
) -> ImageAnnotation:
    """An annotator: truth with objects shifted by dx pixels, renamed, or deleted."""
    ann = copy.deepcopy(truth)
    ann.annotator = name
    kept = []
    for i, s in enumerate(ann.shapes):
        if i in delete:
            continue
        if i in shift:
            s.origin = (s.origin[0] + dx, s.origin[1])
        if i in rename:
            s.label = s.label + "_x"
        kept.append(s)
    ann.shapes = kept
    return ann


def labels_of(ann: ImageAnnotation) -> np.ndarray:
    """(H, W) object planes as strings ('' unlabelled), painted by hand for expectations."""
    out = np.full((ann.height, ann.width), "", dtype=object)
    for s in ann.painting_order():
        out[full(s)] = s.label
    return out


# ----------------------------------------------------------------------------- metrics


def test_cohen_kappa_hand_computed() -> None:
    a = np.array([[1, 1], [0, 0]])
    b = np.array([[1, 0], [0, 0]])
    # po = 3/4; pa(1) = 1/2, pb(1) = 1/4 -> pe = 1/8 + 3/8 = 1/2; kappa = (3/4 - 1/2) / (1/2)
    assert M.cohen_kappa(M.joint_counts(a, b)) == pytest.approx(0.5)
    assert M.binary_kappa(2, 1, 1, 4) == pytest.approx(0.5)
    assert M.cohen_kappa(M.joint_counts(a, a)) == 1.0


def test_fleiss_kappa_matches_direct_formula() -> None:
    rng = np.random.default_rng(3)
    planes = [rng.integers(0, 3, size=(6, 5)) for _ in range(4)]
    # direct Fleiss: items = pixels, categories 0..2, m = 4 raters
    stack = np.stack([p.ravel() for p in planes])
    counts = np.stack([(stack == k).sum(axis=0) for k in range(3)], axis=1)  # (N, K)
    m = 4
    p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_j = counts.sum(axis=0) / counts.sum()
    expected = (p_i.mean() - (p_j**2).sum()) / (1 - (p_j**2).sum())
    assert M.FleissSums.of(planes).kappa() == pytest.approx(expected)
    # the binary form, concept 1 against the rest
    c = counts[:, 1]
    pb_i = (c**2 + (m - c) ** 2 - m) / (m * (m - 1))
    pb = c.sum() / (m * len(c))
    pe = pb**2 + (1 - pb) ** 2
    got = M.fleiss_binary([(int(c.sum()), int((c**2).sum()), len(c), m)])
    assert got == pytest.approx((pb_i.mean() - pe) / (1 - pe))


def test_boundary_f() -> None:
    a = np.zeros((60, 60), dtype=bool)
    a[10:40, 10:40] = True
    assert M.boundary_f(a, a, 2) == 1.0
    shifted = np.roll(a, 2, axis=1)
    assert M.boundary_f(a, shifted, 2) == 1.0  # within tolerance
    far = np.roll(a, 6, axis=1)
    # 116 boundary pixels each; within 2 px of the other's: 26 on the top row (columns 14..39
    # of a near 16..45 of b), 26 on the bottom row, 4 of the right column next to the top and
    # bottom rows; none of the left column: P = R = F = 56 / 116
    assert M.boundary_f(a, far, 2) == pytest.approx(56 / 116)
    assert M.boundary_f(a, np.zeros_like(a), 2) == 0.0


def test_disk_dilation_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((40, 50)) < 0.02
    for radius in (1, 2, 4, 5):
        expected = np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask)):
            yy, xx = np.mgrid[:40, :50]
            expected |= (yy - y) ** 2 + (xx - x) ** 2 <= radius * radius
        assert np.array_equal(M._dilate(mask, radius), expected)


def test_greedy_matching_one_to_one() -> None:
    a = np.zeros((10, 10), dtype=np.int32)
    b = np.zeros((10, 10), dtype=np.int32)
    a[0:4, 0:4] = 1
    a[6:10, 6:10] = 2
    b[0:4, 1:5] = 2  # IoU with a1 = 12 / 20 = 0.6
    b[6:10, 0:3] = 1  # overlaps nothing
    ma, mb, ious = M.match_instances(a, 2, b, 2, 0.5)
    assert ma.tolist()[1:] == [2, -1]
    assert mb.tolist()[1:] == [-1, 1]
    assert ious == {(1, 2): pytest.approx(0.6)}


# ----------------------------------------------------------------------------- analyse


def test_identical_annotators_agree_fully() -> None:
    truth = make_truth()
    other = [derive(t, "copy") for t in truth]
    groups = {t.key: [t, o] for t, o in zip(truth, other)}
    report = analyse(groups)
    assert report.overall["agreement"] == 1.0
    assert report.overall["agreement_with_unlabelled"] == 1.0
    assert report.overall["kappa"] == 1.0
    assert report.overall["disagree"] == 0
    assert report.overall["naming_share"] is None
    assert report.overall["boundary_f"] == 1.0
    (pair,) = report.pairs
    assert (pair.kappa, pair.matched, pair.unmatched_a) == (1.0, 24, 0)
    assert all(c.iou == 1.0 and c.kappa == 1.0 for c in report.concepts)
    assert report.vocabulary == []
    assert all(i.segments_variance == 0.0 for i in report.images)


def test_injected_errors_are_found() -> None:
    """Shifted, renamed and deleted objects -> quality, naming and quantity shares as injected."""
    truth = make_truth()
    plans = [  # (shift, rename, delete) object numbers per image
        ((0,), (1,), (2,)),
        ((3, 4), (5,), ()),
        ((), (0,), (1, 2)),
        ((5,), (), (3,)),
    ]
    noisy = [derive(t, "bob", *plan) for t, plan in zip(truth, plans)]
    groups = {t.key: [t, n] for t, n in zip(truth, noisy)}
    report = analyse(groups)

    totals = {"naming": 0, "quantity": 0, "quality": 0}
    expected_agree = expected_labelled = 0
    for t, n, (shift, rename, delete) in zip(truth, noisy, plans):
        la, lb = labels_of(t), labels_of(n)
        expected_labelled += int(((la != "") | (lb != "")).sum())
        expected_agree += int(((la == lb) & (la != "")).sum())
        per = {
            "quality": sum(
                int(
                    (full(t.shapes[i]) ^ full(n.shapes[[s.order for s in n.shapes].index(i)])).sum()
                )
                for i in shift
            ),
            "naming": sum(int(full(t.shapes[i]).sum()) for i in rename),
            "quantity": sum(int(full(t.shapes[i]).sum()) for i in delete),
        }
        img = next(r for r in report.images if r.image == t.key)
        dis = sum(per.values())
        assert img.disagree == dis
        for kind, px in per.items():
            assert getattr(img, f"{kind}_share") == pytest.approx(px / dis, abs=0.01)
            totals[kind] += px
    dis = sum(totals.values())
    o = report.overall
    assert o["disagree"] == dis
    assert o["agreement"] == pytest.approx(expected_agree / expected_labelled)
    for kind, px in totals.items():
        assert o[f"{kind}_share"] == pytest.approx(px / dis, abs=0.01)
    (pair,) = report.pairs
    assert (pair.renamed, pair.unmatched_a, pair.unmatched_b) == (
        3,
        0,
        4,
    )  # a = bob, b = truth (sorted)
    assert pair.kappa is not None and 0.7 < pair.kappa < 1.0
    # shifted by 4 px with a 2 px tolerance (0.75% of the 283 px diagonal): bF below 1
    assert pair.boundary_f is not None and 0.8 < pair.boundary_f < 1.0
    # renamed names are reported as drift with the original name on the same pixels
    drift = {(v.annotator, v.name): v for v in report.vocabulary}
    v = drift[("bob", "person_x")]
    assert v.never_used_by == "truth"
    assert v.co_located == "person:1.00"
    assert "person" in v.similar.split(";")
    # segment counts: truth 6 per image, bob 5, 4, 3, 5
    counts = [(s.annotator, s.segments) for s in report.segments if s.image == "img2.jpg"]
    assert counts == [("bob", 4), ("truth", 6)]
    assert next(r for r in report.images if r.image == "img2.jpg").segments_variance == 1.0


def test_three_annotators_fleiss_and_pairs() -> None:
    truth = make_truth(2)
    groups = {t.key: [t, derive(t, "b", rename=(1,)), derive(t, "c", delete=(2,))] for t in truth}
    report = analyse(groups)
    assert report.overall["kappa_kind"] == "Fleiss"
    assert [(p.annotator_a, p.annotator_b) for p in report.pairs] == [
        ("b", "c"),
        ("b", "truth"),
        ("c", "truth"),
    ]
    by = {(p.annotator_a, p.annotator_b): p for p in report.pairs}
    assert by[("c", "truth")].quantity_share == 1.0
    assert by[("b", "truth")].naming_share == 1.0
    assert 0.5 < report.overall["kappa"] < 1.0
    pooled = [c for c in report.concepts if c.annotator_a == "*"]
    assert {c.concept for c in pooled} >= {"car", "tree"}


def test_rescaled_annotation_agrees() -> None:
    truth = make_truth(1)[0]
    half = copy.deepcopy(truth)
    half.annotator, half.width, half.height = "half", SIZE // 2, SIZE // 2
    for s in half.shapes:
        assert s.mask is not None
        s.mask = s.mask[::2, ::2]
        s.origin = (s.origin[0] // 2, s.origin[1] // 2)
    report = analyse({truth.key: [truth, half]})
    assert report.overall["agreement"] > 0.93
    assert report.pairs[0].matched == 6
    wide = copy.deepcopy(half)
    wide.width = SIZE
    with pytest.raises(FormatError, match="not a rescale"):
        analyse({truth.key: [truth, wide]})


def test_duplicate_annotator_is_an_error() -> None:
    t = make_truth(1)[0]
    with pytest.raises(UsageError, match="two annotations by 'truth'"):
        analyse({t.key: [t, copy.deepcopy(t)]})


def test_report_files_are_deterministic(tmp_path) -> None:
    truth = make_truth(2)
    groups = {t.key: [t, derive(t, "bob", shift=(0,), rename=(1,), delete=(2,))] for t in truth}
    groups["lonely.jpg"] = [make_truth(1, seed=5)[0]]
    report = analyse(groups, out_dir=tmp_path / "a")
    analyse(groups, out_dir=tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a" / "consistency").iterdir())
    assert files == [
        "concepts.csv",
        "consistency.json",
        "image_pairs.csv",
        "images.csv",
        "naming.csv",
        "pairs.csv",
        "segments.csv",
        "vocabulary.csv",
    ]
    for name in files:
        a = (tmp_path / "a" / "consistency" / name).read_bytes()
        assert a == (tmp_path / "b" / "consistency" / name).read_bytes()
    data = json.loads((tmp_path / "a" / "consistency" / "consistency.json").read_text())
    assert data["overall"]["single_images"] == 1
    assert data["overall"]["agreement"] == round(report.overall["agreement"], 6)
    header = (tmp_path / "a" / "consistency" / "pairs.csv").read_text().splitlines()[0]
    assert header.startswith("image,annotator_a,annotator_b,images,pixels,labelled")
    naming = (tmp_path / "a" / "consistency" / "naming.csv").read_text().splitlines()
    assert len(naming) == 3  # header + two renamed names (one per image)
    text = report.summary()
    assert "bob ~ truth" in text and "overall" in text and "naming" in text
    assert len(text.splitlines()) < 20


# ----------------------------------------------------------------------------- consensus


def _iou_with_truth(ann: ImageAnnotation, truth: ImageAnnotation) -> float:
    """Pixel agreement (labelled by either) of ``ann`` with the truth."""
    t, a = labels_of(truth), labels_of(ann)
    either = (t != "") | (a != "")
    return float(((t == a) & (t != "")).sum() / either.sum())


def noisy_three(truth: ImageAnnotation) -> list[ImageAnnotation]:
    return [
        derive(truth, "a1", shift=(0,), rename=(1,), dx=6),
        derive(truth, "a2", shift=(3,), delete=(2,), dx=6),
        derive(truth, "a3", rename=(4,), delete=(5,)),
    ]


def test_majority_consensus_beats_each_annotator() -> None:
    for truth in make_truth(3):
        anns = noisy_three(truth)
        cons = consensus(anns, "majority")
        assert cons.annotator == "consensus:majority"
        assert all(s.kind == "mask" for s in cons.shapes)
        got = _iou_with_truth(cons, truth)
        singles = [_iou_with_truth(a, truth) for a in anns]
        assert got > max(singles)
        assert got == 1.0  # each object is wrong in at most one of three annotators


def test_majority_tie_breaks() -> None:
    a = np.array([[1, 1, 0, 2]])
    b = np.array([[2, 0, 0, 1]])
    from conceptkit.consistency._consensus import majority_vote

    # two raters: labelled vs unlabelled -> unlabelled; two names -> the first rater's
    assert majority_vote([a, b]).tolist() == [[1, 0, 0, 2]]
    c = np.array([[2, 0, 3, 3]])
    # three raters: [1,2,2] -> 2; [1,0,0] -> 0; [0,0,3] -> 0; [2,1,3] -> tie, first rater: 2
    assert majority_vote([a, b, c]).tolist() == [[2, 0, 0, 2]]


def test_first_and_unknown_methods() -> None:
    truth = make_truth(1)[0]
    anns = noisy_three(truth)
    assert consensus(anns, "first").shapes == anns[0].shapes
    with pytest.raises(UsageError, match="unknown consensus method"):
        consensus(anns, "vote")


def test_staple_consensus() -> None:
    pytest.importorskip("SimpleITK")
    truth = make_truth(1)[0]
    anns = noisy_three(truth)
    result = consensus_details(anns, "staple")
    got = _iou_with_truth(result.annotation, truth)
    assert got > max(_iou_with_truth(a, truth) for a in anns)
    # a2 deleted object 2 (a 'person' in image 0): its sensitivity for it is the lowest
    name = truth.shapes[2].label
    sens = {a: result.sensitivity[a][name] for a in ("a1", "a2", "a3")}
    assert sens["a2"] < min(sens["a1"], sens["a3"])
    assert all(0.0 <= v <= 1.0 for v in sens.values())
    rows = staple_estimates([result])
    assert {r.annotator for r in rows} == {"a1", "a2", "a3"}


def test_staple_without_simpleitk(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    truth = make_truth(1)[0]
    with pytest.raises(UsageError, match=r"pip install conceptkit\[staple\]"):
        consensus(noisy_three(truth), "staple")


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_merges_synonyms(tmp_path) -> None:
    from conceptkit.concepts import Vocabulary

    path = tmp_path / "vocab.csv"
    path.write_text("name,category,synonyms\ncar,object,automobile;auto\n", encoding="utf-8")
    vocab = Vocabulary.from_csv(path)
    truth = make_truth(1)[0]
    other = derive(truth, "bob")
    for s in other.shapes:
        if s.label == "car":
            s.label = "  Automobile "
    plain = analyse({truth.key: [truth, other]})
    assert plain.overall["naming_share"] == 1.0
    assert [(v.annotator, v.name, v.co_located) for v in plain.vocabulary] == [
        ("bob", "automobile", "car:1.00"),
        ("truth", "car", "automobile:1.00"),
    ]
    merged = analyse({truth.key: [truth, other]}, vocabulary=vocab)
    assert merged.overall["agreement"] == 1.0


# ----------------------------------------------------------------------------- CLI, mixed formats


def _octagon(cx: float, cy: float, r: float) -> list[list[float]]:
    angles = np.arange(8) * np.pi / 4 + np.pi / 8
    return [[round(cx + r * np.cos(a), 1), round(cy + r * np.sin(a), 1)] for a in angles]


def _polygons(k: int) -> list[tuple[str, list[list[float]]]]:
    """Image k's objects: non-overlapping rectangles and octagons, as (name, points)."""
    out: list[tuple[str, list[list[float]]]] = []
    for i in range(4):
        row, col = divmod(i, 2)
        x0, y0 = 15 + col * 95 + 3 * k, 12 + row * 95 + 2 * k
        name = NAMES[(i + k) % len(NAMES)]
        if i % 2:
            out.append((name, _octagon(x0 + 35, y0 + 35, 30 - k)))
        else:
            out.append((name, [[x0, y0], [x0 + 60.5, y0], [x0 + 60.5, y0 + 50], [x0, y0 + 50]]))
    return out


def write_exports(root, n_images: int = 3):
    """The same polygons as a LabelMe folder (alice/) and a CVAT task export (bob/)."""
    from PIL import Image

    alice, bob = root / "alice", root / "bob"
    (bob / "images").mkdir(parents=True)
    alice.mkdir()
    xml = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>"]
    xml += ["  <meta><task><name>t</name><labels>"]
    xml += [f"<label><name>{n}</name><type>polygon</type></label>" for n in NAMES]
    xml += ["  </labels></task></meta>"]
    for k in range(n_images):
        name = f"img{k}.jpg"
        for folder in (alice, bob / "images"):
            Image.new("RGB", (SIZE, SIZE), (k * 40, 90, 120)).save(folder / name)
        shapes = [
            {
                "label": label,
                "points": pts,
                "group_id": None,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
                "mask": None,
            }
            for label, pts in _polygons(k)
        ]
        doc = {
            "version": "5.4.1",
            "flags": {},
            "shapes": shapes,
            "imagePath": name,
            "imageData": None,
            "imageHeight": SIZE,
            "imageWidth": SIZE,
        }
        (alice / f"img{k}.json").write_text(json.dumps(doc), encoding="utf-8")
        xml.append(f'  <image id="{k}" name="{name}" width="{SIZE}" height="{SIZE}">')
        for z, (label, pts) in enumerate(_polygons(k)):
            text = ";".join(f"{x:.2f},{y:.2f}" for x, y in pts)
            xml.append(
                f'    <polygon label="{label}" source="manual" occluded="0" points="{text}" '
                f'z_order="{z}"></polygon>'
            )
        xml.append("  </image>")
    xml.append("</annotations>")
    (bob / "annotations.xml").write_text("\n".join(xml) + "\n", encoding="utf-8")
    return alice, bob


def run_cli(args: list[str]) -> int:
    from conceptkit.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_mixed_labelme_and_cvat(tmp_path, capsys) -> None:
    """LabelMe (inclusive pixels) vs CVAT (pixel centres): only boundary pixels differ."""
    from conceptkit.rasterize import shape_mask

    alice, bob = write_exports(tmp_path)
    out = tmp_path / "report"
    assert run_cli(["consistency", str(alice), str(bob), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "alice ~ bob" in text
    data = json.loads((out / "consistency.json").read_text())
    o = data["overall"]
    # expected: per polygon, the pixels the two conventions disagree on (objects are disjoint)
    expected = 0
    for k in range(3):
        for label, pts in _polygons(k):
            s = Shape(label=label, kind="polygon", points=np.array(pts, dtype=float))
            inc = shape_mask(s, SIZE, SIZE, convention="inclusive")
            cen = shape_mask(s, SIZE, SIZE, convention="center")
            expected += int((inc ^ cen).sum())
    assert o["disagree"] == expected
    assert o["agreement"] > 0.95
    assert (o["naming_share"], o["quantity_share"], o["quality_share"]) == (0.0, 0.0, 1.0)
    (pair,) = data["pairs"]
    assert (pair["matched"], pair["unmatched_a"], pair["unmatched_b"]) == (12, 0, 0)
    assert pair["boundary_f"] == 1.0  # a one-pixel difference is within tolerance
    # one convention for both: identical pixels
    assert run_cli(["consistency", str(alice), f"cvat:{bob}", "--convention", "center"]) == 0
    assert "1.000" in capsys.readouterr().out.splitlines()[2]
    # the gate: agreement < 0.999 -> exit 1; an existing -o target needs --force
    assert run_cli(["consistency", str(alice), str(bob), "--fail-under", "0.999"]) == 1
    assert "below --fail-under" in capsys.readouterr().err
    assert run_cli(["consistency", str(alice), str(bob), "-o", str(out)]) == 2
    capsys.readouterr()


def test_cli_staple_report(tmp_path, capsys) -> None:
    pytest.importorskip("SimpleITK")  # the optional extra conceptkit[staple]
    alice, bob = write_exports(tmp_path)
    out2 = tmp_path / "report2"
    assert run_cli(["consistency", str(alice), str(bob), "--staple", "-o", str(out2)]) == 0
    assert "STAPLE sensitivity / specificity" in capsys.readouterr().out
    rows = (out2 / "staple.csv").read_text().splitlines()
    assert rows[0] == "annotator,concept,images,pixels,sensitivity,specificity"
    assert len(rows) == 1 + 2 * len({label for k in range(3) for label, _ in _polygons(k)})


def test_cli_format_detection(tmp_path, capsys) -> None:
    from conceptkit.sources import detect_format

    alice, bob = write_exports(tmp_path, n_images=1)
    assert detect_format(alice) == "labelme"
    assert detect_format(bob) == "cvat"
    (tmp_path / "empty").mkdir()
    assert run_cli(["consistency", str(alice), str(tmp_path / "empty")]) == 2
    assert "FORMAT:PATH" in capsys.readouterr().err


def test_cli_on_the_example_exports(capsys) -> None:
    """The shipped example: LabelMe, CVAT and COCO exports of the same annotations, plus a
    second LabelMe annotator of half of the images."""
    data = Path(__file__).resolve().parents[1] / "examples" / "data"
    if not (data / "cvat" / "annotations.xml").exists():
        pytest.skip("examples/data is absent")
    args = [
        "consistency",
        str(data / "labelme"),
        str(data / "cvat"),
        str(data / "coco" / "annotations" / "instances_default.json"),
    ]
    assert run_cli(args) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0] + line.split()[2]: line.split() for line in lines if " ~ " in line}
    # columns: a ~ b images agree agree+bg kappa naming quantity quality bF
    assert rows["cococvat"][3:7] == ["12", "1.000", "1.000", "1.000"]  # same pixel convention
    assert float(rows["cocolabelme"][4]) > 0.98
    assert rows["cocolabelme"][7:10] == ["0.0%", "0.0%", "100.0%"]  # boundaries only


def test_parts_have_their_own_plane() -> None:
    """A part (category forced by the format) never cuts a hole into its whole."""
    person = np.zeros((60, 40), dtype=bool)
    person[:, 5:35] = True
    face = np.ones((12, 10), dtype=bool)

    def ann(name: str, with_face: bool) -> ImageAnnotation:
        shapes = [Shape(label="person", kind="mask", mask=person, origin=(50, 50), order=0)]
        if with_face:
            shapes.append(
                Shape(
                    label="face", kind="mask", mask=face, origin=(60, 52), order=1, category="part"
                )
            )
        return ImageAnnotation(key="p.jpg", width=SIZE, height=SIZE, shapes=shapes, annotator=name)

    anns = [ann("a", True), ann("b", True), ann("c", False)]
    merged = consensus(anns, "majority")
    by = {s.label: s for s in merged.shapes}
    assert by["person"].mask is not None and int(by["person"].mask.sum()) == int(person.sum())
    assert by["face"].category == "part" and by["person"].category is None
    report = analyse({"p.jpg": anns[1:]})
    # b and c agree on the person; the face only b drew is 120 pixels of quantity error
    assert report.overall["disagree"] == 120
    assert report.overall["quantity_share"] == 1.0
    assert report.images[0].categories == "object;part"


def test_cli_image_twice_in_one_export(tmp_path, capsys) -> None:
    """The rule convert uses too (conceptkit.sources): refused, or with --keep-going the first
    annotation is kept and the repeat warned about."""
    alice, bob = write_exports(tmp_path, n_images=2)
    assert run_cli(["consistency", str(alice), str(bob)]) == 0
    before = capsys.readouterr().out
    (alice / "zz").mkdir()  # read after img0.json: the repeat
    doc = json.loads((alice / "img0.json").read_text())
    doc["imagePath"] = "../img0.jpg"
    doc["shapes"] = doc["shapes"][:1]
    (alice / "zz" / "img0.json").write_text(json.dumps(doc))
    assert run_cli(["consistency", str(alice), str(bob)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "image 'img0.jpg' is annotated twice in one export" in err and "--keep-going" in err
    assert run_cli(["consistency", str(alice), str(bob), "--keep-going"]) == 0
    captured = capsys.readouterr()
    assert "'img0.jpg' is annotated twice; the first is kept" in captured.err
    assert captured.out == before  # the first annotation, the full one, was compared


def test_report_csv_cells_never_run_as_formulas(tmp_path) -> None:
    truth = make_truth(1)[0]
    for s, name in zip(truth.shapes, ["=cmd", "-x", "+1", "@a", "-5", "car"]):
        s.label = name
    other = copy.deepcopy(truth)
    other.annotator = "=bob"
    analyse({truth.key: [truth, other]}, out_dir=tmp_path)
    concepts = (tmp_path / "consistency" / "concepts.csv").read_text().splitlines()
    names = sorted({line.split(",")[0] for line in concepts[1:]})
    assert names == ["'+1", "'-x", "'=cmd", "'@a", "-5", "car"]
    pairs = (tmp_path / "consistency" / "pairs.csv").read_text()
    assert "'=bob" in pairs and ",=bob" not in pairs
    data = json.loads((tmp_path / "consistency" / "consistency.json").read_text())
    assert "=bob" in data["annotators"]  # the JSON keeps the names as they are
