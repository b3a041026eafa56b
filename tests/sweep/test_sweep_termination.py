"""Early-termination policies against hand-computed histories: one table per rule, both sides of each threshold."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from kubevision.api.models import AutoMLImageJob
from kubevision.sweep.termination import Policy, decide, policy_from_job

JobMaker = Callable[..., AutoMLImageJob]


def bandit(factor: float | None = None, amount: float | None = None, interval: int = 1, delay: int = 0) -> Policy:
    return Policy("bandit", interval, delay, factor, amount, None, False)


MEDIAN = Policy("median_stopping", 1, 0, None, None, None, False)


def truncation(percentage: int, exclude: bool = False) -> Policy:
    return Policy("truncation_selection", 1, 0, None, None, percentage, exclude)


# ---- when a policy applies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "delay", "applies", "first"),
    [
        (1, 0, [1, 2, 3, 4, 5, 6, 7, 8], 1),
        (0, 0, [1, 2, 3, 4, 5, 6, 7, 8], 1),  # 0 is the Azure SDK default and means 1
        (2, 0, [2, 4, 6, 8], 2),
        (1, 5, [5, 6, 7, 8], 5),  # Azure: interval 1, delay 5 applies "starting at evaluation interval 5"
        (2, 6, [6, 8], 6),  # the reference example: interval 2, delay 6
        (2, 5, [6, 8], 6),
        (3, 2, [3, 6], 3),
    ],
)
def test_policy_applies_at_multiples_of_the_interval_from_the_delay(
    interval: int, delay: int, applies: list[int], first: int
) -> None:
    policy = bandit(0.2, interval=interval, delay=delay)
    assert [k for k in range(1, 9) if policy.applies_at(k)] == applies
    assert policy.first_report == first


def test_reports_between_evaluations_never_stop_even_far_below_the_best() -> None:
    policy = bandit(0.2, interval=2, delay=6)
    histories = {"a": [0.9] * 8, "b": [0.1] * 8}
    for k in range(1, 9):
        decision = decide(policy, {"a": histories["a"][:k], "b": histories["b"][:k]}, "b")
        assert decision.stop == (k in (6, 8)), k
    reason = decide(policy, {"a": [0.9] * 5, "b": [0.1] * 5}, "b").reason
    assert "not evaluated" in reason and "from report 6" in reason


def test_a_trial_without_reports_continues() -> None:
    assert decide(bandit(0.2), {"a": [0.9]}, "b").stop is False


# ---- bandit ------------------------------------------------------------------------------------------


def test_bandit_slack_factor_threshold_is_best_over_one_plus_factor() -> None:
    # best 0.8 at report 2, factor 0.2: threshold 0.8 / 1.2 = 0.6667
    assert decide(bandit(0.2), {"a": [0.5, 0.8], "b": [0.4, 0.666]}, "b").stop is True
    assert decide(bandit(0.2), {"a": [0.5, 0.8], "b": [0.4, 0.667]}, "b").stop is False


def test_bandit_slack_amount_threshold_is_best_minus_amount_and_equal_continues() -> None:
    assert decide(bandit(amount=0.25), {"a": [0.75], "b": [0.49]}, "b").stop is True
    assert decide(bandit(amount=0.25), {"a": [0.75], "b": [0.5]}, "b").stop is False
    assert decide(bandit(amount=0.25), {"a": [0.75], "b": [0.51]}, "b").stop is False


def test_bandit_minimize_uses_best_times_one_plus_factor() -> None:
    # best (lowest) 0.5, factor 0.2: threshold 0.6
    assert decide(bandit(0.2), {"a": [0.5], "b": [0.61]}, "b", maximize=False).stop is True
    assert decide(bandit(0.2), {"a": [0.5], "b": [0.59]}, "b", maximize=False).stop is False
    assert decide(bandit(amount=0.1), {"a": [0.5], "b": [0.61]}, "b", maximize=False).stop is True
    assert decide(bandit(amount=0.1), {"a": [0.5], "b": [0.59]}, "b", maximize=False).stop is False


def test_bandit_compares_the_trials_best_so_far_not_its_latest_report() -> None:
    assert decide(bandit(0.2), {"a": [0.8, 0.8], "b": [0.7, 0.5]}, "b").stop is False


def test_bandit_ignores_reports_of_other_trials_after_this_interval() -> None:
    # a is ahead; at report 2 its best is 0.5 (threshold 0.4167), not its later 0.99 (0.825)
    histories = {"a": [0.3, 0.5, 0.99], "b": [0.3, 0.45], "c": [0.98]}
    assert decide(bandit(0.2), histories, "b").stop is False
    histories = {"a": [0.3, 0.9, 0.99], "b": [0.3, 0.45]}
    assert decide(bandit(0.2), histories, "b").stop is True


def test_bandit_never_stops_the_best_trial_even_with_negative_metrics() -> None:
    # Azure's best / (1 + f) would put the threshold at -0.83, above the best -1.0 itself
    histories = {"a": [-1.0], "b": [-1.1], "c": [-1.2]}
    assert decide(bandit(0.2), histories, "a").stop is False
    assert decide(bandit(0.2), histories, "b").stop is False  # threshold -1 - 1 * 0.2 / 1.2 = -1.1667
    assert decide(bandit(0.2), histories, "c").stop is True


def test_bandit_alone_continues() -> None:
    assert decide(bandit(amount=0.0), {"a": [0.1]}, "a").stop is False


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_not_finite_metrics_are_the_worst_value(bad: float) -> None:
    assert decide(bandit(0.2), {"a": [0.5], "b": [bad]}, "b").stop is True
    assert decide(bandit(0.2), {"a": [0.5], "b": [bad]}, "b", maximize=False).stop is True
    # nobody has a finite value: nothing to compare with
    assert decide(bandit(0.2), {"a": [math.nan], "b": [bad]}, "b").stop is False


# ---- median stopping --------------------------------------------------------------------------------


def test_median_stopping_compares_best_so_far_with_the_median_of_others_running_averages() -> None:
    # running averages at report 2: a 0.7, c 0.3, d 0.6 -> median 0.6
    others = {"a": [0.6, 0.8], "c": [0.2, 0.4], "d": [0.5, 0.7]}
    assert decide(MEDIAN, {**others, "b": [0.55, 0.59]}, "b").stop is True
    assert decide(MEDIAN, {**others, "b": [0.55, 0.61]}, "b").stop is False
    assert decide(MEDIAN, {**others, "b": [0.6, 0.2]}, "b").stop is False  # best so far 0.6 == median


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    others = {"a": [0.6, 0.8], "c": [0.2, 0.4]}  # running averages 0.7 and 0.3 -> 0.5
    assert decide(MEDIAN, {**others, "b": [0.3, 0.49]}, "b").stop is True
    assert decide(MEDIAN, {**others, "b": [0.3, 0.51]}, "b").stop is False


def test_median_uses_only_reports_up_to_this_interval() -> None:
    # a's running average at report 1 is 0.4 (not the mean 0.7 of all its reports)
    assert decide(MEDIAN, {"a": [0.4, 0.9, 0.8], "b": [0.45]}, "b").stop is False
    assert decide(MEDIAN, {"a": [0.4, 0.9, 0.8], "b": [0.35]}, "b").stop is True


def test_median_without_another_trial_at_this_interval_continues() -> None:
    decision = decide(MEDIAN, {"a": [0.9], "b": [0.1, 0.1]}, "b")
    assert decision.stop is False
    assert "no other trial" in decision.reason


def test_median_minimize() -> None:
    others = {"a": [0.6, 0.8], "c": [0.2, 0.4], "d": [0.5, 0.7]}  # median 0.6
    assert decide(MEDIAN, {**others, "b": [0.65, 0.62]}, "b", maximize=False).stop is True
    assert decide(MEDIAN, {**others, "b": [0.65, 0.58]}, "b", maximize=False).stop is False


# ---- truncation selection ---------------------------------------------------------------------------

FIVE = {"a": [0.9], "b": [0.8], "c": [0.7], "d": [0.6], "e": [0.5]}


def test_truncation_cuts_the_lowest_percentage_at_the_interval() -> None:
    assert decide(truncation(20), FIVE, "e").stop is True  # floor(5 * 20%) = 1 slot
    assert decide(truncation(20), FIVE, "d").stop is False
    assert decide(truncation(40), FIVE, "d").stop is True  # 2 slots
    assert decide(truncation(40), FIVE, "c").stop is False


def test_truncation_needs_enough_trials_for_one_slot() -> None:
    four = {k: v for k, v in FIVE.items() if k != "a"}
    assert decide(truncation(20), four, "e").stop is False  # floor(4 * 20%) = 0
    assert decide(truncation(25), four, "e").stop is True  # floor(4 * 25%) = 1
    assert decide(truncation(99), {"a": [0.1]}, "a").stop is False


def test_truncation_ties_keep_trials_running() -> None:
    tied = {**FIVE, "d": [0.5]}
    assert decide(truncation(20), tied, "e").stop is False
    assert decide(truncation(20), tied, "d").stop is False
    assert decide(truncation(40), tied, "e").stop is True


def test_truncation_ranks_the_report_at_the_interval_not_the_best() -> None:
    histories = {"a": [0.5, 0.9], "b": [0.5, 0.8], "c": [0.5, 0.7], "d": [0.5, 0.6], "e": [0.95, 0.5]}
    assert decide(truncation(20), histories, "e").stop is True


def test_truncation_exclude_finished_jobs_drops_finished_trials_from_the_ranking() -> None:
    histories = {"a": [0.9], "b": [0.8], "c": [0.7], "d": [0.6], "f1": [0.1], "f2": [0.05]}
    finished = frozenset({"f1", "f2"})
    # counted: 6 trials, 1 slot (25%), d has f1 and f2 below it -> continues
    assert decide(truncation(25), histories, "d", finished=finished).stop is False
    # excluded: 4 trials, 1 slot, d is the lowest -> cut
    assert decide(truncation(25, exclude=True), histories, "d", finished=finished).stop is True


def test_truncation_minimize() -> None:
    assert decide(truncation(20), FIVE, "a", maximize=False).stop is True
    assert decide(truncation(20), FIVE, "e", maximize=False).stop is False


# ---- from the job ---------------------------------------------------------------------------------


def test_policy_from_job_copies_the_early_termination_settings(job: JobMaker) -> None:
    space = [{"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}]
    sweep = {
        "samplingAlgorithm": "random",
        "earlyTermination": {"type": "Truncation_Selection", "evaluationInterval": 2, "delayEvaluation": 4,
                             "truncationPercentage": 30, "excludeFinishedJobs": True},
    }
    policy = policy_from_job(job(limits={"maxTrials": 4}, searchSpace=space, sweep=sweep))
    assert policy == Policy("truncation_selection", 2, 4, None, None, 30, True)
    no_policy = job(limits={"maxTrials": 4}, searchSpace=space)
    assert policy_from_job(no_policy) is None
    assert policy_from_job(job(limits={"maxTrials": 4})) is None  # AutoMode


def test_policy_rejects_inconsistent_parameters() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Policy("bandit", 1, 0, None, None, None, False)
    with pytest.raises(ValueError, match=r"1\.\.99"):
        Policy("truncation_selection", 1, 0, None, None, 100, False)
