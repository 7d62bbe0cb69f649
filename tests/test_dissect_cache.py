"""The feature-cache policy (sizes in, choice out) and the cache end to end with tiny budgets:
whichever mix of memory, disk and recompute is chosen, the output files are byte-identical."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from test_dissect_run import seeded_resnet18

from conceptkit.dissection.cache import Costs, FeatureCache, LayerPlan, plan_cache
from conceptkit.dissection.settings import CacheSettings

GB = 1 << 30
# ResNet-18 at 224 px, float32 bytes per image: layer1..layer4
R18 = {"layer1": 64 * 56 * 56 * 4, "layer2": 128 * 28 * 28 * 4, "layer3": 256 * 14 * 14 * 4}
R18["layer4"] = 512 * 7 * 7 * 4
BRODEN = 63305


@pytest.fixture
def small_broden(mini_slice) -> Path:
    """The first 24 images of mini_broden."""
    return mini_slice(24)


def _sizes(n: int) -> list[tuple[str, int]]:
    return [(name, per * n) for name, per in R18.items()]


def _where(plan) -> dict[str, str]:
    return {p.name: p.where for p in plan.layers}


def _grain(batch: int) -> dict[str, int]:
    return {name: per * batch for name, per in R18.items()}


def test_plan_broden_on_a_small_machine() -> None:
    # 256 MB memory, 20 GB disk: layer4 (5.9 GiB) split, its first 41 batches of 64 images in
    # memory, the rest and layer3 (11.8 GiB) on disk, layer1 and layer2 (47 GiB, 24 GiB)
    # recomputed; the forward is re-run only up to layer2
    plan = plan_cache(_sizes(BRODEN), 256 << 20, 20 * GB, grain=_grain(64))
    assert _where(plan) == {
        "layer1": "recompute",
        "layer2": "recompute",
        "layer3": "disk",
        "layer4": "split",
    }
    assert plan.layers[2].nbytes == R18["layer3"] * BRODEN
    assert plan.layers[3].mem_bytes == 41 * 64 * R18["layer4"]  # whole batches only
    assert plan.layers[3].nbytes == R18["layer4"] * BRODEN  # memory + disk
    line = plan.line()
    assert line.startswith("cache: layer1+layer2 recompute (")
    assert "forwards up to layer2" in line and "layer3 disk 11.8 GB" in line
    assert "layer4 memory 251.1 MB + disk 5.7 GB" in line


def test_plan_memory_first_for_the_last_layers() -> None:
    plan = plan_cache(_sizes(BRODEN), 7 * GB, 30 * GB, grain=_grain(64))
    # layer4 (5.9 GiB) in memory, layer3 (11.8 GiB) split: 1.1 GiB of whole batches in memory,
    # the rest on disk; layer2 (23.6 GiB) no longer fits
    assert _where(plan) == {
        "layer1": "recompute",
        "layer2": "recompute",
        "layer3": "split",
        "layer4": "memory",
    }
    used = sum(p.mem_bytes for p in plan.layers)
    assert 7 * GB - 64 * R18["layer3"] < used <= 7 * GB  # the memory budget is used up
    plan = plan_cache(_sizes(BRODEN), 7 * GB, 40 * GB, grain=_grain(64))
    assert _where(plan)["layer2"] == "disk" and _where(plan)["layer1"] == "recompute"
    assert "layer2 disk 23.7 GB, layer3 memory 1.1 GB + disk 10.8 GB" in plan.line()
    # no whole batch fits in what is left: the layer goes to disk whole
    plan = plan_cache(_sizes(BRODEN), 6 * GB, 30 * GB, grain=_grain(64 * 64))
    assert _where(plan)["layer3"] == "disk" and _where(plan)["layer4"] == "memory"


def test_plan_everything_cached_or_nothing() -> None:
    sizes = _sizes(2000)  # 3.0 GB in all
    assert set(_where(plan_cache(sizes, 4 * GB, 0)).values()) == {"memory"}
    assert set(_where(plan_cache(sizes, 0, 4 * GB)).values()) == {"disk"}
    assert set(_where(plan_cache(sizes, 0, 0)).values()) == {"recompute"}
    # float16 spill: half the bytes on disk, so layer1..layer4 (3.0 GB) fit in 1.6 GB
    half = plan_cache(sizes, 0, int(1.6 * GB), disk_ratio=0.5)
    assert set(_where(half).values()) == {"disk"}
    assert half.layers[0].nbytes == R18["layer1"] * 2000 // 2
    assert set(_where(plan_cache(sizes, 0, int(1.6 * GB))).values()) == {"disk", "recompute"}


def test_plan_exact_fit_boundaries() -> None:
    sizes = [("a", 100), ("b", 10)]
    assert _where(plan_cache(sizes, 110, 0)) == {"a": "memory", "b": "memory"}
    assert _where(plan_cache(sizes, 109, 0)) == {"a": "recompute", "b": "memory"}
    assert _where(plan_cache(sizes, 10, 100)) == {"a": "disk", "b": "memory"}
    # b split (9 bytes in memory, 1 on disk), so a still fits on disk in 109
    assert _where(plan_cache(sizes, 9, 110)) == {"a": "disk", "b": "split"}
    assert _where(plan_cache(sizes, 9, 109)) == {"a": "disk", "b": "split"}
    assert _where(plan_cache(sizes, 9, 100)) == {"a": "recompute", "b": "split"}
    assert _where(plan_cache(sizes, 9, 0)) == {"a": "recompute", "b": "recompute"}
    assert _where(plan_cache(sizes, 0, 9)) == {"a": "recompute", "b": "recompute"}
    # in whole batches: with a grain of 5 bytes, 5 of b's 10 in memory, 5 on disk
    split = plan_cache(sizes, 9, 105, grain={"a": 50, "b": 5})
    assert _where(split) == {"a": "disk", "b": "split"} and split.layers[1].mem_bytes == 5


def test_cache_keeps_to_the_disk_budget_batch_by_batch(tmp_path: Path) -> None:
    cache = FeatureCache(CacheSettings(cache_mem=0, cache_disk=10_000, spill_dir=tmp_path))
    shapes = {"a": (2, 4, 4), "b": (1, 2, 2)}  # 128 B and 16 B per image
    plan = cache.plan(shapes, n_images=20)  # a: 2560 B, b: 320 B -> both on disk
    assert _where(plan) == {"a": "disk", "b": "disk"}
    cache.disk_budget = 270  # the budget shrinks below the plan: later writes recompute
    feats = {"a": torch.arange(64.0).reshape(2, 2, 4, 4), "b": torch.ones(2, 1, 2, 2)}
    cache.put(0, feats)  # a (256 B) fits; with its file written, b (32 B) no longer does
    assert cache.counts([0], "a") == (0, 1) and cache.counts([0], "b") == (0, 0)
    assert cache.disk == 256  # the file holds the elements' bytes and nothing else
    assert not cache.complete(0, ["a", "b"])
    got = cache.take(0)
    assert set(got) == {"a"} and torch.equal(got["a"], feats["a"])
    assert not list(Path(next(tmp_path.iterdir())).iterdir())  # taken: its file is gone
    cache.close()
    assert not list(tmp_path.iterdir())


def test_a_split_layer_keeps_to_its_memory_part(tmp_path: Path) -> None:
    cache = FeatureCache(CacheSettings(cache_mem=160, cache_disk=10_000, spill_dir=tmp_path))
    shapes = {"a": (2, 2, 2), "b": (1, 2, 2)}  # 32 B and 16 B per image, batches of 2
    plan = cache.plan(shapes, n_images=6, batch_size=2)  # a: 192 B, b: 96 B
    # b in memory (96 B); a split: one batch (64 B) of the 64 B left, the rest on disk
    assert _where(plan) == {"a": "split", "b": "memory"} and plan.layers[0].mem_bytes == 64
    feats = {"a": torch.arange(16.0).reshape(2, 2, 2, 2), "b": torch.ones(2, 1, 2, 2)}
    for key in range(3):
        cache.put(key, feats)
    assert cache.counts([0, 1, 2], "a") == (1, 2) and cache.counts([0, 1, 2], "b") == (3, 0)
    assert cache.used == 160 and cache.disk == 128
    for key in range(3):
        got = cache.take(key)
        assert torch.equal(got["a"], feats["a"]) and torch.equal(got["b"], feats["b"])
    cache.close()


def _hashes(folder: Path) -> dict[str, str]:
    pats = ("tally_*.csv", "quantile_*.npy", "topn_*.npz")
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for pat in pats
        for p in sorted(folder.glob(pat))
    }


def _r18_dissect(tmp_path: Path, data: Path) -> list[str]:
    """``conceptkit dissect`` arguments for a seeded ResNet-18's layer1..layer4 on ``data``
    (batches of 8, no report), less the output folder and the cache options."""
    weights = tmp_path / "r18.pth"
    torch.save(seeded_resnet18().state_dict(), weights)
    base = ["dissect", "--model", str(weights), "--arch", "resnet18", "--data", str(data)]
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        base += ["--layer", layer]
    return [*base, "--workers", "0", "--batch-size", "8", "--no-report", "--top-n", "3"]


L34 = 24 * (R18["layer3"] + R18["layer4"])  # bytes of layer3+layer4 over small_broden


@pytest.mark.parametrize(
    ("mem", "disk", "plan", "note"),
    [
        ("0", "0", "layer1+layer2+layer3+layer4 recompute", "layer1 0 memory / 0 disk / 3"),
        ("0", "auto", "layer1+layer2+layer3+layer4 disk", "layer1 0 memory / 3 disk / 0"),
        ("3MB", "6MB", "layer3 disk 4.6 MB, layer4 memory 2.3 MB", "layer4 3 memory / 0 disk"),
        # layer4 and one batch of layer3 in memory, layer3's other two batches on disk
        (
            str(24 * R18["layer4"] + 8 * R18["layer3"]),
            "6MB",
            "layer3 memory 1.5 MB + disk 3.1 MB, layer4 memory 2.3 MB",
            "layer3 1 memory / 2 disk / 0 recompute, layer4 3 memory / 0 disk",
        ),
        ("1KB", str(L34), "layer3+layer4 disk 6.9 MB", "layer4 0 memory / 3 disk / 0 recompute"),
        # planned to fit exactly, then a byte less: the last batch recomputed
        ("1KB", f"{L34}-1", "layer3+layer4 disk 6.9 MB", "layer4 0 memory / 2 disk / 1 recompute"),
    ],
)
def test_results_identical_whatever_the_cache_mix(
    small_broden: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mem: str,
    disk: str,
    plan: str,
    note: str,
) -> None:
    from conceptkit.cli import main

    if disk.endswith("-1"):
        disk = disk[:-2]
        planned = FeatureCache.plan

        def plan_then_shrink(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            layout = planned(self, *args, **kwargs)
            self.disk_budget -= 1
            return layout

        monkeypatch.setattr(FeatureCache, "plan", plan_then_shrink)

    base = _r18_dissect(tmp_path, small_broden)
    main([*base, "-o", str(tmp_path / "ref"), "--cache-mem", "1GB"])
    assert "layer1+layer2+layer3+layer4 memory" in capsys.readouterr().err
    out = tmp_path / "mix"
    main([*base, "-o", str(out), "--cache-mem", mem, "--cache-disk", disk, "--spill-when", "fits"])
    err = capsys.readouterr().err
    assert plan in err and note in err, err
    ref = _hashes(tmp_path / "ref")
    assert len(ref) == 12 and _hashes(out) == ref


@pytest.mark.parametrize(
    ("speed", "plan", "note"),
    [
        # a disk of 1 KB/s: recomputing everything is cheaper than any spill
        (1e3, "layer1+layer2+layer3+layer4 recompute", "layer4 0 memory / 0 disk / 3 recompute"),
        # a disk of 1 TB/s: the spill is free, as with --spill-when fits
        (1e12, "layer3+layer4 disk 6.9 MB", "layer4 0 memory / 3 disk / 0 recompute"),
    ],
)
def test_plan_by_predicted_cost_through_the_cli(
    small_broden: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    speed: float,
    plan: str,
    note: str,
) -> None:
    import conceptkit.dissection.cache as cache_mod
    from conceptkit.cli import main

    probes: list[Path] = []

    def probe(root: Path, nbytes: int) -> tuple[float, float]:
        probes.append(root)
        return speed, speed

    monkeypatch.setattr(cache_mod, "disk_speed", probe)
    base = _r18_dissect(tmp_path, small_broden)
    main([*base, "-o", str(tmp_path / "ref"), "--cache-mem", "1GB"])
    assert probes == []  # everything fits in memory: nothing to weigh, the disk not timed
    capsys.readouterr()
    out = tmp_path / "cost"
    main([*base, "-o", str(out), "--cache-mem", "1KB", "--cache-disk", str(L34)])
    err = capsys.readouterr().err
    assert len(probes) == 1 and plan in err and note in err, err
    assert "predicted pass 2 extra:" in err and "fewest recomputed:" in err
    assert _hashes(out) == _hashes(tmp_path / "ref")


def _costs(per_batch: tuple[float, ...], bps: float, batches: int = 10) -> Costs:
    return Costs(per_batch, bps, bps, batches)


def test_plan_by_cost_weighs_recomputing_against_the_disk() -> None:
    sizes = [("a", 100), ("b", 10)]
    assert _where(plan_cache(sizes, 10, 1000)) == {"a": "disk", "b": "memory"}
    # 100 B written and read at 100 B/s: 2 s; recomputing a: 10 batches x 0.5 s = 5 s
    fast = plan_cache(sizes, 10, 1000, costs=_costs((0.5, 0.6), 100))
    assert _where(fast) == {"a": "disk", "b": "memory"} and fast.fewest == (0.0, 2.0)
    # at 10 B/s the spill costs 20 s: recomputing a (5 s) wins, recomputing b too (6 s) not
    slow = plan_cache(sizes, 10, 1000, costs=_costs((0.5, 0.6), 10))
    assert _where(slow) == {"a": "recompute", "b": "memory"}
    assert slow.costs is not None and slow.costs.of(slow.layers) == (5.0, 0.0)
    assert "a recompute (100 B; pass 2 forwards up to a)" in slow.line()
    assert "predicted pass 2 extra: 5.0 s forward + 0.0 s disk" in slow.line()
    assert "fewest recomputed: 20.0 s" in slow.line()
    # a tie goes to fewer layers recomputed
    tie = plan_cache(sizes, 10, 1000, costs=_costs((0.2, 0.3), 100))
    assert _where(tie) == {"a": "disk", "b": "memory"}
    # what does not fit is recomputed whatever the costs
    assert _where(plan_cache(sizes, 10, 50, costs=_costs((9.0, 9.0), 1e9)))["a"] == "recompute"


def test_costs_count_the_split_layers_disk_part_only() -> None:
    layers = [
        LayerPlan("a", "recompute", 400),
        LayerPlan("b", "disk", 100),
        LayerPlan("c", "split", 60, 40),  # 40 B in memory, 20 B on disk
        LayerPlan("d", "memory", 30, 30),
    ]
    costs = Costs((0.25, 1.0, 2.0, 3.0), write_bps=40, read_bps=120, batches=8)
    assert costs.of(layers) == (2.0, 120 / 40 + 120 / 120)  # 8 x 0.25 s; 120 B on disk
    assert costs.of(layers[1:]) == (0.0, 4.0)


def test_the_plan_measures_only_when_it_has_a_choice(monkeypatch, tmp_path: Path) -> None:
    import conceptkit.dissection.cache as cache_mod

    calls: list[str] = []
    monkeypatch.setattr(cache_mod, "disk_speed", lambda _r, _n: calls.append("disk") or (1.0, 1.0))

    def timed() -> list[float]:
        calls.append("forward")
        return [0.001, 0.002]

    shapes = {"a": (4, 4, 4), "b": (2, 2, 2)}  # 256 B and 32 B per image
    roomy = FeatureCache(CacheSettings(cache_mem=GB, spill_dir=tmp_path))
    assert set(_where(roomy.plan(shapes, 10, 2, timed)).values()) == {"memory"} and calls == []
    fits = FeatureCache(CacheSettings(cache_mem=0, spill_dir=tmp_path, spill_when="fits"))
    assert set(_where(fits.plan(shapes, 10, 2, timed)).values()) == {"disk"} and calls == []
    cost = FeatureCache(CacheSettings(cache_mem=0, cache_disk=GB, spill_dir=tmp_path))
    plan = cost.plan(shapes, 10, 2, timed)  # 1 B/s: 2.9 KB cost hours, 5 batches 10 ms
    assert calls == ["disk", "forward"] and set(_where(plan).values()) == {"recompute"}
    assert plan.costs == Costs((0.001, 0.002), 1.0, 1.0, 5)


def test_a_slow_spill_is_weighed_again_and_the_rest_recomputed(monkeypatch, tmp_path: Path):
    import conceptkit.dissection.cache as cache_mod

    monkeypatch.setattr(cache_mod, "disk_speed", lambda _r, _n: (1e9, 1e9))
    monkeypatch.setattr(cache_mod, "RECHECK_BYTES", 1024)  # weigh again after every 1 KB
    logs: list[str] = []
    cache = FeatureCache(CacheSettings(cache_mem=0, cache_disk=GB, spill_dir=tmp_path), logs.append)
    plan = cache.plan({"a": (4, 8, 8)}, 80, 4, lambda: [0.01])  # 1 KB per image, 20 batches
    assert _where(plan) == {"a": "disk"}  # 80 KB at 1 GB/s: far cheaper than 0.2 s
    clock = [0.0]

    def slow_clock() -> float:  # each write "takes" 1 s: 4 KB/s measured
        clock[0] += 1.0
        return clock[0]

    monkeypatch.setattr(cache_mod, "_clock", slow_clock)
    feats = {"a": torch.rand(4, 4, 8, 8)}
    for k in range(4):
        cache.put(k, feats)
    # after batch 1 (4 KB written in 1 s): the 76 KB left would take 19 s to write, the 19
    # batches left 0.19 s to recompute
    assert cache.counts(list(range(4)), "a") == (0, 1) and 1 not in cache
    assert len(logs) == 1 and "cache, batch 2 on (spill writes measured at 4.0 KB/s)" in logs[0]
    assert "a recompute" in logs[0] and cache.layout is not None
    assert cache.layout.where("a") == "recompute"
    assert torch.equal(cache.take(0)["a"], feats["a"])
    cache.close()


class _Usage:
    def __init__(self, free: int) -> None:
        self.total, self.used, self.free = 100 * GB, 0, free


def test_auto_disk_budget_is_a_safe_share_of_the_free_space(monkeypatch, tmp_path: Path) -> None:
    import conceptkit.dissection.cache as cache_mod

    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda _p: _Usage(45 * GB))
    assert cache_mod.disk_budget(CacheSettings(spill_dir=tmp_path)) == int(22.5 * GB)
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda _p: _Usage(3 * GB))
    assert cache_mod.disk_budget(CacheSettings(spill_dir=tmp_path)) == 1 * GB  # 2 GB kept free
    assert cache_mod.disk_budget(CacheSettings(spill=False)) == 0
    assert cache_mod.disk_budget(CacheSettings(cache_disk=5 * GB)) == 5 * GB


def test_spill_stops_when_the_free_space_falls_below_the_reserve(monkeypatch, tmp_path: Path):
    import conceptkit.dissection.cache as cache_mod

    free = [10 * GB]
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda _p: _Usage(free[0]))
    monkeypatch.setattr(cache_mod, "RECHECK_BYTES", 1)  # check before every write
    cache = FeatureCache(CacheSettings(cache_mem=0, cache_disk=GB, spill_dir=tmp_path))
    cache.plan({"a": (1, 2, 2)}, n_images=8)
    feats = {"a": torch.ones(2, 1, 2, 2)}
    cache.put(0, feats)
    free[0] = cache_mod.DISK_RESERVE  # another program filled the disk
    cache.put(1, feats)
    cache.put(2, feats)
    assert cache.counts([0, 1, 2], "a") == (0, 1) and 1 not in cache and 2 not in cache
    cache.close()


def test_auto_memory_budget_is_a_safe_share_of_the_available_memory(monkeypatch) -> None:
    import conceptkit.dissection.cache as cache_mod

    avail = [22 * GB]
    monkeypatch.setattr(cache_mod, "available_memory", lambda: avail[0])
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    auto = CacheSettings()
    assert auto.cache_mem is None and cache_mod.mem_budget(auto) == int(5.5 * GB)  # a quarter
    avail[0] = 5 * GB
    assert cache_mod.mem_budget(auto) == 1 * GB  # 4 GB kept free
    avail[0] = 3 * GB
    assert cache_mod.mem_budget(auto) == cache_mod.MEM_FLOOR  # never below 256 MB
    avail[0] = 22 * GB
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks on this machine share it
    assert cache_mod.mem_budget(auto) == int(2.75 * GB)
    assert cache_mod.mem_budget(CacheSettings(cache_mem=3 * GB)) == 3 * GB  # given: kept
    assert cache_mod.mem_budget(CacheSettings(cache_mem=0)) == 0
    monkeypatch.setattr(cache_mod, "available_memory", lambda: None)  # unknown: the floor
    assert cache_mod.mem_budget(auto) == cache_mod.MEM_FLOOR


def test_available_memory_reads_the_system_and_the_cgroup(monkeypatch, tmp_path: Path) -> None:
    import conceptkit.dissection.cache as cache_mod

    got = cache_mod.available_memory()
    assert got is None or 0 < got < 1 << 50
    monkeypatch.setattr(cache_mod, "_meminfo_available", lambda: 20 * GB)
    monkeypatch.setattr(cache_mod, "_cgroup_available", lambda: 3 * GB)
    assert cache_mod.available_memory() == 3 * GB  # the tighter of the two
    monkeypatch.setattr(cache_mod, "_cgroup_available", lambda: None)
    assert cache_mod.available_memory() == 20 * GB


def test_auto_memory_cache_stops_when_the_machine_runs_short(monkeypatch, tmp_path: Path):
    import conceptkit.dissection.cache as cache_mod

    avail = [10 * GB]
    monkeypatch.setattr(cache_mod, "available_memory", lambda: avail[0])
    monkeypatch.setattr(cache_mod, "RECHECK_BYTES", 1)  # check before every batch kept
    cache = FeatureCache(CacheSettings(cache_disk=GB, spill_dir=tmp_path))
    plan = cache.plan({"a": (1, 2, 2)}, n_images=8)
    assert _where(plan) == {"a": "memory"} and cache.mem == int(2.5 * GB)  # a quarter of 10 GB
    feats = {"a": torch.ones(2, 1, 2, 2)}
    cache.put(0, feats)
    avail[0] = cache_mod.MEM_RESERVE  # another program took the memory
    cache.put(1, feats)
    cache.put(2, feats)
    assert cache.counts([0, 1, 2], "a") == (1, 2)  # the rest went to disk
    assert all(torch.equal(cache.take(k)["a"], feats["a"]) for k in range(3))
    cache.close()
    fixed = FeatureCache(CacheSettings(cache_mem=GB, spill=False))  # a given budget is kept
    fixed.plan({"a": (1, 2, 2)}, n_images=8)
    for k in range(3):
        fixed.put(k, feats)
    assert fixed.counts([0, 1, 2], "a") == (3, 0)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_spilled_features_come_back_with_their_values_and_layout(tmp_path, layout, dtype):
    f = torch.randn(3, 5, 4, 6)
    if layout == "channels_last":
        f = f.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        f = f.transpose(1, 3)
    cache = FeatureCache(CacheSettings(cache_mem=0, spill_dir=tmp_path, spill_dtype=dtype))
    cache.plan({"a": tuple(f.shape[1:])}, n_images=3)
    cache.put(0, {"a": f})
    got = cache.take(0)["a"]
    want = f.to(getattr(torch, dtype)).to(torch.float32)
    assert got.shape == f.shape and got.stride() == f.stride() and torch.equal(got, want)
    cache.close()
