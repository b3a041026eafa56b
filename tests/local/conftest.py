"""Fixtures for the embedded-runner tests: real digits on disk, job YAMLs, and `kubevision run` processes.

Seams: nothing of kubevision is faked. Trials are real `torchrun` subprocesses of the real trial
program training real (tiny) models on scikit-learn's real digits; the sweep is the real Optuna
study in SQLite; early termination goes over real HTTP on 127.0.0.1. What the tests control is
only the input (job YAMLs, CLI options) and, for resume, a real SIGKILL of the runner.

Budget (the whole folder < 150 s on 2 cores): trials train at 16 px on a few hundred images for
1-3 epochs with `gpusPerNode: 0` (no GPU probe), one thread each; a trial's cost is mostly the
start-up of torchrun and the trainer (~10 s of CPU), so the tests launch as few as they can and
share runs between assertions (module-scoped fixtures). The one sequential scenario (resume +
bandit) starts its first run at the beginning of the session, in the background
(`resume_scenario.py`), so that it overlaps the cheap tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import resume_scenario
from runner_support import subset

from kubevision.data.datasets import write_digits


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real digits (1,797 PNGs) plus subsets: train64/val40 and train8."""
    out = tmp_path_factory.mktemp("digits")
    write_digits(out)
    for name, source, n in (("train64", "train", 64), ("val40", "val", 40), ("train8", "train", 8)):
        subset(out / f"{source}.jsonl", out / f"{name}.jsonl", n)
    return out


@pytest.fixture(scope="session")
def resume_first_run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[resume_scenario.FirstRun]:
    """The resume scenario's first run, started once (see resume_scenario.py); killed if still running at the end."""
    run = resume_scenario.start(digits, tmp_path_factory.mktemp("resume"))
    yield run
    run.stop()


@pytest.fixture(scope="session", autouse=True)
def _start_resume_scenario_early(request: pytest.FixtureRequest) -> None:
    """Start the resume scenario with the session when its tests are selected (it then overlaps the others)."""
    if any(Path(str(item.path)).name == "test_runner_resume.py" for item in request.session.items):
        request.getfixturevalue("resume_first_run")
