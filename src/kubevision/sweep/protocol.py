"""The early-termination decision protocol, without a server: bytes in, status and JSON out.

Why no HTTP here: the embedded runner serves it with `http.server` from a thread, the operator
with aiohttp inside kopf's event loop. Both only need "given this request body and Authorization
header, what do I answer", so that lives here once, testable without sockets, and each host is a
few lines of glue. The trainer's side is `kubevision.trainer.reporting.TerminationClient`.

The protocol (one POST per validation of a trial):
- request: JSON `{"trial": str, "epoch": int, "metric": float | null}` with
  `Authorization: Bearer <token>`; unknown keys are ignored (newer trainers may send more);
- answer 200 `{"stop": bool, "reason": str}`; 400 `{"error": msg}` for a malformed body; 401
  `{"error": msg}` for a missing or wrong token (compared in constant time). A service created
  with `token=None` accepts any caller (tests, a runner bound to localhost that chose so);
- a null metric (the trainer sends null when its metric is not finite) counts as the worst value;
- the history of a trial is its metrics ordered by epoch. A report for epoch e drops the trial's
  reports for epochs >= e first: a trial resumed after a restart redoes the epochs after its last
  checkpoint and must not be counted twice (the trainer's `metrics.jsonl` does the same);
- once told to stop, a trial is told to stop again on every later report (its new reports are not
  recorded): a stop must not be undone by a retried request;
- without a policy every answer is "continue", but histories are still recorded.

State survives a restart of the runner/operator through `to_json` / `from_json`. All methods take
one lock, so the runner's HTTP thread and its scheduling loop can share a service.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
from collections.abc import Mapping
from typing import Any

from kubevision.api.errors import KubevisionError
from kubevision.sweep.termination import Decision, Policy, decide

__all__ = ["DecisionService"]

_STATE_VERSION = 1


class _BadRequest(Exception):
    """A malformed request body; its message is the 400 answer."""


def _parse(body: bytes) -> tuple[str, int, float | None]:
    """(trial, epoch, metric) of a request body, or _BadRequest saying what is wrong."""
    try:
        raw = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise _BadRequest(f"the body is not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise _BadRequest(f"the body must be a JSON object, got {type(raw).__name__}")
    trial = raw.get("trial")
    if not isinstance(trial, str) or not trial:
        raise _BadRequest(f"'trial' must be a non-empty string, got {trial!r}")
    epoch = raw.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise _BadRequest(f"'epoch' must be an integer >= 0, got {epoch!r}")
    if "metric" not in raw:
        raise _BadRequest("'metric' is missing (send null when the metric is not a number)")
    metric = raw["metric"]
    if metric is not None and (isinstance(metric, bool) or not isinstance(metric, int | float)):
        raise _BadRequest(f"'metric' must be a number or null, got {metric!r}")
    try:
        value = None if metric is None else float(metric)
    except OverflowError:  # an integer beyond float range: not a usable metric
        value = None
    if value is not None and not math.isfinite(value):
        value = None
    return trial, epoch, value


class DecisionService:
    """Records every trial's primary-metric reports and answers "stop?" with the job's policy."""

    def __init__(self, policy: Policy | None, *, token: str | None, maximize: bool = True) -> None:
        self.policy = policy
        self.maximize = maximize
        self._token = token
        self._lock = threading.Lock()
        self._reports: dict[str, list[tuple[int, float | None]]] = {}
        self._finished: set[str] = set()
        self._stopped: dict[str, str] = {}

    # ---- the protocol ---------------------------------------------------------------------------

    def handle(self, body: bytes, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """Answer one request: (HTTP status, JSON object)."""
        if not self._authorized(authorization):
            return 401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}
        try:
            trial, epoch, metric = _parse(body)
        except _BadRequest as err:
            return 400, {"error": str(err)}
        decision = self.report(trial, epoch, metric)
        return 200, {"stop": decision.stop, "reason": decision.reason}

    def _authorized(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token.encode())

    def report(self, trial: str, epoch: int, metric: float | None) -> Decision:
        """Record one report of `trial` (already authenticated and parsed) and decide."""
        with self._lock:
            if trial in self._stopped:
                return Decision(True, f"already told to stop: {self._stopped[trial]}")
            kept = [(e, m) for e, m in self._reports.get(trial, []) if e < epoch]
            kept.append((epoch, metric))
            self._reports[trial] = kept
            if self.policy is None:
                return Decision(False, "no early-termination policy")
            decision = decide(
                self.policy,
                self._histories_locked(),
                trial,
                finished=frozenset(self._finished),
                maximize=self.maximize,
            )
            if decision.stop:
                self._stopped[trial] = decision.reason
            return decision

    # ---- what the runner / operator reads and tells ---------------------------------------------

    def mark_finished(self, trial: str) -> None:
        """`trial` ended (succeeded, failed, stopped): matters for truncation's excludeFinishedJobs."""
        with self._lock:
            self._finished.add(trial)

    def stopped(self) -> set[str]:
        """Trials this service told to stop."""
        with self._lock:
            return set(self._stopped)

    def stop_reason(self, trial: str) -> str | None:
        """Why `trial` was told to stop (None if it was not)."""
        with self._lock:
            return self._stopped.get(trial)

    def histories(self) -> dict[str, list[float]]:
        """Each trial's metrics in epoch order; a null metric is NaN."""
        with self._lock:
            return self._histories_locked()

    def _histories_locked(self) -> dict[str, list[float]]:
        return {
            trial: [math.nan if m is None else m for _, m in sorted(reports)]
            for trial, reports in self._reports.items()
        }

    # ---- persistence ----------------------------------------------------------------------------

    def to_json(self) -> str:
        """The recorded state (reports, finished and stopped trials) as JSON text."""
        with self._lock:
            state = {
                "version": _STATE_VERSION,
                "reports": {t: [[e, m] for e, m in sorted(r)] for t, r in self._reports.items()},
                "finished": sorted(self._finished),
                "stopped": dict(self._stopped),
            }
        return json.dumps(state, allow_nan=False, sort_keys=True)

    @classmethod
    def from_json(
        cls, text: str, policy: Policy | None, *, token: str | None, maximize: bool = True
    ) -> DecisionService:
        """A service holding the state `to_json` wrote (policy and token come from the job again)."""
        service = cls(policy, token=token, maximize=maximize)
        try:
            state = json.loads(text)
            if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
                raise ValueError(f"expected a version {_STATE_VERSION} state object")
            reports = {
                str(trial): [(int(e), None if m is None else float(m)) for e, m in rows]
                for trial, rows in state["reports"].items()
            }
            finished = {str(t) for t in state["finished"]}
            stopped = {str(t): str(r) for t, r in state["stopped"].items()}
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise KubevisionError(
                f"the saved early-termination state is unreadable ({err}); delete it to start the "
                "histories afresh (trials already told to stop would then be judged again)"
            ) from None
        service._reports, service._finished, service._stopped = reports, finished, stopped
        return service
