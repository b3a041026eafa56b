"""COCO -> JSONL (kubevision.data.convert.coco through the `convert` dispatcher)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pycocotools import mask as mask_utils

from kubevision.api.errors import KubevisionError
from kubevision.cli import cli
from kubevision.data.convert import convert


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 30, 200)).save(path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _coco(tmp_path: Path, annotations: list[dict[str, Any]], **extra: Any) -> Path:
    _image(tmp_path / "images" / "a.jpg", 200, 100)
    _image(tmp_path / "images" / "b.png", 50, 40)
    doc = {
        "images": [
            {"id": 1, "file_name": "images/a.jpg", "width": 200, "height": 100},
            {"id": "two", "file_name": "images/b.png", "width": 50, "height": 40},
        ],
        "categories": [{"id": 1, "name": "can"}, {"id": 7, "name": "carton"}],
        "annotations": annotations,
        **extra,
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    return path


def test_boxes_become_normalized_corners(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [20, 10, 100, 50], "segmentation": []},
        {"id": 11, "image_id": 1, "category_id": 7, "bbox": [0.1, 0.2, 0.3, 0.4], "iscrowd": 1},
    ])
    out = tmp_path / "out.jsonl"
    summary = convert("coco", "jsonl", coco, out)
    a, b = _lines(out)
    assert a["image_url"] == "images/a.jpg"
    assert a["image_details"] == {"format": "jpg", "width": 200, "height": 100}
    assert a["label"][0] == {"label": "can", "topX": 0.1, "topY": 0.1, "bottomX": 0.6, "bottomY": 0.6,
                             "isCrowd": 0}
    # max(bbox) < 1.5: already normalized (Azure's rule); iscrowd -> isCrowd
    second = a["label"][1]
    assert (second["label"], second["isCrowd"]) == ("carton", 1)
    assert [second[k] for k in ("topX", "topY", "bottomX", "bottomY")] == pytest.approx([0.1, 0.2, 0.4, 0.6])
    assert b["label"] == [] and b["image_details"]["format"] == "png"
    assert summary.task == "image_object_detection"
    assert summary.images == 2 and summary.images_without_labels == 1
    assert dict(summary.labels_per_class) == {"can": 1, "carton": 1}
    text = str(summary)
    assert "2 images, 2 boxes" in text and "images with no labels" in text
    assert "next: kubevision data check" in text


def test_image_url_is_relative_to_the_output_folder_or_base_url(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [])
    nested = tmp_path / "out" / "deeper" / "train.jsonl"
    convert("coco", "jsonl", coco, nested)
    assert _lines(nested)[0]["image_url"] == "../../images/a.jpg"
    based = tmp_path / "based.jsonl"
    convert("coco", "jsonl", coco, based, base_url="azureml://datastores/ds/paths/fridge/")
    assert _lines(based)[1]["image_url"] == "azureml://datastores/ds/paths/fridge/images/b.png"


def test_images_folder_option_and_basename_fallback(tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"
    _image(pictures / "a.jpg", 20, 10)
    doc = {"images": [{"id": 1, "file_name": "/somewhere/else/a.jpg", "width": 20, "height": 10}],
           "categories": [{"id": 1, "name": "x"}], "annotations": []}
    (tmp_path / "sub").mkdir()
    coco = tmp_path / "sub" / "c.json"
    coco.write_text(json.dumps(doc))
    out = tmp_path / "o.jsonl"
    convert("coco", "jsonl", coco, out, images=pictures)
    assert _lines(out)[0]["image_url"] == "pictures/a.jpg"


def test_polygons_make_instance_segmentation(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 80, 40],
         "segmentation": [[20, 10, 100, 10, 100, 50, 20, 50]]},
        {"id": 2, "image_id": "two", "category_id": 7, "bbox": [5, 4, 10, 8], "segmentation": []},
    ])
    out = tmp_path / "out.jsonl"
    summary = convert("coco", "jsonl", coco, out)
    a, b = _lines(out)
    assert summary.task == "image_instance_segmentation"
    assert a["label"] == [{"label": "can", "isCrowd": 0,
                           "polygon": [[0.1, 0.1, 0.5, 0.1, 0.5, 0.5, 0.1, 0.5]]}]
    # an annotation without segmentation joins the segmentation set as its bbox rectangle
    assert b["label"][0]["polygon"] == [[0.1, 0.1, 0.3, 0.1, 0.3, 0.3, 0.1, 0.3]]
    assert any("rectangle polygons" in note for note in summary.notes)


def test_forcing_detection_turns_segmentations_into_their_boxes(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1,
                             "segmentation": [[20, 10, 100, 10, 100, 50, 20, 50]]}])
    out = tmp_path / "out.jsonl"
    convert("coco", "jsonl", coco, out, task="image_object_detection")
    box = _lines(out)[0]["label"][0]
    assert [box[k] for k in ("topX", "topY", "bottomX", "bottomY")] == pytest.approx([0.1, 0.1, 0.5, 0.5])


def _rle(mask: np.ndarray) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}


def _uncompressed(mask: np.ndarray) -> dict[str, Any]:
    flat = mask.astype(np.uint8).flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": [0, *counts] if flat[0] else counts}


def test_rle_segmentations_are_traced_into_polygons(tmp_path: Path) -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[20:60, 40:120] = True
    small = np.zeros((40, 50), dtype=bool)
    small[10:30, 5:25] = True
    coco = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 20, 80, 40], "segmentation": _rle(mask),
         "iscrowd": 1},
        {"id": 2, "image_id": "two", "category_id": 7, "bbox": [5, 10, 20, 20],
         "segmentation": _uncompressed(small)},
    ])
    out = tmp_path / "out.jsonl"
    convert("coco", "jsonl", coco, out)
    a, b = _lines(out)
    (poly_a,) = a["label"][0]["polygon"]
    assert a["label"][0]["isCrowd"] == 1
    assert (min(poly_a[0::2]), max(poly_a[0::2]), min(poly_a[1::2]), max(poly_a[1::2])) == \
        pytest.approx((0.2, 0.6, 0.2, 0.6))
    (poly_b,) = b["label"][0]["polygon"]
    assert (min(poly_b[0::2]), max(poly_b[0::2]), min(poly_b[1::2]), max(poly_b[1::2])) == \
        pytest.approx((0.1, 0.5, 0.25, 0.75))


def test_boxes_outside_the_image_are_clipped_and_counted(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [150, 50, 100, 100]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [300, 10, 20, 20]},
    ])
    out = tmp_path / "out.jsonl"
    summary = convert("coco", "jsonl", coco, out)
    (box,) = _lines(out)[0]["label"]
    assert (box["bottomX"], box["bottomY"]) == (1.0, 1.0)
    assert summary.clipped == 1
    assert [s.why for s in summary.skipped] == ["box has no area inside the image"]
    assert "annotation id 2" in summary.skipped[0].what
    assert "clipped to the image bounds: 1 boxes" in str(summary)


@pytest.mark.parametrize(("annotation", "expected"), [
    ({"id": 5, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]}, "annotation id 5: category_id 99"),
    ({"id": 6, "image_id": 42, "category_id": 1, "bbox": [1, 1, 2, 2]}, "annotation id 6: image_id 42"),
    ({"id": 2, "image_id": [1], "category_id": 1, "bbox": [1, 1, 2, 2]}, "annotation id 2: image_id [1]"),
    ({"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 2]},
     "annotation id 7: bbox width and height"),
    ({"id": 8, "image_id": 1, "category_id": 1}, "annotation id 8: bbox must be"),
    ({"id": 9, "image_id": 1, "category_id": 1, "segmentation": [[1, 2, 3]]},
     "annotation id 9.segmentation: each polygon"),
    ({"id": 3, "image_id": 1, "category_id": 1, "segmentation": {"size": [100, 200], "counts": [5]}},
     "annotation id 3.segmentation: uncompressed RLE"),
])
def test_bad_annotations_name_the_file_and_annotation(tmp_path: Path, annotation: dict[str, Any],
                                                      expected: str) -> None:
    coco = _coco(tmp_path, [annotation])
    with pytest.raises(KubevisionError) as err:
        convert("coco", "jsonl", coco, tmp_path / "out.jsonl")
    assert f"{coco}: {expected}" in str(err.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, -2, 2]},
    ])
    with pytest.raises(KubevisionError) as err:
        convert("coco", "jsonl", coco, tmp_path / "out.jsonl")
    assert "(2 problems)" in err.value.headline
    assert [p.field for p in err.value.problems] == ["annotation id 1", "annotation id 2"]


def test_structural_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [],\n "annotations": [}')
    with pytest.raises(KubevisionError, match="not valid JSON") as err:
        convert("coco", "jsonl", bad, tmp_path / "o.jsonl")
    assert err.value.problems[0].line == 2
    ids = tmp_path / "ids.json"
    ids.write_text('{"images": [{"id": [1], "file_name": "a.jpg"}], "annotations": [], '
                   '"categories": [{"id": {}, "name": "x"}]}')
    with pytest.raises(KubevisionError) as err:
        convert("coco", "jsonl", ids, tmp_path / "o.jsonl")
    assert [p.field for p in err.value.problems] == ["categories[0]", "images[0]"]
    missing = tmp_path / "missing.json"
    missing.write_text('{"images": [], "categories": []}')
    with pytest.raises(KubevisionError, match="missing key 'annotations'"):
        convert("coco", "jsonl", missing, tmp_path / "o.jsonl")


def test_missing_image_and_size_mismatch_are_errors(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [])
    doc = json.loads(coco.read_text())
    doc["images"].append({"id": 3, "file_name": "images/gone.jpg", "width": 5, "height": 5})
    doc["images"][0]["width"] = 300
    coco.write_text(json.dumps(doc))
    with pytest.raises(KubevisionError) as err:
        convert("coco", "jsonl", coco, tmp_path / "o.jsonl")
    text = str(err.value)
    assert "image id 1: COCO says 300x100 but the image file is 200x100" in text
    assert "image id 3: image file not found" in text and "gone.jpg" in text


def test_failure_leaves_an_existing_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    coco = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]}])
    with pytest.raises(KubevisionError):
        convert("coco", "jsonl", coco, out)
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.json", "images", "out.jsonl"]


def test_classification_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="not image_classification"):
        convert("coco", "jsonl", _coco(tmp_path, []), tmp_path / "o.jsonl", task="image_classification")


def test_dispatcher_rejects_unsupported_pairs_and_options(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [])
    with pytest.raises(KubevisionError, match="supported: coco -> jsonl"):
        convert("coco", "coco", coco, tmp_path / "o.json")
    with pytest.raises(KubevisionError, match="--masks do\\(es\\) not apply to --from coco"):
        convert("coco", "jsonl", coco, tmp_path / "o.jsonl", masks=tmp_path)
    with pytest.raises(KubevisionError, match="source not found"):
        convert("coco", "jsonl", tmp_path / "nope.json", tmp_path / "o.jsonl")
    with pytest.raises(KubevisionError, match="must be a file path"):
        convert("coco", "jsonl", coco, tmp_path)
    with pytest.raises(KubevisionError, match="overwrite the source"):
        convert("coco", "jsonl", coco, coco)


def test_cli_converts_and_reports_errors_without_traceback(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 100, 50]}])
    runner = CliRunner()
    ok = runner.invoke(cli, ["convert", str(coco), "--from", "coco", "--to", "jsonl",
                             "--out", str(tmp_path / "o.jsonl")])
    assert ok.exit_code == 0, ok.output
    assert "2 images, 1 boxes" in ok.output
    bad = _coco(tmp_path, [{"id": 4, "image_id": 1, "category_id": 3, "bbox": [1, 1, 1, 1]}])
    failed = runner.invoke(cli, ["convert", str(bad), "--from", "coco", "--to", "jsonl",
                                 "--out", str(tmp_path / "o2.jsonl")])
    assert failed.exit_code == 1
    assert "annotation id 4: category_id 3" in failed.output and "Traceback" not in failed.output


def test_coco_to_jsonl_to_coco_keeps_boxes_and_polygons(tmp_path: Path) -> None:
    coco = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 80, 40],
         "segmentation": [[20, 10, 100, 10, 100, 50, 20, 50]]},
        {"id": 2, "image_id": "two", "category_id": 7, "bbox": [5, 4, 20, 16],
         "segmentation": [[5, 4, 25, 4, 25, 20]]},
    ])
    jsonl = tmp_path / "seg.jsonl"
    convert("coco", "jsonl", coco, jsonl)
    back = tmp_path / "back" / "coco.json"
    summary = convert("jsonl", "coco", jsonl, back)
    assert summary.task == "image_instance_segmentation" and summary.images == 2
    assert dict(summary.labels_per_class) == {"can": 1, "carton": 1}
    doc = json.loads(back.read_text())
    by_file = {image["file_name"]: image for image in doc["images"]}
    assert set(by_file) == {"../images/a.jpg", "../images/b.png"}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    anns = {names[a["category_id"]]: a for a in doc["annotations"]}
    assert anns["can"]["segmentation"] == [[20, 10, 100, 10, 100, 50, 20, 50]]
    assert anns["can"]["bbox"] == pytest.approx([20, 10, 80, 40])
    assert anns["carton"]["segmentation"] == [[5, 4, 25, 4, 25, 20]]
    assert "next:" not in str(summary)


def test_unknown_task_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="unknown task 'segmentation'"):
        convert("coco", "jsonl", _coco(tmp_path, []), tmp_path / "o.jsonl", task="segmentation")
