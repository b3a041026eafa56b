"""The embedded runner: a whole AutoML job on this machine, trials as torchrun subprocesses.

Why a polling loop in one thread: everything the runner does between trials is cheap (ask the
sweep, write a JSON file, look at a process), and a single thread that owns the sweep, the
processes and the files has no races to reason about; the only other thread is the
early-termination HTTP server, whose `DecisionService` has its own lock. Each tick (0.5 s):

1. decide stops: the job's timeout (stop launching, SIGTERM every running trial, keep every
   result), a trial's own timeout, Ctrl-C (the same, but the stopped trials stay pending so
   `--resume` runs them again from their checkpoints), a second Ctrl-C (kill), and a trial that
   outlives its grace period after SIGTERM (kill);
2. reap trials that ended: classify (outcomes.py), tell the sweep, write outcome.json, tell the
   decision service, rewrite the leaderboard;
3. fill free slots: pending trials of an interrupted run first (same number and values), then
   `sweep.ask()` until it says the budget or the grid is used up;
4. redraw the progress display.

Nothing finished is ever lost: a trial's state goes to the SQLite study first, then to its
outcome.json; if writing a result fails (disk full), the running trials are stopped cleanly and
the error says how to pick up with `--resume`, which re-runs only the trials never finished and
rewrites the result files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.trial import TerminationEndpoint, TrialConfig, trial_config_from_job
from kubevision.data.atomic import atomic_write_text
from kubevision.local.decisions import DecisionServer
from kubevision.local.devices import Slot
from kubevision.local.interrupts import StopRequests
from kubevision.local.launch import TrialProcess, stop_leftovers, trial_command, trial_env
from kubevision.local.leaderboard import Row, format_duration, format_params, rank
from kubevision.local.outcomes import (
    FINAL_STATES,
    TrialOutcome,
    best_value,
    classify,
    error_excerpt,
    finished_on_disk,
    read_history,
    read_outcome,
    read_summary,
    write_outcome,
)
from kubevision.local.outdir import write_marker
from kubevision.local.prepare import RunOptions, RunPlan, describe_mode, prepare_run
from kubevision.local.progress import Progress, RunningTrial, Snapshot, estimate_remaining, make_progress
from kubevision.local.report import ReportData
from kubevision.local.results import write_best, write_leaderboard, write_report
from kubevision.sweep.protocol import DecisionService
from kubevision.sweep.study import Suggestion, Sweep
from kubevision.sweep.termination import policy_from_job

__all__ = ["RunOptions", "RunResult", "run_job"]

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class RunResult:
    """How a run ended and where its results are."""

    output_dir: Path
    phase: str
    """succeeded, failed, timed_out (a model exists; the job's timeout cut the sweep) or interrupted."""
    exit_code: int
    metric: str
    outcomes: list[TrialOutcome]
    best: TrialOutcome | None
    best_model: Path | None
    report: Path | None
    leaderboard: Path
    message: str = ""


@dataclass
class _Running:
    process: TrialProcess
    slot: Slot
    suggestion: Suggestion
    name: str
    epochs_planned: int | None
    prior_duration: float
    attempts: int
    deadline: float | None
    stop_cause: str | None = None
    stop_reason: str | None = None
    last_epoch: int = 0
    last_value: float | None = None


@dataclass
class _State:
    outcomes: dict[int, TrialOutcome] = field(default_factory=dict)
    running: dict[int, _Running] = field(default_factory=dict)
    queue: list[Suggestion] = field(default_factory=list)
    exhausted: bool = False
    stopping: str | None = None
    """None, "timeout" (the job's) or "interrupt"."""


def _trial_name(plan: RunPlan, number: int) -> str:
    return f"{plan.name}-{number}"


class Runner:
    """Runs one RunPlan (see the module docstring); `run()` returns the RunResult."""

    def __init__(self, plan: RunPlan, sweep: Sweep, progress: Progress, server: DecisionServer | None,
                 token: str | None) -> None:
        self.plan = plan
        self.layout = plan.layout
        self.sweep = sweep
        self.progress = progress
        self.server = server
        self.token = token
        self.state = _State()
        self.free: list[Slot] = list(plan.slots.slots)
        self.started = time.monotonic()
        self.deadline = self.started + plan.timeout_s
        self.timed_out = False
        self.python = sys.executable

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> RunResult:
        self._restore()
        self._announce()
        with StopRequests() as stops:
            try:
                self._loop(stops)
            except BaseException as err:
                self._abort()
                if isinstance(err, KubevisionError):
                    raise self._with_resume_hint(err) from None
                if isinstance(err, OSError):
                    where = f" ({err.filename})" if err.filename else ""
                    raise self._with_resume_hint(
                        KubevisionError(f"cannot write the run's files: {err.strerror or err}{where}")
                    ) from None
                raise
        return self._finish()

    def _loop(self, stops: StopRequests) -> None:
        seen_signals = 0
        while True:
            now = time.monotonic()
            if stops.count > seen_signals:
                seen_signals = stops.count
                self._on_signal(seen_signals, "Ctrl-C" if stops.last_signal == "SIGINT" else stops.last_signal)
            self._check_timeouts(now)
            self._reap()
            if self.state.stopping is None:
                self._fill_slots()
            if not self.state.running and (self.state.stopping or (self.state.exhausted and not self.state.queue)):
                self._tick(time.monotonic())  # the display's last frame shows how every trial ended
                return
            self._tick(now)
            time.sleep(self.plan.options.poll_s)

    def _on_signal(self, count: int, name: str) -> None:
        if count == 1:
            self.state.stopping = self.state.stopping or "interrupt"
            running = len(self.state.running)
            self.progress.event(
                f"{name}: stopping: no new trials; {running} running trial{'s' if running != 1 else ''} save and "
                "stop (Ctrl-C again to kill them; they resume from their last checkpoint)"
            )
            for r in self.state.running.values():
                self._request_stop(r, "interrupt", f"stopped by {name}")
        else:
            self.progress.event(f"{name} again: killing the running trials")
            for r in self.state.running.values():
                if r.stop_cause is None:
                    r.stop_cause, r.stop_reason = "interrupt", f"killed by a second {name}"
                r.process.kill()

    def _request_stop(self, r: _Running, cause: str, reason: str) -> None:
        if r.stop_cause is None:
            r.stop_cause, r.stop_reason = cause, reason
        r.process.request_stop()

    def _check_timeouts(self, now: float) -> None:
        if self.state.stopping is None and now >= self.deadline:
            self.state.stopping = "timeout"
            self.timed_out = True
            minutes = self.plan.timeout_s / 60
            self.progress.event(f"timeoutMinutes ({minutes:g}) reached: no new trials; stopping "
                                f"{len(self.state.running)} running trial(s), keeping their best results")
            for r in self.state.running.values():
                self._request_stop(r, "timeout", f"the job's timeoutMinutes ({minutes:g}) was reached")
        grace = self.plan.options.stop_grace_s
        for r in self.state.running.values():
            if r.deadline is not None and now >= r.deadline and r.stop_cause is None:
                minutes = (self.plan.trial_timeout_s or 0) / 60
                self.progress.event(f"trial {r.suggestion.number}: trialTimeoutMinutes ({minutes:g}) reached; "
                                    "stopping it")
                self._request_stop(r, "timeout", f"trialTimeoutMinutes ({minutes:g}) was reached")
            asked = r.process.stop_requested_at
            if asked is not None and now - asked > grace:
                self.progress.event(f"trial {r.suggestion.number} did not stop within {grace:g} s; killing it")
                r.process.kill()

    # ---- launching ----------------------------------------------------------------------------------

    def _fill_slots(self) -> None:
        while self.free and self.state.stopping is None:
            if self.state.queue:
                suggestion: Suggestion | None = self.state.queue.pop(0)
            elif self.state.exhausted:
                return
            else:
                suggestion = self.sweep.ask()
            if suggestion is None:
                self.state.exhausted = True
                return
            self._launch(suggestion)

    def _trial_config(self, suggestion: Suggestion, slot: Slot) -> TrialConfig:
        plan = self.plan
        number = suggestion.number
        config = trial_config_from_job(
            plan.job, job_dir=plan.job_dir, output_dir=self.layout.trial_dir(number),
            sampled=dict(suggestion.params), trial_name=_trial_name(plan, number),
        )
        update: dict[str, Any] = {
            "runtime": config.runtime.model_copy(update={"device": slot.device, "export_onnx": plan.options.onnx}),
        }
        if plan.checkpoint_uri:
            update["checkpoint_model_uri"] = plan.checkpoint_uri
        if self.server is not None:
            update["early_termination"] = TerminationEndpoint(url=self.server.url, token=self.token)
        return config.model_copy(update=update)

    def _launch(self, suggestion: Suggestion) -> None:
        number = suggestion.number
        trial_dir = self.layout.trial_dir(number)
        previous = read_outcome(self.layout.trial_outcome(number))
        done = finished_on_disk(trial_dir)
        if done is not None:  # finished before the runner died, never told: record it, run nothing
            self._record(suggestion, _trial_name(self.plan, number), exit_code=0, stop_cause=None,
                         stop_reason=None, duration=previous.duration_s if previous else 0.0,
                         attempts=max(1, _launches(self.layout.trial_log(number))),
                         epochs_planned=done.get("epochs_planned"))
            return
        slot = self.free.pop(0)
        try:
            config = self._trial_config(suggestion, slot)
            epochs = int(config.hyperparameters()["numberOfEpochs"])
        except (KubevisionError, ValueError, KeyError) as err:
            self.free.append(slot)
            self._record_unlaunchable(suggestion, str(err))
            return
        trial_dir.mkdir(parents=True, exist_ok=True)
        if previous is not None or self.plan.output.resume:
            leftovers = stop_leftovers(self.layout.trial_config(number).resolve(), self.plan.options.stop_grace_s)
            if leftovers:
                self.progress.event(f"trial {number}: stopped {len(leftovers)} leftover process(es) of an "
                                    "earlier runner before running it again")
        atomic_write_text(self.layout.trial_config(number),
                          config.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n")
        attempts = _launches(self.layout.trial_log(number)) + 1
        process = TrialProcess(number, trial_command(self.python, self.layout.trial_config(number), slot.nproc),
                               trial_env(os.environ, slot), self.layout.trial_log(number))
        try:
            process.start(f"kubevision run: trial {number} attempt {attempts}")
        except OSError as err:
            raise KubevisionError(f"cannot start trial {number} ({' '.join(process.command[:3])} ...): "
                                  f"{err.strerror or err}") from None
        deadline = time.monotonic() + self.plan.trial_timeout_s if self.plan.trial_timeout_s else None
        self.state.running[number] = _Running(
            process=process, slot=slot, suggestion=suggestion, name=config.trial_name, epochs_planned=epochs,
            prior_duration=previous.duration_s if previous else 0.0, attempts=attempts, deadline=deadline,
        )
        again = ""
        if attempts > 1:
            resumes = (trial_dir / "checkpoints" / "last.pt").is_file()
            again = f" (attempt {attempts}{', resuming from its checkpoint' if resumes else ''})"
        where = f" on GPU {','.join(slot.gpus)}" if slot.gpus else ""
        self.progress.event(f"trial {number} started{where}{again}: {format_params(suggestion.params)}")

    # ---- recording ----------------------------------------------------------------------------------

    def _reap(self) -> None:
        for number, r in list(self.state.running.items()):
            code = r.process.poll()
            if code is None:
                continue
            del self.state.running[number]
            self.free.append(r.slot)
            self.free.sort(key=lambda s: s.index)
            self._record(r.suggestion, r.name, exit_code=code, stop_cause=r.stop_cause, stop_reason=r.stop_reason,
                         duration=r.prior_duration + r.process.elapsed(), attempts=r.attempts,
                         epochs_planned=r.epochs_planned)

    def _record(self, suggestion: Suggestion, name: str, *, exit_code: int, stop_cause: str | None,
                stop_reason: str | None, duration: float, attempts: int, epochs_planned: int | None) -> None:
        number = suggestion.number
        trial_dir = self.layout.trial_dir(number)
        summary = read_summary(trial_dir)
        history = read_history(trial_dir, self.plan.metric)
        state = classify(exit_code, summary, stop_cause)
        value = best_value(summary, history)
        error: str | None = None
        tail: list[str] = []
        if state == "failed":
            try:
                lines = self.layout.trial_log(number).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            error, tail = error_excerpt(lines, exit_code)
            if stop_cause is None and exit_code == 0:
                error = f"the trial ended without finishing (status {summary.get('status') if summary else None})"
        if state == "early_terminated" and self.server is not None:
            stop_reason = self.server.service.stop_reason(name) or stop_reason
        model_dir = _model_dir(trial_dir) if summary else None
        epochs_run = summary.get("epochs_run") if summary else (history[-1][0] if history else 0)
        outcome = TrialOutcome(
            number=number, name=name, params=dict(suggestion.params), source=suggestion.source, state=state,
            value=value, best_epoch=summary.get("best_epoch") if summary else None,
            epochs_run=int(epochs_run) if epochs_run is not None else None,
            epochs_planned=(summary.get("epochs_planned") if summary else None) or epochs_planned,
            duration_s=round(duration, 1), exit_code=exit_code, error=error, log_tail=tail,
            stop_reason=stop_reason if state != "succeeded" else None,
            model_dir=model_dir if state != "failed" else None, attempts=attempts,
        )
        self._store(outcome)

    def _record_unlaunchable(self, suggestion: Suggestion, error: str) -> None:
        outcome = TrialOutcome(number=suggestion.number, name=_trial_name(self.plan, suggestion.number),
                               params=dict(suggestion.params), source=suggestion.source, state="failed",
                               error=error, exit_code=None)
        self._store(outcome)

    def _store(self, outcome: TrialOutcome) -> None:
        if outcome.state in FINAL_STATES:
            self.sweep.tell(outcome.number, outcome.value, outcome.state)
            if self.server is not None:
                self.server.service.mark_finished(outcome.name)
                self.server.persist()
        outcome_path = self.layout.trial_outcome(outcome.number)
        self.state.outcomes[outcome.number] = outcome
        with _writing(f"the outcome of trial {outcome.number}"):
            outcome_path.parent.mkdir(parents=True, exist_ok=True)
            write_outcome(outcome_path, outcome)
        self.progress.event(self._describe(outcome))
        self._write_leaderboard(rank(self.state.outcomes.values()))

    def _describe(self, o: TrialOutcome) -> str:
        metric = f"{self.plan.metric} {o.value:.4f}" if o.value is not None else f"no {self.plan.metric}"
        epochs = f", {o.epochs_run}/{o.epochs_planned} epochs" if o.epochs_run is not None else ""
        best = self._best()
        tag = " (best so far)" if best is not None and best.number == o.number else ""
        text = f"trial {o.number} {o.state}: {metric}{tag}{epochs}, {format_duration(o.duration_s)}"
        if o.state == "failed":
            text += "".join(f"\n  {line}" for line in (o.error or "").splitlines())
        elif o.stop_reason:
            text += f" ({o.stop_reason})"
        return text

    def _best(self) -> TrialOutcome | None:
        for row in rank(self.state.outcomes.values()):
            if row.rank is not None and row.outcome.model_dir:
                return row.outcome
        return None

    def _write_leaderboard(self, rows: list[Row]) -> None:
        with _writing("the leaderboard"):
            write_leaderboard(self.layout, rows, self.plan.metric, title=f"Leaderboard of {self.plan.name}")

    # ---- progress -----------------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        running = []
        for number, r in sorted(self.state.running.items()):
            history = read_history(self.layout.trial_dir(number), self.plan.metric)
            if history and history[-1][0] != r.last_epoch:
                r.last_epoch, r.last_value = history[-1]
                self.progress.event(f"trial {number} epoch {r.last_epoch}/{r.epochs_planned}: "
                                    f"{self.plan.metric} {r.last_value:.4f}")
            running.append(RunningTrial(number=number, params=dict(r.suggestion.params), epoch=r.last_epoch,
                                        epochs_planned=r.epochs_planned, value=r.last_value,
                                        elapsed_s=r.process.elapsed(now), stopping=r.stop_cause is not None))
        finished = list(self.state.outcomes.values())
        durations = [o.duration_s for o in finished if o.state in FINAL_STATES and o.duration_s > 0]
        planned = self.plan.job.spec.limits.max_trials
        to_start = 0 if self.state.stopping or self.state.exhausted else max(0, planned - len(finished) - len(running))
        eta = estimate_remaining(durations=durations, running_elapsed=[r.elapsed_s for r in running],
                                 to_start=to_start, concurrency=self.plan.slots.concurrency,
                                 time_left=self.deadline - now)
        self.progress.update(Snapshot(
            job=self.plan.name, metric=self.plan.metric, planned=self.plan.job.spec.limits.max_trials,
            concurrency=self.plan.slots.concurrency, elapsed_s=now - self.started, eta_s=eta, running=running,
            finished=finished, best=self._best(),
            note={"interrupt": "stopping (Ctrl-C)", "timeout": "stopping (timeout)"}.get(self.state.stopping or "", ""),
        ))

    def _announce(self) -> None:
        plan = self.plan
        limits = plan.job.spec.limits
        policy = plan.job.spec.effective_sweep.early_termination if plan.job.spec.effective_sweep else None
        lines = [
            f"run {plan.name}: {describe_mode(plan.job)}, {limits.max_trials} trial"
            f"{'s' if limits.max_trials != 1 else ''}, {plan.slots.describe()}",
            f"output: {self.layout.root}",
        ]
        if policy is not None:
            lines.append(f"early termination: {policy.type} (every {policy.effective_evaluation_interval} "
                         f"validation(s), after {policy.delay_evaluation})")
        lines += [f"note: {n}" for n in plan.notes]
        if self.state.outcomes or self.state.queue:
            lines.append(f"resuming: {len(self.state.outcomes)} trial(s) recorded, "
                         f"{len(self.state.queue)} to run again")
        self.progress.event("\n".join(lines))

    # ---- resume, abort, finish -----------------------------------------------------------------------

    def _restore(self) -> None:
        """Outcomes of trials told before (from outcome.json, or rebuilt), and the pending ones to re-run."""
        pending = {s.number for s in self.sweep.pending()}
        for record in self.sweep.trials():
            if record.number in pending:
                continue
            outcome = read_outcome(self.layout.trial_outcome(record.number))
            if outcome is None or outcome.state != record.state:
                trial_dir = self.layout.trial_dir(record.number)
                summary = read_summary(trial_dir) or {}
                outcome = TrialOutcome(
                    number=record.number, name=_trial_name(self.plan, record.number), params=dict(record.params),
                    source=record.source, state=record.state, value=record.value,
                    epochs_run=summary.get("epochs_run"), epochs_planned=summary.get("epochs_planned"),
                    model_dir=_model_dir(trial_dir) if record.state != "failed" else None,
                )
            self.state.outcomes[record.number] = outcome
        self.state.queue = sorted(self.sweep.pending(), key=lambda s: s.number)

    def _abort(self) -> None:
        """Stop every running trial cleanly (they stay pending for --resume), as fast as they allow."""
        running = list(self.state.running.values())
        for r in running:
            self._request_stop(r, "interrupt", "the run stopped on an error")
        deadline = time.monotonic() + self.plan.options.stop_grace_s
        for r in running:
            if r.process.wait(max(0.0, deadline - time.monotonic())) is None:
                r.process.kill()
                r.process.wait(10)
        self.state.running.clear()

    def _resume_command(self) -> str:
        return (f"kubevision run {shlex.quote(str(self.plan.options.job_file))} "
                f"--output {shlex.quote(str(self.layout.root))} --resume")

    def _with_resume_hint(self, err: KubevisionError) -> KubevisionError:
        finished = sum(1 for o in self.state.outcomes.values() if o.state in FINAL_STATES)
        hint = Problem(f"nothing finished is lost: {finished} finished trial(s) are recorded in "
                       f"{self.layout.study} and {self.layout.trials}; once fixed, continue with "
                       f"`{self._resume_command()}` (finished trials are not run again)")
        return KubevisionError(err.headline, [*err.problems, hint])

    def _finish(self) -> RunResult:
        plan = self.plan
        layout = self.layout
        outcomes = sorted(self.state.outcomes.values(), key=lambda o: o.number)
        rows = rank(outcomes)
        best = self._best()
        interrupted = self.state.stopping == "interrupt"
        if interrupted:
            phase, code = "interrupted", EXIT_INTERRUPTED
        elif best is not None:
            phase, code = ("timed_out" if self.timed_out else "succeeded"), EXIT_OK
        else:
            phase, code = "failed", EXIT_FAILED
        try:
            self._write_leaderboard(rows)
            with _writing("the best model (best/)"):
                best_model = self._write_best(best)
            with _writing("the report"):
                report = write_report(layout, self._report_data(rows, best, phase))
            with _writing("run.json"):
                write_marker(layout, self._marker(phase, outcomes, best))
        except KubevisionError as err:
            raise self._with_resume_hint(err) from None
        message = self._final_message(phase, outcomes, best)
        return RunResult(output_dir=layout.root, phase=phase, exit_code=code, metric=plan.metric, outcomes=outcomes,
                         best=best, best_model=best_model, report=report, leaderboard=layout.leaderboard_md,
                         message=message)

    def _write_best(self, best: TrialOutcome | None) -> Path | None:
        if best is None or not best.model_dir:
            return None
        marker = _read_json(self.layout.marker) or {}
        copied = (marker.get("best") or {}).get("trial")
        if copied == best.number and (self.layout.best / "MLmodel").is_file():
            return self.layout.best
        trial_dir = self.layout.trial_dir(best.number)
        model = Path(_model_dir(trial_dir) or best.model_dir)
        return write_best(self.layout, model, trial_dir / "model.onnx" if self.plan.options.onnx else None)

    def _report_data(self, rows: list[Row], best: TrialOutcome | None, phase: str) -> ReportData:
        plan = self.plan
        histories = {o.number: read_history(self.layout.trial_dir(o.number), plan.metric)
                     for o in (r.outcome for r in rows)}
        sweep = plan.job.spec.effective_sweep
        details = [("output folder", str(self.layout.root)), ("devices", plan.slots.describe())]
        if sweep is not None and sweep.early_termination is not None:
            et = sweep.early_termination
            details.append(("early termination", et.model_dump_json(by_alias=True, exclude_none=True)))
        details.append(("seed", str(self.sweep.seed)))
        return ReportData(
            job=plan.name, task=plan.job.spec.task.value, metric=plan.metric, mode=describe_mode(plan.job),
            planned=plan.job.spec.limits.max_trials, concurrency=plan.slots.concurrency,
            wall_s=time.monotonic() - self.started, phase=phase, rows=rows, histories=histories,
            best_summary=read_summary(self.layout.trial_dir(best.number)) if best else None,
            best_model=str(self.layout.best) if best else None, details=details,
        )

    def _marker(self, phase: str, outcomes: list[TrialOutcome], best: TrialOutcome | None) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.state] = counts.get(o.state, 0) + 1
        return {
            "job": self.plan.name, "jobFile": str(self.plan.options.job_file.resolve()), "phase": phase,
            "metric": self.plan.metric, "trials": counts, "seed": self.sweep.seed,
            "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                               "model": str(self.layout.best)},
        }

    def _final_message(self, phase: str, outcomes: list[TrialOutcome], best: TrialOutcome | None) -> str:
        if phase == "interrupted":
            return f"interrupted; continue with: {self._resume_command()}"
        if best is not None:
            return ""
        failed = [o for o in outcomes if o.state == "failed"]
        if not outcomes:
            return "no trial ran" + (" before the timeout" if self.timed_out else "")
        if failed and len(failed) == len(outcomes):
            first = failed[0]
            tail = "\n".join(f"    {line}" for line in first.log_tail)
            return (f"all {len(outcomes)} trial(s) failed; the first, trial {first.number}, with:\n  {first.error}"
                    + (f"\n  last lines of {self.layout.trial_log(first.number)}:\n{tail}" if tail else ""))
        states = ", ".join(f"{sum(1 for o in outcomes if o.state == s)} {s}"
                           for s in dict.fromkeys(o.state for o in outcomes))
        reason = " before the timeout" if self.timed_out else ""
        return f"no trial produced a model{reason} ({states})"


@contextlib.contextmanager
def _writing(what: str | Path) -> Iterator[None]:
    """Turn an OSError while writing `what` into a KubevisionError that names it (disk full, permissions)."""
    try:
        yield
    except OSError as err:
        path = err.filename2 or err.filename
        raise KubevisionError(f"cannot write {what}: {err.strerror or err}" + (f" ({path})" if path else "")) from None


def _model_dir(trial_dir: Path) -> str | None:
    """The trial's exported model folder when it holds a complete model (MLmodel is written last)."""
    folder = trial_dir / "mlflow-model"
    return str(folder) if (folder / "MLmodel").is_file() else None


def _launches(log: Path) -> int:
    """How often a trial was launched before: the runner writes one `==== ... attempt N` header per launch."""
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            return sum(1 for line in handle if line.startswith("==== ") and " attempt " in line)
    except OSError:
        return 0


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _open_decisions(plan: RunPlan, token: str) -> DecisionServer | None:
    policy = policy_from_job(plan.job)
    if policy is None:
        return None
    saved = plan.layout.decisions
    if plan.output.resume and saved.is_file():
        service = DecisionService.from_json(saved.read_text(encoding="utf-8"), policy, token=token, maximize=True)
    else:
        service = DecisionService(policy, token=token, maximize=True)

    def save(text: str) -> None:
        atomic_write_text(saved, text + "\n")

    return DecisionServer(service, save=save).start()


def run_job(options: RunOptions, *, progress: Progress | None = None,
            progress_factory: Callable[[], Progress] | None = None, cwd: Path | None = None) -> RunResult:
    """Validate, then run the whole job (module docstring); KubevisionError for anything the user can fix."""
    plan = prepare_run(options, cwd=cwd)
    sweep = Sweep.open(plan.job, plan.layout.study, seed=options.seed,
                       device_memory_bytes=plan.slots.device_memory_bytes)
    token = secrets.token_urlsafe(24)
    server: DecisionServer | None = None
    shown = progress or (progress_factory() if progress_factory else make_progress())
    try:
        write_marker(plan.layout, {"job": plan.name, "jobFile": str(options.job_file.resolve()), "phase": "running",
                                   "metric": plan.metric, "seed": sweep.seed})
        server = _open_decisions(plan, token)
        return Runner(plan, sweep, shown, server, token).run()
    finally:
        with contextlib.suppress(Exception):
            shown.close()
        if server is not None:
            server.stop()
        sweep.close()

