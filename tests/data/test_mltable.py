"""MLTable folders as Azure writes them (reference 2.3), and clear errors for what is not supported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.data import read_dataset
from kubevision.data.mltable import read_mltable

REFERENCE_MLTABLE = """\
paths:
  - file: ./train_annotations.jsonl
transformations:
  - read_json_lines:
        encoding: utf8
        invalid_lines: error
        include_path_column: false
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
"""


def rows(*labels: str) -> list[dict[str, str]]:
    return [{"image_url": f"images/{i}.png", "label": label} for i, label in enumerate(labels)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "training-mltable-folder"
    path.mkdir()
    return path


def test_reference_mltable_folder_reads_like_its_jsonl(
    folder: Path, write_jsonl: Callable[..., Path]
) -> None:
    (folder / "MLTable").write_text(REFERENCE_MLTABLE)
    write_jsonl(folder / "train_annotations.jsonl", rows("cat", "dog", "cat"))
    dataset = read_dataset(folder, "image_classification")
    assert [r.label for r in dataset.records] == ["cat", "dog", "cat"]
    assert dataset.records[0].source == str(folder / "train_annotations.jsonl")
    assert dataset.classes == ["cat", "dog"]
    with_path = REFERENCE_MLTABLE.replace("include_path_column: false", "include_path_column: true")
    (folder / "MLTable").write_text(with_path)
    assert read_mltable(folder).include_path_column is True
    # The MLTable file itself is accepted as well as its folder.
    assert len(read_dataset(folder / "MLTable", "image_classification").records) == 3


def test_several_paths_and_a_pattern_are_read_in_order(
    folder: Path, write_jsonl: Callable[..., Path]
) -> None:
    write_jsonl(folder / "a.jsonl", rows("a1"))
    write_jsonl(folder / "parts" / "p2.jsonl", rows("p2"))
    write_jsonl(folder / "parts" / "p1.jsonl", rows("p1"))
    write_jsonl(folder / "z.jsonl", rows("z"))
    (folder / "MLTable").write_text(
        "paths:\n  - file: ./z.jsonl\n  - pattern: ./parts/*.jsonl\n  - file: a.jsonl\n"
    )
    spec = read_mltable(folder)
    assert [p.name for p in spec.files] == ["z.jsonl", "p1.jsonl", "p2.jsonl", "a.jsonl"]
    assert [r.label for r in read_dataset(folder, "image_classification").records] == ["z", "p1", "p2", "a1"]


def test_invalid_lines_drop_keeps_the_good_lines(folder: Path, write_jsonl: Callable[..., Path]) -> None:
    (folder / "MLTable").write_text(REFERENCE_MLTABLE.replace("invalid_lines: error", "invalid_lines: drop"))
    write_jsonl(folder / "train_annotations.jsonl", [*rows("cat"), "not json", *rows("dog")])
    dataset = read_dataset(folder, "image_classification")
    assert [r.line for r in dataset.records] == [1, 3]
    assert len(dataset.dropped) == 1 and dataset.dropped[0].line == 2
    with pytest.raises(KubevisionError, match="not valid JSON"):
        read_dataset(folder, "image_classification", invalid_lines="error")


def test_encoding_is_honoured(folder: Path) -> None:
    (folder / "MLTable").write_text(REFERENCE_MLTABLE.replace("encoding: utf8", "encoding: utf16"))
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows("café", "thé"))
    (folder / "train_annotations.jsonl").write_bytes(text.encode("utf-16"))
    assert read_dataset(folder, "image_classification").classes == ["café", "thé"]


@pytest.mark.parametrize(
    ("mltable", "fragment"),
    [
        (
            "paths:\n  - file: ./t.jsonl\ntransformations:\n  - take: 10\n",
            "transformations[0]: unknown transformation 'take'; kubevision reads image MLTables with "
            "read_json_lines and convert_column_types only",
        ),
        (
            "paths:\n  - file: ./t.jsonl\ntransformations:\n  - read_json_lines:\n"
            "      invalid_lines: skip\n",
            "transformations[0].read_json_lines.invalid_lines: expected error or drop, found 'skip'",
        ),
        (
            "paths:\n  - file: ./t.jsonl\ntransformations:\n  - read_json_lines:\n      encoding: klingon\n",
            "unknown encoding 'klingon'",
        ),
        (
            "paths:\n  - file: ./t.jsonl\ntransformations:\n  - read_json_lines:\n      delimiter: ','\n",
            "read_json_lines.delimiter: unknown option",
        ),
        (
            "paths:\n  - file: ./t.jsonl\ntransformations:\n  - convert_column_types:\n"
            "      - columns: image_url\n        column_type: string\n",
            "image_url must be converted to stream_info, not string",
        ),
        ("paths: []\n", "paths: expected a non-empty list such as `- file: ./train.jsonl`"),
        ("paths:\n  - file: azureml://datastores/x/paths/t.jsonl\n", "az ml data download"),
        ("paths:\n  - file: https://example.org/t.jsonl\n", "MLTable paths must be local files"),
        ("paths:\n  - pattern: ./nothing/*.jsonl\n", "pattern './nothing/*.jsonl' matches no file"),
        ("paths:\n  - url: ./t.jsonl\n", "paths[0]: expected one of `file: <path>`"),
        ("paths:\n  - file: ./t.jsonl\n   bad: [\n", "MLTable:3: not valid YAML"),
        ("- just a list\n", "expected a mapping with `paths:`"),
    ],
)
def test_mltable_problems_are_clear(
    folder: Path, write_jsonl: Callable[..., Path], mltable: str, fragment: str
) -> None:
    write_jsonl(folder / "t.jsonl", rows("cat"))
    (folder / "MLTable").write_text(mltable)
    with pytest.raises(KubevisionError) as err:
        read_dataset(folder, "image_classification")
    assert fragment in str(err.value)


def test_missing_jsonl_is_named_with_its_resolved_path(folder: Path) -> None:
    (folder / "MLTable").write_text(REFERENCE_MLTABLE)
    with pytest.raises(KubevisionError) as err:
        read_dataset(folder, "image_classification")
    assert f"references {folder / 'train_annotations.jsonl'}, which does not exist" in str(err.value)


def test_folder_without_mltable_suggests_the_jsonl(folder: Path, write_jsonl: Callable[..., Path]) -> None:
    write_jsonl(folder / "train.jsonl", rows("cat"))
    with pytest.raises(
        KubevisionError, match=r"without an MLTable file; point at the JSONL file instead \(train"
    ):
        read_dataset(folder, "image_classification")
