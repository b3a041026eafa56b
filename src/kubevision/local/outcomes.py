"""What became of a trial: read from its output folder and its log, recorded as outcome.json.

Why the runner keeps its own record next to the trainer's summary.json: the trainer knows how
training went, but only the runner knows why a process ended (it asked a timed-out trial to stop;
Ctrl-C; a crash with exit code 1), how long the process ran across restarts, and what its log said
when it failed. `outcome.json` holds that, so the leaderboard, the report and `--resume` never
have to guess. The Optuna study holds the same state and value (it is what ranks trials for TPE);
outcome.json adds the details for people.

States: the sweep's four final states (succeeded, failed, early_terminated, timed_out) plus
`interrupted` (stopped by Ctrl-C: not told to the sweep, so `--resume` runs it again and the trial
program continues from its checkpoint). How a process end maps to a state (`classify`):

    exit 0, summary completed / early_stopped        -> succeeded
    exit 0, summary early_terminated                 -> early_terminated
    otherwise, the runner stopped it for a timeout   -> timed_out (its best metric and model are kept)
    otherwise, the runner stopped it for Ctrl-C      -> interrupted
    otherwise                                        -> failed (with the error and the log's tail)

A failed trial's error is the kubevision message in its log (`error: ...` and its problem lines,
printed by the CLI's error boundary) or, failing that, the last exception line or the signal that
killed it. The tail is the last lines of the trial's last attempt without torchrun's own failure
banner, which says nothing the exit code does not.
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubevision.data.atomic import atomic_write_text

__all__ = [
    "FINAL_STATES",
    "TAIL_LINES",
    "TrialOutcome",
    "best_value",
    "classify",
    "error_excerpt",
    "finished_on_disk",
    "read_history",
    "read_outcome",
    "read_summary",
    "write_outcome",
]

FINAL_STATES = ("succeeded", "failed", "early_terminated", "timed_out")
"""States told to the sweep; `interrupted` is not one (the trial runs again on --resume)."""
TAIL_LINES = 20
_FINISHED_STATUSES = ("completed", "early_stopped", "early_terminated")
_ATTEMPT_HEADER = "==== "
_TORCHRUN_FAILURE = re.compile(r"torch/distributed/elastic/.*failed \(exitcode")
_TORCHRUN_EXITCODE = re.compile(r"exitcode\s*:\s*(-?\d+)")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")


@dataclass
class TrialOutcome:
    """The runner's record of one trial (outcome.json)."""

    number: int
    name: str
    params: dict[str, Any]
    source: str
    state: str
    value: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    epochs_planned: int | None = None
    duration_s: float = 0.0
    exit_code: int | None = None
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    model_dir: str | None = None
    """The trial's mlflow-model folder when it has one (a trial stopped early keeps its best model)."""
    attempts: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False, default=str) + "\n"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TrialOutcome:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_summary(trial_dir: Path) -> dict[str, Any] | None:
    """The trainer's summary.json, or None when it has not written one (yet)."""
    return read_json(trial_dir / "summary.json")


def read_outcome(path: Path) -> TrialOutcome | None:
    raw = read_json(path)
    if raw is None:
        return None
    try:
        return TrialOutcome.from_mapping(raw)
    except TypeError:
        return None


def write_outcome(path: Path, outcome: TrialOutcome) -> None:
    atomic_write_text(path, outcome.to_json())


def finished_on_disk(trial_dir: Path) -> dict[str, Any] | None:
    """The summary of a trial the trainer finished (a restart would do nothing), else None."""
    summary = read_summary(trial_dir)
    if summary is None or summary.get("status") not in _FINISHED_STATUSES:
        return None
    if not (trial_dir / "checkpoints" / "finished.json").is_file():
        return None
    return summary


def read_history(trial_dir: Path, metric: str) -> list[tuple[int, float]]:
    """(epoch, primary metric) per validation from metrics.jsonl; the last record of an epoch wins."""
    by_epoch: dict[int, float] = {}
    try:
        lines = (trial_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
            value = record["metrics"].get(metric)
            epoch = int(record["epoch"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn last line (killed mid-write)
        if isinstance(value, int | float) and math.isfinite(value):
            by_epoch[epoch] = float(value)
    return sorted(by_epoch.items())


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def best_value(summary: Mapping[str, Any] | None, history: Sequence[tuple[int, float]]) -> float | None:
    """The trial's best primary metric: summary.json's best_score, else the best reported value."""
    score = _finite(summary.get("best_score")) if summary else None
    if score is not None:
        return score
    return max((v for _, v in history), default=None)


def classify(exit_code: int, summary: Mapping[str, Any] | None, stop_cause: str | None) -> str:
    """The trial's state from how its process ended (table in the module docstring)."""
    status = summary.get("status") if summary else None
    if exit_code == 0 and status in ("completed", "early_stopped"):
        return "succeeded"
    if exit_code == 0 and status == "early_terminated":
        return "early_terminated"
    if stop_cause == "timeout":
        return "timed_out"
    if stop_cause == "interrupt":
        return "interrupted"
    return "failed"


def last_attempt(lines: Sequence[str]) -> list[str]:
    """The log lines of the last launch (the runner writes a `==== ` header before each)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(_ATTEMPT_HEADER)]
    body = list(lines[starts[-1]:]) if starts else list(lines)
    return [line for line in body if not line.startswith(_ATTEMPT_HEADER)]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def error_excerpt(lines: Iterable[str], exit_code: int | None, *, tail: int = TAIL_LINES) -> tuple[str, list[str]]:
    """(the error message, the last `tail` lines) of a failed trial's log."""
    body = last_attempt(list(lines))
    cut = next((i for i, line in enumerate(body) if _TORCHRUN_FAILURE.search(line)), len(body))
    worker_code: int | None = None
    for line in body[cut:]:
        match = _TORCHRUN_EXITCODE.search(line)
        if match:
            worker_code = int(match.group(1))
            break
    own = body[:cut]
    error = ""
    for i, line in enumerate(own):
        if line.startswith(("error: ", "internal error: ")):
            block = [line]
            for following in own[i + 1:i + 13]:
                if not following.startswith("  "):
                    break
                block.append(following)
            error = "\n".join(block)
            break
    if not error:
        exceptions = [line for line in own if _EXCEPTION_LINE.match(line)]
        code = worker_code if worker_code is not None else exit_code
        if exceptions:
            error = exceptions[-1]
        elif code is not None and code < 0:
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            error = f"killed by {_signal_name(code)}{hint}"
        elif code is not None:
            error = f"exited with code {code}"
        else:
            error = "ended without a result"
    trimmed = [line.rstrip() for line in own if line.strip()]
    return error, trimmed[-tail:]
