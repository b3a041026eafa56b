"""The leaderboard: every trial ranked by its primary metric, as CSV (for tools) and Markdown (for people).

Why rank only trials that ended with a model-worthy state: a failed trial may have reported a good
epoch before crashing, but it exported nothing, so it cannot be "the best model". Trials stopped
early (early termination, a timeout) keep their best epoch's model and are ranked by it, as Azure
ranks early-terminated child runs. Ties go to the lower trial number (it finished its config first),
the same rule as `Sweep.best`. Unranked trials follow in trial order.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubevision.local.outcomes import TrialOutcome

__all__ = ["RANKED_STATES", "Row", "format_duration", "format_params", "rank", "to_csv", "to_markdown"]

RANKED_STATES = ("succeeded", "early_terminated", "timed_out", "interrupted")


@dataclass(frozen=True)
class Row:
    rank: int | None
    outcome: TrialOutcome


def _rankable(outcome: TrialOutcome) -> bool:
    return outcome.state in RANKED_STATES and outcome.value is not None and math.isfinite(outcome.value)


def rank(outcomes: Iterable[TrialOutcome]) -> list[Row]:
    """Ranked trials first (best metric first, lower number on ties), then the rest by number."""
    items = list(outcomes)
    ranked = sorted((o for o in items if _rankable(o)), key=lambda o: (-(o.value or 0.0), o.number))
    rest = sorted((o for o in items if not _rankable(o)), key=lambda o: o.number)
    return [Row(i + 1, o) for i, o in enumerate(ranked)] + [Row(None, o) for o in rest]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_params(params: dict[str, Any]) -> str:
    """`modelName=resnet18 learningRate=0.0123` (floats to 4 significant digits)."""
    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _epochs(o: TrialOutcome) -> str:
    if o.epochs_run is None:
        return ""
    return f"{o.epochs_run}/{o.epochs_planned}" if o.epochs_planned else str(o.epochs_run)


def _note(o: TrialOutcome) -> str:
    text = o.error if o.state == "failed" else o.stop_reason
    return (text or "").splitlines()[0] if text else ""


def to_csv(rows: Sequence[Row], metric: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "trial", metric, "status", "epochs_run", "epochs_planned", "duration_s", "source",
                     "parameters", "note"])
    for row in rows:
        o = row.outcome
        writer.writerow([
            row.rank if row.rank is not None else "",
            o.number,
            "" if o.value is None else repr(float(o.value)),
            o.state,
            "" if o.epochs_run is None else o.epochs_run,
            "" if o.epochs_planned is None else o.epochs_planned,
            f"{o.duration_s:.1f}",
            o.source,
            json.dumps(o.params, sort_keys=False, default=str),
            _note(o),
        ])
    return out.getvalue()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: Sequence[Row], metric: str, *, title: str) -> str:
    lines = [f"# {title}", "", f"| rank | trial | {metric} | status | epochs | duration | parameters | note |",
             "|---:|---:|---:|---|---:|---:|---|---|"]
    for row in rows:
        o = row.outcome
        value = "" if o.value is None else f"{o.value:.4f}"
        params = f"`{_cell(format_params(o.params))}`" if o.params else ""
        lines.append(
            f"| {row.rank if row.rank is not None else '-'} | {o.number} | {value} | {o.state} | {_epochs(o)} | "
            f"{format_duration(o.duration_s)} | {params} | {_cell(_note(o))} |"
        )
    return "\n".join(lines) + "\n"
