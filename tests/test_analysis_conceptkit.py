"""conceptkit.analysis on a real conceptkit run: agrees with a hand count over the tally files
and with results.json's own detector and unique-detector numbers.

The run probes a random-init ResNet-18 on mini_broden; with random weights no unit reaches
IoU 0.04, so the run is made with ``--iou-threshold 0.01`` (46 of 512 detector units) to give
results.json non-zero counts to agree with.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, run_dissect_cli
from PIL import Image

from conceptkit.analysis import (
    concept_counts,
    detectors_per_category,
    load,
    summarize,
    unique_detectors,
    unit_strip,
    unit_strips,
)
from conceptkit.analysis.figures import unit_figure
from conceptkit.cli.summary import summary

CUT = 0.01


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckrun") / "run"
    proc = run_dissect_cli(
        [
            "--model",
            "torchvision:resnet18:none",
            "--data",
            str(FIXTURES / "mini_broden"),
            "--layer",
            "layer4",
            "-o",
            str(out),
            "--no-report",
            "--iou-threshold",
            str(CUT),
            "--workers",
            "0",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    return out


def _hand_counts(tally: pd.DataFrame, cut: float) -> dict[str, dict[str, int]]:
    """What a reader of the chapter writes by hand over tally_<layer>.csv."""
    cats = [c[: -len("-label")] for c in tally.columns if c.endswith("-label")]
    det = tally[tally["score"] > cut]
    per_cat = det["category"].value_counts()
    naive = det.groupby("category")["label"].nunique()
    return {
        "detectors": {c: int(per_cat.get(c, 0)) for c in cats},
        "naive": {c: int(naive.get(c, 0)) for c in cats},
        "official": {
            c: int(tally.loc[tally[f"{c}-iou"] > cut, f"{c}-label"].nunique()) for c in cats
        },
    }


@pytest.mark.slow
def test_conceptkit_run_is_read_and_named(run_dir: Path) -> None:
    run = load(run_dir)
    assert run.format == "conceptkit"
    assert (run.network, run.dataset) == ("resnet18", "random")  # torchvision:resnet18:none
    assert run.iou_threshold == CUT  # the run's own cut, from results.json
    assert [lay.name for lay in run.layers] == ["layer4"]
    assert run.layers[0].units == 512
    assert run.layers[0].categories == ["part", "scene", "object", "color", "texture"]


@pytest.mark.slow
def test_agrees_with_results_json_and_a_hand_count(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())["layers"]["layer4"]
    tally = pd.read_csv(run_dir / "tally_layer4.csv")
    hand = _hand_counts(tally, CUT)
    s = summarize(load(run_dir))
    assert s.iou_threshold == CUT
    assert s.detectors == hand["detectors"]
    assert s.naive == hand["naive"]
    assert s.official == hand["official"]
    # results.json, computed by the dissection from the IoU matrices
    assert sum(s.detectors.values()) == results["detectors"] == 46
    for definition, mine in (("official", s.official), ("naive", s.naive)):
        theirs = results["unique_detectors"][definition]
        assert mine == theirs["per_category"], definition
        assert sum(mine.values()) == theirs["total"]
    # the three definitions differ on this run
    assert len({sum(s.detectors.values()), sum(s.official.values()), sum(s.naive.values())}) == 3


@pytest.mark.slow
@pytest.mark.parametrize("cut", [0.005, 0.015, 0.02])
def test_other_cuts_agree_with_a_hand_count(run_dir: Path, cut: float) -> None:
    tally = pd.read_csv(run_dir / "tally_layer4.csv")
    hand = _hand_counts(tally, cut)
    run = load(run_dir)
    s = summarize(run, iou_threshold=cut)
    assert (s.detectors, s.official, s.naive) == (
        hand["detectors"],
        hand["official"],
        hand["naive"],
    )
    row = unique_detectors([run], iou_threshold=cut).iloc[0]
    assert row["num_ud"] == sum(hand["official"].values())
    assert row["num_ud_pc"] == pytest.approx(100 * row["num_ud"] / 512)
    per = detectors_per_category([run], iou_threshold=cut).set_index("category")["num_detectors"]
    assert dict(per) == hand["detectors"]


@pytest.mark.slow
def test_units_and_concepts_match_results_json(run_dir: Path) -> None:
    detail = json.loads((run_dir / "results.json").read_text())["layers"]["layer4"]["units_detail"]
    run = load(run_dir)
    strips = unit_strips(run)
    assert list(strips["unit"]) == [d["unit"] + 1 for d in detail]  # results.json is 0-based
    assert list(strips["label"]) == [d["label"] for d in detail]
    assert list(strips["category"]) == [d["category"] for d in detail]
    assert list(strips["iou"]) == [d["iou"] for d in detail]
    assert set(strips["image"]) == {""}  # --no-report: no strips
    cc = concept_counts(run)
    expected = pd.Series([d["label"] for d in detail if d["iou"] > CUT]).value_counts()
    assert dict(zip(cc["label"], cc["unit"])) == dict(expected)


@pytest.mark.slow
def test_summary_json_of_the_run(run_dir: Path) -> None:
    res = CliRunner().invoke(summary, [str(run_dir), "--json"])
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(res.output)
    results = json.loads((run_dir / "results.json").read_text())["layers"]["layer4"]
    assert entry["run"] == "resnet18_random" and entry["format"] == "conceptkit"
    assert entry["detectors"]["total"] == results["detectors"]
    assert entry["unique_detectors"] == results["unique_detectors"]


@pytest.mark.slow
def test_strips_of_the_conceptkit_report_are_found(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    proc = subprocess.run(
        [sys.executable, "-m", "conceptkit", "report", str(copy), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    detail = json.loads((copy / "results.json").read_text())["layers"]["layer4"]["units_detail"]
    strip = unit_strip(load(copy), "layer4", 1)  # 1-based unit 1 = results.json's unit 0
    assert strip.image == copy / "html" / "image" / "layer4-0000.jpg" and strip.has_image
    fig, values = unit_figure(strip)
    label, category, iou = detail[0]["label"], detail[0]["category"], detail[0]["iou"]
    assert (
        fig.axes[0].get_title() == f"Unit 1, Label: {label}, Category: {category}, IoU: {iou:.2f}"
    )
    pixels = np.asarray(Image.open(strip.image).convert("RGB"))
    assert np.array_equal(np.asarray(fig.axes[0].images[0].get_array()), pixels)
    assert all(unit_strips(load(copy))["image"] != "")
