"""The concept vocabulary: normalisation, synonyms, plurals, defaults, the written mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conceptkit.annotations import Shape
from conceptkit.concepts import Vocabulary, category_rank, normalise, plural_forms
from conceptkit.consistency._planes import resolver
from conceptkit.errors import FormatError


def test_normalise() -> None:
    assert normalise("  Traffic \t Light ") == "traffic light"
    assert normalise("CAR") == "car"


def test_plural_forms() -> None:
    assert plural_forms("car") == {"cars"}
    assert plural_forms("bus") == {"buses", "buss"}
    assert "ladies" in plural_forms("lady") and "boys" in plural_forms("boy")
    assert "boies" not in plural_forms("boy")
    assert "shelves" in plural_forms("shelf") and "knives" in plural_forms("knife")


def _vocab(tmp_path: Path, text: str) -> Vocabulary:
    p = tmp_path / "concepts.csv"
    p.write_text(text, encoding="utf-8")
    return Vocabulary.from_csv(p)


def test_synonyms_plurals_and_categories(tmp_path: Path) -> None:
    v = _vocab(
        tmp_path,
        "name,category,synonyms,plural\n"
        "car,object,Automobile; auto,yes\n"
        "wheel,part,,\n"
        "kitchen,scene,,\n"
        "blur,drop,,\n",
    )
    assert v.resolve("Cars", "object") == ("car", "object")
    assert v.resolve(" automobiles ", "object") == ("car", "object")
    assert v.resolve("AUTO", "object") == ("car", "object")
    assert v.resolve("wheels", "part") == ("wheels", "part")  # no plural asked for wheel
    assert v.resolve("Wheel", "object") == ("wheel", "part")  # the vocabulary decides
    assert v.resolve("kitchen", "scene") == ("kitchen", "scene")
    assert v.resolve("blur", "object") is None
    assert v.resolve("tree", "object") == ("tree", "object")
    assert v.unknown() == ["tree", "wheels"]
    assert v.canonical("Automobiles") == "car"


def test_defaults_without_a_file() -> None:
    v = Vocabulary()
    assert v.resolve("Person", "object") == ("person", "object")
    assert v.resolve("handle", "part") == ("handle", "part")
    assert v.resolve("indoor", "scene") == ("indoor", "scene")
    assert v.resolve("__ignore__", "object") == ("__ignore__", "ignore")
    assert v.unknown() == []


def test_same_name_in_two_categories_prefers_the_default(tmp_path: Path) -> None:
    v = _vocab(tmp_path, "name,category,synonyms\ndoor,object,\ndoor,part,\n")
    assert v.resolve("door", "part") == ("door", "part")
    assert v.resolve("door", "object") == ("door", "object")
    assert v.resolve("door", "scene") == ("door", "object")


def test_written_mapping_repeats_the_run(tmp_path: Path) -> None:
    v = Vocabulary()
    for raw, cat in [("Car", "object"), ("car ", "object"), ("wheel", "part"), ("beach", "scene")]:
        v.resolve(raw, cat)
    text = v.csv_text()
    assert text == "name,category,synonyms\ncar,object,\nwheel,part,\nbeach,scene,\n"
    v.write_csv(tmp_path / "c.csv")
    again = Vocabulary.from_csv(tmp_path / "c.csv")
    assert again.resolve("CAR", "object") == ("car", "object")
    assert again.resolve("wheel", "object") == ("wheel", "part")


def test_merged_synonyms_are_written(tmp_path: Path) -> None:
    v = _vocab(tmp_path, "name,category,synonyms\ncar,object,auto\n")
    v.resolve("Auto", "object")
    v.resolve("car", "object")
    assert v.csv_text() == "name,category,synonyms\ncar,object,auto\n"


def test_bad_vocabulary_files(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="line 1: header must be"):
        _vocab(tmp_path, "label,cat\ncar,object\n")
    with pytest.raises(FormatError, match="line 3: needs a name and a category"):
        _vocab(tmp_path, "name,category,synonyms\ncar,object,\nbus,,\n")
    with pytest.raises(FormatError, match="line 2, column category"):
        _vocab(tmp_path, "name,category,synonyms\ncar,my object,\n")


def test_category_order_is_brodens() -> None:
    cats = sorted(["scene", "zeta", "part", "object", "alpha"], key=category_rank)
    assert cats == ["object", "part", "scene", "alpha", "zeta"]


def _shape(label: str, category: str | None = None, ignore: bool = False) -> Shape:
    s = Shape(label, "rectangle", np.array([[0.0, 0.0], [2.0, 2.0]]), category=category)
    s.ignore = ignore
    return s


def test_lookup_records_nothing_and_resolve_shape_uses_the_forced_category(
    tmp_path: Path,
) -> None:
    v = _vocab(tmp_path, "name,category,synonyms\ndoor,object,\ndoor,part,portal\nblur,drop,\n")
    assert v.lookup("Portal", "object") == ("door", "part")
    assert v.lookup("  ", "object") is None  # an empty name is left out
    assert v.used == {}
    assert v.resolve_shape(_shape("door", category="part")) == ("door", "part")
    assert v.resolve_shape(_shape("Door")) == ("door", "object")
    assert v.resolve_shape(_shape("blur")) is None
    # an ignore region keeps its label and is never recorded, whatever the vocabulary says
    assert v.resolve_shape(_shape("blur", ignore=True)) == ("blur", "ignore")
    assert v.resolve_shape(_shape("tree"), record=False) == ("tree", "object")
    assert sorted(v.used) == [("blur", "drop"), ("door", "object"), ("door", "part")]


def test_consistency_resolves_names_by_the_same_rule(tmp_path: Path) -> None:
    """consistency's resolver is Vocabulary.resolve_shape without recording (one rule)."""
    v = _vocab(tmp_path, "name,category,synonyms\ncar,object,auto\nwheel,part,\nx,drop,\n")
    shapes = [
        _shape("Auto"),
        _shape("wheel"),
        _shape("wheel", "part"),
        _shape("x"),
        _shape(""),
        _shape("__ignore__"),
        _shape("person", ignore=True),
        _shape("Tree  Top"),
    ]
    resolve = resolver(v)
    assert [resolve(s) for s in shapes] == [
        v.lookup(s.label, s.category or "object") for s in shapes[:6]
    ] + [
        ("person", "ignore"),
        ("tree top", "object"),
    ]
    assert v.used == {}
    plain = resolver(None)
    assert [plain(s) for s in shapes] == [
        ("auto", "object"),
        ("wheel", "object"),
        ("wheel", "part"),
        ("x", "object"),
        None,
        ("__ignore__", "ignore"),
        ("person", "ignore"),
        ("tree top", "object"),
    ]
    renamed = resolver({"Auto": "car", "tree top": "tree"})
    assert [renamed(s) for s in (shapes[0], shapes[4], shapes[5], shapes[7])] == [
        ("car", "object"),
        None,
        ("__ignore__", "ignore"),
        ("tree", "object"),
    ]


def test_name_problem() -> None:
    from conceptkit.concepts import name_problem

    for ok in ("car", "traffic light", "-5", "3d", "e=mc2", "a-b", "c++"):
        assert name_problem(ok) is None, ok
    for bad, why in [
        ("=1+1", "formula"),
        ("+x", "formula"),
        ("@a", "formula"),
        ("-x", "formula"),
        ("-", "formula"),
        ("-5x", "formula"),
        ("a;b", "';'"),
        ("a\x1bb", "control"),
        ("tab\x85", "control"),
    ]:
        problem = name_problem(bad)
        assert problem is not None and why in problem, bad


def test_written_mapping_never_starts_a_cell_like_a_formula(tmp_path: Path) -> None:
    v = _vocab(tmp_path, 'name,category,synonyms\ncommand,object,"=cmd;-x"\n')
    assert v.resolve("=CMD", "object") == ("command", "object")
    assert v.resolve("-x", "object") == ("command", "object")
    assert v.csv_text() == "name,category,synonyms\ncommand,object,;-x;=cmd\n"
    (tmp_path / "back.csv").write_text(v.csv_text())
    again = Vocabulary.from_csv(tmp_path / "back.csv")
    assert again.table == {k: [("command", "object")] for k in ("-x", "=cmd", "command")}
