"""How a trial's end becomes a record, and how records become a leaderboard.

The inputs are what real trials leave behind: summary.json, metrics.jsonl (with a repeated epoch
after a resume and a torn last line after a kill -9), and trial.log with the kubevision error
block followed by torchrun's failure banner (copied from a real failed trial).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from kubevision.local.leaderboard import format_duration, format_params, rank, to_csv, to_markdown
from kubevision.local.outcomes import (
    TrialOutcome,
    best_value,
    classify,
    error_excerpt,
    finished_on_disk,
    read_history,
    read_outcome,
    write_outcome,
)

TORCHRUN_BANNER = """\
E1129 15:17:59.635000 10207 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: {code})
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
kubevision.cli FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 0 (local_rank: 0)
  exitcode  : {code} (pid: 10434)
============================================================"""


@pytest.mark.parametrize(
    ("exit_code", "status", "cause", "state"),
    [
        (0, "completed", None, "succeeded"),
        (0, "early_stopped", None, "succeeded"),
        (0, "early_terminated", None, "early_terminated"),
        (0, "interrupted", "timeout", "timed_out"),
        (1, None, "timeout", "timed_out"),
        (0, "interrupted", "interrupt", "interrupted"),
        (-15, None, "interrupt", "interrupted"),
        (0, "completed", "timeout", "succeeded"),  # it finished just as the timeout hit
        (1, None, None, "failed"),
        (0, "interrupted", None, "failed"),  # stopped by someone else: not a result
        (0, None, None, "failed"),
    ],
)
def test_classify(exit_code: int, status: str | None, cause: str | None, state: str) -> None:
    summary = {"status": status} if status else None
    assert classify(exit_code, summary, cause) == state


def test_error_is_the_kubevision_block_and_the_tail_drops_torchruns_banner() -> None:
    log = [
        "==== 2026-11-29T15:00:00+00:00 kubevision run: trial 2 attempt 1", "==== python -m torch...",
        "an earlier attempt's line",
        "==== 2026-11-29T15:01:00+00:00 kubevision run: trial 2 attempt 2", "==== python -m torch...",
        *[f"INFO line {i}" for i in range(30)],
        "error: layersToFreeze is 40, but mobilenetv2 has 19 freezable layers",
        "  - layersToFreeze: use a value from 0 to 19",
        *TORCHRUN_BANNER.format(code=1).splitlines(),
    ]
    error, tail = error_excerpt(log, 1)
    assert error == ("error: layersToFreeze is 40, but mobilenetv2 has 19 freezable layers\n"
                     "  - layersToFreeze: use a value from 0 to 19")
    assert len(tail) == 20 and tail[-1] == "  - layersToFreeze: use a value from 0 to 19"
    assert not any("ChildFailedError" in line or "earlier attempt" in line for line in tail)


def test_error_of_a_killed_worker_names_the_signal() -> None:
    log = ["INFO training", *TORCHRUN_BANNER.format(code=-9).splitlines()]
    assert error_excerpt(log, 1)[0] == "killed by SIGKILL (out of memory?)"
    assert error_excerpt(["starting"], -15)[0] == "killed by SIGTERM"
    assert error_excerpt(["Traceback (most recent call last):", '  File "x"', "ZeroDivisionError: division by zero"],
                         1)[0] == "ZeroDivisionError: division by zero"
    assert error_excerpt([], 3)[0] == "exited with code 3"


def _metrics(trial: Path, rows: list[tuple[int, float | None]], torn: bool = False) -> None:
    lines = [json.dumps({"time": "t", "epoch": e, "metrics": {"accuracy": v} if v is not None else {}})
             for e, v in rows]
    (trial / "metrics.jsonl").write_text("\n".join(lines) + ("\n{\"epoch\": 4, \"metr" if torn else "\n"))


def test_history_keeps_the_last_record_of_an_epoch_and_skips_torn_lines(tmp_path: Path) -> None:
    _metrics(tmp_path, [(1, 0.2), (2, 0.5), (2, 0.6), (3, None)], torn=True)
    assert read_history(tmp_path, "accuracy") == [(1, 0.2), (2, 0.6)]
    assert read_history(tmp_path / "missing", "accuracy") == []


def test_best_value_prefers_the_summary_then_the_history() -> None:
    assert best_value({"best_score": 0.8}, [(1, 0.9)]) == 0.8
    assert best_value({"best_score": float("nan")}, [(1, 0.3), (2, 0.7)]) == 0.7
    assert best_value(None, []) is None


def test_finished_on_disk_needs_a_final_summary_and_the_finished_mark(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed"}))
    assert finished_on_disk(tmp_path) is None  # no checkpoints/finished.json: it may still resume
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "finished.json").write_text('{"status": "completed"}')
    assert finished_on_disk(tmp_path) == {"status": "completed"}
    (tmp_path / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    assert finished_on_disk(tmp_path) is None


def _o(number: int, state: str, value: float | None, **kw: object) -> TrialOutcome:
    return TrialOutcome(number=number, name=f"t-{number}", params={"modelName": "resnet18", "learningRate": 0.0123456},
                        source="random", state=state, value=value, **kw)  # type: ignore[arg-type]


def test_outcome_round_trips_through_outcome_json(tmp_path: Path) -> None:
    outcome = _o(3, "failed", None, error="error: boom", log_tail=["a", "b"], exit_code=1, duration_s=12.5)
    write_outcome(tmp_path / "outcome.json", outcome)
    assert read_outcome(tmp_path / "outcome.json") == outcome
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert read_outcome(tmp_path / "bad.json") is None


def test_rank_puts_model_worthy_trials_first_best_first_ties_to_the_lower_number() -> None:
    rows = rank([_o(0, "succeeded", 0.7), _o(1, "failed", 0.99), _o(2, "early_terminated", 0.9),
                 _o(3, "timed_out", 0.9), _o(4, "succeeded", None), _o(5, "succeeded", 0.95)])
    assert [(r.rank, r.outcome.number) for r in rows] == [(1, 5), (2, 2), (3, 3), (4, 0), (None, 1), (None, 4)]


def test_csv_and_markdown_hold_every_column() -> None:
    rows = rank([_o(0, "succeeded", 0.75, epochs_run=3, epochs_planned=3, duration_s=83.0),
                 _o(1, "failed", None, error="error: bad | pipe\n  - detail", duration_s=4.0)])
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows, "accuracy"))))
    assert parsed[0]["rank"] == "1" and parsed[0]["accuracy"] == "0.75" and parsed[0]["epochs_run"] == "3"
    assert json.loads(parsed[0]["parameters"]) == {"modelName": "resnet18", "learningRate": 0.0123456}
    assert parsed[1]["rank"] == "" and parsed[1]["status"] == "failed" and parsed[1]["note"] == "error: bad | pipe"
    md = to_markdown(rows, "accuracy", title="Leaderboard")
    assert "| 1 | 0 | 0.7500 | succeeded | 3/3 | 1m 23s | `modelName=resnet18 learningRate=0.01235` |" in md
    assert "error: bad \\| pipe" in md
    assert format_duration(3725) == "1h 02m" and format_params({"a": 1e-9}) == "a=1e-09"
