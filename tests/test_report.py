"""Tests of conceptkit.report: strips, plots, pages, determinism, the browser view, the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import synthetic_run as synthetic
from conftest import broden_slice

from conceptkit import report
from conceptkit.cli import main
from conceptkit.errors import LayoutError, UsageError
from conceptkit.report import plots
from conceptkit.report.pages import sorted_units, strip_name
from conceptkit.report.run import load_run
from conceptkit.report.strips import (
    DIM,
    GAP,
    OUTLINE,
    StripJob,
    overlay,
    strip_array,
    unit_mask,
    upsample,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def syn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fabricated run (contract files) over a 20-image Broden folder, with its report built."""
    root = tmp_path_factory.mktemp("syn")
    out = synthetic.make(root, layers={"layer3": (12, 4), "features.7": (16, 2)}, size=48)
    report.build(out, workers=1)
    return out


# ----------------------------------------------------------------------------- masks and strips


@pytest.mark.parametrize(
    "src,dst", [((7, 7), (224, 224)), ((3, 5), (17, 40)), ((14, 14), (113, 113))]
)
def test_upsample_equals_torch_bilinear(src: tuple[int, int], dst: tuple[int, int]) -> None:
    import torch
    import torch.nn.functional as F

    a = np.random.default_rng(1).normal(size=src).astype(np.float32)
    want = F.interpolate(
        torch.from_numpy(a)[None, None], size=dst, mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(
        upsample(a, dst), want[0, 0].numpy(), atol=1e-5
    )  # torch computes in float32


def test_mask_hand_case() -> None:
    # a 2x2 map upsampled to 4x4: the corner pixel keeps the raw value, the next one is 3/4 of it
    # (align_corners=False weights 0.75/0.25), so a threshold of 0.8 keeps the single corner pixel.
    amap = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(upsample(amap, (4, 4))[0, :2], [1.0, 0.75])
    mask = unit_mask(amap, 0.8, (4, 4))
    assert mask.sum() == 1 and mask[0, 0]
    assert unit_mask(amap, 1.0, (4, 4)).sum() == 0  # strict: never above the raw maximum


def test_overlay_dims_outside_and_outlines_inside() -> None:
    image = np.full((10, 10, 3), 200, dtype=np.uint8)
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:8, 2:8] = True
    out = overlay(image, mask)
    assert (out[~mask] == round(200 * DIM)).all()
    assert (out[2, 2:8] == OUTLINE).all() and (out[3, 3:7] == OUTLINE).all()  # 2-pixel outline
    assert (out[4:6, 4:6] == 200).all()  # the inside keeps the image
    # a mask touching the image border gets no outline along the border
    full = overlay(image, np.ones((10, 10), dtype=bool))
    assert (full == 200).all()


def test_strip_array_layout(tmp_path: Path) -> None:
    from PIL import Image

    paths = []
    for i in range(3):
        arr = np.full((6, 8, 3), 40 * (i + 1), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    maps = np.zeros((3, 2, 2), dtype=np.float16)
    maps[1] = 5.0  # image 1: the whole image above threshold
    job = StripJob(str(tmp_path / "s.jpg"), tuple(paths), maps, 1.0, (6, 8))
    strip = strip_array(job)
    assert strip.shape == (6, 3 * 8 + 2 * GAP, 3)
    assert (strip[:, 8 : 8 + GAP] == 255).all()  # white gap
    assert (strip[:, :8] == round(40 * DIM)).all()  # image 0: no mask, all dimmed
    assert (strip[:, 8 + GAP : 16 + GAP] == 80).all()  # image 1: all kept, no outline at border


def test_strips_written_with_netdissect_names(syn_run: Path) -> None:
    from PIL import Image

    res = json.loads((syn_run / "results.json").read_text())
    images = sorted((syn_run / "html" / "image").glob("*.jpg"))
    want = sorted(
        strip_name(name, u) for name, lay in res["layers"].items() for u in range(lay["units"])
    )
    assert [p.name for p in images] == want
    assert "features.7-0000.jpg" in want and "layer3-0011.jpg" in want
    with Image.open(syn_run / "html" / "image" / "layer3-0003.jpg") as im:
        assert im.size == (5 * 48 + 4 * GAP, 48)


# ----------------------------------------------------------------------------- plots


def test_unique_detector_bars_equal_results(syn_run: Path) -> None:
    run = load_run(syn_run)
    res = json.loads((syn_run / "results.json").read_text())
    for lay in run.layers:
        fig, values = plots.unique_detectors_figure(run, lay)
        ud = res["layers"][lay.name]["unique_detectors"]
        ax_abs, ax_share = fig.axes[0], fig.axes[1]
        for cont in ax_abs.containers:
            cat = cont.get_label()
            heights = [p.get_height() for p in cont.patches]
            assert heights == [
                ud["official"]["per_category"][cat],
                ud["naive"]["per_category"][cat],
            ]
        # the stack tops are the totals
        tops = [sum(c.patches[i].get_height() for c in ax_abs.containers) for i in range(2)]
        assert tops == [ud["official"]["total"], ud["naive"]["total"]] or lay.name == ""
        for cont in ax_share.containers:
            cat = cont.get_label()
            got = cont.patches[0].get_height()
            assert got == pytest.approx(100 * ud["official"]["per_category"][cat] / lay.units)
        assert values["official"] == ud["official"]["per_category"]


def test_category_share_and_concepts_and_histogram(syn_run: Path) -> None:
    run = load_run(syn_run)
    res = json.loads((syn_run / "results.json").read_text())
    cut = res["settings"]["iou_threshold"]
    fig, values = plots.category_share_figure(run)
    for line in fig.axes[0].get_lines():
        cat = line.get_label()
        want = []
        for name in res["layer_order"]:  # the --layer order, as the plot draws it
            lay = res["layers"][name]
            n = sum(1 for u in lay["units_detail"] if u["iou"] > cut and u["category"] == cat)
            want.append(100 * n / lay["units"])
        assert list(line.get_ydata()) == pytest.approx(want)
    for lay in run.layers:
        detail = res["layers"][lay.name]["units_detail"]
        for cat in run.categories:
            want = Counter(u["label"] for u in detail if u["iou"] > cut and u["category"] == cat)
            if not want:
                continue
            fig, counts = plots.concepts_figure(run, lay, cat)
            bars = {
                t.get_text(): p.get_width()
                for t, p in zip(fig.axes[0].get_yticklabels(), fig.axes[0].patches)
            }
            assert bars == dict(want) == counts
            # naive unique detectors of the category = number of concepts drawn
            assert (
                len(bars)
                == res["layers"][lay.name]["unique_detectors"]["naive"]["per_category"][cat]
            )
    fig, hist = plots.iou_histogram_figure(run)
    for name, lay in res["layers"].items():
        assert sum(hist[name]) == lay["units"]


def test_concepts_top_40(tmp_path: Path) -> None:
    out = synthetic.make(tmp_path, layers={"l": (8, 2)}, images=6)
    run = load_run(out)
    from conceptkit.report.run import UnitInfo

    lay = run.layers[0]
    lay.unit_info = [UnitInfo(u, f"c{u % 50:02d}", "object", 0.5, 1.0, (), ()) for u in range(120)]
    fig, counts = plots.concepts_figure(run, lay, "object")
    assert len(counts) == 40 and len(fig.axes[0].patches) == 40
    assert list(counts)[:2] == ["c00", "c01"] and counts["c00"] == 3
    assert "10 more" in fig.axes[0].get_title()


def test_plot_files_deterministic(syn_run: Path, tmp_path: Path) -> None:
    run = load_run(syn_run)
    a = plots.save(plots.category_share_figure(run)[0], tmp_path / "a")
    b = plots.save(plots.category_share_figure(run)[0], tmp_path / "b")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
    assert b"<dc:date>" not in a[1].read_bytes()


# ----------------------------------------------------------------------------- pages


def test_layer_page_cards_sorted_and_greyed(syn_run: Path) -> None:
    res = json.loads((syn_run / "results.json").read_text())
    cut = res["settings"]["iou_threshold"]
    page = (syn_run / "html" / "layer-layer3.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing from the network
    run = load_run(syn_run)
    lay = next(x for x in run.layers if x.name == "layer3")
    order = [u.unit for u in sorted_units(run, lay)]
    positions = [page.index(f'id="unit-{u}"') for u in order]
    assert positions == sorted(positions)
    detail = {u["unit"]: u for u in res["layers"]["layer3"]["units_detail"]}
    ious = [detail[u]["iou"] for u in order]
    n_det = sum(1 for x in ious if x > cut)
    assert ious[:n_det] == sorted(ious[:n_det], reverse=True)
    assert all(x <= cut for x in ious[n_det:])
    assert page.count('class="card below"') == len(order) - n_det
    index = (syn_run / "html" / "index.html").read_text()
    assert "official (per-category distinct labels)" in index
    assert "naive (distinct top labels)" in index
    for src in (
        "../plots/category_share.png",
        "../plots/unique_layer3.png",
        "layer-features.7.html",
    ):
        assert src in index


def test_rebuild_is_identical_and_incremental(tmp_path: Path) -> None:
    out = synthetic.make(tmp_path, layers={"layer4": (10, 3)}, images=12)
    calls: list[int] = []
    report.build(out, workers=1, progress=lambda d, t: calls.append(t))
    assert calls and calls[-1] == 10
    first = _tree_hashes(out / "html") | {
        "plots/" + k: v for k, v in _tree_hashes(out / "plots").items()
    }
    main(["report", str(out), "--workers", "2"])  # the CLI, 2 processes: same bytes
    second = _tree_hashes(out / "html") | {
        "plots/" + k: v for k, v in _tree_hashes(out / "plots").items()
    }
    assert first == second
    # nothing redrawn when nothing changed; one changed threshold redraws one strip
    calls.clear()
    report.build(out, workers=1, progress=lambda d, t: calls.append(t))
    assert calls == []
    q = np.load(out / "quantile_layer4.npy")
    q[3] = -10.0  # unit 3 now covers every pixel
    np.save(out / "quantile_layer4.npy", q)
    report.build(out, workers=1, progress=lambda d, t: calls.append(t))
    assert calls == [1]
    third = _tree_hashes(out / "html")
    changed = {k for k in third if third[k] != first.get(k)}
    assert changed == {"image/layer4-0003.jpg", "image/manifest.json"}
    # force_images redraws everything, to the same bytes
    report.build(out, workers=2, force_images=True)
    assert _tree_hashes(out / "html") == third


def test_compare_bars_one_per_model(tmp_path: Path) -> None:
    a = synthetic.make(tmp_path / "a", layers={"conv5": (30, 2)}, seed=1)
    b = synthetic.make(tmp_path / "b", layers={"conv5": (30, 2)}, seed=2)
    for run, name in ((a, "places"), (b, "imagenet")):
        res = json.loads((run / "results.json").read_text())
        res["model"]["description"] = name
        (run / "results.json").write_text(json.dumps(res, indent=2, sort_keys=True))
    index = report.compare([a, b], tmp_path / "cmp")
    assert index.is_file() and (tmp_path / "cmp" / "compare_official.svg").is_file()
    runs = [load_run(a), load_run(b)]
    fig, values = plots.compare_figure(runs, ["places", "imagenet"])
    for cont in fig.axes[0].containers:
        cat = cont.get_label()
        assert [p.get_height() for p in cont.patches] == [
            r.layers[0].unique_official.get(cat, 0) for r in runs
        ]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["places", "imagenet"]
    with pytest.raises(UsageError):
        report.compare([a, b], tmp_path / "cmp")  # exists, no force
    report.compare([a, b], tmp_path / "cmp", force=True)


def test_cli_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "a"), str(tmp_path / "b")])
    assert exc.value.code == 2
    assert "needs -o" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code == 1
    assert "results.json: file is missing" in capsys.readouterr().err


def test_missing_dataset_is_a_layout_error(tmp_path: Path) -> None:
    out = synthetic.make(tmp_path, layers={"l": (4, 2)}, images=6)
    shutil.rmtree(tmp_path / "data")
    with pytest.raises(LayoutError, match="dataset of this run"):
        report.build(out, workers=1)
    assert not (out / "plots").exists() and not (out / "html").exists()  # nothing half-written


# ----------------------------------------------------------------------------- browser


def _browser_check(index: Path, shot: Path) -> dict[str, object]:
    """Open every page of a report in headless Chromium; return what was seen."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    seen: dict[str, object] = {"errors": [], "pages": {}}
    errors: list[str] = seen["errors"]  # type: ignore[assignment]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on(
            "console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append("failed: " + r.url))
        pages = [index] + sorted(index.parent.glob("layer-*.html"))
        for path in pages:
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            widths = page.evaluate(
                """async () => {
                  const imgs = Array.from(document.images);
                  imgs.forEach(i => { i.loading = 'eager'; });
                  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
                    i.addEventListener('load', r); i.addEventListener('error', r);
                    setTimeout(r, 15000); })));
                  return imgs.map(i => [i.getAttribute('src'), i.naturalWidth]);
                }"""
            )
            info: dict[str, object] = {"images": widths}
            if path != index:
                info["cards"] = page.locator(".card").count()
                info["visible"] = page.locator(".card:visible").count()
                cats = page.eval_on_selector_all(
                    "#category option", "os => os.map(o => o.value).filter(v => v)"
                )
                info["filtered"] = {}
                for cat in cats:
                    page.select_option("#category", cat)
                    info["filtered"][cat] = page.eval_on_selector_all(  # type: ignore[index]
                        ".card:not([hidden])", "cs => cs.map(c => c.dataset.category)"
                    )
                    assert page.locator(".card:visible").count() == len(info["filtered"][cat])  # type: ignore[index]
                page.select_option("#category", "")
                page.fill("#search", "unit 1")
                info["search"] = page.eval_on_selector_all(
                    ".card:not([hidden])", "cs => cs.map(c => Number(c.dataset.unit))"
                )
                page.fill("#search", "")
                if path == pages[1]:
                    page.evaluate("window.scrollTo(0, 0)")
                    page.screenshot(path=str(shot))
            info["url"] = page.url
            seen["pages"][path.name] = info  # type: ignore[index]
        index_shot = shot.with_name(shot.stem + "-index.png")
        page.goto(index.as_uri())
        page.screenshot(path=str(index_shot), full_page=True)
        browser.close()
    return seen


def _check_seen(seen: dict[str, object], out: Path) -> None:
    res = json.loads((out / "results.json").read_text())
    assert seen["errors"] == []
    pages = seen["pages"]
    assert isinstance(pages, dict)
    for name, info in pages.items():
        assert info["images"], name
        assert all(w > 0 for _, w in info["images"]), (name, info["images"])
    for lname, lay in res["layers"].items():
        info = pages[f"layer-{lname}.html"]
        assert info["cards"] == info["visible"] == lay["units"]
        by_cat = Counter(u["category"] for u in lay["units_detail"])
        assert set(info["filtered"]) == set(by_cat)
        for cat, shown in info["filtered"].items():
            assert shown == [cat] * by_cat[cat]
        assert sorted(info["search"]) == [u for u in range(lay["units"]) if str(u).startswith("1")]


def test_browser_synthetic_report(syn_run: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-synthetic.png"
    seen = _browser_check(syn_run / "html" / "index.html", shot)
    _check_seen(seen, syn_run)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


# ----------------------------------------------------------------------------- real dissection


_REAL: dict[str, Path] = {}


@pytest.fixture
def real_run(mini_broden: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dissection of a tiny random conv net on 20 images of mini_broden, with its report
    (made once per session)."""
    if "out" in _REAL:
        return _REAL["out"]
    import torch
    from torch import nn

    from conceptkit.dissection.run import dissect

    root = tmp_path_factory.mktemp("real")
    data = broden_slice(mini_broden, root / "data", 20)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=4, padding=2),
        nn.ReLU(),
        nn.Conv2d(8, 24, 3, stride=2, padding=1),
        nn.ReLU(),
    )
    result = dissect(
        model,
        data,
        layers=["1", "3"],
        top_n=5,
        batch_size=10,
        workers=0,
        iou_threshold=0.02,
        preprocess="netdissect",
    )
    out = root / "out"
    result.save(out)
    report.build(out, workers=2)
    _REAL["out"] = out
    return out


def test_real_dissection_report(real_run: Path) -> None:
    res = json.loads((real_run / "results.json").read_text())
    assert [lay["units"] for lay in res["layers"].values()] == [8, 24]
    assert len(list((real_run / "html" / "image").glob("*.jpg"))) == 32
    assert (real_run / "html" / "image" / "3-0023.jpg").is_file()
    before = _tree_hashes(real_run / "html")
    main(["report", str(real_run)])
    assert _tree_hashes(real_run / "html") == before


def test_browser_real_dissection(real_run: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-real.png"
    seen = _browser_check(real_run / "html" / "index.html", shot)
    _check_seen(seen, real_run)
    print(f"screenshot: {shot}")


# ----------------------------------------------------------------------------- safe arrays, swap


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=">f8").reshape(3, 4),  # big-endian
        np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
        np.zeros((0, 5), dtype=np.int64),
    ],
    ids=["big-endian", "fortran", "empty"],
)
def test_safe_npy_reads_what_numpy_reads(array: np.ndarray, tmp_path: Path) -> None:
    from conceptkit.report.arrays import load_npy

    np.save(tmp_path / "a.npy", array)
    got = load_npy(tmp_path / "a.npy", "fiu", array.ndim)
    np.testing.assert_array_equal(got, np.load(tmp_path / "a.npy", allow_pickle=False))
    assert got.dtype == array.dtype.newbyteorder("=") and got.shape == array.shape
    with pytest.raises(LayoutError, match=r"has shape .*, expected \d dimensions"):
        load_npy(tmp_path / "a.npy", "fiu", array.ndim + 1)
    other = "iu" if array.dtype.kind == "f" else "f"
    with pytest.raises(LayoutError, match=f"has dtype {array.dtype}, expected"):
        load_npy(tmp_path / "a.npy", other, array.ndim)


def test_failed_swap_restores_html_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """html/ and plots/ are swapped in together: a rename failing half-way puts both back."""
    import os

    from conceptkit.report import builder

    out = synthetic.make(tmp_path, layers={"l": (4, 2)}, images=6)
    report.build(out, workers=1)
    before = _tree_hashes(out)
    calls: list[str] = []
    real = os.replace

    def flaky(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name in ("html", "plots", "old-html", "old-plots"):  # the swap's renames
            calls.append(Path(dst).name)
            if len(calls) == 4:  # old html, old plots moved aside, new html in: new plots fail
                raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(builder.os, "replace", flaky)
    with pytest.raises(OSError, match="No space left"):
        report.build(out, workers=1, force_images=True)
    monkeypatch.undo()
    assert calls == ["old-html", "old-plots", "html", "plots", "html", "plots", "html"]
    assert _tree_hashes(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".report")] == []


def test_baseline_table_lists_both_weights_per_layer() -> None:
    from conceptkit.report.pages import baseline_html

    side = {"detectors": 3, "unique_detectors_official": 2, "unique_detectors_naive": 1}
    doc = {
        "kind": "random",
        "seed": 0,
        "folder": "baseline",
        "layers": {
            "layer4": {
                "trained": {**side, "mean_best_iou": 0.05},
                "random": {**side, "detectors": 0, "mean_best_iou": 0.0125},
            }
        },
    }
    html = baseline_html(doc)
    assert '<th colspan="2">layer4</th>' in html and "<th>trained</th><th>random</th>" in html
    assert "<tr><td>detectors</td><td>3</td><td>0</td></tr>" in html
    assert "<td>0.0500</td><td>0.0125</td>" in html
    assert "near chance" not in html  # runs without chance levels: no flagged rows
    assert "seed 0" in html and "<code>baseline/</code>" in html
