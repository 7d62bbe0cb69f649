"""`conceptkit summary`: text and JSON on reference-format folders; bad folders as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import error_line, run_hostile
from netdissect_folders import HAND_LAYER, write_lite_folder

from conceptkit.cli.summary import summary
from conceptkit.errors import LayoutError, UsageError

SMALL_LAYER = [
    {"object": ("car", 0.2), "part": ("wheel", 0.05)},
    {"part": ("door", 0.09)},
    {"texture": ("dotted", 0.01)},
]


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "result"
    places = write_lite_folder(
        root, "pytorch_resnet18_places365", {"layer3": SMALL_LAYER, "layer4": HAND_LAYER}
    )
    imagenet = write_lite_folder(root, "pytorch_resnet18_imagenet", {"layer4": SMALL_LAYER})
    return places, imagenet


def _invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(summary, args, catch_exceptions=True)


def test_text_names_every_count_per_run_and_layer(folders: tuple[Path, Path]) -> None:
    places, imagenet = folders
    res = _invoke([str(places), str(imagenet)])
    assert res.exit_code == 0, res.output
    blocks = res.output.strip().split("\n\n")
    assert len(blocks) == 3  # places layer3, places layer4, imagenet layer4
    head, cols, det, off, nai = blocks[1].splitlines()
    assert head == (
        f"resnet18_places365 layer4 (NetDissect-Lite result, {places}): 8 units, "
        "detector when IoU > 0.04"
    )
    assert cols.split() == ["total", "object", "part", "scene", "texture", "color"]
    assert det.split() == ["detector", "units", "4", "(50.0%)", "2", "1", "1", "0", "0"]
    assert off.split() == [
        "unique",
        "detectors,",
        "official",
        "5",
        "(62.5%)",
        "2",
        "2",
        "1",
        "0",
        "0",
    ]
    assert nai.split() == ["unique", "detectors,", "naive", "3", "(37.5%)", "1", "1", "1", "0", "0"]
    assert blocks[2].startswith("resnet18_imagenet layer4 ")


def test_json_layer_threshold_and_inclusive(folders: tuple[Path, Path]) -> None:
    places, _ = folders
    res = _invoke([str(places), "--layer", "layer4", "--json"])
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(res.output)
    assert (entry["run"], entry["network"], entry["dataset"]) == (
        "resnet18_places365",
        "resnet18",
        "places365",
    )
    assert (entry["format"], entry["layer"], entry["units"]) == ("netdissect-lite", "layer4", 8)
    assert (entry["iou_threshold"], entry["comparison"]) == (0.04, ">")
    assert entry["detectors"]["total"] == 4
    assert entry["unique_detectors"]["official"]["per_category"]["part"] == 2
    assert entry["unique_detectors"]["naive"]["total"] == 3
    inc = json.loads(_invoke([str(places), "--layer", "layer4", "--inclusive", "--json"]).output)[0]
    assert inc["comparison"] == ">=" and inc["detectors"]["total"] == 5
    assert inc["unique_detectors"]["official"]["total"] == 6
    high = json.loads(
        _invoke([str(places), "--layer", "layer4", "--iou-threshold", "0.06", "--json"]).output
    )[0]
    assert (high["iou_threshold"], high["detectors"]["total"]) == (0.06, 3)
    assert high["unique_detectors"]["official"]["total"] == 2


def test_errors_reach_the_cli_as_conceptkit_errors(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    places, _ = folders
    res = _invoke([str(places), "--layer", "conv5"])
    assert isinstance(res.exception, UsageError) and "no layer 'conv5'" in str(res.exception)
    res = _invoke([str(tmp_path / "nothing")])
    assert isinstance(res.exception, LayoutError) and "does not exist" in str(res.exception)
    assert _invoke([]).exit_code == 2  # RUN is required


def test_bad_tally_is_one_line_through_the_real_cli(folders: tuple[Path, Path]) -> None:
    places, _ = folders
    tally = places / "tally_layer4.csv"
    lines = tally.read_text().splitlines()
    lines[3] = lines[3].replace(",", ",,", 1)
    tally.write_text("\n".join(lines) + "\n")
    proc = run_hostile(
        ["summary", str(places)], places.parent, names=["tally_layer4.csv", "line 4"]
    )
    assert "cells, the header has 29" in error_line(proc)
    assert proc.stdout == ""  # nothing printed before the error


def test_unknown_layer_is_a_usage_error_through_the_real_cli(folders: tuple[Path, Path]) -> None:
    places, _ = folders
    proc = run_hostile(
        ["summary", str(places), "--layer", "conv5"], places.parent, code=2, names=["conv5"]
    )
    assert "layers: layer3, layer4" in error_line(proc)


def test_folder_without_results_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "ws" / "run").mkdir(parents=True)
    (tmp_path / "ws" / "run" / "notes.txt").write_text("hello\n")
    run_hostile(["summary", "run"], tmp_path / "ws", names=["run", "tally_<layer>.csv"])


def _garbage(run: Path) -> str:
    (run / "tally_layer4.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50)
    return "tally_layer4.csv"


def _fifo(run: Path) -> str:
    import os

    os.mkfifo(run / "tally_layer4.csv")
    return "tally_layer4.csv"


def _device(run: Path) -> str:
    (run / "tally_layer4.csv").symlink_to("/dev/zero")
    return "tally_layer4.csv"


def _long_field(run: Path) -> str:
    head = "unit,category,label,score," + ",".join(
        f"object-{f}" for f in ("label", "truth", "activation", "intersect", "iou")
    )
    (run / "tally_layer4.csv").write_text(head + "\n1,object," + "x" * 300_000 + ",0.1\n")
    return "tally_layer4.csv"


def _bad_results(run: Path) -> str:
    (run / "results.json").write_text('{"model": {}, "layers": [1, 2')
    return "results.json"


@pytest.mark.parametrize("make", [_garbage, _fifo, _device, _long_field, _bad_results])
def test_hostile_folders_are_one_line(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "ws" / "run"
    run.mkdir(parents=True)
    name = make(run)
    run_hostile(["summary", "run"], tmp_path / "ws", names=[name], timeout=60)
