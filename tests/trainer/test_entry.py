"""`kubevision train` argument handling: the forms a cluster trial command takes, and their bad input.

No training here: `config_from_cli` builds and checks the TrialConfig before any work starts, which
is exactly the part the operator's generated commands depend on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import TERMINATION_TOKEN_ENV
from kubevision.trainer.entry import check_trial_data, config_from_cli


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text("")
    body = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "metadata": {"name": "j"},
            "spec": {"task": "image_classification", "trainingData": {"path": "train.jsonl"},
                     "trainingParameters": {"modelName": "resnet18", "numberOfEpochs": 3}}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _config(job: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"trial_config": None, "job_file": job, "sets": (), "output_dir": job.parent / "out",
                               "checkpoint": None, "trial_name": "t"}
    args.update(kwargs)
    return config_from_cli(**args)  # type: ignore[arg-type]


def test_sampled_from_picks_the_indexed_entry_and_set_overrides_it(job: Path, tmp_path: Path) -> None:
    portfolio = tmp_path / "automode.json"
    portfolio.write_text(json.dumps([{"modelName": "resnet18"}, {"modelName": "mobilenetv2", "learningRate": 0.02}]))
    config = _config(job, sampled_from=portfolio, sampled_index=1, sets=("learningRate=0.005",))
    hp = config.hyperparameters()
    assert hp["modelName"] == "mobilenetv2"
    assert hp["learningRate"] == 0.005
    assert hp["numberOfEpochs"] == 3


@pytest.mark.parametrize(
    ("content", "index", "fragment"),
    [
        ('[{"modelName": "resnet18"}]', 3, "out of range: "),
        ('{"modelName": "resnet18"}', 0, "expected a JSON list of objects"),
        ('[{"learnigRate": 0.1}]', 0, "unknown hyperparameters"),
        ("[{", 0, "is not valid JSON"),
    ],
)
def test_sampled_from_bad_input(job: Path, tmp_path: Path, content: str, index: int, fragment: str) -> None:
    portfolio = tmp_path / "automode.json"
    portfolio.write_text(content)
    with pytest.raises(KubevisionError, match=fragment):
        _config(job, sampled_from=portfolio, sampled_index=index)


def test_sampled_from_needs_its_index(job: Path, tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="go together"):
        _config(job, sampled_from=tmp_path / "x.json")


def test_termination_url_takes_the_token_from_the_environment(job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TERMINATION_TOKEN_ENV, "s3cret")
    config = _config(job, termination_url="http://op:8082/v1/namespaces/ns/jobs/j/termination")
    assert config.early_termination is not None
    assert config.early_termination.url.endswith("/jobs/j/termination")
    assert config.early_termination.token == "s3cret"


def test_no_termination_url_means_no_endpoint(job: Path) -> None:
    assert _config(job).early_termination is None


def test_a_missing_data_path_fails_before_training(job: Path) -> None:
    config = _config(job)
    check_trial_data(config, str(job))
    (job.parent / "train.jsonl").unlink()
    with pytest.raises(KubevisionError) as err:
        check_trial_data(config, str(job))
    assert "spec.trainingData.path: train.jsonl does not exist" in str(err.value)
