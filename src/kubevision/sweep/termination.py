"""Early-termination policies (reference 5.4): should this trial stop, given every trial's reports?

Why a pure function over plain histories: the embedded runner (one process, trials as
subprocesses) and the operator (many pods, one decision endpoint) must stop exactly the same
trials for the same reports, and a decision that depends only on `(policy, histories, trial)` can
be tested by hand-computed tables. No clock, no I/O, no Optuna.

Vocabulary. A trial's history is its primary-metric reports in order; report k (1-based) is
"interval k" (one validation pass, every `evaluationFrequency` epochs). `decide` is called right
after `trial` made its latest report, k = len(histories[trial]).

When the policy applies (every policy):
- at report k when k is a multiple of `evaluation_interval` and k >= `delay_evaluation`
  (reference 5.4 and Azure's examples: interval 1, delay 5 applies "starting at evaluation
  interval 5"); `evaluation_interval` 0 (the Azure SDK default of bandit and truncation) means 1;
- the trials compared at interval k are the trials with at least k reports (the trial itself
  included, running and finished alike). A trial that has not reached interval k yet says nothing
  about interval k; metrics rise with epochs, so comparing against a later epoch of a trial ahead
  would be unfair, hence reports after k are ignored too.

Values:
- NaN, +inf and -inf (and a null metric, which the protocol turns into NaN) count as the worst
  possible value: -inf when maximizing, +inf when minimizing. A diverged trial is the first to go.
- "Best so far" of a trial at interval k is its best report among reports 1..k.

bandit: with `slack_factor` f, maximizing: threshold = best / (1 + f); minimizing: best * (1 + f),
where best is the best "best so far" at interval k over the compared trials (the trial included).
With `slack_amount` a: best - a (maximize) / best + a (minimize). The trial stops when its best so
far is strictly worse than the threshold (equal continues). For a negative best the ratio would put
the threshold above the best itself (-1 / 1.2 = -0.83 > -1), stopping the best trial; the
threshold is therefore best - |best| * f / (1 + f) (maximize) and best + |best| * f (minimize),
the same numbers as Azure's formula for the usual non-negative metrics.

median_stopping: the trial stops when its best so far is strictly worse than the median of the
running averages (mean of reports 1..k) of the OTHER trials at interval k (`statistics.median`: the
mean of the two middle values for an even count). With no other trial at interval k, it continues.

truncation_selection: rank the trials at interval k by their report at k (not their best: the
reference says "lowest X% at that interval"); with `exclude_finished_jobs`, finished trials (other
than the deciding trial) are left out of the ranking. With n ranked trials, floor(n * X / 100) can be
cut; the trial is cut when it and every trial no better than it fit in those slots, i.e. ties keep
trials running. So 20% cuts nothing until 5 trials have reached the interval, and a lone trial is
never cut.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kubevision.api.models import AutoMLImageJob

__all__ = ["Decision", "Policy", "PolicyType", "decide", "policy_from_job"]

PolicyType = Literal["bandit", "median_stopping", "truncation_selection"]


@dataclass(frozen=True)
class Policy:
    """One early-termination policy, detached from the API model (the operator stores it as JSON)."""

    type: PolicyType
    evaluation_interval: int
    """Apply at every k-th report; 0 means 1 (Azure SDK default)."""
    delay_evaluation: int
    """First report the policy may apply at (k >= delay_evaluation)."""
    slack_factor: float | None = None
    slack_amount: float | None = None
    truncation_percentage: int | None = None
    exclude_finished_jobs: bool = False

    def __post_init__(self) -> None:
        if self.evaluation_interval < 0 or self.delay_evaluation < 0:
            raise ValueError("evaluation_interval and delay_evaluation must be >= 0")
        if self.type == "bandit" and (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("bandit needs exactly one of slack_factor and slack_amount")
        if self.type == "truncation_selection" and not (
            self.truncation_percentage is not None and 1 <= self.truncation_percentage <= 99
        ):
            raise ValueError("truncation_selection needs truncation_percentage in 1..99")

    @property
    def interval(self) -> int:
        """The effective evaluation interval (0 means 1)."""
        return max(1, self.evaluation_interval)

    @property
    def first_report(self) -> int:
        """The first report the policy is evaluated at: the first multiple of the interval >= the delay."""
        return -(-max(1, self.delay_evaluation) // self.interval) * self.interval

    def applies_at(self, report: int) -> bool:
        """Whether the policy is evaluated at report `report` (1-based)."""
        return report >= 1 and report % self.interval == 0 and report >= self.delay_evaluation


@dataclass(frozen=True)
class Decision:
    """The answer to one report: stop or continue, and why (shown in the trial's log)."""

    stop: bool
    reason: str


def policy_from_job(job: AutoMLImageJob) -> Policy | None:
    """The early-termination policy of a manual sweep, None without one (AutoMode and single trials)."""
    sweep = job.spec.effective_sweep
    if sweep is None or sweep.early_termination is None:
        return None
    et = sweep.early_termination
    return Policy(
        type=et.type,
        evaluation_interval=et.evaluation_interval,
        delay_evaluation=et.delay_evaluation,
        slack_factor=et.slack_factor,
        slack_amount=et.slack_amount,
        truncation_percentage=et.truncation_percentage,
        exclude_finished_jobs=bool(et.exclude_finished_jobs),
    )


def _clean(value: float, maximize: bool) -> float:
    """A report as a comparable number: anything not finite is the worst value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isfinite(number):
        return number
    return -math.inf if maximize else math.inf


def _better(a: float, b: float, maximize: bool) -> bool:
    """a strictly better than b."""
    return a > b if maximize else a < b


def _best(values: Sequence[float], maximize: bool) -> float:
    return max(values) if maximize else min(values)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def decide(
    policy: Policy,
    histories: Mapping[str, Sequence[float]],
    trial: str,
    *,
    finished: Set[str] = frozenset(),
    maximize: bool = True,
) -> Decision:
    """Whether `trial`, which just made its latest report, should stop (see the module docstring)."""
    own = histories.get(trial, ())
    k = len(own)
    if k == 0:
        return Decision(False, "no metric reported yet")
    if not policy.applies_at(k):
        return Decision(
            False,
            f"report {k} is not evaluated ({policy.type} applies every {policy.interval} report(s) "
            f"from report {policy.first_report})",
        )
    at_k = {
        name: [_clean(v, maximize) for v in history[:k]]
        for name, history in histories.items()
        if len(history) >= k
    }
    if policy.type == "bandit":
        return _bandit(policy, at_k, trial, k, maximize)
    if policy.type == "median_stopping":
        return _median(at_k, trial, k, maximize)
    return _truncation(policy, at_k, trial, k, finished, maximize)


def _bandit(policy: Policy, at_k: Mapping[str, list[float]], trial: str, k: int, maximize: bool) -> Decision:
    mine = _best(at_k[trial], maximize)
    leader, best = trial, mine
    for name, values in at_k.items():
        value = _best(values, maximize)
        if _better(value, best, maximize):
            leader, best = name, value
    if not math.isfinite(best):
        return Decision(False, f"bandit: no trial has a finite metric at report {k}")
    if policy.slack_factor is not None:
        f = policy.slack_factor
        slack = abs(best) * f / (1 + f) if maximize else abs(best) * f
        how = f"best {_fmt(best)} ({leader}) with slackFactor {_fmt(f)}"
    else:
        slack = float(policy.slack_amount or 0.0)
        how = f"best {_fmt(best)} ({leader}) with slackAmount {_fmt(slack)}"
    threshold = best - slack if maximize else best + slack
    if _better(threshold, mine, maximize):
        side = "below" if maximize else "above"
        return Decision(True, f"bandit: best so far {_fmt(mine)} at report {k} is {side} {_fmt(threshold)} ({how})")
    return Decision(False, f"bandit: best so far {_fmt(mine)} at report {k} is within slack of {_fmt(threshold)}")


def _median(at_k: Mapping[str, list[float]], trial: str, k: int, maximize: bool) -> Decision:
    others = [statistics.fmean(values) for name, values in at_k.items() if name != trial]
    if not others:
        return Decision(False, f"median_stopping: no other trial has reached report {k}")
    mine = _best(at_k[trial], maximize)
    median = statistics.median(others)
    if _better(median, mine, maximize):
        side = "below" if maximize else "above"
        return Decision(
            True,
            f"median_stopping: best so far {_fmt(mine)} at report {k} is {side} the median {_fmt(median)} "
            f"of {len(others)} other trial(s)' running averages",
        )
    return Decision(False, f"median_stopping: best so far {_fmt(mine)} is not worse than the median {_fmt(median)}")


def _truncation(
    policy: Policy,
    at_k: Mapping[str, list[float]],
    trial: str,
    k: int,
    finished: Set[str],
    maximize: bool,
) -> Decision:
    ranked = {
        name: values[k - 1]
        for name, values in at_k.items()
        if name == trial or not (policy.exclude_finished_jobs and name in finished)
    }
    n = len(ranked)
    percentage = policy.truncation_percentage or 0
    slots = n * percentage // 100
    mine = ranked[trial]
    not_better = sum(1 for value in ranked.values() if not _better(value, mine, maximize))
    if slots >= 1 and not_better <= slots:
        return Decision(
            True,
            f"truncation_selection: report {k} value {_fmt(mine)} is in the lowest {percentage}% "
            f"({slots} of {n} trial(s) at this report)",
        )
    return Decision(
        False,
        f"truncation_selection: report {k} value {_fmt(mine)} is not in the lowest {percentage}% "
        f"({slots} of {n} trial(s) can be cut)",
    )
