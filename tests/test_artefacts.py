"""The run folder's artefact files: names, exact bytes of the writers, refusals, and the readers
reading back what the writers wrote (the report's side of explain and chance)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from conceptkit import artefacts as af
from conceptkit.beyond import chance as ch
from conceptkit.errors import LayoutError, UsageError


def test_names_in_the_order_the_commands_write_them() -> None:
    assert af.explain_names(["a", "b"], exhaustive=False) == [
        "explain_a.csv", "explain_b.csv", "explain_gain.png", "explain.json",
    ]  # fmt: skip
    assert af.explain_names(["a", "b"], exhaustive=True) == [
        "explain_a.csv", "explain_b.csv", "exhaustive_a.csv", "exhaustive_b.csv",
        "explain_gain.png", "explain.json",
    ]  # fmt: skip
    assert af.chance_names(["a", "b"]) == [
        "chance_a.csv", "chance_a.npz", "chance_b.csv", "chance_b.npz", "chance.json",
    ]  # fmt: skip
    assert af.embed_names(["l3"]) == [
        "embed_l3.csv", "embed_l3.npz", "embed_similarity_l3.csv", "embed.json",
    ]  # fmt: skip


def test_the_report_reads_only_written_columns() -> None:
    assert set(af.FORMULA_READ) <= set(af.explain_columns(1))
    assert set(af.CHANCE_READ) <= set(af.CHANCE_COLUMNS)
    assert af.explain_columns(2)[-3:] == ["label_iou", "iou_len1", "iou_len2"]
    assert af.explain_columns(0) == list(af.EXPLAIN_COLUMNS)


def test_csv_and_json_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    af.csv_writer(["a", "b"], [[1, af.number(0.1 + 0.2)], ["x,y", ""]])(path)
    assert path.read_bytes() == b'a,b\r\n1,0.30000000000000004\r\n"x,y",\r\n'
    assert af.read_rows(path) == [{"a": "1", "b": "0.30000000000000004"}, {"a": "x,y", "b": ""}]
    assert float(af.read_rows(path)[0]["b"]) == 0.1 + 0.2  # repr: exact round trip
    af.json_writer({"b": [1.5], "a": "é"})(tmp_path / "t.json")
    text = (tmp_path / "t.json").read_text(encoding="utf-8")
    assert text == '{\n  "a": "\\u00e9",\n  "b": [\n    1.5\n  ]\n}\n'
    with pytest.raises(ValueError):
        af.json_writer({"x": float("nan")})


def test_npz_is_byte_deterministic_and_pickle_free(tmp_path: Path) -> None:
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([4, 7])}
    af.npz_writer(arrays)(tmp_path / "a.npz")
    af.npz_writer(arrays)(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert z["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and z["n"].tolist() == [4, 7]


def test_write_atomic_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    target.write_text("old", encoding="utf-8")

    def broken(path: Path) -> None:
        path.write_text("half", encoding="utf-8")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        af.write_atomic(target, broken)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]
    af.write_atomic(target, af.csv_writer(["new"], []))
    assert target.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_save_all_refuses_before_writing_anything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    writers = {"b.json": af.json_writer([1]), "a.csv": af.csv_writer(["h"], [[2]])}
    assert af.save_all(out, writers) == [out / "b.json", out / "a.csv"]  # dict order
    (out / "b.json").unlink()
    with pytest.raises(UsageError) as exc:
        af.save_all(out, writers)
    assert Path(str(exc.value.file)) == out / "a.csv" and "--force" in str(exc.value)
    assert not (out / "b.json").exists()  # refused before the first file
    af.save_all(out, writers, force=True)
    assert (out / "b.json").read_text(encoding="utf-8") == "[\n  1\n]\n"
    (tmp_path / "file").write_text("", encoding="utf-8")
    with pytest.raises(UsageError, match="is not a folder"):
        af.check_out(tmp_path / "file", [], force=True)


def _chance_result() -> ch.ChanceResult:
    """Three units over labels car (object) and sky (object): unit 0 a detector of car with
    z 1.5 in 40 images, unit 1 of sky in 3 images (z 7), unit 2 without a label."""
    iou = np.array([[0.1, 0.0], [0.0, 0.05], [0.0, 0.0]])
    layer = ch.ChanceLayer(
        layer="l",
        iou=iou,
        iou_chance=np.array([[0.09, 0.0], [0.0, 0.01], [0.0, 0.0]]),
        iou_sd=np.full((3, 2), 0.01),
        z=np.array([[1.5, 0.0], [0.0, 7.0], [0.0, 0.0]]),
        inter=np.array([[10, 0], [0, 5], [0, 0]]),
        expected=np.array([[9.0, 0.0], [0.0, 1.0], [0.0, 0.0]]),
        label=np.array([0, 1, -1]),
        support=np.array([40, 3, 0]),
        mask_images=np.array([12, 4, 0]),
    )
    return ch.ChanceResult("run", "category", ["car", "sky"], [1, 4], ["object", "object"],
                           {"l": layer})  # fmt: skip


def test_chance_files_read_back_as_written(tmp_path: Path) -> None:
    written = ch.save(_chance_result(), tmp_path)
    assert [p.name for p in written] == af.chance_names(["l"])
    path = tmp_path / af.chance_csv("l")
    assert tuple(af.read_rows(path)[0]) == af.CHANCE_COLUMNS
    got = af.read_chance(path, units=3)
    assert got[0] == af.Chance(0.09, 1.5, 40, True, ("near_chance",))
    assert got[1] == af.Chance(0.01, 7.0, 3, True, ("few_images",))
    assert got[2] == af.Chance(0.0, 0.0, 0, False, ("no_label",))
    summary = json.loads((tmp_path / af.CHANCE_JSON).read_text(encoding="utf-8"))
    assert summary["layer_order"] == ["l"]


def test_formulas_read_back_and_broken_files_name_the_place(tmp_path: Path) -> None:
    path = tmp_path / af.explain_csv("l")
    rows = [[0, "car OR sky", "1 OR 4", "0.125", "0.125", 2, "car", "0.1", "0.1", "0.125"],
            [1, "", "", "0.0", "0.0", 0, "", "0.0", "0.0", "0.0"]]  # fmt: skip
    af.csv_writer(af.explain_columns(2), rows)(path)
    assert af.read_formulas(path, units=2) == {0: ("car OR sky", 0.125)}
    with pytest.raises(LayoutError) as exc:
        af.read_formulas(path, units=1)  # unit 1 is not one of 1 unit
    assert exc.value.place == "line 3, column unit"
    af.csv_writer(["unit", "formula"], [[0, "car"]])(path)
    with pytest.raises(LayoutError) as exc:
        af.read_formulas(path, units=2)
    assert exc.value.place == "line 1" and "'iou'" in str(exc.value)
    af.csv_writer(af.explain_columns(1), [[0, "car", "1", "inf", "0", 1, "car", "0", "0"]])(path)
    with pytest.raises(LayoutError) as exc:
        af.read_formulas(path, units=2)
    assert exc.value.place == "line 2, column iou"
