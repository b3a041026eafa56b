"""Everything `kubevision run` checks and decides before the first trial starts.

Why all of it up front: a run may take hours, and every problem that can be found without
training (a job that does not validate, data that is not there, a search space the sampler cannot
draw from, a task the trial program does not train yet, an output folder that is not ours or not
writable, a `checkpoint.fromJob` with no model) must fail in the first second with a message and
no trial started, not as N identical trial failures later.

The result is a `RunPlan`: the validated job, where things go, the trial slots (GPUs/threads), the
effective timeouts (the `--timeout-minutes` / `--trial-timeout-minutes` options override the job's
whole-minute limits for this run: handy for a quick look, and what the tests use), and notes to
show the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.loading import load_job
from kubevision.api.models import AutoMLImageJob
from kubevision.api.tasks import PRIMARY_METRIC, is_classification
from kubevision.data.jobdata import check_job_data_paths
from kubevision.local.devices import SlotPlan, cpu_count, detect_gpus, plan_slots
from kubevision.local.layout import RunLayout
from kubevision.local.outdir import OutputDecision, default_output_dir, prepare_output_dir
from kubevision.sweep.space import check_sweep

__all__ = ["RunOptions", "RunPlan", "describe_mode", "prepare_run"]


@dataclass(frozen=True)
class RunOptions:
    """What `kubevision run` was asked to do."""

    job_file: Path
    output: Path | None = None
    resume: bool = False
    seed: int | None = None
    timeout_minutes: float | None = None
    """Overrides spec.limits.timeoutMinutes for this run (fractions allowed)."""
    trial_timeout_minutes: float | None = None
    """Overrides spec.limits.trialTimeoutMinutes for this run (fractions allowed)."""
    onnx: bool = False
    """Also export model.onnx in every trial (costs about 15 s per trial on a CPU)."""
    stop_grace_s: float = 120.0
    """How long a trial asked to stop may take to save and export before it is killed."""
    poll_s: float = 0.5


@dataclass(frozen=True)
class RunPlan:
    options: RunOptions
    job: AutoMLImageJob
    job_dir: Path
    layout: RunLayout
    output: OutputDecision
    slots: SlotPlan
    timeout_s: float
    trial_timeout_s: float | None
    checkpoint_uri: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def metric(self) -> str:
        return PRIMARY_METRIC[self.job.spec.task]

    @property
    def name(self) -> str:
        return self.job.metadata.name


def describe_mode(job: AutoMLImageJob) -> str:
    spec = job.spec
    if spec.limits.max_trials == 1:
        return "single trial"
    if spec.is_automode:
        return "AutoMode"
    sweep = spec.effective_sweep
    return f"{sweep.sampling_algorithm if sweep else 'random'} sweep"


def _positive(value: float | None, option: str) -> None:
    if value is not None and not value > 0:
        raise KubevisionError(f"{option} must be a positive number of minutes, got {value}")


def _checkpoint_uri(job: AutoMLImageJob, job_dir: Path, layout: RunLayout, job_file: str) -> str | None:
    """checkpoint.modelUri (relative paths against the job file) or fromJob's best/ in a sibling run folder."""
    checkpoint = job.spec.checkpoint
    if checkpoint is None:
        return None
    if checkpoint.model_uri:
        uri = checkpoint.model_uri
        if "://" in uri and not uri.startswith("file://"):
            return uri
        path = Path(uri.removeprefix("file://")).expanduser()
        return str(path if path.is_absolute() else job_dir / path)
    best = layout.root.parent / str(checkpoint.from_job) / "best"
    if not (best / "MLmodel").is_file():
        raise KubevisionError(
            f"checkpoint.fromJob {checkpoint.from_job!r}: no best model at {best}",
            [Problem(f"run job {checkpoint.from_job!r} first (with its output folder next to this run's), "
                     "or give checkpoint.modelUri", file=job_file, field="spec.checkpoint.fromJob")],
        )
    return str(best)


def prepare_run(options: RunOptions, *, cwd: Path | None = None) -> RunPlan:
    """Validate the job and its inputs, claim the output folder, plan the devices (see the docstring)."""
    _positive(options.timeout_minutes, "--timeout-minutes")
    _positive(options.trial_timeout_minutes, "--trial-timeout-minutes")
    job_file = options.job_file
    job = load_job(job_file)
    job_dir = job_file.resolve().parent
    check_job_data_paths(job, base_dir=job_dir, job_file=str(job_file))
    check_sweep(job)
    spec = job.spec
    if not is_classification(spec.task):
        raise KubevisionError(
            f"{job_file}: the embedded runner's trial program trains image classification so far; "
            f"task {spec.task.value} cannot run locally yet",
            [Problem("use image_classification or image_classification_multilabel", file=str(job_file),
                     field="spec.task")],
        )
    root = (options.output or default_output_dir(job, job_file, cwd or Path.cwd())).expanduser().resolve()
    layout = RunLayout(root)
    checkpoint = _checkpoint_uri(job, job_dir, layout, str(job_file))
    output = prepare_output_dir(layout, job_name=job.metadata.name, resume=options.resume)

    resources = spec.resources
    gpus_per_trial = resources.gpus_per_node * resources.node_count_per_trial
    gpus = detect_gpus() if gpus_per_trial > 0 else []
    slots = plan_slots(concurrency=spec.limits.effective_max_concurrent_trials, gpus_per_trial=gpus_per_trial,
                       gpus=gpus, cores=cpu_count())
    notes = list(slots.notes)
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:  # passed through to every trial (devices.py); show the truth
        slots = replace(slots, slots=tuple(replace(s, threads=int(given)) for s in slots.slots))
        notes.append(f"OMP_NUM_THREADS={given} from the environment is used for every trial")
    if output.note:
        notes.append(output.note)
    if resources.node_count_per_trial > 1:
        notes.append(f"nodeCountPerTrial {resources.node_count_per_trial}: embedded mode has one node; "
                     "each trial runs all its processes here")
    timeout_min = options.timeout_minutes if options.timeout_minutes is not None else spec.limits.timeout_minutes
    trial_min = (options.trial_timeout_minutes if options.trial_timeout_minutes is not None
                 else spec.limits.trial_timeout_minutes)
    return RunPlan(
        options=options, job=job, job_dir=job_dir, layout=layout, output=output, slots=slots,
        timeout_s=float(timeout_min) * 60.0, trial_timeout_s=float(trial_min) * 60.0 if trial_min else None,
        checkpoint_uri=checkpoint, notes=tuple(notes),
    )
