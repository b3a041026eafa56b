"""`kubevision run job.yaml`: the embedded runner's command (the README's first command).

Why a module of its own: cli.py stays a thin list of commands, and this one has the most options
and the most to print. The command only translates options, prints the outcome and sets the exit
code; the work is `kubevision.local.runner.run_job`.

Exit codes: 0 when the run produced a best model (also when the job's timeout cut the sweep
short), 1 when it did not (every trial failed, or bad input: nothing started), 130 when Ctrl-C
stopped it (`--resume` continues).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kubevision.api.errors import KubevisionError
from kubevision.cli_guard import guarded

__all__ = ["COMMANDS", "run"]


@click.command("run")
@click.argument("job_file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output folder (default: spec.output.uri if local, else runs/<metadata.name>).")
@click.option("--resume", is_flag=True, help="Continue the run in the output folder; finished trials are kept.")
@click.option("--seed", type=int, help="Seed of the sampler (default: a random one, recorded for --resume).")
@click.option("--timeout-minutes", type=float,
              help="Stop the whole run after this many minutes (overrides limits.timeoutMinutes; fractions allowed).")
@click.option("--trial-timeout-minutes", type=float,
              help="Stop each trial after this many minutes (overrides limits.trialTimeoutMinutes).")
@click.option("--onnx", is_flag=True, help="Also export model.onnx in every trial (slower; best/ then holds it).")
@guarded
def run(job_file: Path, output: Path | None, resume: bool, seed: int | None, timeout_minutes: float | None,
        trial_timeout_minutes: float | None, onnx: bool) -> None:
    """Run an AutoML job on this machine: every trial, early termination, leaderboard and report."""
    from kubevision.local.runner import RunOptions, run_job

    result = run_job(RunOptions(job_file=job_file, output=output, resume=resume, seed=seed,
                                timeout_minutes=timeout_minutes, trial_timeout_minutes=trial_timeout_minutes,
                                onnx=onnx))
    click.echo("")
    if result.best is not None and result.best_model is not None and result.best.value is not None:
        click.echo(f"best model:  {result.best_model}  (trial {result.best.number}, "
                   f"{result.metric} {result.best.value:.4f})")
    click.echo(f"report:      {result.report}")
    click.echo(f"leaderboard: {result.leaderboard}")
    if result.phase == "timed_out":
        click.echo("the job's timeout stopped the sweep early; the best model above is the best found in time")
    if result.exit_code == 1:
        raise KubevisionError(result.message or "the run produced no model")
    if result.message:
        click.echo(result.message, err=True)
    sys.exit(result.exit_code)


COMMANDS = [run]
