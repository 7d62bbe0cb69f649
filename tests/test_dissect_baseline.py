"""`--baseline random`: the same architecture with seeded random weights, dissected beside the
trained one into OUT/baseline/ and compared in results.json, the CLI and the report."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import conceptkit
from conceptkit.cli.dissect import dissect as dissect_cmd
from conceptkit.dissection.run import BASELINE_SEED, dissect, randomized
from conceptkit.errors import UsageError


class _Tokens(torch.nn.Module):
    """A module with a bare parameter and no ``reset_parameters`` (like a class token)."""

    def __init__(self) -> None:
        super().__init__()
        self.token = torch.nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.token.mean()


def build() -> torch.nn.Module:
    """The dissected model (also loaded by the CLI test through ``--arch``)."""
    torch.manual_seed(5)
    return torch.nn.Sequential(
        OrderedDict(
            conv=torch.nn.Conv2d(3, 6, 8, stride=8),
            bn=torch.nn.BatchNorm2d(6),
            relu=torch.nn.ReLU(),
            tok=_Tokens(),
            head=torch.nn.Conv2d(6, 5, 2, stride=2),
        )
    )


def _trained() -> torch.nn.Module:
    net = build()
    with torch.no_grad():
        net.bn.running_mean.fill_(0.3)
        net.bn.weight.fill_(2.0)
        net.conv.weight.mul_(3.0)
    return net


def test_randomized_is_seeded_complete_and_leaves_the_model_and_rng_alone() -> None:
    net = _trained()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.random.get_rng_state()
    a, b = randomized(net), randomized(net)
    assert torch.equal(torch.random.get_rng_state(), state)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # the trained model is untouched
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k  # same seed, same weights
    assert not torch.equal(a.conv.weight, net.conv.weight)
    assert not torch.equal(a.head.weight, net.head.weight)
    # batch norm: PyTorch's defaults (weight 1, running statistics reset)
    assert torch.equal(a.bn.weight, torch.ones(6))
    assert torch.equal(a.bn.running_mean, torch.zeros(6))
    # a parameter no reset_parameters covers is drawn from N(0, 0.02^2)
    assert not torch.equal(a.tok.token, torch.ones(4))
    assert float(a.tok.token.detach().abs().max()) < 0.1
    # the conv's default initialisation: kaiming-uniform, bound 1/sqrt(fan_in)
    bound = 1 / np.sqrt(3 * 8 * 8)
    assert float(a.conv.weight.detach().abs().max()) <= bound
    assert randomized(net, seed=BASELINE_SEED + 1).conv.weight.ne(a.conv.weight).any()


def test_api_baseline_equals_dissecting_the_random_weights(mini_slice, tmp_path: Path) -> None:
    data = mini_slice(20)
    opts = {"workers": 0, "batch_size": 8, "top_n": 2}
    res = conceptkit.dissect(_trained(), data, ["relu", "head"], baseline="random", **opts)
    direct = dissect(randomized(_trained()), data, ["relu", "head"], **opts)
    assert res.baseline is not None and res.baseline.baseline is None
    assert "random weights, seed 0" in res.baseline.model["description"]
    assert res.baseline.model["random_weights_seed"] == 0
    for layer in ("relu", "head"):
        b, d = res.baseline.layers[layer], direct.layers[layer]
        np.testing.assert_array_equal(b.thresholds, d.thresholds)
        np.testing.assert_array_equal(b.inter, d.inter)
        np.testing.assert_array_equal(b.z, d.z)
        assert not np.array_equal(res.layers[layer].thresholds, b.thresholds)
    out = res.save(tmp_path / "run")
    doc = json.loads((out / "results.json").read_text())
    base = json.loads((out / "baseline" / "results.json").read_text())
    assert "baseline" not in base and base["layers"]["head"]["units"] == 5
    assert sorted(p.name for p in (out / "baseline").iterdir()) == sorted(
        p.name for p in out.iterdir() if p.name not in ("baseline", ".conceptkit")
    )
    summary = doc["baseline"]
    assert (summary["kind"], summary["seed"], summary["folder"]) == ("random", 0, "baseline")
    for layer in ("relu", "head"):
        entry = summary["layers"][layer]
        assert entry["trained"] == res.digest(layer)
        assert entry["random"] == res.baseline.digest(layer)
        ious = [lab.iou for _k, lab in res.baseline.unit_best(layer)]
        assert entry["random"]["mean_best_iou"] == pytest.approx(float(np.mean(ious)))
        assert entry["random"]["detectors"] == base["layers"][layer]["detectors"]
        assert entry["trained"]["detectors"] == doc["layers"][layer]["detectors"]
    with pytest.raises(UsageError, match="baseline must be 'random'"):
        dissect(_trained(), data, ["head"], baseline="imagenet", **opts)


def test_cli_baseline_folder_line_and_report(mini_slice, tmp_path: Path) -> None:
    data = mini_slice(16)
    model = tmp_path / "model.pt"
    torch.save(_trained().state_dict(), model)
    out = tmp_path / "run"
    args = ["--model", str(model), "--arch", "test_dissect_baseline:build", "--data", str(data)]
    args += ["--layer", "head", "--workers", "0", "--batch-size", "8", "--top-n", "2"]
    args += ["--baseline", "random", "-o", str(out)]
    res = CliRunner().invoke(dissect_cmd, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "results.json").read_text())
    t, r = doc["baseline"]["layers"]["head"]["trained"], doc["baseline"]["layers"]["head"]["random"]
    line = (
        f"head, trained vs random weights: detectors {t['detectors']} vs {r['detectors']}, "
        f"unique (official) {t['unique_detectors_official']} vs "
        f"{r['unique_detectors_official']}, "
        f"mean best IoU {t['mean_best_iou']:.4f} vs {r['mean_best_iou']:.4f}"
    )
    assert line in res.output
    assert (out / "baseline" / "tally_head.csv").is_file()
    assert not (tmp_path / "run.partial").exists()
    page = (out / "html" / "index.html").read_text()
    assert "Trained against random weights" in page and "baseline_official.png" in page
    assert (out / "plots" / "baseline_official.png").is_file()
    assert f"<td>{r['mean_best_iou']:.4f}</td>" in page


def test_baseline_with_fixed_thresholds_gets_its_own(mini_slice) -> None:
    data = mini_slice(12)
    opts = {"workers": 0, "batch_size": 6, "top_n": 2}
    fixed = {"head": np.full(5, 0.1)}
    res = dissect(_trained(), data, ["head"], thresholds=fixed, baseline="random", **opts)
    direct = dissect(randomized(_trained()), data, ["head"], **opts)
    np.testing.assert_array_equal(res.layers["head"].thresholds, fixed["head"])
    assert res.baseline is not None
    np.testing.assert_array_equal(
        res.baseline.layers["head"].thresholds, direct.layers["head"].thresholds
    )
    assert res.baseline.settings["thresholds_from"] is None


def test_two_processes_give_the_same_baseline(mini_slice, tmp_path: Path) -> None:
    from conftest import run_dissect_cli

    data = mini_slice(16)
    model = tmp_path / "model.pt"
    torch.save(_trained().state_dict(), model)
    args = ["--model", str(model), "--arch", "test_dissect_baseline:build", "--data", str(data)]
    args += ["--layer", "head", "--workers", "0", "--batch-size", "4", "--top-n", "2"]
    args += ["--baseline", "random", "--no-report"]
    here = Path(__file__).resolve().parent  # so that --arch finds this module
    one = run_dissect_cli([*args, "-o", str(tmp_path / "one")], cwd=here)
    assert one.returncode == 0, one.stderr
    two = run_dissect_cli([*args, "-o", str(tmp_path / "two"), "--nproc", "2"], cwd=here)
    assert two.returncode == 0, two.stderr
    for name in ("tally_head.csv", "quantile_head.npy"):
        for sub in ("", "baseline/"):
            a, b = tmp_path / "one" / sub / name, tmp_path / "two" / sub / name
            assert a.read_bytes() == b.read_bytes(), sub + name
    ja, jb = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert ja["baseline"] == jb["baseline"]
    assert not (tmp_path / "two.partial").exists()
