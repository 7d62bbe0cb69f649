"""`conceptkit explain` on a real (small) dissection: a length-1 search reproduces the
dissection's label and IoU for every unit, the CLI writes parseable, deterministic files, and
the beam's shortfall against the exhaustive search is measured on 20 units."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, broden_slice, run_dissect_cli

from conceptkit import artefacts
from conceptkit.artefacts import read_rows
from conceptkit.cli.explain import explain as explain_cmd
from conceptkit.errors import LayoutError, UsageError
from conceptkit.explain import ExplainSettings, explain, parse, save

IMAGES = 80


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-18 (random init, seed 0) layer4 dissected on the first 80 mini_broden images."""
    tmp = tmp_path_factory.mktemp("explain")
    data = broden_slice(FIXTURES / "mini_broden", tmp / "data", IMAGES)
    out = tmp / "run"
    args = ["--model", "torchvision:resnet18:none", "--data", str(data), "--layer", "layer4"]
    args += ["-o", str(out), "--no-report", "--device", "cpu", "--checkpoint-every", "0"]
    proc = run_dissect_cli(args)
    assert proc.returncode == 0, proc.stderr
    return out


def test_length_one_reproduces_the_dissection(run_dir: Path, tmp_path: Path) -> None:
    ex = explain(run_dir, ExplainSettings(max_length=1, workers=2))
    units = ex.layers["layer4"].units
    detail = json.loads((run_dir / "results.json").read_text())["layers"]["layer4"]
    assert len(units) == 512 == len(detail["units_detail"])
    for u, d in zip(units, detail["units_detail"], strict=True):
        assert u.unit == d["unit"]
        assert (ex.names[u.label1] if u.label1 >= 0 else "") == d["label"]
        assert u.iou1 == d["iou"]  # bit-exact: same counts, same expression
        assert u.iou == u.iou1 and (u.formula is None or len(u.formula) == 1)
    with open(run_dir / "tally_layer4.csv", newline="") as fh:
        tally = {int(r["unit"]) - 1: r for r in csv.DictReader(fh)}
    for u in units:
        assert tally[u.unit]["label"] == (ex.names[u.label1] if u.label1 >= 0 else "")
        assert float(tally[u.unit]["score"]) == u.iou1
    assert sum(1 for u in units if u.iou1 > 0) > 400  # a real test: most units have a label
    assert ex.duplicates == 0


def test_cli_files_exhaustive_and_round_trip(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    units = ",".join(str(u) for u in range(20))
    args = [str(run_dir), "-o", str(out), "--units", units, "--exhaustive", "--workers", "2"]
    res = CliRunner().invoke(explain_cmd, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "beam shortfall" in res.output
    rows = read_rows(out / "explain_layer4.csv")
    assert [int(r["unit"]) for r in rows] == list(range(20))
    names = [lab.name for lab in _labels()]
    numbers = [str(lab.number) for lab in _labels()]
    longer = 0
    for r in rows:
        assert float(r["iou"]) >= float(r["label_iou"]) > 0
        assert float(r["iou_len1"]) == float(r["label_iou"])
        assert float(r["iou_len1"]) <= float(r["iou_len2"]) <= float(r["iou_len3"])
        assert float(r["iou_len3"]) == float(r["iou"])
        f = parse(r["formula"], names)  # names and numbers name the same formula
        assert len(f) == int(r["length"])
        assert parse(r["labels"], numbers).leaves() == f.leaves()
        longer += int(r["length"]) > 1
    assert longer >= 10  # compounds beat single concepts for most units
    # what the report reads back is what was written (the shared names and columns)
    assert list(rows[0]) == artefacts.explain_columns(3)
    formulas = artefacts.read_formulas(out / artefacts.explain_csv("layer4"), 20)
    assert formulas == {int(r["unit"]): (r["formula"], float(r["iou"])) for r in rows}
    ex_rows = read_rows(out / "exhaustive_layer4.csv")
    assert tuple(ex_rows[0]) == artefacts.EXHAUSTIVE_COLUMNS
    assert sorted(p.name for p in out.iterdir()) == sorted(
        artefacts.explain_names(["layer4"], True)
    )
    short = [float(r["shortfall"]) for r in ex_rows]
    assert len(short) == 20 and min(short) >= -1e-12
    for r, b in zip(ex_rows, rows, strict=True):
        assert r["beam_formula"] == b["formula"] and float(r["beam_iou"]) == float(b["iou"])
        assert float(r["exhaustive_iou"]) >= float(r["beam_iou"]) - 1e-12
    summary = json.loads((out / "explain.json").read_text())
    assert summary["layers"]["layer4"]["units"] == 20
    assert summary["settings"]["union"] == "category"
    png = (out / "explain_gain.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # existing files are not replaced without --force
    again = CliRunner().invoke(explain_cmd, args)
    assert isinstance(again.exception, UsageError) and "--force" in str(again.exception)


def _labels():  # type: ignore[no-untyped-def]
    """The searchable concepts in the search's order (category, number)."""
    from conceptkit.broden import read_meta

    meta = read_meta(FIXTURES / "mini_broden")
    cats = meta.category_names
    primary = meta.primary_category()
    by_num = {lab.number: lab for lab in meta.labels}
    return [by_num[n] for _, n in sorted((cats.index(c), n) for n, c in primary.items() if n)]


def test_outputs_are_deterministic(run_dir: Path, tmp_path: Path) -> None:
    ex = explain(run_dir, ExplainSettings(max_length=2, units=[3, 1, 7], workers=1))
    assert [u.unit for u in ex.layers["layer4"].units] == [1, 3, 7]
    a = save(ex, tmp_path / "a")
    b = save(ex, tmp_path / "b")
    for pa, pb in zip(a, b, strict=True):
        assert pa.name == pb.name and pa.read_bytes() == pb.read_bytes(), pa.name
    assert not list((tmp_path / "a").glob(".*tmp"))


def test_one_or_several_workers_agree(run_dir: Path) -> None:
    """The same answers (formulas, IoUs) from 1 and 3 processes, from the same features."""
    from conceptkit.dissection.models import load_model
    from conceptkit.explain import run as R

    info = R.read_run(run_dir)
    numbers, cats, _, _, nlab = R.concept_table(info.data)
    cm = R.build_concept_masks(
        R._label_items(info.data, 0), info.images, info.seg_size, numbers, cats, nlab
    )
    opts = ExplainSettings(max_length=3, units=list(range(0, 512, 37)))
    store = R.compute_features(load_model(info.model_spec).module, info, ["layer4"], opts, print)
    feats, thr = store["layer4"].array, R.thresholds(info, "layer4")
    one = R.explain_layer(cm, feats, thr, "category", opts)
    opts.workers = 3
    many = R.explain_layer(cm, feats, thr, "category", opts)
    store["layer4"].close()
    assert [(u.unit, u.formula, u.iou, u.best_by_length) for u in one] == [
        (u.unit, u.formula, u.iou, u.best_by_length) for u in many
    ]
    assert len(one) == 14


def test_bad_inputs(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="results.json is missing"):
        explain(tmp_path)
    with pytest.raises(UsageError, match="was not dissected"):
        explain(run_dir, layers=["layer3"])
    with pytest.raises(UsageError, match="units 0..511"):
        explain(run_dir, ExplainSettings(units=[512]))
    with pytest.raises(UsageError, match="--beam"):
        explain(run_dir, ExplainSettings(beam=0))
    res = CliRunner().invoke(explain_cmd, [str(run_dir), "--exhaustive"])
    assert isinstance(res.exception, UsageError) and "--units" in str(res.exception)
    res = CliRunner().invoke(explain_cmd, [str(run_dir), "--units", "1,x"])
    assert isinstance(res.exception, UsageError)
