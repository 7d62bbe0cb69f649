"""The first run: `conceptkit demo` and the three exports of the shipped example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conceptkit import broden
from conceptkit.cli import cli
from conceptkit.convert import ConvertOptions, convert

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def _weights_present() -> bool:
    import torch

    return (Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth").is_file()


def _planes(root: Path, category: str) -> dict[str, np.ndarray]:
    """image stem -> label plane of ``category`` with label NAMES mapped to fixed codes."""
    meta = broden.read_meta(root)
    names = meta.label_names()
    out = {}
    for row in broden.read_index(root):
        paths = row.planes.get(category, ())
        plane = (
            broden.decode_plane(root / "images" / paths[0])
            if paths
            else np.zeros((row.sh, row.sw), np.int32)
        )
        out[Path(row.image).stem] = np.vectorize(lambda n: names.get(int(n), "-"))(plane)
    return out


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt, src, pixels in [
        ("labelme", EXAMPLES / "labelme", None),
        ("labelme", EXAMPLES / "labelme", "center"),
        ("cvat", EXAMPLES / "cvat", None),
        ("coco", EXAMPLES / "coco", None),
    ]:
        name = f"{fmt}-{pixels or 'own'}"
        opts = ConvertOptions(concepts=EXAMPLES / "concepts.csv", min_images=1, pixels=pixels)
        convert(fmt, [src], base / name, opts)
        out[name] = base / name
    return out


@pytest.mark.parametrize("category", ["object", "part", "material"])
def test_three_exports_give_the_same_planes(three: dict[str, Path], category: str) -> None:
    """CVAT and COCO agree exactly (both pycocotools' convention); LabelMe differs only by its
    inclusive boundary (a few % of labelled pixels), and with --pixels center it is identical."""
    cvat = _planes(three["cvat-own"], category)
    coco = _planes(three["coco-own"], category)
    lm = _planes(three["labelme-own"], category)
    lm_center = _planes(three["labelme-center"], category)
    assert set(cvat) == set(coco) == set(lm) and len(cvat) == 12
    labelled = differ = 0
    for key in cvat:
        assert np.array_equal(cvat[key], coco[key]), key
        assert np.array_equal(cvat[key], lm_center[key]), key
        labelled += int((cvat[key] != "-").sum())
        differ += int((cvat[key] != lm[key]).sum())
    assert labelled > 1000
    # measured: object 0.64%, part 3.3% (small parts: the boundary weighs most), material 0.02%
    assert 0 < differ < 0.05 * labelled


def test_scene_tags_agree_between_labelme_and_cvat(three: dict[str, Path]) -> None:
    def tags(root: Path) -> dict[str, set[str]]:
        names = broden.read_meta(root).label_names()
        return {
            Path(r.image).stem: {names[n] for c in r.image_labels.values() for n in c}
            for r in broden.read_index(root)
        }

    lm, cv = tags(three["labelme-own"]), tags(three["cvat-own"])
    assert lm == cv
    assert lm["coffee"] == {"indoor"}


@pytest.mark.skipif(
    not _weights_present(),
    reason="MobileNetV2 ImageNet weights are not in torch's cache: run python3 examples/fetch_weights.py",
)
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", str(out)])
    assert res.exit_code == 0, res.output
    assert "0 errors" in res.output
    assert (out / "dissect" / "html" / "index.html").is_file()
    assert (out / "dataset" / "consistency" / "consistency.json").is_file()
    results = json.loads((out / "dissect" / "results.json").read_text())
    assert results["layer_order"] == ["features.14", "features.18"]
    layer = results["layers"]["features.18"]
    assert layer["units"] == 1280
    # A plausible detector: some unit of the last stage is best matched to 'face' (a part drawn
    # on three of the twelve photos) well above the detector cut.
    faces = [u for u in layer["units_detail"] if u["label"] == "face"]
    assert faces and max(u["iou"] for u in faces) > 0.2
    # The flags say it honestly: on 12 images no label reaches Broden's 10-image support, and
    # the best units of the last stage are "coffee" units resting on one image.
    cut = results["settings"]["iou_threshold"]
    coffee = [u for u in layer["units_detail"] if u["label"] == "coffee" and u["iou"] > cut]
    assert len(coffee) == 81 and all(u["support"] == 1 for u in coffee)
    assert all("few_images" in u["flags"] for u in coffee)
    # ... though well above chance on that image (IoU over 6x the chance level, z over 10)
    assert all(u["iou_chance"] < 0.035 and u["iou"] > 6 * u["iou_chance"] for u in coffee)
    assert all(u["z"] > 10 and "near_chance" not in u["flags"] for u in coffee)
    flagged = layer["flagged"]
    assert flagged["detectors_few_images"] == layer["detectors"] == 750
    assert flagged["detectors_unflagged"] == 0
    assert "features.18: of these 3, 3 are few_images (label in < 10 images)" in res.output
    assert f"of its 750 detectors, 750 are few_images, {flagged['detectors_near_chance']} " in (
        res.output
    )
    assert '"coffee" is the best label of 81 detectors and occurs in 1 image' in res.output
    assert "unit 932 coffee (object, IoU 0.754, chance 0.029, support 1 image: few_images)" in (
        res.output
    )
    # Re-running without --force refuses to overwrite.
    again = CliRunner().invoke(cli, ["demo", str(out)])
    assert again.exit_code != 0


@pytest.mark.skipif(
    not _weights_present(),
    reason="MobileNetV2 ImageNet weights are not in torch's cache: run python3 examples/fetch_weights.py",
)
def test_api_walkthrough_script_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = EXAMPLES.parent / "api_walkthrough.py"
    res = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "walk")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "units are detectors" in res.stdout
    png = tmp_path / "walk" / "best_iou_per_concept.png"
    assert png.stat().st_size > 10_000
    assert (tmp_path / "walk" / "dissect" / "tally_features.18.csv").is_file()


def _main(args: list[str]) -> int:
    from conceptkit.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_examples_folder_found_in_the_checkout_or_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conceptkit.demo import examples_folder

    assert examples_folder() == EXAMPLES
    assert examples_folder(EXAMPLES) == EXAMPLES
    (tmp_path / "labelme").mkdir()
    assert _main(["demo", str(tmp_path / "out"), "--examples", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "no labelme_annotator2, concepts.csv" in err and "--examples DIR" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_demo_out_overlapping_the_examples_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    import shutil

    data = tmp_path / "ex" / "data"
    shutil.copytree(EXAMPLES / "labelme", data / "labelme")
    shutil.copytree(EXAMPLES / "labelme_annotator2", data / "labelme_annotator2")
    shutil.copy(EXAMPLES / "concepts.csv", data / "concepts.csv")
    out = {"same": data, "inside": data / "out", "contains": tmp_path / "ex"}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert _main(["demo", str(out), "--examples", str(data), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "choose an OUT outside" in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
