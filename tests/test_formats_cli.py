"""`conceptkit formats`: every reader listed with its description, and detection of SRC's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conceptkit.converters import READERS, detect, detection

from conceptkit.cli.formats import describe, formats
from conceptkit.errors import UsageError

FIX = Path(__file__).parent / "data" / "fixtures" / "formats2"


def test_lists_every_reader() -> None:
    result = CliRunner().invoke(formats, [])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    listed = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert listed == list(READERS)
    assert "Label Studio JSON / JSON_MIN export" in result.output
    assert "e.g. conceptkit convert sagemaker output.manifest -o broden/" in result.output


def test_a_missing_module_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(READERS, "nothing", "conceptkit.converters.no_such_reader:read")
    assert describe("nothing") == ("not installed", "")
    result = CliRunner().invoke(formats, [])
    assert "nothing      not installed" in result.output


@pytest.mark.parametrize(
    ("src", "fmt"),
    [
        ("labelstudio/export_coco", "labelstudio"),
        ("labelstudio/image_polygons/0.json", "labelstudio"),
        ("via", "via"),
        ("vott", "vott"),
        ("labelbox/vector_annotations", "labelbox"),
        ("sagemaker/instance_segmentation", "sagemaker"),
        ("sagemaker/object_detection/output.manifest", "sagemaker"),
    ],
)
def test_detects_the_real_exports(src: str, fmt: str) -> None:
    assert detect(FIX / src) == fmt


def test_detects_lines_coco_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "v.jsonl").write_text(json.dumps({"imageGcsUri": "gs://a/b.jpg"}) + "\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"image_url": "x", "image_details": {}}) + "\n")
    coco: dict[str, list[dict[str, object]]] = {
        "images": [],
        "annotations": [{"image_id": "1"}],
        "categories": [],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    assert detection(tmp_path / "v.jsonl") == ("vertex", "v.jsonl: Vertex AI lines (imageGcsUri)")
    assert detect(tmp_path / "a.jsonl") == "azure"
    assert detect(tmp_path / "annotations.json") == "azure"  # string ids: Azure's COCO
    coco["annotations"] = [{"image_id": 1}]
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    assert detect(tmp_path / "annotations.json") == "coco"
    result = CliRunner().invoke(formats, [str(tmp_path / "annotations.json")])
    assert result.exit_code == 0 and result.output.startswith(
        "coco\t(annotations.json: COCO keys (images, annotations)"
    )
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(UsageError, match="cannot tell the export format"):
        detect(tmp_path / "x.txt")
