"""The speed options of the forward: the early-stopped pass-2 forward, channels-last, autocast,
thread settings. (Timings are in bench/, not here: these tests check values and behaviour.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_dissect_run import seeded_resnet18

from conceptkit.dissection.run import dissect
from conceptkit.dissection.settings import RunSettings
from conceptkit.errors import UsageError

KW = dict(preprocess="netdissect", batch_size=8, workers=0, device="cpu", top_n=3)


@pytest.fixture
def small_broden(mini_slice) -> Path:
    """The first 24 images of mini_broden (3 batches of 8)."""
    return mini_slice(24)


def _calls(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_recomputed_pass2_stops_after_the_last_needed_layer(small_broden: Path) -> None:
    net = seeded_resnet18()
    l2, l4 = _calls(net.layer2), _calls(net.layer4)
    res = dissect(net, small_broden, ["layer1", "layer2"], cache_mem=0, cache_disk=0, **KW)
    # pass 1: three full forwards; pass 2: three forwards stopped after layer2
    assert len(l2) == 6 and len(l4) == 3
    ref = dissect(seeded_resnet18(), small_broden, ["layer1", "layer2"], cache_mem=1 << 30, **KW)
    for name in ("layer1", "layer2"):
        for f in ("thresholds", "inter", "truth", "act_cat", "act_total", "top_values"):
            np.testing.assert_array_equal(
                getattr(res.layers[name], f), getattr(ref.layers[name], f), err_msg=f
            )


def test_channels_last_on_cpu_within_float_tolerance(small_broden: Path) -> None:
    base = dissect(seeded_resnet18(), small_broden, ["layer3"], **KW)
    cl = dissect(seeded_resnet18(), small_broden, ["layer3"], channels_last="on", **KW)
    a, b = base.layers["layer3"], cl.layers["layer3"]
    np.testing.assert_allclose(a.thresholds, b.thresholds, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.iou, b.iou, atol=1e-3)


def test_autocast_changes_activations_but_runs(small_broden: Path) -> None:
    base = dissect(seeded_resnet18(), small_broden, ["layer4"], **KW)
    bf = dissect(seeded_resnet18(), small_broden, ["layer4"], autocast="bf16", **KW)
    a, b = base.layers["layer4"], bf.layers["layer4"]
    assert b.thresholds.dtype == np.float64 and np.isfinite(b.thresholds).all()
    assert not np.array_equal(a.thresholds, b.thresholds)  # bf16 keeps 8 bits of mantissa
    np.testing.assert_allclose(a.thresholds, b.thresholds, rtol=0.05, atol=0.05)


def test_threads_restored_after_a_run_with_workers(small_broden: Path) -> None:
    before = torch.get_num_threads()
    dissect(seeded_resnet18(), small_broden, ["layer4"], **{**KW, "workers": 1})
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"autocast": "int8"}, "bf16 or fp16"),
        ({"channels_last": "maybe"}, "auto, on or off"),
        ({"fold_bn": "on"}, "auto or off"),
    ],
)
def test_speed_settings_checked(kw: dict[str, str], msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        RunSettings(**kw).check()
