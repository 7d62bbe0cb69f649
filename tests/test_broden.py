"""Reading, writing and statistics of the Broden layout."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
from conceptkit.schemas import load as load_schema

from conceptkit import broden
from conceptkit.errors import ConceptkitError, LayoutError

# the headers NetDissect-Lite's loader reads (its broden_dataset.py), written out by hand
NETDISSECT_HEADERS = {
    "broden_index": ("image", "split", "ih", "iw", "sh", "sw"),
    "broden_category": ("name", "first", "last", "count", "frequency"),
    "broden_label": ("number", "name", "category", "frequency", "coverage", "syns"),
    "broden_codes": ("code", "number", "name", "frequency", "coverage"),
}


def copy_layout(src: Path, dst: Path) -> None:
    """Read every CSV of ``src`` and write it to ``dst`` (images are not copied)."""
    meta = broden.read_meta(src)
    broden.write_tables(dst, meta.categories, meta.labels, meta.codes)
    broden.write_index(dst, (row for _, row in broden.iter_index(src)), meta.index_categories)


def test_headers_are_the_schemas(mini_broden: Path) -> None:
    """One source: the shipped schemas name NetDissect-Lite's columns, broden.py writes them,
    and the fixture's files start with them."""
    constants = {
        "broden_index": broden.INDEX_FIXED,
        "broden_category": broden.CATEGORY_HEADER,
        "broden_label": broden.LABEL_HEADER,
        "broden_codes": broden.CODE_HEADER,
    }
    for name, want in NETDISSECT_HEADERS.items():
        assert tuple(f["name"] for f in load_schema(name)["fields"]) == want, name
        assert constants[name] == want, name
    assert broden.category_csv([]) == "name,first,last,count,frequency\n"
    assert broden.label_csv([]) == "number,name,category,frequency,coverage,syns\n"
    assert broden.codes_csv([]) == "code,number,name,frequency,coverage\n"
    assert broden.index_csv_header(["object"]) == "image,split,ih,iw,sh,sw,object\n"
    first = (mini_broden / "c_object.csv").read_text().splitlines()[0]
    assert first == "code,number,name,frequency,coverage"


def test_round_trip_is_byte_identical(mini_broden: Path, tmp_path: Path) -> None:
    copy_layout(mini_broden, tmp_path)
    csvs = sorted(p.name for p in mini_broden.glob("*.csv"))
    assert len(csvs) == 8
    for name in csvs:
        assert filecmp.cmp(mini_broden / name, tmp_path / name, shallow=False), name


def test_read_meta_and_index(mini_broden: Path) -> None:
    meta = broden.read_meta(mini_broden)
    assert meta.category_names == ["part", "scene", "object", "color", "texture"]
    assert meta.index_categories == meta.category_names
    rows = broden.read_index(mini_broden)
    assert len(rows) == 200
    r = rows[0]
    assert (r.image, r.split, r.ih, r.iw, r.sh, r.sw) == (
        "mini/000001.jpg",
        "train",
        224,
        224,
        112,
        112,
    )
    assert r.planes["part"] == ("mini/000001_part_1.png", "mini/000001_part_2.png")
    assert r.image_labels == {"scene": (3,), "texture": (11,)}
    prim = meta.primary_category()
    assert prim[1] == "part" and prim[3] == "scene" and prim[13] == "color"


def test_stats_recomputed_equal_the_tables(mini_broden: Path) -> None:
    """Frequencies and coverages rebuilt from the pixels equal what label.csv and c_*.csv hold."""
    meta = broden.read_meta(mini_broden)
    stats = broden.LabelStats()
    for row in broden.read_index(mini_broden):
        planes = {
            c: [broden.decode_plane(mini_broden / "images" / p) for p in ps]
            for c, ps in row.planes.items()
        }
        stats.add_image(planes, row.image_labels)
    cats, labels, codes = broden.build_tables(meta.category_names, meta.label_names(), stats)
    assert cats == meta.categories
    assert [(x.number, x.name, x.categories, x.frequency) for x in labels] == [
        (x.number, x.name, x.categories, x.frequency) for x in meta.labels
    ]
    for a, b in zip(labels, meta.labels):
        assert a.coverage == pytest.approx(b.coverage, abs=1e-6)
    for cat in meta.category_names:
        assert [(c.code, c.number, c.frequency) for c in codes[cat]] == [
            (c.code, c.number, c.frequency) for c in meta.codes[cat]
        ]


def test_plane_encoding_round_trip(tmp_path: Path) -> None:
    lab = np.array([[0, 1, 255], [256, 300, 65535]], dtype=np.int32)
    broden.save_plane(lab, tmp_path / "p.png")
    assert np.array_equal(broden.decode_plane(tmp_path / "p.png"), lab)


def test_bad_header_names_file_and_line(mini_broden: Path, tmp_path: Path) -> None:
    copy_layout(mini_broden, tmp_path)
    (tmp_path / "category.csv").write_text("name,first,last,count\npart,1,2,2\n")
    with pytest.raises(LayoutError) as err:
        broden.read_meta(tmp_path)
    assert "category.csv: line 1" in str(err.value)


def test_bad_label_category_field(mini_broden: Path, tmp_path: Path) -> None:
    copy_layout(mini_broden, tmp_path)
    text = (tmp_path / "label.csv").read_text().replace("part(200)", "part", 1)
    (tmp_path / "label.csv").write_text(text)
    with pytest.raises(LayoutError, match=r"label.csv: line 2, column category"):
        broden.read_meta(tmp_path)


def _index_with(tmp_path: Path, mini_broden: Path, old: str, new: str) -> Path:
    """A copy of mini_broden's tables whose index.csv line 2 has ``old`` replaced by ``new``."""
    copy_layout(mini_broden, tmp_path)
    (tmp_path / "images").symlink_to(mini_broden / "images", target_is_directory=True)
    lines = (tmp_path / "index.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[1]
    lines[1] = lines[1].replace(old, new, 1)
    (tmp_path / "index.csv").write_text("".join(lines), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "place", "words"),
    [
        ("mini/000001.jpg", "/etc/hostname", "line 2, column image", "is an absolute path"),
        ("mini/000001.jpg", "mini/../../x.jpg", "line 2, column image", "climbs out"),
        ("mini/000001_object.png", "..\\x.png", "line 2, column object", "climbs out"),
        ("mini/000001_object.png", "C:\\x.png", "line 2, column object", "absolute"),
        (",224,224,", ",224,70000,", "line 2, column iw", "over the limit of 65,535"),
        (",112,112,", ",0,112,", "line 2, column sh", "sizes are positive"),
        (",224,224,", ",²²⁴,224,", "line 2, column ih", "expected an integer"),
        (",224,224,", ",nan,224,", "line 2, column ih", "expected an integer"),
        (",3,", ",²,", "line 2, column scene", "not ASCII 0-9"),
        (",3,", ",9999999,", "line 2, column scene", "over the limit of 1,048,576"),
        (",3,", ",1" + "0" * 30 + ",", "line 2, column scene", "31 digits"),
        ("mini/000001.jpg", "", "line 2, column image", "image is empty"),
    ],
)
def test_index_rows_refused_at_their_place(
    mini_broden: Path, tmp_path: Path, old: str, new: str, place: str, words: str
) -> None:
    root = _index_with(tmp_path, mini_broden, old, new)
    with pytest.raises(LayoutError) as err:
        broden.read_index(root)
    assert err.value.file == str(root / "index.csv") and err.value.place == place
    assert words in str(err.value)


def test_links_inside_images_are_followed_but_not_out(mini_broden: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    (images / "a" / "x.png").write_bytes(b"")
    (images / "inside.png").symlink_to(images / "a" / "x.png")
    (tmp_path / "outside.png").write_bytes(b"")
    (images / "out.png").symlink_to(tmp_path / "outside.png")
    assert broden.outside_reason(images, "a/x.png") is None
    assert broden.outside_reason(images, "a/../inside.png") is None
    assert broden.outside_reason(images, "out.png") == (
        "resolves outside images/ through a symbolic link"
    )
    # the images folder itself may be a link (tests/conftest.py's broden_slice does that)
    (tmp_path / "linked").symlink_to(images, target_is_directory=True)
    assert broden.outside_reason(tmp_path / "linked", "a/x.png") is None


@pytest.mark.parametrize(
    ("data", "place", "words"),
    [
        (b"\xef\xbb\xbfname,first,last,count,frequency\n", "line 1", "byte-order mark"),
        (
            b"name,first,last,count,frequency\npart,1,2,2,4\nk\xe9y,3,3,1,1\n",
            "line 3, byte 2",
            "not UTF-8",
        ),
        (
            b"name,first,last,count,frequency\n" + b"x" * (129 << 10) + b",1,1,1,1\n",
            "line 2",
            "field limit",
        ),
        (b"name,first,last,count,frequency\npart,1,2,2\n", "line 2", "has 4 cells"),
        (
            b"name,first,last,count,frequency\n../x,1,2,2,4\n",
            "line 2, column name",
            "path separator",
        ),
        (b"name,first,last,count,frequency\npart,1,2,-2,4\n", "line 2, column count", "negative"),
    ],
)
def test_category_csv_refused_at_its_place(
    mini_broden: Path, tmp_path: Path, data: bytes, place: str, words: str
) -> None:
    copy_layout(mini_broden, tmp_path)
    (tmp_path / "category.csv").write_bytes(data)
    with pytest.raises(LayoutError) as err:
        broden.read_meta(tmp_path)
    assert err.value.place == place and words in str(err.value), str(err.value)


def test_label_csv_numbers_strict(mini_broden: Path, tmp_path: Path) -> None:
    copy_layout(mini_broden, tmp_path)
    text = (tmp_path / "label.csv").read_text()
    for bad, column in ((",11.527982,", "coverage"), ("\n2,rim,", "number")):
        value = ",inf," if column == "coverage" else f"\n{2**31},rim,"
        (tmp_path / "label.csv").write_text(text.replace(bad, value, 1))
        with pytest.raises(LayoutError) as err:
            broden.read_meta(tmp_path)
        assert err.value.place is not None and err.value.place.endswith(f"column {column}")


def test_a_folder_instead_of_index_csv(mini_broden: Path, tmp_path: Path) -> None:
    copy_layout(mini_broden, tmp_path)
    (tmp_path / "index.csv").unlink()
    (tmp_path / "index.csv").mkdir()
    with pytest.raises(LayoutError, match="index.csv: is a folder, not a CSV file"):
        broden.read_meta(tmp_path)


def test_plane_header_over_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    from test_hostile_validate import huge_png

    (tmp_path / "p.png").write_bytes(huge_png())
    with pytest.raises(ConceptkitError, match="over the limit"):
        broden.decode_plane(tmp_path / "p.png")


def test_label_stats_value_counts_equal_numpy_unique():
    from conceptkit.broden import _value_counts

    rng = np.random.default_rng(1)
    planes = [
        rng.integers(0, 5, (9, 11)).astype(np.uint8),
        rng.integers(0, 70000, (6, 6)).astype(np.int64),  # past the bincount range
        rng.integers(-3, 3, (4, 4)).astype(np.int32),  # negative values
        np.zeros((0, 3), dtype=np.uint16),
    ]
    for plane in planes:
        nums, counts = _value_counts(plane)
        want = np.unique(plane, return_counts=True)
        assert nums.tolist() == want[0].tolist() and counts.tolist() == want[1].tolist()
