"""Katib's StdOut/File (TEXT) metrics collector and the trial controller's observation.

Why copied rule for rule (file-metricscollector.go `parseLogsInTextFormat`/`newObservationLog`,
trial_controller_util.go `getMetrics`): this is where a trial program's output becomes the numbers the
operator ranks trials by, so the e2e scenario must read the trial's output the way Katib does:

- only lines containing one of the metric names (a substring test) are parsed;
- the first space-separated token is the timestamp when it parses as RFC 3339 (nanoseconds
  allowed), else the line gets the zero time; the token stays part of the line the filter scans;
- the default filter `([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)` (or the Experiment's
  `filter.metricsFormat`) finds name=value pairs; a pair counts when its name equals a metric name;
- when the objective metric was never reported, the log is a single `unavailable` record;
- the observation has one entry per metric strategy: min and max over the values that parse as
  floats (a new value replaces min, or else max: Katib's `else if`), latest = the value with the
  newest timestamp (a later line wins a tie), all as the strings the trial printed; a metric never
  reported is `unavailable` everywhere.
Go's map iteration orders the observation's metrics randomly; here they follow the strategies.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "DEFAULT_FILTER",
    "UNAVAILABLE",
    "ZERO_TIME",
    "MetricLog",
    "collected_metric_names",
    "go_float",
    "observation",
    "observation_available",
    "parse_rfc3339_nanos",
    "parse_text_log",
]

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
UNAVAILABLE = "unavailable"
ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)
_GO_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)


@dataclass(frozen=True)
class MetricLog:
    """One collected value, as the collector reports it to Katib's DB."""

    timestamp: str
    name: str
    value: str


def parse_rfc3339_nanos(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (Go's time.RFC3339Nano layout), None if it is not one."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    fraction = (match.group(7) or "").ljust(9, "0")
    return seconds * 1_000_000_000 + int(fraction)


def go_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for the decimal forms a log line can hold; None where Go errs."""
    if not _GO_FLOAT.match(text):
        return None
    return float(text)


def collected_metric_names(objective: Mapping[str, Any]) -> list[str]:
    """What the collector is told to look for: the objective metric first, then the additional ones."""
    return [str(objective["objectiveMetricName"]), *[str(m) for m in objective.get("additionalMetricNames") or []]]


def parse_text_log(lines: Iterable[str], metrics: Sequence[str], filters: Sequence[str] = ()) -> list[MetricLog]:
    """The metric logs Katib's collector reports for these log lines (see the module docstring)."""
    patterns = [p for p in (re.compile(f, re.ASCII) for f in (filters or [DEFAULT_FILTER])) if p.groups >= 2]
    logs: list[MetricLog] = []
    for line in lines:
        if not any(m in line for m in metrics):
            continue
        timestamp = ZERO_TIME
        head, sep, _ = line.partition(" ")
        if sep and parse_rfc3339_nanos(head) is not None:
            timestamp = head
        for pattern in patterns:
            for match in pattern.finditer(line):
                name, value = (match.group(1) or "").strip(), (match.group(2) or "").strip()
                if name in metrics:
                    logs.append(MetricLog(timestamp, name, value))
    if not any(log.name == metrics[0] for log in logs):
        return [MetricLog(ZERO_TIME, metrics[0], UNAVAILABLE)]
    return logs


def observation(logs: Iterable[MetricLog], strategies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Trial.status.observation from the metric logs: one {name, min, max, latest} per metric strategy."""
    metrics: dict[str, dict[str, str]] = {}
    newest: dict[str, int] = {}
    for strategy in strategies:
        name = str(strategy["name"])
        metrics[name] = {"name": name, "min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE}
    for log in logs:
        metric = metrics.get(log.name)
        if metric is None:
            continue
        value = go_float(log.value)
        if value is not None:
            if metric["min"] == UNAVAILABLE:
                metric["min"] = metric["max"] = log.value
            elif value < float(metric["min"]):
                metric["min"] = log.value
            elif value > float(metric["max"]):
                metric["max"] = log.value
        moment = parse_rfc3339_nanos(log.timestamp)
        if moment is None:
            raise ValueError(f"failed to parse timestamp {log.timestamp!r}")
        if log.name not in newest or newest[log.name] <= moment:
            newest[log.name] = moment
            metric["latest"] = log.value
    return {"metrics": list(metrics.values())}


def observation_available(observation_: Mapping[str, Any] | None, objective_metric: str) -> bool:
    """Katib's IsObservationAvailable: the objective metric has a latest value other than `unavailable`."""
    for metric in (observation_ or {}).get("metrics") or []:
        if metric.get("name") == objective_metric and metric.get("latest") != UNAVAILABLE:
            return True
    return False
