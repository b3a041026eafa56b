"""Katib's condition bookkeeping (`pkg/apis/controller/{trials,experiments}/v1beta1/util.go`).

Why copied exactly: the operator reads these conditions to decide a trial's state, and Katib's rules
have quirks a hand-written fake would miss: setting a condition that already has the same status and
reason changes nothing (not even lastUpdateTime); a changed reason keeps lastTransitionTime while the
status is unchanged; the updated condition moves to the end of the list; marking a trial or an
Experiment finished turns an existing Running condition to status False with its old reason and
message (it is not removed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["has_condition", "mark_finished", "set_condition"]

Condition = dict[str, Any]


def _find(conditions: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    for condition in conditions:
        if condition.get("type") == kind:
            return condition
    return None


def has_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> bool:
    """True when a condition of this type exists with status True (Katib's `hasCondition`)."""
    found = _find(conditions or [], kind)
    return found is not None and found.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None, kind: str, status: str, reason: str, message: str, now: str
) -> list[Condition]:
    """Katib's `setCondition`: a new list with the condition (re)set, moved to the end."""
    current = [dict(c) for c in conditions or []]
    before = _find(current, kind)
    if before is not None and before.get("status") == status and before.get("reason") == reason:
        return current
    new: Condition = {
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    }
    if before is not None and before.get("status") == status:
        new["lastTransitionTime"] = before.get("lastTransitionTime", now)
    return [c for c in current if c.get("type") != kind] + [new]


def mark_finished(
    conditions: Sequence[Mapping[str, Any]] | None, kind: str, status: str, reason: str, message: str, now: str
) -> list[Condition]:
    """Katib's `Mark*StatusSucceeded/Failed/...`: Running turns False (old reason kept), then `kind` is set."""
    current = [dict(c) for c in conditions or []]
    running = _find(current, "Running")
    if running is not None:
        current = set_condition(current, "Running", "False", str(running.get("reason", "")),
                                str(running.get("message", "")), now)
    return set_condition(current, kind, status, reason, message, now)
