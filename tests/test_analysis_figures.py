"""The chapter's figures: every test reads the drawn content back from the Axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from netdissect_folders import HAND_LAYER, LITE_CATEGORIES, write_lite_folder

from conceptkit.analysis import (
    detectors_per_category,
    load,
    unique_detectors,
    unit_strip,
)
from conceptkit.analysis.figures import (
    concepts_figure,
    detector_share_figure,
    save,
    unique_detectors_figure,
    unit_figure,
)
from conceptkit.errors import LayoutError
from conceptkit.report import plots
from conceptkit.report.foreign import run_info

SMALL_LAYER = [
    {"object": ("car", 0.2), "part": ("wheel", 0.05)},
    {"part": ("door", 0.09)},
    {"object": ("tree", 0.06)},
    {"texture": ("dotted", 0.01)},
]


@pytest.fixture
def runs(tmp_path: Path) -> list:  # type: ignore[type-arg]
    root = tmp_path / "result"
    places = write_lite_folder(
        root,
        "pytorch_resnet18_places365",
        {"layer3": SMALL_LAYER, "layer4": HAND_LAYER},
        strips=[1],
    )
    imagenet = write_lite_folder(
        root, "pytorch_resnet18_imagenet", {"layer3": HAND_LAYER, "layer4": SMALL_LAYER}
    )
    return [load(places), load(imagenet)]


def _stacks(ax) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """{category: bar heights} from the Axes' bar containers."""
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}


def test_unique_detectors_figure_bars(runs: list) -> None:  # type: ignore[type-arg]
    df = unique_detectors(runs, layers=["layer4"])
    fig, values = unique_detectors_figure(df)
    left, right = fig.axes[0], fig.axes[1]
    names = [t.get_text() for t in left.get_xticklabels()]
    assert names == ["resnet18_places365", "resnet18_imagenet"]  # one bar per model
    stacks = _stacks(left)
    assert list(stacks) == list(LITE_CATEGORIES)
    # places365 layer4 (hand layer, official): object 2, part 2, scene 1; imagenet layer4:
    # object {car, tree} 2, part {door, wheel} 2
    assert stacks["object"] == [2, 2] and stacks["part"] == [2, 2]
    assert stacks["scene"] == [1, 0] and stacks["color"] == [0, 0]
    # stacked: each bar starts where the one below ended
    bottoms = [p.get_y() for p in left.containers[1].patches]
    assert bottoms == [2, 2]
    totals = [t.get_text() for t in left.texts]
    assert totals == ["5", "4"]
    share = _stacks(right)
    assert share["object"] == pytest.approx([25.0, 50.0])  # 2 of 8, 2 of 4
    assert [t.get_text() for t in right.texts] == ["62.5%", "100.0%"]
    assert values["absolute"]["resnet18_imagenet"]["part"] == 2


def test_unique_detectors_figure_names_layers_when_a_model_has_several(runs: list) -> None:  # type: ignore[type-arg]
    fig, _ = unique_detectors_figure(
        unique_detectors(runs[:1], definition="naive"), definition="naive"
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "resnet18_places365: layer3",
        "resnet18_places365: layer4",
    ]
    assert "naive" in ax.get_ylabel()
    assert _stacks(ax)["object"] == [2, 1]  # naive: {car, tree}; hand layer {car}


@pytest.mark.parametrize("definition", ["official", "naive"])
def test_the_reports_comparison_draws_the_same_bars(
    runs: list,  # type: ignore[type-arg]
    tmp_path: Path,
    definition: str,
) -> None:
    """`conceptkit report A B -o DIR`'s compare_<definition> and this figure are one drawing:
    on the same folders they give the same PNG and SVG bytes."""
    infos = [run_info(r) for r in runs]
    report_fig, counts = plots.compare_figure(infos, [i.name for i in infos], definition)
    df = unique_detectors(runs, definition=definition)
    fig, values = unique_detectors_figure(df, definition=definition)
    assert values["absolute"] == {bar: {c: float(n) for c, n in per.items()}
                                  for bar, per in counts.items()}  # fmt: skip
    assert values["absolute"]["resnet18_places365: layer4"]["scene"] == 1.0
    a = [p.read_bytes() for p in save(report_fig, tmp_path / "report")]
    b = [p.read_bytes() for p in save(fig, tmp_path / "analysis")]
    assert a == b


def test_detector_share_figure_lines(runs: list) -> None:  # type: ignore[type-arg]
    fig, values = detector_share_figure(detectors_per_category(runs))
    assert [ax.get_title() for ax in fig.axes] == ["resnet18_places365", "resnet18_imagenet"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer3", "layer4"]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert list(lines) == list(LITE_CATEGORIES)
    # places layer3: 4 units, object 2 (car, tree), part 1 -> 50%, 25%; layer4: 8 units, 2/1/1
    assert lines["object"] == pytest.approx([50.0, 25.0])
    assert lines["part"] == pytest.approx([25.0, 12.5])
    assert lines["scene"] == pytest.approx([0.0, 12.5])
    other = {line.get_label(): list(line.get_ydata()) for line in fig.axes[1].lines}
    assert other["object"] == pytest.approx([25.0, 50.0])
    assert values["resnet18_imagenet"]["object"] == pytest.approx([25.0, 50.0])


def test_concepts_figure_two_models_top_and_totals(tmp_path: Path) -> None:
    many = [{"object": (f"thing{i:02d}", 0.05 + 0.001 * i)} for i in range(45)]
    many += [
        {"object": ("thing44", 0.3)},
        {"object": ("thing43", 0.3)},
        {"object": ("thing44", 0.2)},
    ]
    a = load(write_lite_folder(tmp_path, "pytorch_resnet18_places365", {"layer4": many}))
    b = load(write_lite_folder(tmp_path, "pytorch_resnet18_imagenet", {"layer4": HAND_LAYER}))
    fig, values = concepts_figure([a, b], "object", top=40)
    left, right = fig.axes
    widths = [p.get_width() for p in left.patches]
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert len(widths) == 40  # 45 concepts, the top 40 drawn
    # largest at the top (last bar): thing44 3 units, thing43 2, then ones by name
    assert labels[-3:][::-1] == ["thing44", "thing43", "thing00"] and widths[-3:][::-1] == [3, 2, 1]
    assert labels[0] == "thing37"  # then thing00..thing37 by name: 2 + 38 = 40
    assert (
        left.get_title()
        == "resnet18_places365 layer4: 48 object detectors, 45 concepts, top 40 shown"
    )
    # hand layer: only car is an object best label (road is unit 4's best object, but its
    # best label is scene street)
    assert [p.get_width() for p in right.patches] == [2]
    assert [t.get_text() for t in right.get_yticklabels()] == ["car"]
    assert right.get_title() == "resnet18_imagenet layer4: 2 object detectors, 1 concept"
    assert values["resnet18_imagenet"] == {"car": 2}


def test_unit_figure_title_and_pixels(runs: list) -> None:  # type: ignore[type-arg]
    from PIL import Image

    strip = unit_strip(runs[0], "layer4", 1)
    fig, values = unit_figure(strip)
    ax = fig.axes[0]
    assert ax.get_title() == "Unit 1, Label: car, Category: object, IoU: 0.10"
    expected = np.asarray(Image.open(strip.image).convert("RGB"))
    assert np.array_equal(np.asarray(ax.images[0].get_array()), expected)
    assert values["shape"] == expected.shape
    with pytest.raises(
        LayoutError, match="layer4-0001.jpg: layer layer4, unit 2: image strip is missing"
    ):
        unit_figure(unit_strip(runs[0], "layer4", 2))


def test_unit_figure_unreadable_strip(runs: list) -> None:  # type: ignore[type-arg]
    strip = unit_strip(runs[0], "layer4", 1)
    strip.image.write_bytes(b"not a jpeg")
    with pytest.raises(LayoutError, match="cannot be read as an image"):
        unit_figure(strip)


def test_figures_are_byte_deterministic(runs: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    made = []
    for n in range(2):
        out = tmp_path / f"f{n}"
        out.mkdir()
        paths = []
        paths += save(unique_detectors_figure(unique_detectors(runs))[0], out / "ud")
        paths += save(detector_share_figure(detectors_per_category(runs))[0], out / "share")
        paths += save(concepts_figure(runs, "object", layer="layer4")[0], out / "concepts")
        paths += save(unit_figure(unit_strip(runs[0], "layer4", 1))[0], out / "unit")
        made.append([p.read_bytes() for p in paths])
    assert len(made[0]) == 8
    assert made[0] == made[1]
    assert made[0][0][:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in made[0][1]
