"""`conceptkit segment`, `chance` and `embed` on a real dissection of a model whose units fire
exactly on known concepts: a 1x1 convolution copying the R, G, B channels, dissected with
thresholds 1.0 over images of pure red and green rectangles (labels 'red' and 'green'), so unit
0's mask is exactly the red label and unit 1's the green one."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conceptkit.beyond.segment import segment_images
from conceptkit.broden import (
    IndexRow,
    LabelStats,
    build_tables,
    decode_plane,
    save_plane,
    write_index,
    write_tables,
)
from conceptkit.cli.chance import chance as chance_cmd
from conceptkit.cli.dissect import dissect as dissect_cmd
from conceptkit.cli.embed import embed as embed_cmd
from conceptkit.cli.segment import segment as segment_cmd

TESTS = Path(__file__).resolve().parent
RED, GREEN, BLUE, STREET, ROOM = 1, 2, 3, 4, 5
NAMES = {RED: "red", GREEN: "green", BLUE: "blue", STREET: "street", ROOM: "room"}
SIZE = 32


def build() -> torch.nn.Module:
    """The dissected model: ``feat`` copies R, G, B (3 units at the image resolution)."""
    conv = torch.nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
    return torch.nn.Sequential(OrderedDict(feat=conv, pool=torch.nn.AdaptiveAvgPool2d(1)))


def _rect(rng: np.random.Generator, side: int) -> tuple[int, int, int, int]:
    """An even-aligned rectangle (y0, y1, x0, x1) inside ``side x side``."""
    y0, x0 = 2 * rng.integers(0, side // 2 - 2, size=2)
    h, w = 2 * rng.integers(1, side // 4, size=2)
    return int(y0), int(min(side, y0 + h)), int(x0), int(min(side, x0 + w))


def make_data(root: Path, images: int = 20, seed: int = 0) -> Path:
    """Black PNGs with a red and a green rectangle (green in front); colour planes at half
    size; an image-level scene label; 15 train and 5 val images."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    stats = LabelStats()
    rows = []
    for i in range(images):
        img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        plane = np.zeros((SIZE, SIZE), dtype=np.int32)
        for label, rgb in ((RED, (255, 0, 0)), (GREEN, (0, 255, 0))):
            y0, y1, x0, x1 = _rect(rng, SIZE)
            img[y0:y1, x0:x1] = rgb
            plane[y0:y1, x0:x1] = label
        half = plane[::2, ::2]
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        save_plane(half, root / "images" / f"{i:03d}_color.png")
        scene = STREET if i % 2 else ROOM
        stats.add_image({"color": [half]}, {"scene": [scene]})
        rows.append(IndexRow(f"{i:03d}.png", "train" if i < 15 else "val", SIZE, SIZE,
                             SIZE // 2, SIZE // 2, {"color": (f"{i:03d}_color.png",)},
                             {"scene": (scene,)}))  # fmt: skip
    cats, table, codes = build_tables(["color", "scene"], NAMES, stats)
    write_tables(root, cats, table, codes)
    write_index(root, rows, ["color", "scene"])
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("beyond")
    data = make_data(tmp / "data")
    weights = tmp / "model.pt"
    torch.save(build().state_dict(), weights)
    (tmp / "thr").mkdir()
    np.save(tmp / "thr" / "quantile_feat.npy", np.ones(3))
    args = ["--model", str(weights), "--arch", "test_beyond_run:build", "--data", str(data)]
    args += ["--layer", "feat", "--thresholds", str(tmp / "thr"), "--preprocess", "netdissect"]
    args += ["-o", str(tmp / "run"), "--no-report", "--device", "cpu", "--workers", "0"]
    args += ["--checkpoint-every", "0"]
    res = CliRunner().invoke(dissect_cmd, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return tmp / "run"


def _tally(run: Path) -> dict[int, dict[str, str]]:
    with open(run / "tally_feat.csv", newline="") as fh:
        return {int(r["unit"]) - 1: r for r in csv.DictReader(fh)}


def test_the_run_is_what_the_tests_assume(run_dir: Path) -> None:
    tally = _tally(run_dir)
    assert tally[0]["label"] == "red" and float(tally[0]["score"]) == pytest.approx(1.0)
    assert tally[1]["label"] == "green" and float(tally[1]["score"]) == pytest.approx(1.0)


def _test_image(path: Path) -> np.ndarray:
    """A 40 x 56 image (not the dataset's size) and its expected label map."""
    img = np.zeros((40, 56, 3), dtype=np.uint8)
    img[3:17, 5:30] = (255, 0, 0)
    img[20:38, 25:50] = (0, 255, 0)
    img[30:35, 1:9] = (0, 0, 90)  # blue, but below unit 2's threshold
    Image.fromarray(img).save(path)
    expected = np.zeros((40, 56), dtype=np.int64)
    expected[3:17, 5:30] = RED
    expected[20:38, 25:50] = GREEN
    return expected


def test_segment_label_map_equals_the_expected_map(run_dir: Path, tmp_path: Path) -> None:
    expected = _test_image(tmp_path / "probe.png")
    maps = segment_images(run_dir, [tmp_path / "probe.png"], tmp_path / "out", embedding=False,
                          model=build())  # fmt: skip
    assert np.array_equal(maps[0].labels, expected)
    written = decode_plane(tmp_path / "out" / "probe_labels.png")
    assert np.array_equal(written, expected)
    assert maps[0].areas() == [(GREEN, 18 * 25), (RED, 14 * 25)]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conceptkit", *args], capture_output=True,
                          text=True, env=_env(), timeout=240)  # fmt: skip


def test_segment_cli_files(run_dir: Path, tmp_path: Path) -> None:
    expected = _test_image(tmp_path / "probe.png")
    model = run_dir.parent / "model.pt"
    out = tmp_path / "maps"
    args = [str(run_dir), str(tmp_path / "probe.png"), "-o", str(out), "--no-embedding"]
    res = CliRunner().invoke(segment_cmd, [*args, "--arch", "test_beyond_run:build",
                                           "--model", str(model)], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "probe.png: 2 concepts" in res.output
    assert sorted(p.name for p in out.iterdir()) == [".conceptkit", "concepts.csv",
                                                     "probe_labels.png", "probe_overlay.jpg"]  # fmt: skip
    assert np.array_equal(decode_plane(out / "probe_labels.png"), expected)
    with open(out / "concepts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["label"], r["category"], int(r["pixels"])) for r in rows] == [
        ("green", "color", 450), ("red", "color", 350)]  # fmt: skip
    assert float(rows[0]["share"]) == 450 / (40 * 56)
    with Image.open(out / "probe_overlay.jpg") as im:
        assert im.size == (56 + 200, 40)


def test_segment_bad_image_and_bad_run(run_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    model = str(run_dir.parent / "model.pt")
    out = tmp_path / "out"
    proc = _cli("segment", str(run_dir), str(bad), "-o", str(out), "--model", model,
                "--arch", "test_beyond_run:build")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.jpg" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    proc = _cli("segment", str(tmp_path), str(bad), "-o", str(out))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "results.json" in proc.stderr
    assert not out.exists()


def _hand_chance(run_dir: Path) -> tuple[float, float, int]:
    """Unit 0 against 'red' by hand: E[I], the expected union's mask total, the support."""
    data = run_dir.parent / "data" / "images"
    n = (SIZE // 2) ** 2
    E = EA = 0.0
    support = 0
    for i in range(20):
        plane = decode_plane(data / f"{i:03d}_color.png")
        a = int((plane == RED).sum())  # unit 0's mask is exactly the red label
        b = a
        c = int((plane > 0).sum())  # pixels of the colour category
        support += b > 0
        E += a * b / n
        EA += a * (1 - math.comb(n - c, a) / math.comb(n, a)) if a else 0.0
    return E, EA, support


def test_chance_cli(run_dir: Path, tmp_path: Path) -> None:
    model = str(run_dir.parent / "model.pt")
    out = tmp_path / "chance"
    args = [str(run_dir), "-o", str(out), "--model", model, "--arch", "test_beyond_run:build"]
    res = CliRunner().invoke(chance_cmd, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "feat: 2 detectors" in res.output and "2 unflagged" in res.output
    with open(out / "chance_feat.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["red", "green", ""]
    assert rows[2]["flags"] == "no_label"
    r0 = rows[0]
    truth = int(r0["intersect"])  # IoU 1: the intersection is the label's whole area
    E, EA, support = _hand_chance(run_dir)
    assert float(r0["iou"]) == pytest.approx(1.0)
    assert float(r0["expected_intersect"]) == pytest.approx(E, rel=1e-12)
    assert float(r0["iou_chance"]) == pytest.approx(E / (EA + truth - E), rel=1e-9)
    assert int(r0["support"]) == support >= 10 and r0["flags"] == ""
    assert float(r0["z"]) > 10
    with np.load(out / "chance_feat.npz", allow_pickle=False) as z:
        assert z["iou"].shape == z["z"].shape == (3, 4)
        scene = [k for k, n in enumerate(z["numbers"]) if n in (STREET, ROOM)]
        assert np.all(z["z"][:2, scene] == 0.0)  # image-level labels: no dispersion
    res = CliRunner().invoke(chance_cmd, args)
    assert res.exit_code != 0 and "--force" in str(res.exception)


def test_embed_cli_then_segment_uses_the_embedding(run_dir: Path, tmp_path: Path) -> None:
    model = str(run_dir.parent / "model.pt")
    out = tmp_path / "emb"
    args = [str(run_dir), "-o", str(out), "--model", model, "--arch", "test_beyond_run:build"]
    res = CliRunner().invoke(embed_cmd, [*args, "--epochs", "300"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "15 training images, 5 scored" in res.output
    with open(out / "embed_feat.csv", newline="") as fh:
        rows = {r["label"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"red", "green"}  # scenes are image-level: not embedded
    for name, unit in (("red", 0), ("green", 1)):
        assert float(rows[name]["single_iou"]) == pytest.approx(1.0)
        assert int(rows[name]["single_unit"]) == unit
        assert float(rows[name]["iou"]) > 0.95
    with open(out / "embed_similarity_feat.csv", newline="") as fh:
        sim = list(csv.reader(fh))
    assert sim[0] == ["label", "red", "green"] and float(sim[1][1]) == pytest.approx(1.0)
    expected = _test_image(tmp_path / "probe.png")
    maps = segment_images(run_dir, [tmp_path / "probe.png"], embedding=out / "embed_feat.npz",
                          model=build())  # fmt: skip
    agree = (maps[0].labels == expected).mean()
    assert agree > 0.97
    again = tmp_path / "again"
    args[2] = str(again)
    res = CliRunner().invoke(embed_cmd, [*args, "--epochs", "300"], catch_exceptions=False)
    for name in ("embed_feat.csv", "embed_feat.npz", "embed_similarity_feat.csv", "embed.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()  # deterministic
