"""The dissection run against NetDissect-Lite's golden outputs, and its invariances."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conceptkit.dissection.preprocess import get_preprocess
from conceptkit.dissection.results import DissectResult
from conceptkit.dissection.run import dissect

torchvision = pytest.importorskip("torchvision")

LAYERS = ["layer3", "layer4"]
CATS = ["part", "scene", "object", "color", "texture"]


def seeded_resnet18() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=1000)


@functools.cache
def _run(
    data: str,
    golden: str | None,
    layers: tuple[str, ...] = tuple(LAYERS),
    channels_last: str = "auto",
    fold_bn: str = "auto",
) -> DissectResult:
    return dissect(
        seeded_resnet18(),
        data,
        list(layers),
        preprocess="netdissect",
        thresholds=golden,
        batch_size=100,
        workers=0,
        device="cpu",
        channels_last=channels_last,
        fold_bn=fold_bn,
    )


def golden_run(mini_broden: Path, golden_dir: Path, fast: bool = False) -> DissectResult:
    """NetDissect-Lite's thresholds; its forward (plain layout, batch norms run) unless
    ``fast``: the default forward (channels-last, batch norms folded)."""
    mode = "auto" if fast else "off"
    return _run(str(mini_broden), str(golden_dir), channels_last=mode, fold_bn=mode)


def own_run(mini_broden: Path) -> DissectResult:
    return _run(str(mini_broden), None)


def _by_unit(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index("unit").sort_index()


def _golden(golden_dir: Path, layer: str) -> pd.DataFrame:
    return _by_unit(pd.read_csv(golden_dir / f"tally_{layer}.csv", keep_default_na=False))


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_golden_tally_matches_netdissect_lite(mini_broden, golden_dir, layer):
    res = golden_run(mini_broden, golden_dir)
    gold = _golden(golden_dir, layer)
    ours = _by_unit(pd.DataFrame(res.tally_rows(layer)))
    assert len(ours) == len(gold) == res.layers[layer].units
    assert (ours["label"] == gold["label"]).all()
    assert (ours["category"] == gold["category"]).all()
    np.testing.assert_allclose(ours["score"], gold["score"], rtol=0, atol=1e-5)
    off_units = np.zeros(len(gold), dtype=bool)
    for cat in CATS:
        assert (ours[f"{cat}-label"] == gold[f"{cat}-label"]).all(), cat
        np.testing.assert_allclose(ours[f"{cat}-iou"], gold[f"{cat}-iou"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(ours[f"{cat}-truth"], gold[f"{cat}-truth"])
        for f in ("activation", "intersect"):
            diff = (ours[f"{cat}-{f}"] - gold[f"{cat}-{f}"]).abs().to_numpy()
            # a pixel exactly at the threshold may flip with the reference's float rounding
            assert diff.max() <= 1, (cat, f)
            off_units |= diff > 0
    assert off_units.mean() <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_default_forward_stays_close_to_netdissect_lite(mini_broden, golden_dir, layer):
    """The default forward (channels-last, batch norms folded) sums and rounds in another
    order: a few pixels at a unit's threshold flip, so counts may move: every unit's label
    stays, IoUs within 2e-5 (a category's own label may swap between two near-equal IoUs)."""
    res = golden_run(mini_broden, golden_dir, fast=True)
    assert res.settings["channels_last"] is True
    assert len(res.settings["fold_bn"]) == 20  # every batch norm of ResNet-18
    gold = _golden(golden_dir, layer)
    ours = _by_unit(pd.DataFrame(res.tally_rows(layer)))
    assert (ours["label"] == gold["label"]).all()
    np.testing.assert_allclose(ours["score"], gold["score"], rtol=0, atol=2e-5)
    off_units = np.zeros(len(gold), dtype=bool)
    for cat in CATS:
        same = (ours[f"{cat}-label"] == gold[f"{cat}-label"]).to_numpy()
        assert same.mean() >= 0.99, cat
        np.testing.assert_allclose(ours[f"{cat}-iou"], gold[f"{cat}-iou"], rtol=0, atol=2e-5)
        truth = ours[f"{cat}-truth"].to_numpy()[same], gold[f"{cat}-truth"].to_numpy()[same]
        np.testing.assert_array_equal(*truth)
        for f in ("activation", "intersect"):
            off_units |= (ours[f"{cat}-{f}"] != gold[f"{cat}-{f}"]).to_numpy()
    assert off_units.mean() <= 0.08


@pytest.mark.slow
def test_tally_csv_round_trip_and_golden_header(mini_broden, golden_dir, tmp_path):
    res = golden_run(mini_broden, golden_dir)
    out = res.save(tmp_path / "run")
    for layer in LAYERS:
        gold_head = (golden_dir / f"tally_{layer}.csv").read_bytes().split(b"\n")[0]
        # NetDissect-Lite's columns first, then conceptkit's chance columns per category
        chance = ",".join(f"{c}-{f}" for c in CATS for f in ("iou_chance", "z")).encode()
        head = (out / f"tally_{layer}.csv").read_bytes().split(b"\n")[0]
        assert head == gold_head[:-1] + b"," + chance + b"\r"
        back = pd.read_csv(out / f"tally_{layer}.csv", keep_default_na=False)
        expect = pd.DataFrame(res.tally_rows(layer))
        pd.testing.assert_frame_equal(back, expect, check_dtype=False)
        assert list(back["score"]) == sorted(back["score"], reverse=True)
        thr = np.load(out / f"quantile_{layer}.npy")
        assert thr.dtype == np.float64
        np.testing.assert_array_equal(thr, np.load(golden_dir / f"quantile_{layer}.npy"))
        top = np.load(out / f"topn_{layer}.npz")
        units, (h, w) = res.layers[layer].units, res.layers[layer].map_size
        assert top["indices"].shape == (units, 10) and top["indices"].dtype == np.int64
        assert top["values"].dtype == np.float32 and top["maps"].dtype == np.float16
        assert top["maps"].shape == (units, 10, h, w)
        np.testing.assert_allclose(top["maps"].max(axis=(2, 3)), top["values"], rtol=1e-3)
        assert (np.diff(top["values"], axis=1) <= 0).all()
    doc = json.loads((out / "results.json").read_text())
    assert doc["layer_order"] == LAYERS
    assert doc["settings"]["preprocess"] == "netdissect"
    assert doc["data"]["images"] == 200 and doc["data"]["seg_size"] == [112, 112]
    l4 = doc["layers"]["layer4"]
    assert l4["units"] == 512 and l4["map_size"] == [7, 7]
    assert l4["detectors"] == 0  # random weights: no unit passes 0.04 (golden README)
    assert len(l4["units_detail"]) == 512
    # random weights: every unit is flagged, none is a detector to flag
    assert l4["flagged"]["detectors_near_chance"] == l4["flagged"]["detectors_unflagged"] == 0
    # deterministic bytes
    again = res.save(tmp_path / "run2")
    for f in sorted(p.name for p in out.iterdir()):
        assert (out / f).read_bytes() == (again / f).read_bytes(), f
    df = res.dataframe()
    assert len(df) == 256 + 512 and df.columns[0] == "layer"


@pytest.mark.slow
def test_own_quantile_is_exact_and_agrees_with_golden(mini_broden, golden_dir):
    res = own_run(mini_broden)
    from conceptkit.dissection.data import BrodenDataset
    from conceptkit.dissection.forward import Forward

    # the run's own forward (its layout, from results.json's settings), 100 images at a time
    fwd = Forward.of_run(seeded_resnet18(), torch.device("cpu"), res.settings)
    assert fwd.channels_last
    ds = BrodenDataset(mini_broden, load_planes=False)
    images = torch.stack([ds[i].image for i in range(len(ds))])
    with fwd.hooks(LAYERS) as hooks:
        feats = [fwd(hooks, get_preprocess("netdissect")(images[i : i + 100])) for i in (0, 100)]
    for layer in LAYERS:
        acts = (
            torch.cat([f[layer] for f in feats])
            .transpose(0, 1)
            .reshape(len(res.layers[layer].thresholds), -1)
        )
        brute = np.quantile(acts.numpy().astype(np.float64), 0.995, axis=1)
        np.testing.assert_array_equal(res.layers[layer].thresholds, brute)
        gold = _golden(golden_dir, layer)
        ours = _by_unit(pd.DataFrame(res.tally_rows(layer)))
        agree = float((ours["label"] == gold["label"]).mean())
        print(f"{layer}: own exact thresholds, best label agrees with golden on {agree:.2%}")
        assert agree >= 0.98


@pytest.fixture
def small_broden(mini_slice) -> Path:
    """The first 24 images of mini_broden (same images folder, via a link)."""
    return mini_slice(24)


def _assert_same(a: DissectResult, b: DissectResult, layer: str) -> None:
    la, lb = a.layers[layer], b.layers[layer]
    for f in ("thresholds", "inter", "truth", "act_cat", "act_total", "top_indices", "top_values"):
        np.testing.assert_array_equal(getattr(la, f), getattr(lb, f), err_msg=f)


def test_layers_together_equal_each_alone_and_cache_paths(small_broden):
    layers = ["layer3", "layer4.1.conv2"]
    kw = dict(preprocess="netdissect", batch_size=8, workers=0, device="cpu", top_n=5)
    both = dissect(seeded_resnet18(), small_broden, layers, cache_mem=1 << 30, **kw)
    for layer in layers:
        alone = dissect(seeded_resnet18(), small_broden, [layer], **kw)
        _assert_same(both, alone, layer)
    assert both.layers["layer4.1.conv2"].map_size == (7, 7)
    # all in memory (above), all spilled to disk, partly in memory then disk, no cache at all
    # (pass 2 re-runs the forward) and a partial cache: the same numbers
    batch = 8 * (256 * 14 * 14 + 512 * 7 * 7) * 4
    for budget, spill in ((0, True), (batch, True), (0, False), (2 * batch, False)):
        other = dissect(
            seeded_resnet18(), small_broden, layers, cache_mem=budget, spill=spill, **kw
        )
        for layer in layers:
            _assert_same(both, other, layer)
    assert both.layers["layer3"].inter.sum() > 0


def test_cli_dissect_writes_the_contract(small_broden, tmp_path):
    from conceptkit.cli import main
    from conceptkit.cli.dissect import parse_size

    assert parse_size("2GB") == 2 << 30 and parse_size("512MiB") == 512 << 20
    assert parse_size("0") == 0
    weights = tmp_path / "r18.pth"
    torch.save(seeded_resnet18().state_dict(), weights)
    out = tmp_path / "run"
    args = ["dissect", "--model", str(weights), "--arch", "resnet18", "--data", str(small_broden)]
    args += ["--layer", "layer4", "--layer", "layer3", "-o", str(out), "--workers", "0"]
    args += ["--batch-size", "8", "--no-report", "--union", "global", "--top-n", "3"]
    main(args)
    doc = json.loads((out / "results.json").read_text())
    assert doc["layer_order"] == ["layer4", "layer3"] and set(doc["layers"]) == {"layer3", "layer4"}
    assert doc["settings"]["union"] == "global" and doc["settings"]["preprocess"] == "imagenet"
    assert doc["model"]["spec"] == str(weights) and len(doc["model"]["fingerprint"]) == 64
    assert doc["data"]["images"] == 24
    assert np.load(out / "topn_layer3.npz")["indices"].shape == (256, 3)
    with pytest.raises(SystemExit) as exc:
        main(args)  # OUT exists, no --force
    assert exc.value.code == 2


def test_float16_spill_halves_precision_not_results(small_broden):
    """Features spilled as float16 (half the disk) keep thresholds' pass-1 values exact (pass 1
    runs on the live float32 features) and change the tally only at the margin."""
    kw = dict(preprocess="netdissect", batch_size=8, workers=0, device="cpu", top_n=5)
    exact = dissect(seeded_resnet18(), small_broden, ["layer4"], cache_mem=0, **kw)
    half = dissect(
        seeded_resnet18(), small_broden, ["layer4"], cache_mem=0, spill_dtype="float16", **kw
    )
    a, b = exact.layers["layer4"], half.layers["layer4"]
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    np.testing.assert_array_equal(a.top_indices, b.top_indices)
    # intersections move by a few boundary pixels at most
    assert np.abs(a.inter.astype(np.int64) - b.inter.astype(np.int64)).sum() <= 0.01 * a.inter.sum()
    # with random weights many best labels are near-ties, so compare the scores, not argmaxes
    sa = pd.DataFrame(exact.tally_rows("layer4")).set_index("unit")["score"]
    sb = pd.DataFrame(half.tally_rows("layer4")).set_index("unit")["score"]
    print("float16 spill: max |score difference|", float((sa - sb).abs().max()))
    assert float((sa - sb).abs().max()) < 1e-3
