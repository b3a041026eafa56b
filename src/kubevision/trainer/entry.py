"""Turn `kubevision train` arguments into a TrialConfig.

Why two entry forms: the local runner writes a trial config JSON per trial (`--trial-config`), while a
Katib trial template can only substitute sampled values into a command line, so a cluster trial runs
`kubevision train --job job.yaml --set learningRate=0.003 --set modelName=resnet50 --output /runs/t7`.
Both end as the same TrialConfig, and every value is checked before any work starts.

`--output` and `--checkpoint` take a local path (made absolute here) or a URI (`s3://...`, `file://...`)
kept as written: a cluster trial writes to an object store through kubevision.trainer.remote, and a
URI whose scheme is unknown or whose fsspec backend is not installed fails here, before training.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.hyperparameters import HYPERPARAMETERS
from kubevision.api.loading import load_job
from kubevision.api.trial import (
    TERMINATION_TOKEN_ENV,
    TerminationEndpoint,
    TrialConfig,
    load_trial_config,
    trial_config_from_job,
)
from kubevision.data.jobdata import check_data_inputs
from kubevision.trainer.remote import check_location, is_uri

__all__ = ["config_from_cli", "location", "parse_sets", "sampled_from_file"]


def location(value: str | Path | None) -> str | None:
    """A `--output` / `--checkpoint` value as the trial config keeps it: a URI as is, a path absolute."""
    if value is None:
        return None
    text = str(value)
    return text if is_uri(text) else str(Path(text).resolve())


def sampled_from_file(path: Path, index: int) -> dict[str, Any]:
    """Entry `index` of a JSON list of hyperparameter objects (the cluster's AutoMode portfolio).

    Why: Katib can only substitute one value per parameter into a command line, and an AutoMode
    config is several correlated values (model, learning rate, epochs, batch size). The operator
    puts the portfolio in the job's ConfigMap and lets Katib sample the index.
    """
    file = str(path)
    try:
        raw = json.loads(path.read_text())
    except OSError as err:
        raise KubevisionError(f"cannot read {file}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise KubevisionError(f"{file} is not valid JSON", [Problem(err.msg, file=file, line=err.lineno)]) from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise KubevisionError(f"{file}: expected a JSON list of objects (hyperparameter name -> value)")
    if not 0 <= index < len(raw):
        raise KubevisionError(
            f"--sampled-index {index} is out of range: {file} has {len(raw)} entries (0..{len(raw) - 1})"
        )
    entry: dict[str, Any] = raw[index]
    unknown = sorted(k for k in entry if k not in HYPERPARAMETERS)
    if unknown:
        raise KubevisionError(
            f"{file} entry {index} names unknown hyperparameters",
            [Problem(f"unknown hyperparameter {k!r}", file=file, field=f"[{index}].{k}") for k in unknown],
        )
    return entry


def parse_sets(sets: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`key=value` pairs as typed values (YAML scalars: 0.01 -> float, true -> bool, sgd -> str)."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(f"got {item!r}; expected KEY=VALUE, e.g. learningRate=0.01", field="--set"))
            continue
        if key not in HYPERPARAMETERS:
            close = difflib.get_close_matches(key, list(HYPERPARAMETERS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(f"unknown hyperparameter {key!r}{hint}", field=f"--set {key}"))
            continue
        try:
            values[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            values[key] = raw
    if problems:
        raise KubevisionError("invalid --set values", problems)
    return values


def config_from_cli(
    *,
    trial_config: Path | None,
    job_file: Path | None,
    sets: tuple[str, ...] | list[str],
    output_dir: str | Path | None,
    checkpoint: str | Path | None,
    trial_name: str,
    termination_url: str | None = None,
    sampled_from: Path | None = None,
    sampled_index: int | None = None,
) -> TrialConfig:
    """Build and fully check the trial config, so that a bad value fails before training starts.

    `termination_url` is how a cluster trial learns its early-termination endpoint (the PyTorchJob
    command line); its token comes from KUBEVISION_TERMINATION_TOKEN (a Secret), never the command
    line, where `ps` and the pod spec would show it. `output_dir` and `checkpoint` may be URIs.
    """
    if (trial_config is None) == (job_file is None):
        raise KubevisionError("give exactly one of --trial-config FILE or --job FILE")
    if (sampled_from is None) != (sampled_index is None):
        raise KubevisionError("--sampled-from FILE and --sampled-index N go together")
    if sampled_from is not None and job_file is None:
        raise KubevisionError("--sampled-from only works with --job")
    if trial_config is not None:
        if sets:
            raise KubevisionError("--set only works with --job; put sampled values in the trial config's `sampled`")
        config = load_trial_config(trial_config)
        if output_dir is not None:
            config = config.model_copy(update={"output_dir": location(output_dir)})
    else:
        assert job_file is not None
        job = load_job(job_file)
        out = location(output_dir or Path("runs") / job.metadata.name / trial_name)
        assert out is not None
        config = trial_config_from_job(
            job, job_dir=job_file.resolve().parent, output_dir=Path(out),
            sampled={**(sampled_from_file(sampled_from, sampled_index) if sampled_from is not None
                        and sampled_index is not None else {}), **parse_sets(sets)},
            trial_name=trial_name,
        ).model_copy(update={"output_dir": out})  # Path() would turn s3://b/x into s3:/b/x
    if checkpoint is not None:
        config = config.model_copy(update={"checkpoint_model_uri": location(checkpoint)})
    if is_uri(config.output_dir):
        check_location(config.output_dir, what="outputs", field="--output")
    if config.checkpoint_model_uri is not None and is_uri(config.checkpoint_model_uri):
        check_location(config.checkpoint_model_uri, what="checkpoints", field="--checkpoint")
    if termination_url:
        token = os.environ.get(TERMINATION_TOKEN_ENV) or None
        config = config.model_copy(update={"early_termination": TerminationEndpoint(url=termination_url, token=token)})
    check_hyperparameters(config)
    return config


def check_trial_data(config: TrialConfig, source: str) -> None:
    """The trial's local data paths exist and open (URIs: only their scheme is checked).

    Separate from `config_from_cli`, which also parses commands planned for another machine (the
    operator's trial commands name paths inside the pod); the `train` command runs both, before
    importing torch, so a wrong path fails in half a second instead of after start-up.
    """
    prefix = "spec." if source.endswith((".yaml", ".yml")) else ""
    check_data_inputs(
        ((f"{prefix}trainingData", config.training_data), (f"{prefix}validationData", config.validation_data)),
        base_dir=Path(config.base_dir or "."), file=source,
    )


def check_hyperparameters(config: TrialConfig) -> dict[str, Any]:
    """Resolve the trial's hyperparameters; a sampled value out of range is a clear error, not a crash."""
    try:
        hp = config.hyperparameters()
    except ValidationError as err:
        problems = [
            Problem(e["msg"], field=".".join(str(p) for p in e["loc"]) or None) for e in err.errors()
        ]
        raise KubevisionError("invalid hyperparameter values for this trial", problems) from None
    except (KeyError, ValueError) as err:
        raise KubevisionError(f"invalid hyperparameter values for this trial: {err}") from None
    problems = []
    for key, value in hp.items():
        spec = HYPERPARAMETERS.get(key)
        if spec is None or value is None or spec.kind == "settings":  # settings were validated as a model
            continue
        message = spec.check(value)
        if message:
            problems.append(Problem(message, field=key))
    if problems:
        raise KubevisionError("invalid hyperparameter values for this trial", problems)
    return hp
