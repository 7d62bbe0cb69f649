"""The report's cards with `conceptkit explain`'s formulas and `conceptkit chance`'s check."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import synthetic_run as synthetic

from conceptkit import report
from conceptkit.errors import LayoutError

EXPLAIN = """unit,formula,labels,iou,score,length,label,label_iou,iou_len1,iou_len2
0,(car OR road),(1 OR 3),0.125,0.12,2,car,0.1,0.1,0.125
1,,,0.0,0.0,0,,0.0,0.0,0.0
2,wheel AND NOT door,9 AND NOT 11,0.0625,0.06,2,wheel,0.05,0.05,0.0625
"""
CHANCE_HEAD = (
    "unit,label,number,category,iou,iou_chance,iou_sd,z,intersect,expected_intersect,"
    "support,mask_images,detector,flags\n"
)
CHANCE = CHANCE_HEAD + (
    "0,car,1,object,0.1,0.09,0.01,1.5,10,9.0,40,12,1,near_chance\n"
    "1,road,3,object,0.05,0.01,0.01,4.0,5,1.0,3,4,1,few_images\n"
    "2,wheel,9,part,0.08,0.01,0.01,7.0,8,1.0,3,5,1,near_chance;few_images\n"
    "3,sky,4,object,0.02,0.019,0.01,0.1,2,1.9,30,5,0,near_chance\n"
    "4,,0,,0.0,0.0,0.0,0.0,0,0.0,0,0,0,no_label\n"
)


def _cards(page: str) -> dict[int, str]:
    return {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<article [^>]*id="unit-(\d+)".*?</article>', page, re.S)
    }


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic run's report without extras (the reference for unchanged pages)."""
    out = synthetic.make(tmp_path_factory.mktemp("plain"), layers={"l": (8, 2)}, images=6)
    report.build(out, workers=1)
    return out


def test_formulas_and_chance_on_the_cards(tmp_path: Path, plain: Path) -> None:
    out = synthetic.make(tmp_path, layers={"l": (8, 2)}, images=6)
    (out / "explain_l.csv").write_text(EXPLAIN, encoding="utf-8")
    (out / "chance_l.csv").write_text(CHANCE, encoding="utf-8")
    report.build(out, workers=1)
    cards = _cards((out / "html" / "layer-l.html").read_text(encoding="utf-8"))
    assert "formula <code>(car OR road)</code> IoU 0.1250" in cards[0]
    assert "formula <code>wheel AND NOT door</code> IoU 0.0625" in cards[2]
    assert "formula" not in cards[1]  # an empty formula shows nothing
    assert "chance IoU 0.0900 · z 1.50 · support 40 images" in cards[0]
    assert '<b class="flag">near_chance</b>' in cards[0]
    assert '<b class="flag">few_images</b>' in cards[1]
    assert '<b class="flag">near_chance</b> <b class="flag">few_images</b>' in cards[2]
    assert "chance" not in cards[5] and "formula" not in cards[5]
    index = (out / "html" / "index.html").read_text(encoding="utf-8")
    # detectors 0, 1, 2 flagged (3 is flagged but not a detector): 3 flagged, 2 near, 2 few
    assert "<tr><td>l</td><td>3</td><td>3</td><td>2</td><td>2</td></tr>" in index
    # plots and strips are the same as without the extras
    assert _hashes(out / "plots") == _hashes(plain / "plots")
    assert _hashes(out / "html" / "image") == _hashes(plain / "html" / "image")


def test_no_extras_leaves_the_pages_unchanged(tmp_path: Path, plain: Path) -> None:
    out = synthetic.make(tmp_path, layers={"l": (8, 2)}, images=6)
    (out / "explain_other.csv").write_text(EXPLAIN, encoding="utf-8")  # another layer's
    report.build(out, workers=1)
    for name in ("index.html", "layer-l.html"):
        new = (out / "html" / name).read_text(encoding="utf-8")
        old = (plain / "html" / name).read_text(encoding="utf-8")
        assert new.replace(str(out.parent), "") == old.replace(str(plain.parent), "")
    assert "Chance check" not in (out / "html" / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "text", "place"),
    [
        ("explain_l.csv", "unit,formula\n0,car\n", "line 1"),
        ("explain_l.csv", "unit,formula,iou\n8,car,0.1\n", "line 2, column unit"),
        ("explain_l.csv", "unit,formula,iou\n0,car,nan\n", "line 2, column iou"),
        ("chance_l.csv", CHANCE_HEAD + "x,,0,,0,0,0,0,0,0,0,0,0,\n", "line 2, column unit"),
        ("chance_l.csv", CHANCE_HEAD + "0,a,1,o,0,0,0,z,0,0,3,0,1,\n", "line 2, column z"),
    ],
)
def test_broken_extras_name_the_file_and_place(
    tmp_path: Path, name: str, text: str, place: str
) -> None:
    out = synthetic.make(tmp_path, layers={"l": (8, 2)}, images=6)
    (out / name).write_text(text, encoding="utf-8")
    with pytest.raises(LayoutError) as exc:
        report.build(out, workers=1)
    assert exc.value.place == place and Path(str(exc.value.file)).name == name
    assert not (out / "html").exists()  # nothing half-written


def test_the_dissections_own_chance_check_reaches_the_cards(tmp_path: Path) -> None:
    """Without chance_<layer>.csv the cards show the chance check results.json carries."""
    import json

    out = synthetic.make(tmp_path, layers={"l": (8, 2)}, images=6)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    detail = doc["layers"]["l"]["units_detail"]
    detail[0].update(support=40, iou_chance=0.09, z=1.5, flags=["near_chance"])
    detail[1].update(support=3, iou_chance=0.01, z=4.0, flags=["few_images"])
    (out / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    report.build(out, workers=1)
    cards = _cards((out / "html" / "layer-l.html").read_text(encoding="utf-8"))
    assert "chance IoU 0.0900 · z 1.50 · support 40 images" in cards[0]
    assert '<b class="flag">near_chance</b>' in cards[0]
    assert '<b class="flag">few_images</b>' in cards[1]
    assert "chance" not in cards[2]
    assert "Chance check" in (out / "html" / "index.html").read_text(encoding="utf-8")
    detail[0]["z"] = "high"
    (out / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(LayoutError, match=r"units_detail\[0\]\.z"):
        report.build(out, workers=1)
