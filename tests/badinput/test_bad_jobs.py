"""The bad-input corpus for job manifests (tests/badinput/jobs.yaml).

Each case must fail in the library with a KubevisionError naming the problem (and, where the case
says so, the line), and through `kubevision validate` with exit code 1, the same text, and never a
traceback: the two ways users meet these messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kubevision.api import KubevisionError, load_manifest
from kubevision.cli import cli

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "jobs.yaml").read_text())


def test_the_corpus_is_big_and_well_formed():
    assert len(CASES) >= 30
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    assert all(set(case) == {"name", "expect", "job"} for case in CASES)
    assert sum("job.yaml:" in case["expect"] for case in CASES) >= 10


@pytest.fixture(params=CASES, ids=[case["name"] for case in CASES])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "job.yaml"
    path.write_text(request.param["job"])
    return path, request.param["expect"]


def test_load_manifest_names_the_problem(case):
    path, expect = case
    with pytest.raises(KubevisionError) as info:
        load_manifest(path)
    assert expect in str(info.value)


def test_cli_validate_exits_1_with_the_message(case):
    path, expect = case
    result = CliRunner().invoke(cli, ["validate", "--no-data-check", str(path)])
    assert result.exit_code == 1, result.output
    assert expect in result.output
    assert "Traceback" not in result.output
