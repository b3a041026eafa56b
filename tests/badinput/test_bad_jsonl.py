"""Every bad-JSONL case fails `data check` with its exact place and reason — in the library and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from kubevision.cli import cli
from kubevision.data.check import check_dataset

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "jsonl_cases.yaml").read_text())


def test_corpus_is_big_and_well_formed() -> None:
    assert len(CASES) >= 20
    assert len({case["name"] for case in CASES}) == len(CASES)
    for case in CASES:
        assert set(case) == {"name", "task", "lines", "expect"}, case["name"]


def write_case(tmp_path: Path, case: dict[str, Any]) -> Path:
    Image.new("RGB", (32, 24), (120, 60, 30)).save(tmp_path / "img.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    path = tmp_path / "train.jsonl"
    path.write_text(case["lines"], encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_check_dataset_reports_the_case(tmp_path: Path, case: dict[str, Any]) -> None:
    path = write_case(tmp_path, case)
    report = check_dataset(path, task=case["task"])
    assert not report.ok
    assert case["expect"] in report.render(), report.render()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_cli_data_check_reports_the_case(tmp_path: Path, case: dict[str, Any]) -> None:
    path = write_case(tmp_path, case)
    result = CliRunner().invoke(cli, ["data", "check", str(path), "--task", case["task"]])
    assert result.exit_code == 1, result.output
    assert case["expect"] in result.output
    assert "Traceback" not in result.output


def test_control_a_valid_file_in_the_same_setup_passes(tmp_path: Path) -> None:
    lines = "".join(
        '{"image_url": "img.png", "label": "%s"}\n' % ("cat" if i % 2 else "dog") for i in range(20)
    )
    path = write_case(tmp_path, {"lines": lines})
    result = CliRunner().invoke(cli, ["data", "check", str(path), "--task", "image_classification"])
    assert result.exit_code == 0, result.output
    assert "result: OK" in result.output
