"""The chance levels the dissection counts while it tallies (conceptkit.dissection.chance):
hand-computed sums, order-independent merges and checkpoints, and equality with
`conceptkit chance`, which recomputes the masks from the features of the finished run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conceptkit.beyond.chance import chance as run_chance
from conceptkit.dissection.chance import ChanceTally
from conceptkit.dissection.run import dissect
from conceptkit.dissection.stats import IoUTally

SIDE = 4
N_PIX = SIDE * SIDE


def _tallies(union: str) -> tuple[IoUTally, ChanceTally]:
    # labels 1, 2: category 0; 3: category 1 (image-level, like a scene)
    cats = torch.tensor([-1, 0, 0, 1])
    return IoUTally(2, cats, 2, union), ChanceTally(2, cats, 2, union)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 4x4 images (features at label size), one plane each, image 1 has scene label 3."""
    acts = torch.zeros((2, 2, SIDE, SIDE))
    acts[0, 0, :2, :2] = 1.0  # unit 0, image 0: 4 pixels
    acts[1, 0, :, 0] = 1.0  # unit 0, image 1: 4 pixels
    acts[1, 1, :3, :3] = 1.0  # unit 1, image 1: 9 pixels
    planes = torch.zeros((2, 1, SIDE, SIDE), dtype=torch.int64)
    planes[0, 0, 0, :] = 1  # image 0: label 1 on 4 pixels, label 2 on 2
    planes[0, 0, 3, :2] = 2
    planes[1, 0, 1:, 1:] = 2  # image 1: label 2 on 9 pixels
    image_labels = torch.tensor([[0], [3]])
    return acts, planes, image_labels


def _hand(union: str) -> dict[str, np.ndarray]:
    """E[I], Var[I] (C, L) and EA (C, K) of the batch, summed image by image."""
    a = np.array([[4, 0], [4, 9]])  # (image, unit)
    b = np.array([[0, 4, 2, 0], [0, 0, 9, N_PIX]])  # (image, label), scene covers all
    c = np.array([[6, 0], [9, N_PIX]])  # category pixels; image 1 has category 1 image-level
    n = N_PIX
    E = np.zeros((2, 4))
    V = np.zeros((2, 4))
    EA = np.zeros((2, 2))
    for i in range(2):
        for u in range(2):
            E[u] += a[i, u] * b[i] / n
            V[u] += a[i, u] * (n - a[i, u]) * b[i] * (n - b[i]) / (n * n * (n - 1))
            for k in range(2):
                if a[i, u] == 0:
                    continue
                p = 1.0 - math.comb(n - c[i, k], a[i, u]) / math.comb(n, a[i, u])
                EA[u, k] += a[i, u] * (p if union == "category" else 1.0)
    return {"E": E, "V": V, "EA": EA}


@pytest.mark.parametrize("union", ["category", "global"])
def test_sums_match_a_hand_computation(union: str) -> None:
    iou, ct = _tallies(union)
    acts, planes, il = _batch()
    lb = iou.prepare(planes, il)
    sizes = iou.add(acts, torch.tensor([0.5, 0.5], dtype=torch.float64), lb)
    ct.add(sizes, lb)
    hand = _hand(union)
    levels = ct.result(iou)
    np.testing.assert_allclose(levels.expected[:, 1:], hand["E"][:, 1:], rtol=1e-12)
    np.testing.assert_array_equal(ct.support.numpy(), [0, 1, 2, 1])
    V = ct.var.numpy() / 2.0**28
    np.testing.assert_allclose(V, hand["V"], atol=2e-8)
    inter = iou.inter.numpy().astype(float)
    truth = iou.truth.numpy().astype(float)
    EA = hand["EA"]
    for u in range(2):
        for lab, k in ((1, 0), (2, 0), (3, 1)):
            e = hand["E"][u, lab]
            chance = e / (EA[u, k] + truth[lab] - e)
            assert levels.iou_chance[u, lab] == pytest.approx(chance, rel=1e-7, abs=1e-12)
            sd = math.sqrt(hand["V"][u, lab])
            z = (inter[u, lab] - e) / sd if sd > 0 else 0.0
            assert levels.z[u, lab] == pytest.approx(z, rel=1e-6, abs=1e-12)
    assert np.all(levels.z[:, 3] == 0.0)  # image-level label: no dispersion
    assert np.all(levels.iou_chance[:, 0] == 0.0)


def test_merge_and_checkpoint_give_the_same_bits() -> None:
    """Batches added in one tally, or in two merged the other way round and checkpointed:
    the same bits (fixed-point sums, rounded per batch, not per order)."""
    iou, whole = _tallies("category")
    acts, planes, il = _batch()
    t = torch.tensor([0.5, 0.5], dtype=torch.float64)
    for i in range(2):
        lb = iou.prepare(planes[i : i + 1], il[i : i + 1])
        whole.add(iou.add(acts[i : i + 1], t, lb), lb)
    parts = []
    for i in range(2):
        ti, ci = _tallies("category")
        lbi = ti.prepare(planes[i : i + 1], il[i : i + 1])
        ci.add(ti.add(acts[i : i + 1], t, lbi), lbi)
        parts.append(ci)
    parts[1].merge(parts[0])  # the other order
    _, loaded = _tallies("category")
    loaded.load_state_dict(parts[1].state_dict())
    for name in ("mean", "var", "act_cat", "support"):
        assert torch.equal(getattr(loaded, name), getattr(whole, name)), name
    assert (loaded.images, loaded.pixels) == (2, N_PIX)


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 8, stride=8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(6, 5, 2, stride=2),
    )


@pytest.mark.parametrize("union", ["category", "global"])
def test_the_tally_equals_conceptkit_chance_on_the_same_run(
    union: str, mini_slice, tmp_path: Path
) -> None:
    data = mini_slice(30)
    net = _model()
    res = dissect(net, data, ["0", "2"], union=union, workers=0, batch_size=7, top_n=2)
    run = res.save(tmp_path / "run")
    ref = run_chance(run, model=net, batch_size=7)
    assert ref.union == union
    column = {int(n): i for i, n in enumerate(res.label_numbers)}
    cols = [column[n] for n in ref.numbers]
    for layer, lc in ref.layers.items():
        lr = res.layers[layer]
        np.testing.assert_array_equal(lr.inter[:, cols], lc.inter)
        np.testing.assert_allclose(lr.iou_chance[:, cols], lc.iou_chance, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(lr.z[:, cols], lc.z, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(lr.support[cols], np.diff(ref_cptr(ref, layer)))
    # the files carry them: tally columns after NetDissect-Lite's, results.json per unit
    with open(run / "tally_2.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    head = list(rows[0])
    cats = res.categories
    assert head[4 + 5 * len(cats) :] == [f"{c}-{f}" for c in cats for f in ("iou_chance", "z")]
    doc = json.loads((run / "results.json").read_text())
    lr = res.layers["2"]
    for row in rows:
        u = int(row["unit"]) - 1
        for ci, cat in enumerate(cats):
            best = res.best_labels("2")[u][ci]
            assert float(row[f"{cat}-z"]) == lr.z[u, best.column]
            assert float(row[f"{cat}-iou_chance"]) == lr.iou_chance[u, best.column]
        detail = doc["layers"]["2"]["units_detail"][u]
        k, lab = res.unit_best("2")[u]
        assert detail["support"] == int(lr.support[lab.column])
        assert detail["z"] == float(lr.z[u, lab.column])
        want = [
            f
            for f, bad in (("near_chance", detail["z"] < 3), ("few_images", detail["support"] < 10))
            if bad
        ]
        assert detail["flags"] == want
    flagged = doc["layers"]["2"]["flagged"]
    details = doc["layers"]["2"]["units_detail"]
    assert flagged["near_chance"] == sum("near_chance" in d["flags"] for d in details)
    assert flagged["few_images"] == sum("few_images" in d["flags"] for d in details)
    assert doc["chance"] == {"z_min": 3.0, "support_min": 10}


def ref_cptr(ref, layer: str) -> np.ndarray:
    """The support of each concept of ``conceptkit chance``'s concept masks."""
    from conceptkit.beyond import features as fe

    info, _ = fe.open_run(ref.run, None, [layer])
    return fe.load_concepts(info).masks.cptr


class _Interrupt(Exception):
    pass


def _stop_in_pass2(after: int):
    """A progress factory whose pass-2 bar interrupts the run after ``after`` batches."""

    class Bar:
        def __init__(self, desc: str) -> None:
            self.desc, self.seen = desc, 0

        def update(self, n: int = 1) -> None:
            if n and self.desc.startswith("pass 2"):
                self.seen += 1
                if self.seen > after:  # the first update is the batches already done
                    raise _Interrupt

        def close(self) -> None:
            pass

    return lambda desc, total: Bar(desc)


def test_resume_in_the_middle_of_the_tally_gives_the_same_levels(mini_slice, tmp_path) -> None:
    data = mini_slice(24)
    opts = {"workers": 0, "batch_size": 4, "top_n": 2, "checkpoint_every": 1}
    ref = dissect(_model(), data, ["2"], **opts)
    ck = tmp_path / "ck"
    with pytest.raises(_Interrupt):
        dissect(_model(), data, ["2"], checkpoint_dir=ck, progress=_stop_in_pass2(3), **opts)
    assert (ck / "rank0-pass2.pt").is_file()
    notes: list[str] = []
    again = dissect(_model(), data, ["2"], checkpoint_dir=ck, log=notes.append, **opts)
    assert any("resuming pass 2 after batch" in n for n in notes), notes
    a, b = ref.layers["2"], again.layers["2"]
    for name in ("inter", "iou_chance", "z", "support"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
