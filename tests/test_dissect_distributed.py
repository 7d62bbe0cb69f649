"""Distributed dissection: batch sharding, and 2 gloo processes giving the bytes of 1 process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import broden_slice, resnet18_weights
from conftest import run_dissect_cli as cli

from conceptkit.dissection.distributed import batch_ranges, detect, shard_batches
from conceptkit.errors import UsageError

torchvision = pytest.importorskip("torchvision")


def test_shards_partition_the_single_process_batches():
    assert batch_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    for mode in ("strided", "contiguous"):
        shards = [shard_batches(43, 5, r, 3, mode) for r in range(3)]
        # every single-process batch exactly once, with the same boundaries
        assert sorted(b for s in shards for b in s) == batch_ranges(43, 5)
    assert shard_batches(43, 5, 1, 3, "strided") == [(5, 10), (20, 25), (35, 40)]
    assert shard_batches(43, 5, 2, 3, "contiguous") == [(30, 35), (35, 40), (40, 43)]
    assert shard_batches(43, 5, 0, 3) == shard_batches(43, 5, 0, 3)  # deterministic
    with pytest.raises(UsageError, match="only 2 batches"):
        shard_batches(10, 5, 0, 3)


def test_detect_reads_torchrun_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    ctx = detect()
    assert (ctx.rank, ctx.world, ctx.local_rank, ctx.active, ctx.is_main) == (2, 4, 0, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(UsageError):
        detect()


def test_two_gloo_processes_equal_one_process(mini_broden, tmp_path):
    data = broden_slice(mini_broden, tmp_path / "data", 40)
    weights = resnet18_weights(tmp_path / "r18.pth")
    args = ["--model", str(weights), "--arch", "resnet18", "--data", str(data)]
    args += ["--layer", "layer3", "--layer", "layer4.1.conv2", "--workers", "0"]
    args += ["--batch-size", "6", "--top-n", "4", "--no-report"]
    one = cli([*args, "-o", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    # --nproc 2 launches torchrun; contiguous shards give rank 0 4 batches, rank 1 3 batches
    two = cli([*args, "-o", str(tmp_path / "two"), "--nproc", "2", "--shard", "contiguous"])
    assert two.returncode == 0, two.stderr
    assert "[rank 1] work done: pass 1 3 batches" in two.stderr
    assert "[rank 0] work done: pass 1 4 batches" in two.stderr
    a, b = tmp_path / "one", tmp_path / "two"
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert "tally_layer3.csv" in files and "quantile_layer4.1.conv2.npy" in files
    for name in files:
        if name.endswith((".csv", ".npy")):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # the chance levels too: the tally's <cat>-iou_chance / <cat>-z columns above, and per unit
    ja, jb = (json.loads((d / "results.json").read_text())["layers"] for d in (a, b))
    assert "object-z" in (a / "tally_layer3.csv").read_text().splitlines()[0]
    for layer in ("layer3", "layer4.1.conv2"):
        assert ja[layer]["flagged"] == jb[layer]["flagged"]
        for ua, ub in zip(ja[layer]["units_detail"], jb[layer]["units_detail"]):
            for key in ("support", "iou_chance", "z", "flags"):
                assert ua[key] == ub[key], (layer, ua["unit"], key)
    for layer in ("layer3", "layer4.1.conv2"):
        ta, tb = np.load(a / f"topn_{layer}.npz"), np.load(b / f"topn_{layer}.npz")
        for key in ("indices", "values", "maps"):
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)
        # the top images come from both shards (rows < 24 on rank 0, >= 24 on rank 1)
        assert (ta["indices"] < 24).any() and (ta["indices"] >= 24).any()
    assert not (tmp_path / "two.partial").exists()


def test_nproc_is_taken_out_of_the_users_own_arguments():
    from conceptkit.cli.dissect import _strip_nproc

    takes = {"--model", "--layer", "-o", "--out", "--mean", "--nproc"}
    args = ["--model", "m.pth", "--nproc", "2", "--layer", "a", "--nproc=3", "-o", "x"]
    assert _strip_nproc(args, takes) == ["--model", "m.pth", "--layer", "a", "-o", "x"]
    # an option's value is never taken for an option, however it looks
    assert _strip_nproc(["--layer", "--nproc", "--force"], takes) == [
        "--layer",
        "--nproc",
        "--force",
    ]
    assert _strip_nproc(["--force", "--", "--nproc", "2"], takes) == [
        "--force",
        "--",
        "--nproc",
        "2",
    ]
