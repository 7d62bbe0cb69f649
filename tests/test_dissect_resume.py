"""Checkpoints and resume: a killed run continues to the same bytes; stale checkpoints are named."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import broden_slice, resnet18_weights
from conftest import run_dissect_cli as cli

from conceptkit.dissection.checkpoint import Fingerprint
from conceptkit.dissection.run import dissect

torchvision = pytest.importorskip("torchvision")


WORK = re.compile(r"work done: pass 1 (\d+) batches, pass 2 (\d+) batches, (\d+) forwards")


def work(stderr: str) -> tuple[int, int, int]:
    m = WORK.search(stderr)
    assert m, stderr
    p1, p2, fw = m.groups()
    return int(p1), int(p2), int(fw)


def test_fingerprint_names_what_changed():
    fp = Fingerprint("m1", "d1", {"quantile": 0.005, "top_n": 10})
    assert fp.changed({"model": "m1", "data": "d1", "settings": dict(fp.settings)}) == []
    changed = fp.changed({"model": "m2", "data": "d1", "settings": {"quantile": 0.01}})
    assert changed == ["model (weights changed)", "settings (quantile, top_n)"]


def test_killed_run_resumes_to_identical_outputs_and_changed_weights_restart(mini_broden, tmp_path):
    data = broden_slice(mini_broden, tmp_path / "data", 24)
    weights = resnet18_weights(tmp_path / "r18.pth")
    args = ["--model", str(weights), "--arch", "resnet18", "--data", str(data)]
    args += ["--layer", "layer4", "--workers", "0", "--batch-size", "4"]
    args += ["--top-n", "3", "--no-report", "--checkpoint-every", "1"]
    ref = cli([*args, "-o", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr
    assert work(ref.stderr) == (6, 6, 6)  # 24 images / 4 per batch, features cached
    assert not (tmp_path / "ref.partial").exists()

    out = tmp_path / "run"
    ck = tmp_path / "run.partial" / "rank0-pass1.pt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conceptkit", "dissect", *args, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert ck.exists() and not out.exists()

    again = cli([*args, "-o", str(out)])
    assert again.returncode == 0, again.stderr
    assert "resuming pass 1 after batch" in again.stderr
    p1, p2, _ = work(again.stderr)
    assert p1 < 6 and p1 + p2 < 12  # fewer batches than the uninterrupted run's 12
    for layer in ("layer4",):
        for name in (f"tally_{layer}.csv", f"quantile_{layer}.npy"):
            assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
        # the chance sums were checkpointed with the tally: the same levels per unit
        ja, jb = (json.loads((d / "results.json").read_text()) for d in (out, tmp_path / "ref"))
        units = [ja["layers"][layer]["units_detail"], jb["layers"][layer]["units_detail"]]
        assert [(u["support"], u["iou_chance"], u["z"], u["flags"]) for u in units[0]] == [
            (u["support"], u["iou_chance"], u["z"], u["flags"]) for u in units[1]
        ]
        assert ja["layers"][layer]["flagged"] == jb["layers"][layer]["flagged"]
        a, b = np.load(out / f"topn_{layer}.npz"), np.load(tmp_path / "ref" / f"topn_{layer}.npz")
        for key in ("indices", "values", "maps"):
            np.testing.assert_array_equal(a[key], b[key])
    assert not (tmp_path / "run.partial").exists()

    # kill again, then change one weight: the checkpoint is refused, naming the model
    out2 = tmp_path / "run2"
    ck2 = tmp_path / "run2.partial" / "rank0-pass1.pt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conceptkit", "dissect", *args, "-o", str(out2)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not ck2.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ck2.exists()
    state = torch.load(weights)
    state["layer4.1.conv2.weight"][0, 0, 0, 0] += 0.5
    torch.save(state, weights)
    changed = cli([*args, "-o", str(out2)])
    assert changed.returncode == 0, changed.stderr
    notes = [ln for ln in changed.stderr.splitlines() if "ignored" in ln]
    assert len(notes) == 1 and "model" in notes[0] and "dataset" not in notes[0], notes
    assert "resuming" not in changed.stderr
    assert work(changed.stderr)[:2] == (6, 6)


def test_api_resume_skips_finished_passes_and_names_changed_data_and_settings(
    mini_broden, tmp_path
):
    data = broden_slice(mini_broden, tmp_path / "data", 16)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    ckdir = tmp_path / "ck"

    def run(**kw):
        notes: list[str] = []
        res = dissect(
            model,
            data,
            ["layer4"],
            batch_size=4,
            workers=0,
            device="cpu",
            top_n=3,
            checkpoint_dir=ckdir,
            checkpoint_every=2,
            log=notes.append,
            **kw,
        )
        return res, notes

    first, notes = run()
    assert work("\n".join(notes)) == (4, 4, 4)
    # the checkpoints of both finished passes are reused: no batch is processed again
    second, notes = run()
    assert work("\n".join(notes)) == (0, 0, 0)
    fields = ("thresholds", "inter", "truth", "act_cat", "act_total", "top_indices")
    for f in (*fields, "iou_chance", "z", "support"):
        np.testing.assert_array_equal(
            getattr(first.layers["layer4"], f), getattr(second.layers["layer4"], f)
        )
    # a changed setting
    _, notes = run(quantile=0.01)
    stale = [n for n in notes if "ignored" in n]
    assert len(stale) == 2 and all("settings (quantile)" in n for n in stale), stale
    assert work("\n".join(notes)) == (4, 4, 4)
    # a changed dataset (label.csv edited)
    label = data / "label.csv"
    lines = label.read_text().split("\n")
    number, name, rest = lines[1].split(",", 2)
    lines[1] = f"{number},{name}-renamed,{rest}"
    label.write_text("\n".join(lines))
    _, notes = run(quantile=0.01)
    stale = [n for n in notes if "ignored" in n]
    assert stale and "dataset" in stale[0] and "model" not in stale[0], stale
    # resume=False starts fresh without a note
    _, notes = run(quantile=0.01, resume=False)
    assert not [n for n in notes if "ignored" in n or "resuming" in n]
    assert work("\n".join(notes)) == (4, 4, 4)
