"""Reading in worker processes (``ReadOptions.workers``) and the scan's spool.

Records, warnings and errors built by :func:`conceptkit.converters.each_record` in workers are
the ones built in this process, in the same order; a conversion gives the same bytes whatever
``--workers``; the spool of the scan is gone when the conversion is done.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conceptkit.converters import PARALLEL_FROM, ReadOptions, each_record

from conceptkit.annotations import ImageAnnotation
from conceptkit.convert import ConvertOptions, convert
from conceptkit.errors import FormatError

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2"


def _records(workers: int, keep_going: bool, items: object = None) -> tuple[list[str], list[str]]:
    """(keys yielded, warnings given) of each_record over a build with every kind of outcome."""
    said: list[str] = []
    options = ReadOptions(keep_going=keep_going, warn=said.append, workers=workers)

    def build(i: int) -> ImageAnnotation | None:  # a closure: it cannot be pickled
        if i % 10 == 3:
            raise FormatError("bad item", file=f"f{i}.json", place=f"item {i}", hint="fix it")
        if i % 10 == 5:
            options.warn(f"f{i}.json: item {i}: repaired")
        if i % 10 == 7:
            return None
        return ImageAnnotation(key=f"k{i}", width=i + 1, height=2, shapes=[])

    source = range(25) if items is None else items
    keys = [r.key for r in each_record(source, build, options, " (skipped)", "ann")]  # type: ignore[arg-type]
    return keys, said


def test_workers_give_the_same_records_and_warnings_in_order() -> None:
    keys, said = _records(2, keep_going=True)
    assert (keys, said) == _records(1, keep_going=True)
    assert keys == [f"k{i}" for i in range(25) if i % 10 not in (3, 7)]
    assert said == [
        "f3.json: item 3: bad item (fix it) (skipped)",
        "f5.json: item 5: repaired",
        "f13.json: item 13: bad item (fix it) (skipped)",
        "f15.json: item 15: repaired",
        "f23.json: item 23: bad item (fix it) (skipped)",
    ]


def test_an_error_in_a_worker_keeps_its_file_place_and_hint() -> None:
    for workers in (1, 2):
        with pytest.raises(FormatError) as info:
            _records(workers, keep_going=False)
        assert str(info.value) == "f3.json: item 3: bad item (fix it)"
        assert (info.value.file, info.value.place, info.value.hint) == (
            "f3.json",
            "item 3",
            "fix it",
        )


@pytest.mark.parametrize("before", [3, 40])  # fewer than PARALLEL_FROM items: built here
def test_an_error_listing_the_items_comes_after_the_records_before_it(before: int) -> None:
    def items() -> Iterator[int]:
        yield from range(before)
        raise FormatError("the list breaks off", file="list.txt", place="line 4")

    for workers in (1, 2):
        said: list[str] = []
        options = ReadOptions(warn=said.append, workers=workers)
        got: list[str] = []

        def build(i: int) -> ImageAnnotation:
            return ImageAnnotation(key=f"k{i}", width=1, height=1)

        with pytest.raises(FormatError, match="the list breaks off"):
            for record in each_record(items(), build, options, ""):
                got.append(record.key)
        assert got == [f"k{i}" for i in range(before)]


def test_few_items_are_built_in_this_process() -> None:
    import os

    pids: list[int] = []

    def build(i: int) -> ImageAnnotation:
        return ImageAnnotation(key=str(os.getpid()), width=1, height=1)

    for n in (PARALLEL_FROM - 1, PARALLEL_FROM + 4):
        options = ReadOptions(workers=2)
        pids = [int(r.key) for r in each_record(range(n), build, options, "")]
        assert len(pids) == n
        assert (set(pids) == {os.getpid()}) == (n < PARALLEL_FROM)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("fmt", "src"),
    [
        ("ade20k", FIX / "ade20k" / "2020"),
        ("camvid", FIX / "camvid" / "datumaro"),
        ("supervisely", FIX / "supervisely" / "instance"),
        ("voc", FIX / "voc" / "labelme"),
    ],
)
def test_conversion_is_the_same_with_reading_workers(
    fmt: str, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conceptkit.converters

    # the fixtures hold a few images: build them in workers all the same
    monkeypatch.setattr(conceptkit.converters, "PARALLEL_FROM", 1)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        opts = ConvertOptions(min_images=1, size=32, workers=workers, validate=False)
        summary = convert(fmt, [src], out, opts)
        outs.append((_files(out), summary.warnings, summary.images))
    assert outs[0] == outs[1]
    files, _, images = outs[0]
    assert images >= 2 and "index.csv" in files
    assert not any("spool" in name for name in files)  # the scan's spool is removed
    planes = [name for name in files if name.endswith(".png")]
    assert planes and all(np.frombuffer(files[name][:8], np.uint8)[1] == 80 for name in planes)


def test_packed_masks_come_back_and_pack_again_to_the_same_bits() -> None:
    from conceptkit.converters import _parallel

    from conceptkit.annotations import Shape

    rng = np.random.default_rng(0)
    masks = [rng.random((5, 13)) > 0.5, rng.random((7, 3)) > 0.5]
    shapes = [Shape(label=f"s{k}", kind="mask", mask=m, origin=(k, k)) for k, m in enumerate(masks)]
    ann = ImageAnnotation(key="a.jpg", width=20, height=20, shapes=shapes)
    first = _parallel.pack(ann)
    back = _parallel.unpack(first)
    assert all(np.array_equal(s.mask, m) for s, m in zip(back.shapes, masks))
    again = _parallel.pack(back)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(again.masks, first.masks))
    back.shapes[1].mask = ~back.shapes[1].mask  # a changed mask is packed as it is now
    third = _parallel.pack(back)
    assert np.array_equal(third.masks[1][1], np.packbits(~masks[1]))
