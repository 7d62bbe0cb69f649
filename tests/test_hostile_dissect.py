"""`conceptkit dissect` on hostile input: one error line naming the file and place, the right
exit status, no traceback, no temporary file left, an existing OUT untouched.

The workspace is a 6-image Broden folder (images copied, so they can be broken) and a random
ResNet-18; ``--layer layer2 --batch-size 2`` keeps each run to seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import resnet18_weights
from hostile import error_line, run_hostile, tree_state
from PIL import Image

from conceptkit.broden import read_index, read_meta, write_index, write_tables
from conceptkit.dissection.data import BrodenDataset
from conceptkit.dissection.run import LabelSpace, dissect
from conceptkit.errors import ConceptkitError

# torch creates its compiler cache (torchinductor_<user>) in TMPDIR when torchvision is
# imported; it is torch's own persistent cache, not a conceptkit temporary file: keep it out
ENV = {"TORCHINDUCTOR_CACHE_DIR": str(Path(tempfile.gettempdir()) / "ck-test-inductor")}
N = 6


def _copy_slice(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` rows of ``src`` with their own copies of the images and planes."""
    meta = read_meta(src)
    rows = read_index(src)[:n]
    dst.mkdir(parents=True)
    write_tables(dst, meta.categories, meta.labels, meta.codes)
    write_index(dst, rows, meta.index_categories)
    for row in rows:
        for rel in [row.image, *(p for ps in row.planes.values() for p in ps)]:
            (dst / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / "images" / rel, dst / "images" / rel)
    return dst


@pytest.fixture(scope="module")
def master(mini_broden_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-dissect")
    _copy_slice(mini_broden_path, root / "data", N)
    resnet18_weights(root / "r18.pth")
    return root


@pytest.fixture(scope="module")
def mini_broden_path() -> Path:
    return Path(__file__).parent / "data" / "fixtures" / "mini_broden"


@pytest.fixture
def ws(master: Path, tmp_path: Path) -> Path:
    """A private workspace: the data folder copied, the weights linked."""
    w = tmp_path / "ws"
    w.mkdir()
    shutil.copytree(master / "data", w / "data")
    (w / "r18.pth").symlink_to(master / "r18.pth")
    return w


def hostile(*a: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
    """:func:`hostile.run_hostile` with torch's compiler cache kept out of TMPDIR."""
    return run_hostile(*a, env=ENV, **kw)


def args(ws: Path, *extra: str | Path) -> list[str | Path]:
    return [
        "dissect", "--model", ws / "r18.pth", "--arch", "resnet18", "--data", ws / "data",
        "--layer", "layer2", "--batch-size", "2", "--no-report", "-o", ws / "out", *extra,
    ]  # fmt: skip


# ----------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("workers", [None, "0"])
def test_bad_image_gives_the_same_line_with_and_without_workers(ws: Path, workers: str | None):
    (ws / "data" / "images" / "mini" / "000003.jpg").write_bytes(b"not a jpeg at all")
    extra = [] if workers is None else ["--workers", workers]
    proc = hostile(args(ws, *extra), ws, names=["000003.jpg", "image cannot be read"])
    assert error_line(proc).startswith("conceptkit: format error: ")


def test_bad_plane_in_a_worker_is_one_line(ws: Path):
    plane = ws / "data" / "images" / "mini" / "000004_object.png"
    plane.write_bytes(plane.read_bytes()[:40])  # truncated PNG
    for workers in ("1", "0"):
        proc = hostile(args(ws, "--workers", workers), ws, names=["000004_object.png"])
        assert "label plane cannot be read" in error_line(proc)


def test_plane_of_the_wrong_size(ws: Path):
    Image.new("RGB", (30, 112)).save(ws / "data" / "images" / "mini" / "000002_color.png")
    hostile(args(ws), ws, names=["000002_color.png", "plane is 30x112, expected 112x112"])


def _write_thresholds(folder: Path, content: bytes | np.ndarray) -> Path:
    folder.mkdir()
    path = folder / "quantile_layer2.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
    return path


def _npz_bytes(truncate: bool) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, a=np.ones(128))
    data = buf.getvalue()
    return data[: len(data) // 2] if truncate else data


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\x93NUMPY garbage", "not a readable .npy array"),
        (np.array([1.0, "x"], dtype=object), "Object arrays cannot be loaded"),
        (_npz_bytes(truncate=True), "not a readable .npy array"),
        (_npz_bytes(truncate=False), "holds several arrays"),
        (np.ones((4, 32)), "holds a 2-D float64 array"),
    ],
    ids=["corrupt", "object-dtype", "truncated-npz", "npz", "2-D"],
)
def test_bad_thresholds_file(ws: Path, content: bytes | np.ndarray, why: str):
    path = _write_thresholds(ws / "thr", content)
    hostile(args(ws, "--thresholds", ws / "thr"), ws, names=[str(path), why])


def test_wrong_number_of_thresholds_is_a_usage_error(ws: Path):
    _write_thresholds(ws / "thr", np.zeros(7))
    hostile(args(ws, "--thresholds", ws / "thr"), ws, code=2, names=["7 thresholds", "128 units"])


def test_nan_weights_name_the_layer_before_any_work(ws: Path):
    state = torch.load(ws / "r18.pth")
    state["layer2.0.conv1.weight"][3] = float("nan")
    (ws / "r18.pth").unlink()
    torch.save(state, ws / "r18.pth")
    proc = hostile(args(ws), ws, names=["r18.pth", "'layer2'", "non-finite"])
    assert error_line(proc).startswith("conceptkit: model error: ")
    assert not (ws / "out.partial").exists()


# ----------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--device", "bogus"], ["--device 'bogus'"]),
        (["--workers", "-1"], ["--workers"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--top-n", "0"], ["--top-n"]),
    ],
    ids=["device", "workers", "batch-size", "top-n"],
)
def test_bad_options_are_usage_errors(ws: Path, extra: list[str], names: list[str]):
    hostile(args(ws, *extra), ws, code=2, names=names)


def test_cuda_device_without_cuda(ws: Path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the refusal needs a machine without it
    hostile(args(ws, "--device", "cuda"), ws, code=2, names=["CUDA is not available"])


def test_out_partial_that_is_a_file(ws: Path):
    (ws / "out.partial").write_text("mine, not conceptkit's\n")
    hostile(args(ws), ws, code=2, names=["out.partial", "is not a folder"])


def test_existing_out_is_untouched_by_a_failing_run(ws: Path):
    from conceptkit.outdir import mark

    (ws / "out").mkdir()
    mark(ws / "out")  # an earlier run's OUT, which --force may replace once the run succeeds
    (ws / "out" / "keep.txt").write_text("precious\n")
    (ws / "data" / "images" / "mini" / "000001.jpg").write_bytes(b"")
    hostile(args(ws, "--force"), ws, names=["000001.jpg"])


# ----------------------------------------------------------------------------- signals, spill


def test_sigterm_mid_run_leaves_no_spill_folder(ws: Path, tmp_path: Path):
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {**os.environ, **ENV, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    before = tree_state(ws)
    cmd = [sys.executable, "-m", "conceptkit", *map(str, args(ws, "--cache-mem", "0"))]
    cmd += ["--checkpoint-every", "0", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ws, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        spills = list(tmp.glob("conceptkit-features-*"))
        if spills and any(spills[0].iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it spilled"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "Terminated." in err
    assert sorted(p.name for p in tmp.iterdir()) == [], err
    assert tree_state(ws) == before


@pytest.mark.parametrize("when", ["between the passes", "during pass 1"])
def test_spill_folder_vanishing_mid_run_is_one_error(ws: Path, tmp_path: Path, when: str):
    spill = tmp_path / "spill"
    spill.mkdir()

    def clean() -> None:  # a temp cleaner strikes
        for folder in spill.iterdir():
            shutil.rmtree(folder)

    class Bar:
        def __init__(self, desc: str) -> None:
            self.desc = desc
            if desc.startswith("pass 2") and when == "between the passes":
                clean()

        def update(self, n: int = 1) -> None:
            if self.desc.startswith("pass 1") and when == "during pass 1" and n:
                clean()

        def close(self) -> None:
            pass

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8))
    with pytest.raises(ConceptkitError, match="spill folder vanished") as exc:
        dissect(
            model, ws / "data", ["0"], cache_mem=0, spill_dir=spill, workers=0, batch_size=2,
            progress=lambda desc, total: Bar(desc), device="cpu",
        )  # fmt: skip
    assert exc.value.file is not None and exc.value.file.startswith(str(spill))
    assert "\n" not in str(exc.value)
    assert list(spill.iterdir()) == []


# ----------------------------------------------------------------------------- label numbers


def _tiny_run(data: Path) -> tuple[object, LabelSpace]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8))
    res = dissect(model, data, ["0"], workers=0, batch_size=3, device="cpu", top_n=2)
    return res, LabelSpace.of(BrodenDataset(data))


def test_plane_values_beyond_label_csv_count_as_unlabelled(ws: Path):
    ref, _ = _tiny_run(ws / "data")
    # a 16-bit plane whose every pixel is label 60000, which label.csv does not list
    plane = ws / "data" / "images" / "mini" / "000001_object.png"
    Image.fromarray(np.full((112, 112), 60000, dtype=np.uint16)).save(plane)
    assert int(BrodenDataset(ws / "data")[0].planes.max()) == 60000  # type: ignore[union-attr]
    got, labels = _tiny_run(ws / "data")
    a, b = ref.layers["0"], got.layers["0"]  # type: ignore[attr-defined]
    assert b.inter.shape == a.inter.shape == (4, len(labels.numbers))
    # only the labels of the replaced plane lose pixels; nothing is sized by 2**30
    assert (b.truth <= a.truth).all() and b.truth.sum() < a.truth.sum()


def test_a_huge_label_number_in_label_csv_does_not_size_the_tally(ws: Path):
    label_csv = ws / "data" / "label.csv"
    lines = label_csv.read_text().splitlines()
    head, last = lines[:-1], lines[-1].split(",", 1)
    big = 1_000_000
    label_csv.write_text("\n".join([*head, f"{big},{last[1]}"]) + "\n")
    labels = LabelSpace.of(BrodenDataset(ws / "data"))
    assert int(labels.numbers[-1]) == big and len(labels.numbers) == len(lines)  # 0 + labels
    assert not labels.dense
    planes = torch.tensor([[0, 1, big, big + 1, 2**31 - 1]], dtype=torch.int32)
    want = [0, 1, len(labels.numbers) - 1, 0, 0]
    assert labels.encode(planes).tolist() == [want]
    res, _ = _tiny_run(ws / "data")
    layer = res.layers["0"]  # type: ignore[attr-defined]
    assert layer.inter.shape == (4, len(labels.numbers))
    assert res.number(len(labels.numbers) - 1) == big  # type: ignore[attr-defined]
