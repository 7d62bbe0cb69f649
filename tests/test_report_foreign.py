"""`conceptkit report` on foreign folders: NetDissect-Lite's and NetDissect's results."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from netdissect_folders import HAND_LAYER, write_lite_folder

from conceptkit.analysis import counts, figures
from conceptkit.analysis.runs import load
from conceptkit.cli import main
from conceptkit.report import plots
from conceptkit.report.foreign import run_info

# HAND_LAYER at the cut 0.04 (see tests/netdissect_folders.py): detectors object 2 (units 1, 2),
# part 1 (unit 3), scene 1 (unit 4); official unique: object {car, road}, part {wheel, window},
# scene {street}; naive: object {car}, part {wheel}, scene {street}.
OFFICIAL = {"object": 2, "part": 2, "scene": 1, "texture": 0, "color": 0}
NAIVE = {"object": 1, "part": 1, "scene": 1, "texture": 0, "color": 0}
DETECTORS = {"object": 2, "part": 1, "scene": 1, "texture": 0, "color": 0}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cards(page: str) -> dict[int, str]:
    """Unit (0-based) -> the HTML of its card."""
    return {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<article [^>]*id="unit-(\d+)".*?</article>', page, re.S)
    }


def test_lite_folder_with_strips(tmp_path: Path) -> None:
    src = write_lite_folder(tmp_path, "pytorch_resnet18_places365", {"layer4": HAND_LAYER},
                            strips=True)  # fmt: skip
    before = _hashes(src)
    out = tmp_path / "rep"
    main(["report", str(src), "-o", str(out)])
    assert _hashes(src) == before  # read only
    page = (out / "html" / "layer-layer4.html").read_text(encoding="utf-8")
    cards = _cards(page)
    assert sorted(cards) == list(range(8))  # every unit a card
    for u in range(8):
        copied = out / "html" / "image" / f"layer4-{u:04d}.jpg"
        assert copied.read_bytes() == (src / "html" / "image" / f"layer4-{u:04d}.jpg").read_bytes()
        assert f'src="image/layer4-{u:04d}.jpg"' in cards[u]
        assert 'width="54" height="16"' in cards[u]  # the strip's own size (3 tiles of 16 + gaps)
        assert "no image strip" not in cards[u]
    # unit 1 (1-based) is car, object, 0.10; runners-up from its other categories
    assert 'data-label="car"' in cards[0] and "IoU 0.1000" in cards[0]
    assert "wheel <small>(part, 0.0600)" in cards[0] and "red <small>(color, 0.0200)" in cards[0]
    index = (out / "html" / "index.html").read_text(encoding="utf-8")
    assert "Not shown" not in index
    assert ">layer4</a></td><td>8</td><td>0 × 0</td><td>4</td><td>5</td><td>3</td>" in index
    assert "NetDissect-Lite result" in index
    for stem in ("category_share", "iou_histogram", "unique_layer4", "concepts_layer4__object"):
        assert (out / "plots" / f"{stem}.png").is_file() and (
            out / "plots" / f"{stem}.svg"
        ).is_file()
    assert 'src="../plots/concepts_layer4__part.png"' in index


def test_bar_heights_come_from_the_tallies(tmp_path: Path) -> None:
    src = write_lite_folder(tmp_path, "pytorch_resnet18_places365", {"layer4": HAND_LAYER})
    info = run_info(load(src))
    lay = info.layers[0]
    assert (lay.units, lay.detectors) == (8, 4)
    assert (lay.unique_official_total, lay.unique_naive_total) == (5, 3)
    fig, values = plots.unique_detectors_figure(info, lay)
    assert values["official"] == OFFICIAL and values["naive"] == NAIVE
    ax = fig.axes[0]
    heights = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    assert heights["object"] == [2.0, 1.0] and heights["part"] == [2.0, 1.0]
    assert heights["scene"] == [1.0, 1.0] and heights["color"] == [0.0, 0.0]
    _, share = plots.category_share_figure(info)
    assert share == {c: [100.0 * n / 8] for c, n in DETECTORS.items()}
    fig, counts = plots.concepts_figure(info, lay, "object")
    assert counts == {"car": 2}
    assert [b.get_width() for b in fig.axes[0].containers[0]] == [2.0]


def test_missing_strips_are_said(tmp_path: Path) -> None:
    src = write_lite_folder(tmp_path, "pytorch_alexnet_imagenet", {"conv5": HAND_LAYER},
                            strips=[1, 3])  # fmt: skip
    out = tmp_path / "rep"
    main(["report", str(src), "-o", str(out)])
    cards = _cards((out / "html" / "layer-conv5.html").read_text(encoding="utf-8"))
    assert sorted(cards) == list(range(8))
    shown = {u for u, c in cards.items() if "<img" in c}
    assert shown == {0, 2}
    for u in set(range(8)) - shown:
        assert f"no image strip: the folder has no html/image/conv5-{u:04d}.jpg" in cards[u]
    assert sorted(p.name for p in (out / "html" / "image").iterdir()) == [
        "conv5-0000.jpg",
        "conv5-0002.jpg",
    ]
    index = (out / "html" / "index.html").read_text(encoding="utf-8")
    assert "<h2>Not shown</h2>" in index
    assert "conv5: 6 of 8 units without an image strip (units 1, 3, 4, 5, 6, 7;" in index


def test_single_tally_and_netdissect_files(tmp_path: Path) -> None:
    lite = write_lite_folder(tmp_path, "pytorch_vgg16_places365", {"conv5_3": HAND_LAYER},
                             single_tally=True)  # fmt: skip
    main(["report", str(lite), "-o", str(tmp_path / "a")])
    assert (tmp_path / "a" / "html" / "layer-conv5_3.html").is_file()  # named by html/<layer>.html
    nd = write_lite_folder(tmp_path, "pytorch_resnet152_places365",
                           {"layer4": HAND_LAYER, "layer3": HAND_LAYER[:5]},
                           flavour="netdissect")  # fmt: skip
    main(["report", str(nd), "-o", str(tmp_path / "b")])
    index = (tmp_path / "b" / "html" / "index.html").read_text(encoding="utf-8")
    assert "NetDissect result" in index
    assert index.index(">layer3</a>") < index.index(">layer4</a>")
    assert ">layer3</a></td><td>5</td><td>0 × 0</td><td>4</td><td>5</td><td>3</td>" in index
    cards = _cards((tmp_path / "b" / "html" / "layer-layer3.html").read_text(encoding="utf-8"))
    assert sorted(cards) == list(range(5))


def test_foreign_folder_is_never_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_lite_folder(tmp_path, "pytorch_resnet18_places365", {"layer4": HAND_LAYER})
    before = _hashes(src)
    for args in ([str(src)], [str(src), "-o", str(src)], [str(src), "-o", str(src / "html")]):
        with pytest.raises(SystemExit) as exc:
            main(["report", *args])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(src) in err[0]
        assert _hashes(src) == before
    main(["report", str(src), "-o", str(tmp_path / "rep")])
    with pytest.raises(SystemExit):  # an existing -o needs --force
        main(["report", str(src), "-o", str(tmp_path / "rep")])
    main(["report", str(src), "-o", str(tmp_path / "rep"), "--force"])
    assert _hashes(src) == before


def test_compare_foreign_folders(tmp_path: Path) -> None:
    a = write_lite_folder(tmp_path, "pytorch_resnet18_places365", {"layer4": HAND_LAYER})
    b = write_lite_folder(tmp_path, "pytorch_resnet18_imagenet", {"layer4": HAND_LAYER[:4]})
    main(["report", str(a), str(b), "-o", str(tmp_path / "cmp")])
    page = (tmp_path / "cmp" / "index.html").read_text(encoding="utf-8")
    assert (
        "<td>resnet18_places365</td><td>layer4</td><td>8</td><td>4</td><td>5</td><td>3</td>" in page
    )
    assert (
        "<td>resnet18_imagenet</td><td>layer4</td><td>4</td><td>4</td><td>5</td><td>3</td>" in page
    )
    for stem in ("compare_official", "detector_share", "concepts_layer4__object",
                 "concepts_layer4__part", "concepts_layer4__scene"):  # fmt: skip
        assert (tmp_path / "cmp" / f"{stem}.png").is_file()
        assert (tmp_path / "cmp" / f"{stem}.svg").is_file()
        assert f'src="{stem}.png"' in page
    assert not (tmp_path / "cmp" / "concepts_layer4__color.png").exists()  # no color detector
    assert "Detector units per concept of part, layer layer4, the models side by side" in page
    # the lines and bars drawn: percent of units per category, one panel per model
    runs = [load(a), load(b)]
    _, share = figures.detector_share_figure(counts.detectors_per_category(runs))
    assert share["resnet18_places365"]["object"] == [25.0]
    assert share["resnet18_imagenet"]["object"] == [50.0]
    assert share["resnet18_imagenet"]["part"] == [25.0]
    fig, bars = figures.concepts_figure(runs, "part", layer="layer4")
    assert bars == {"resnet18_places365": {"wheel": 1}, "resnet18_imagenet": {"wheel": 1}}
    assert [[b.get_width() for b in ax.containers[0]] for ax in fig.axes] == [[1.0], [1.0]]
