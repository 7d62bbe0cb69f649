"""Tests of the public API re-exported by ``conceptkit``: cheap import, every entry point called
twice in a row on small data, and ``convert`` / ``validate`` callable whatever the import order."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import synthetic_run
from conceptkit.converters import ReadOptions, get_reader
from conftest import REPO, broden_slice, resnet18_weights

import conceptkit
from conceptkit.annotations import ImageAnnotation

EXAMPLES = REPO / "examples" / "data"
HEAVY = ("torch", "pandas", "matplotlib")


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


# ----------------------------------------------------------------------------- the package


def test_import_loads_no_heavy_module(tmp_path: Path) -> None:
    proc = _python(["-X", "importtime", "-c", "import conceptkit"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    # lines: "import time:   self [us] | cumulative | imported package" (nested names indented)
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "conceptkit" in names  # the listing was read
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == []
    # and nothing imports them later on behalf of the package
    code = f"import sys, conceptkit; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = _python(["-c", code], tmp_path)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_every_public_name_is_its_source_object() -> None:
    from conceptkit import broden, consistency, report
    from conceptkit.dissection import data, models, results, run

    want = {
        "BrodenDataset": data.BrodenDataset,
        "BrodenMeta": broden.BrodenMeta,
        "ConsistencyReport": consistency.ConsistencyReport,
        "DissectResult": results.DissectResult,
        "IndexRow": broden.IndexRow,
        "LoadedModel": models.LoadedModel,
        "analyse": consistency.analyse,
        "build_report": report.build,
        "compare_runs": report.compare,
        "consensus": consistency.consensus,
        "dissect": run.dissect,
        "load_model": models.load_model,
        "read_index": broden.read_index,
        "read_meta": broden.read_meta,
    }
    import conceptkit.convert as convert_module
    import conceptkit.validate as validate_module

    want["ConvertOptions"] = convert_module.ConvertOptions
    want["Finding"] = validate_module.Finding
    assert set(conceptkit.__all__) == set(want) | {"convert", "validate", "__version__"}
    for name, obj in want.items():
        assert getattr(conceptkit, name) is obj, name
    assert conceptkit.convert is convert_module and callable(conceptkit.convert)
    assert conceptkit.validate is validate_module and callable(conceptkit.validate)
    assert set(conceptkit.__all__) <= set(dir(conceptkit))
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        _ = conceptkit.nonesuch


_ORDER_SCRIPT = """
import sys
from pathlib import Path
{imports}
import conceptkit

out = Path(sys.argv[1])
ex = Path(sys.argv[2])
opts = conceptkit.ConvertOptions(concepts=ex / "concepts.csv", min_images=1)
for i in range(2):
    s = conceptkit.convert("labelme", [ex / "labelme"], out / f"d{{i}}", opts)
    f = conceptkit.validate(out / f"d{{i}}")
    print(s.images, sum(x.severity == "error" for x in f))
import conceptkit.convert
import conceptkit.validate
import conceptkit.convert as cm
from conceptkit import validate as v
print(cm("labelme", [ex / "labelme"], out / "d2", cm.ConvertOptions(min_images=1)).images)
print(type(v(out / "d2")).__name__, v.Finding.__name__, conceptkit.convert.convert.__name__)
"""


@pytest.mark.parametrize(
    "imports",
    [
        "",  # the package first, the submodules after the calls
        "import conceptkit.convert\nimport conceptkit.validate",  # the submodules first
        "from conceptkit.validate import Finding\nfrom conceptkit.convert import ConvertOptions",
    ],
    ids=["package-first", "submodule-first", "from-submodule-first"],
)
def test_convert_and_validate_callable_in_any_import_order(imports: str, tmp_path: Path) -> None:
    script = tmp_path / "order.py"
    script.write_text(textwrap.dedent(_ORDER_SCRIPT.format(imports=imports)), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(EXAMPLES)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["12 0", "12 0", "12", "list Finding convert"]
    assert _tree(tmp_path / "d0") == _tree(tmp_path / "d1")


# ----------------------------------------------------------------------------- each entry point twice


def test_convert_and_validate_twice(tmp_path: Path) -> None:
    opts = conceptkit.ConvertOptions(concepts=EXAMPLES / "concepts.csv", min_images=1)
    first = conceptkit.convert("cvat", [EXAMPLES / "cvat"], tmp_path / "a", opts)
    second = conceptkit.convert("cvat", [EXAMPLES / "cvat"], tmp_path / "b", opts)
    assert first.images == second.images == 12
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    findings = [conceptkit.validate(tmp_path / "a", min_images=1) for _ in range(2)]
    assert findings[0] == findings[1]
    assert [f for f in findings[0] if f.severity == "error"] == []
    assert all(isinstance(f, conceptkit.Finding) for f in findings[0])


def test_read_meta_read_index_dataset_twice(mini_broden: Path) -> None:
    metas = [conceptkit.read_meta(mini_broden) for _ in range(2)]
    assert metas[0] == metas[1] and isinstance(metas[0], conceptkit.BrodenMeta)
    assert metas[0].category_names[:2] == ["part", "scene"]
    rows = [conceptkit.read_index(mini_broden) for _ in range(2)]
    assert rows[0] == rows[1] and len(rows[0]) == 200
    assert isinstance(rows[0][0], conceptkit.IndexRow)
    sets = [conceptkit.BrodenDataset(mini_broden) for _ in range(2)]
    assert len(sets[0]) == len(sets[1]) == 200
    a, b = sets[0][7], sets[1][7]
    assert a.index == b.index == 7
    assert a.image is not None and b.image is not None and bool((a.image == b.image).all())
    assert tuple(a.image.shape) == (3, rows[0][7].ih, rows[0][7].iw)


def test_load_model_and_dissect_twice(mini_broden: Path, tmp_path: Path) -> None:
    weights = resnet18_weights(tmp_path / "r18.pth")
    loaded = [conceptkit.load_model(str(weights), arch="resnet18") for _ in range(2)]
    assert isinstance(loaded[0], conceptkit.LoadedModel)
    assert loaded[0].fingerprint == loaded[1].fingerprint
    data = broden_slice(mini_broden, tmp_path / "data", 8)
    runs = [
        conceptkit.dissect(
            m.module, data, layers=["layer1"], batch_size=4, workers=0, top_n=3, device="cpu"
        )
        for m in loaded
    ]
    assert isinstance(runs[0], conceptkit.DissectResult)
    assert runs[0].tally_rows("layer1") == runs[1].tally_rows("layer1")
    np.testing.assert_array_equal(runs[0].layers["layer1"].iou, runs[1].layers["layer1"].iou)
    assert runs[0].layers["layer1"].units == 64
    runs[0].save(tmp_path / "r0")
    runs[1].save(tmp_path / "r1")
    assert _tree(tmp_path / "r0") == _tree(tmp_path / "r1")


def _annotations() -> dict[str, list[ImageAnnotation]]:
    """The example's two LabelMe annotators, grouped by image."""
    read = get_reader("labelme")
    groups: dict[str, list[ImageAnnotation]] = {}
    for folder in ("labelme", "labelme_annotator2"):
        for ann in read(EXAMPLES / folder, ReadOptions()):
            ann.annotator = folder
            groups.setdefault(ann.key, []).append(ann)
    return groups


def test_analyse_and_consensus_twice() -> None:
    groups = _annotations()
    reports = [conceptkit.analyse(groups) for _ in range(2)]
    assert isinstance(reports[0], conceptkit.ConsistencyReport)
    assert reports[0].to_dict() == reports[1].to_dict()
    assert reports[0].to_dict()["overall"]["images"] == 6  # the six images both annotated
    shared = next(anns for anns in groups.values() if len(anns) == 2)
    merged = [conceptkit.consensus(shared, "majority") for _ in range(2)]
    a, b = merged
    assert [(s.label, s.kind, s.origin) for s in a.shapes] == [
        (s.label, s.kind, s.origin) for s in b.shapes
    ]
    assert a.shapes and all(s.kind == "mask" and s.mask is not None for s in a.shapes)
    assert all(
        np.array_equal(np.asarray(x.mask), np.asarray(y.mask)) for x, y in zip(a.shapes, b.shapes)
    )
    assert {s.label for s in a.shapes} <= {s.label for ann in shared for s in ann.shapes}


def test_build_report_and_compare_runs_twice(tmp_path: Path) -> None:
    a = synthetic_run.make(tmp_path / "a", layers={"conv5": (6, 2)}, images=6)
    b = synthetic_run.make(tmp_path / "b", layers={"conv5": (6, 2)}, images=6, seed=1)
    index = conceptkit.build_report(a, workers=1)
    first = _tree(a / "html") | _tree(a / "plots")
    assert conceptkit.build_report(a, workers=1) == index == a / "html" / "index.html"
    assert _tree(a / "html") | _tree(a / "plots") == first
    cmp1 = conceptkit.compare_runs([a, b], tmp_path / "cmp")
    shot = _tree(tmp_path / "cmp")
    cmp2 = conceptkit.compare_runs([a, b], tmp_path / "cmp", force=True)
    assert cmp1 == cmp2 and _tree(tmp_path / "cmp") == shot
    assert {"compare_official.png", "compare_naive.svg", "index.html"} <= set(shot)
