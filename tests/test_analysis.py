"""conceptkit.analysis on reference-format folders: reading, the three counts, the DataFrames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from netdissect_folders import (
    HAND_LAYER,
    LITE_CATEGORIES,
    NETDISSECT_CATEGORIES,
    write_lite_folder,
    write_tally,
)

from conceptkit.analysis import (
    concept_counts,
    detectors_per_category,
    load,
    read_tally,
    summarize,
    unique_detectors,
    unit_strip,
    unit_strips,
)
from conceptkit.analysis.runs import split_name
from conceptkit.errors import LayoutError, UsageError

# a second, smaller layer: 3 units
#   detectors: 1 (object car), 2 (part door); naive 2; official object {car}, part {door, wheel}
SMALL_LAYER = [
    {"object": ("car", 0.2), "part": ("wheel", 0.05)},
    {"part": ("door", 0.09)},
    {"texture": ("dotted", 0.01)},
]


@pytest.fixture
def places(tmp_path: Path) -> Path:
    return write_lite_folder(
        tmp_path / "result",
        "pytorch_resnet18_places365",
        {"layer4": HAND_LAYER, "layer3": SMALL_LAYER},
        strips=[1, 2, 5],
    )


@pytest.fixture
def imagenet(tmp_path: Path) -> Path:
    return write_lite_folder(
        tmp_path / "result", "pytorch_resnet18_imagenet", {"layer4": SMALL_LAYER}
    )


# ------------------------------------------------------------------------ reading


def test_tally_is_read_as_the_reference_wrote_it(places: Path) -> None:
    raw = (places / "tally_layer4.csv").read_bytes()
    assert raw.count(b"\r\n") == len(HAND_LAYER) + 1  # header + one CRLF row per unit
    assert b",1000.0," in raw  # float64 counts, as str() writes them
    cats, df = read_tally(places / "tally_layer4.csv")
    assert cats == list(LITE_CATEGORIES)
    assert list(df["unit"]) == list(range(1, 9))  # sorted by unit, 1-based
    assert list(df.columns[:4]) == ["unit", "category", "label", "score"]
    assert df["unit"].dtype == "int64" and df["score"].dtype == "float64"
    first = df.iloc[0]
    assert (first["category"], first["label"], first["score"]) == ("object", "car", 0.10)
    assert (first["part-label"], first["part-iou"]) == ("wheel", 0.06)
    # unit 8 has no overlap anywhere: the reference's label '-', IoU 0, last category on ties
    last = df.iloc[7]
    assert (last["category"], last["label"], last["score"]) == ("color", "-", 0.0)


def test_netdissect_lite_folder_is_recognised_and_named(places: Path) -> None:
    run = load(places)
    assert run.format == "netdissect-lite"
    assert (run.network, run.dataset, run.name) == ("resnet18", "places365", "resnet18_places365")
    assert [lay.name for lay in run.layers] == ["layer3", "layer4"]  # natural order
    assert [lay.units for lay in run.layers] == [3, 8]
    assert run.iou_threshold == 0.04
    assert load(places, name="resnet18_mine").name == "resnet18_mine"


def test_single_tally_csv_takes_the_layer_from_its_html_page(tmp_path: Path) -> None:
    out = write_lite_folder(
        tmp_path, "pytorch_alexnet_imagenet", {"conv5": HAND_LAYER}, single_tally=True
    )
    assert (out / "tally.csv").is_file() and not list(out.glob("tally_*.csv"))
    run = load(out)
    assert [lay.name for lay in run.layers] == ["conv5"]
    assert summarize(run).detectors["object"] == 2


def test_single_tally_csv_with_several_pages_is_called_tally(tmp_path: Path) -> None:
    out = write_lite_folder(
        tmp_path, "pytorch_resnet18_places365", {"layer3": HAND_LAYER}, single_tally=True
    )
    (out / "html" / "layer4.html").write_text("<!doctype html>\n")
    # NetDissect-Lite writes tally.csv for the first layer and reuses it: which one is unknown
    assert [lay.name for lay in load(out).layers] == ["tally"]


def test_netdissect_result_csv_in_another_category_order_counts_the_same(tmp_path: Path) -> None:
    lite = load(write_lite_folder(tmp_path, "pytorch_resnet18_places365", {"layer4": HAND_LAYER}))
    old = write_lite_folder(
        tmp_path / "nd",
        "resnet18_places365",
        {"layer4": HAND_LAYER},
        categories=NETDISSECT_CATEGORIES,
        flavour="netdissect",
    )
    text = (old / "layer4-result.csv").read_text()
    assert text.startswith("unit,category,label,score,color-label,color-truth")
    assert ",1000,1000.0," in text  # integer truth, float activation
    run = load(old)
    assert run.format == "netdissect" and run.name == "resnet18_places365"
    assert run.layers[0].categories == list(NETDISSECT_CATEGORIES)
    a, b = summarize(lite), summarize(run)
    for field in ("detectors", "official", "naive"):
        assert getattr(a, field) == getattr(b, field)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pytorch_resnet18_places365", ("resnet18", "places365")),
        ("pytorch_wide_resnet50_2_imagenet", ("wide_resnet50_2", "imagenet")),
        ("caffe_reference_places205", ("caffe_reference", "places205")),
        ("pytorch_resnet18_places365_test", ("resnet18", "places365")),
        ("vgg16", ("vgg16", "")),
    ],
)
def test_split_name(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


# ------------------------------------------------------------------------ the three counts


def test_hand_counted_layer_the_three_definitions_differ(places: Path) -> None:
    s = summarize(load(places), "layer4")
    zero = dict.fromkeys(LITE_CATEGORIES, 0)
    assert s.units == 8 and s.comparison == ">" and s.iou_threshold == 0.04
    assert s.detectors == {**zero, "object": 2, "part": 1, "scene": 1}
    assert s.naive == {**zero, "object": 1, "part": 1, "scene": 1}
    assert s.official == {**zero, "object": 2, "part": 2, "scene": 1}
    js = s.to_json()
    assert js["detectors"]["total"] == 4
    assert js["unique_detectors"]["naive"]["total"] == 3
    assert js["unique_detectors"]["official"]["total"] == 5


def test_inclusive_cut_admits_the_unit_exactly_at_it(places: Path) -> None:
    s = summarize(load(places), "layer4", inclusive=True)
    assert s.comparison == ">="
    assert sum(s.detectors.values()) == 5 and s.detectors["color"] == 1
    assert sum(s.naive.values()) == 4
    assert sum(s.official.values()) == 6
    # 0.0399 stays out either way
    assert summarize(load(places), "layer4", iou_threshold=0.0399).detectors["object"] == 2
    assert (
        summarize(load(places), "layer4", iou_threshold=0.0399, inclusive=True).detectors["object"]
        == 3
    )


def test_a_higher_cut(places: Path) -> None:
    s = summarize(load(places), "layer4", iou_threshold=0.06)
    # detectors: units 1, 2 (object car 0.10, 0.08) and 3 (part wheel 0.07)
    assert (s.detectors["object"], s.detectors["part"], sum(s.detectors.values())) == (2, 1, 3)
    # official: object {car}; part: wheel 0.06 of unit 1 is not > 0.06, wheel 0.07 of unit 3 is
    assert (s.official["object"], s.official["part"], sum(s.official.values())) == (1, 1, 2)
    assert sum(s.naive.values()) == 2


def test_bad_cut_and_missing_layer_are_usage_errors(places: Path) -> None:
    run = load(places)
    with pytest.raises(UsageError, match="in \\[0, 1\\)"):
        summarize(run, "layer4", iou_threshold=1.5)
    with pytest.raises(UsageError, match="no layer 'conv5'.*layer3, layer4"):
        summarize(run, "conv5")
    with pytest.raises(UsageError, match="several layers"):
        summarize(run)


# ------------------------------------------------------------------------ DataFrames


def test_unique_detectors_frame_in_the_chapters_shape(places: Path, imagenet: Path) -> None:
    df = unique_detectors([load(places), load(imagenet)])
    cols = ["network_name", "dataset", "layer", "num_units"]
    for c in LITE_CATEGORIES:
        cols += [f"num_ud_{c}", f"num_ud_{c}_pc"]
    assert list(df.columns) == cols + ["num_ud", "num_ud_pc"]
    assert list(zip(df["dataset"], df["layer"])) == [
        ("places365", "layer3"),
        ("places365", "layer4"),
        ("imagenet", "layer4"),
    ]
    assert list(df["network_name"]) == ["resnet18"] * 3
    assert list(df["num_units"]) == [3, 8, 3]
    assert list(df["num_ud"]) == [3, 5, 3]  # official: {car}+{door, wheel}; hand layer 5
    assert list(df["num_ud_part"]) == [2, 2, 2]
    assert df.loc[1, "num_ud_pc"] == pytest.approx(62.5)
    assert df.loc[0, "num_ud_part_pc"] == pytest.approx(200 / 3)
    naive = unique_detectors([load(places)], layers=["layer4"], definition="naive")
    assert len(naive) == 1 and naive.loc[0, "num_ud"] == 3 and naive.loc[0, "num_ud_pc"] == 37.5
    with pytest.raises(UsageError, match="official or naive"):
        unique_detectors([load(places)], definition="strict")


def test_unique_detectors_equals_a_plain_pandas_count(places: Path) -> None:
    """What a reader does by hand over the tally, both definitions."""
    tally = pd.read_csv(places / "tally_layer4.csv")
    det = tally[tally["score"] > 0.04]
    naive = det.groupby("category")["label"].nunique()
    official = {
        c: tally.loc[tally[f"{c}-iou"] > 0.04, f"{c}-label"].nunique() for c in LITE_CATEGORIES
    }
    for definition, expected in (("naive", naive), ("official", official)):
        row = unique_detectors([load(places)], layers=["layer4"], definition=definition).iloc[0]
        for c in LITE_CATEGORIES:
            assert row[f"num_ud_{c}"] == expected.get(c, 0), (definition, c)


def test_detectors_per_category_frame(places: Path) -> None:
    df = detectors_per_category([load(places)])
    assert list(df.columns) == [
        "network_name",
        "dataset",
        "layer",
        "num_units",
        "category",
        "num_detectors",
        "pc",
    ]
    l4 = df[df["layer"] == "layer4"].set_index("category")
    assert dict(l4["num_detectors"]) == {
        "object": 2,
        "part": 1,
        "scene": 1,
        "texture": 0,
        "color": 0,
    }
    assert l4.loc["object", "pc"] == 25.0
    assert list(df["layer"].drop_duplicates()) == ["layer3", "layer4"]


def test_concept_counts(places: Path) -> None:
    df = concept_counts(load(places), "layer4")
    assert list(df.columns) == ["category", "label", "unit"]
    assert [tuple(r) for r in df.itertuples(index=False)] == [
        ("object", "car", 2),
        ("part", "wheel", 1),
        ("scene", "street", 1),
    ]
    part = concept_counts(load(places), "layer4", category="part")
    assert [tuple(r) for r in part.itertuples(index=False)] == [("part", "wheel", 1)]
    none = concept_counts(load(places), "layer4", category="texture")
    assert none.empty and list(none.columns) == ["category", "label", "unit"]
    with pytest.raises(UsageError, match="no category 'material'"):
        concept_counts(load(places), "layer4", category="material")


# ------------------------------------------------------------------------ units and strips


def test_unit_strip_with_and_without_strips(places: Path, imagenet: Path) -> None:
    run = load(places)
    s = unit_strip(run, "layer4", 1)
    assert (s.unit, s.category, s.label, s.iou) == (1, "object", "car", 0.10)
    assert s.image == places / "html" / "image" / "layer4-0000.jpg" and s.has_image
    df = unit_strips(run, "layer4")
    assert list(df.columns) == ["unit", "category", "label", "iou", "image"]
    assert list(df["unit"]) == list(range(1, 9))
    with_image = [int(u) for u, im in zip(df["unit"], df["image"]) if im]
    assert with_image == [1, 2, 5]
    assert df.loc[4, "image"].endswith("layer4-0004.jpg") and df.loc[4, "label"] == "red"
    picked = unit_strips(load(imagenet), units=[2, 1])
    assert list(picked["unit"]) == [2, 1] and list(picked["image"]) == ["", ""]
    with pytest.raises(UsageError, match="no unit 9 .*1-based"):
        unit_strip(run, "layer4", 9)


# ------------------------------------------------------------------------ bad folders


def _tally_text(tmp_path: Path) -> tuple[Path, list[str]]:
    path = write_tally(tmp_path / "tally_layer4.csv", HAND_LAYER, LITE_CATEGORIES)
    return path, path.read_text().splitlines()


@pytest.mark.parametrize(
    ("edit", "place", "message"),
    [
        (lambda ls: ["unit,label,category,score" + ls[0][25:]] + ls[1:], "line 1", "header starts"),
        (lambda ls: [ls[0] + ",extra"] + ls[1:], "line 1", "5 per category"),
        (
            lambda ls: [ls[0].replace("part-truth", "part-truths")] + ls[1:],
            "line 1",
            "columns 10-14",
        ),
        (lambda ls: ls[:2] + [ls[2] + ",9"] + ls[3:], "line 3", "cells, the header has"),
        (lambda ls: ls[:3] + ["x" + ls[3]] + ls[4:], "line 4, column unit", "not a whole number"),
        (lambda ls: ls[:1] + ["0" + ls[1][1:]] + ls[2:], "line 2, column unit", "1-based"),
        (lambda ls: ls + [ls[1]], "line 10, column unit", "again (first on line 2)"),
        (
            lambda ls: ls[:1] + [ls[1].replace(",object,", ",animal,", 1)] + ls[2:],
            "line 2, column category",
            "not one of",
        ),
        (
            lambda ls: ls[:1] + [ls[1].replace("0.1,", "zero,", 1)] + ls[2:],
            "line 2, column score",
            "not a number",
        ),
        (
            lambda ls: ls[:1] + [ls[1].replace("0.06", "nan")] + ls[2:],
            "line 2, column part-iou",
            "NaN",
        ),
        (
            lambda ls: ls[:1] + [ls[1].replace("0.06", "1.5")] + ls[2:],
            "line 2, column part-iou",
            "outside [0, 1]",
        ),
        (
            lambda ls: ls[:1] + [ls[1].replace("0.1,", "0.2,", 1)] + ls[2:],
            "line 2, column score",
            "differs from object-iou 0.1",
        ),
        (lambda ls: ls[:1], "line 2", "no unit rows"),
        (lambda ls: [], "line 1", "is empty"),
    ],
)
def test_bad_tally_names_file_and_place(tmp_path: Path, edit, place: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path, lines = _tally_text(tmp_path)
    path.write_text("\n".join(edit(lines)) + ("\n" if edit(lines) else ""), encoding="utf-8")
    with pytest.raises(LayoutError) as err:
        load(tmp_path)
    text = str(err.value)
    assert text.startswith(f"{path}: {place}: "), text
    assert message in text


def test_not_utf8_and_not_a_folder(tmp_path: Path) -> None:
    path, _ = _tally_text(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"car", b"c\xffr"))
    with pytest.raises(LayoutError, match="is not UTF-8"):
        load(tmp_path)
    with pytest.raises(LayoutError, match="does not exist"):
        load(tmp_path / "missing")
    with pytest.raises(LayoutError, match="is not a folder"):
        load(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match="holds no results.json"):
        load(empty)


def test_parent_of_result_folders_says_which_to_pass(places: Path, imagenet: Path) -> None:
    with pytest.raises(
        LayoutError, match="inside it: pytorch_resnet18_imagenet, pytorch_resnet18_places365"
    ):
        load(places.parent)


def test_zero_iou_never_passes_even_inclusive_at_zero(places: Path) -> None:
    s = summarize(load(places), "layer4", iou_threshold=0.0, inclusive=True)
    assert sum(s.detectors.values()) == 7  # unit 8 has IoU 0 everywhere
    assert s.official["color"] == 1  # red (0.02, 0.04); unit 8's '-' is not a label


def test_overlong_field_is_a_layout_error(tmp_path: Path) -> None:
    path, lines = _tally_text(tmp_path)
    lines[2] = lines[2].replace("car", "c" * 200_000, 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LayoutError, match="tally_layer4.csv: is not a readable CSV .*field larger"):
        load(tmp_path)


def test_netdissect_lite_reference_output_reads(golden_dir: Path) -> None:
    """NetDissect-Lite's own tally files (random ResNet-18 on mini_broden), read in place."""
    run = load(golden_dir)
    assert run.format == "netdissect-lite"
    assert [(lay.name, lay.units) for lay in run.layers] == [("layer3", 256), ("layer4", 512)]
    for lay in run.layers:
        tally = pd.read_csv(lay.file)
        assert lay.categories == ["part", "scene", "object", "color", "texture"]
        # the reference writes label 0 (no overlap) as an empty name: keep it a string
        as_text = pd.read_csv(lay.file, keep_default_na=False)
        pd.testing.assert_frame_equal(
            lay.tally, as_text.sort_values("unit").reset_index(drop=True), check_dtype=False
        )
        for cut in (0.01, 0.02):
            s = summarize(run, lay.name, iou_threshold=cut)
            det = tally[tally["score"] > cut]
            assert sum(s.detectors.values()) == len(det)
            assert s.naive == {
                c: det.loc[det["category"] == c, "label"].nunique() for c in lay.categories
            }
            assert s.official == {
                c: tally.loc[tally[f"{c}-iou"] > cut, f"{c}-label"].nunique()
                for c in lay.categories
            }
    assert sum(summarize(run, "layer3", iou_threshold=0.01).detectors.values()) == 53


# ------------------------------------------------------------------------ conceptkit runs (fast)


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic_run import make_broden

    return make_broden(tmp_path_factory.mktemp("syn") / "data")


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("torchvision:resnet18", "resnet18_imagenet"),
        ("torchvision:resnet50:IMAGENET1K_V2", "resnet50_imagenet"),
        ("torchvision:resnet18:none", "resnet18_random"),
        ("/models/resnet18_places365.pth.tar", "resnet18_places365"),
        ("synthetic", "synthetic"),
    ],
)
def test_conceptkit_run_named_from_results_json(
    synthetic_data: Path, tmp_path: Path, spec: str, name: str
) -> None:
    from synthetic_run import make_result

    result = make_result(synthetic_data, {"layer4": (16, 2)})
    result.model["spec"] = spec
    run = load(result.save(tmp_path / "out"))
    assert run.format == "conceptkit" and run.name == name


def test_conceptkit_run_agrees_with_its_own_summary(synthetic_data: Path, tmp_path: Path) -> None:
    """DissectResult.summary (from the IoU matrices) and the analysis (from the tallies)."""
    from synthetic_run import make_result

    result = make_result(synthetic_data, {"layer4": (16, 2), "layer3": (12, 4)})
    run = load(result.save(tmp_path / "out"))
    assert [lay.name for lay in run.layers] == ["layer4", "layer3"]  # the --layer order
    for layer in ("layer4", "layer3"):
        mine, theirs = summarize(run, layer), result.summary(layer)
        assert sum(mine.detectors.values()) == theirs["detectors"]
        for definition in ("official", "naive"):
            per = theirs["unique_detectors"][definition]["per_category"]
            assert getattr(mine, definition) == per, (layer, definition)
    # layer4 of this seed: 8 detectors, 8 official, 5 naive; layer3: 9, 11, 9
    s = summarize(run, "layer3")
    assert (sum(s.detectors.values()), sum(s.official.values()), sum(s.naive.values())) == (
        9,
        11,
        9,
    )


def test_conceptkit_run_missing_or_short_tally(synthetic_data: Path, tmp_path: Path) -> None:
    from synthetic_run import make_result

    out = make_result(synthetic_data, {"layer4": (16, 2)}).save(tmp_path / "out")
    tally = out / "tally_layer4.csv"
    lines = tally.read_text().splitlines(keepends=True)
    tally.write_text("".join(lines[:-1]))
    with pytest.raises(
        LayoutError, match="tally_layer4.csv: layer layer4: has 15 units, results.json says 16"
    ):
        load(out)
    tally.unlink()
    with pytest.raises(LayoutError, match="tally_layer4.csv: file is missing"):
        load(out)


def test_tally_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tally_layer4.csv").mkdir()
    with pytest.raises(LayoutError, match="tally_layer4.csv: is not a regular file"):
        load(tmp_path / "run")


def test_results_json_naming_a_tally_outside_the_run(synthetic_data: Path, tmp_path: Path) -> None:
    import json

    from synthetic_run import make_result

    out = make_result(synthetic_data, {"layer4": (16, 2)}).save(tmp_path / "out")
    outside = write_tally(tmp_path / "elsewhere.csv", HAND_LAYER, LITE_CATEGORIES)
    results = json.loads((out / "results.json").read_text())
    results["layers"]["layer4"]["files"]["tally"] = f"../{outside.name}"
    (out / "results.json").write_text(json.dumps(results))
    with pytest.raises(
        LayoutError, match=r"results.json: \$.layers.layer4.files.tally: .*inside the run folder"
    ):
        load(out)


def test_strip_names_follow_each_writer(places: Path, synthetic_data: Path, tmp_path: Path) -> None:
    from synthetic_run import make_result

    lite = load(places)
    # the reference's fn_safe: runs of - / # ? * ! and spaces become one '-'
    assert lite.strip_file("conv 5/x", 3) == places / "html" / "image" / "conv-5-x-0002.jpg"
    assert lite.strip_file("features.14", 1).name == "features.14-0000.jpg"
    ck = load(make_result(synthetic_data, {"layer4": (16, 2)}).save(tmp_path / "out"))
    assert ck.strip_file("conv 5/x", 3).name == "conv_5_x-0002.jpg"  # conceptkit's safe_name
