"""Reporting a validation: one Katib-readable stdout line, one metrics.jsonl record, and the early-termination question.

Why stdout in this exact shape: on a cluster the trial's metrics reach Katib through its StdOut
collector (reference kubeflow-kserve 1.6), which reads every line the training container writes
(stdout and stderr), keeps the lines that contain a metric name, takes `name=value` pairs matching
`([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)`, and uses the first space-separated token as
the timestamp when it parses as RFC 3339 (else the zero time, which breaks Katib's ordering and its
early stopping). So each report is one line:

    2026-11-29T10:00:00.123456Z epoch=3 accuracy=0.91 log_loss=0.3

- the time is UTC RFC 3339 with microseconds (distinct, increasing timestamps per report);
- the primary metric comes first, then the others in the caller's order;
- only finite numbers are written: "nan" would match the regex with an empty value and fail the
  collector's number parsing; a metric that is None or not finite is left out of the line and the
  record (metrics.py already leaves undefined metrics out);
- a name that is not entirely `[\\w|-]` (say `mAP@0.5`) would be collected under a truncated name, so
  it is kept out of the line (warned once) but kept in metrics.jsonl;
- the line is flushed at once (the collector tails the file while the trial runs).
Consequence for the rest of the trainer: no other output line may contain `<metric name>=<number>`,
or Katib records it as an observation. Log messages say "accuracy 0.91", not "accuracy=0.91".

metrics.jsonl gets the same report as JSON, `{"time", "epoch", "metrics": {...}, **extra}`, appended
and fsync'd (the local runner reads it to rank trials). After a resume an epoch may appear twice;
readers take the last record of an epoch. Only the main process (rank 0) reports (`enabled`).

`TerminationClient` asks the runner (local) or operator (cluster) after each validation whether this
trial should stop (bandit / median / truncation policies need all trials' metrics, which only the
runner has). Protocol: POST `{"trial", "epoch", "metric"}` (metric null when not finite) with
`Authorization: Bearer <token>`, answer `{"stop": bool, "reason"?: str}`. An unreachable or failing
runner is not a reason to lose a trial: timeouts, refused connections and 5xx answers are retried
(3 tries, 5 s timeout, backoff) and then treated as "continue" with a warning. A 401/403 is a
misconfigured token, which every later question would hit too, so it is a `KubevisionError`.
Proxies from the environment are ignored: the endpoint is always the local runner or an in-cluster
service, and a workstation's HTTP_PROXY must not swallow it.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import numbers
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import TerminationEndpoint
from kubevision.data.atomic import atomic_write_text

__all__ = ["KATIB_METRIC_NAME", "METRICS_FILE", "MetricsReporter", "TerminationClient", "rfc3339_now"]

_logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
KATIB_METRIC_NAME = re.compile(r"[\w|-]+")
"""A name Katib's default filter captures whole (its `([\\w|-]+)` group)."""
_RESERVED = frozenset({"time", "epoch", "metrics"})


def rfc3339_now() -> str:
    """Current UTC time as RFC 3339 with microseconds and `Z`, which Katib's collector parses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _finite(value: Any) -> float | int | None:
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a 0-d tensor or numpy array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _jsonable(value: Any) -> Any:
    """`value` with numpy/torch numbers as Python numbers and non-finite ones as null (strict JSON)."""
    if getattr(value, "ndim", None) == 0 or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return _finite(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class MetricsReporter:
    """Writes each validation's metrics as a Katib stdout line and a metrics.jsonl record (rank 0 only)."""

    def __init__(self, output_dir: Path, primary_metric: str, *, enabled: bool) -> None:
        self.path = Path(output_dir) / METRICS_FILE
        self.primary_metric = primary_metric
        self.enabled = enabled
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _logger.warning(message, *args)

    def report(self, epoch: int, metrics: Mapping[str, float], extra: Mapping[str, Any] | None = None) -> str:
        """Report the validation at `epoch`; returns the stdout line (also when not enabled, unprinted)."""
        values: dict[str, float | int] = {}
        for name, raw in metrics.items():
            value = _finite(raw)
            if value is not None and name != "epoch":
                values[name] = value
        if self.primary_metric not in values:
            self._warn_once(
                "primary",
                "epoch %s: primary metric %s is missing or not finite (%r); Katib gets no value",
                epoch,
                self.primary_metric,
                metrics.get(self.primary_metric),
            )
        ordered = sorted(values, key=lambda name: name != self.primary_metric)
        pairs = [f"epoch={int(epoch)}"]
        for name in ordered:
            if KATIB_METRIC_NAME.fullmatch(name):
                pairs.append(f"{name}={values[name]!r}")
            else:
                self._warn_once(name, "metric name %r cannot be read by Katib; it is only in %s", name, METRICS_FILE)
        now = rfc3339_now()
        line = f"{now} {' '.join(pairs)}"
        if not self.enabled:
            return line
        extra = dict(extra or {})
        clash = _RESERVED & extra.keys()
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} would overwrite the record's own fields")
        record = {"time": now, "epoch": int(epoch), "metrics": {n: values[n] for n in ordered}, **_jsonable(extra)}
        text = json.dumps(record, allow_nan=False, default=str) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise KubevisionError(f"cannot write metrics to {self.path}: {err.strerror or err}") from err
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return line

    def forget_from(self, epoch: int) -> int:
        """Drop records of `epoch` and later (a resumed trial redoes them); returns how many were dropped.

        A trial killed after reporting an epoch but before checkpointing it reports that epoch again
        on restart; without this, metrics.jsonl would hold it twice and a history would double count.
        A torn last line (killed mid-write) is dropped too.
        """
        if not self.enabled or not self.path.is_file():
            return 0
        kept: list[str] = []
        dropped = 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record_epoch = int(json.loads(line)["epoch"])
            except (ValueError, KeyError, TypeError):
                dropped += 1
                continue
            if record_epoch < epoch:
                kept.append(line + "\n")
            else:
                dropped += 1
        if dropped:
            atomic_write_text(self.path, "".join(kept))
        return dropped


class TerminationClient:
    """Asks the early-termination endpoint whether this trial should stop (always "no" without one)."""

    def __init__(
        self,
        endpoint: TerminationEndpoint | None,
        trial_name: str,
        *,
        timeout_s: float = 5.0,
        tries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.trial_name = trial_name
        self.timeout_s = timeout_s
        self.tries = max(1, tries)
        self.backoff_s = backoff_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def should_stop(self, epoch: int, value: float) -> bool:
        """True when the endpoint says stop; False when it says continue or cannot be reached."""
        if self.endpoint is None:
            return False
        metric = float(value) if math.isfinite(value) else None
        body = json.dumps({"trial": self.trial_name, "epoch": int(epoch), "metric": metric}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.endpoint.token:
            headers["Authorization"] = f"Bearer {self.endpoint.token}"
        url = self.endpoint.url
        problem = ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    payload = response.read()
            except urllib.error.HTTPError as err:
                if err.code in (401, 403):
                    raise KubevisionError(
                        f"the early-termination endpoint {url} refused this trial (HTTP {err.code}): the token in "
                        "the trial config (earlyTermination.token) is not the one its runner issued"
                    ) from None
                problem = f"HTTP {err.code} {err.reason}"
                if err.code < 500 and err.code not in (408, 429):
                    break
                continue
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                problem = f"{type(reason).__name__}: {reason}"
                continue
            return self._decision(payload, epoch)
        _logger.warning(
            "early-termination endpoint %s did not answer for epoch %s (%s); the trial continues", url, epoch, problem
        )
        return False

    def _decision(self, payload: bytes, epoch: int) -> bool:
        try:
            answer = json.loads(payload)
            stop = answer["stop"]
            if not isinstance(stop, bool):
                raise TypeError(f"'stop' is {stop!r}, not true/false")
        except (ValueError, KeyError, TypeError) as err:
            _logger.warning("early-termination endpoint gave an unusable answer (%s); the trial continues", err)
            return False
        if stop:
            _logger.info("early termination at epoch %s: %s", epoch, answer.get("reason") or "the policy says stop")
        return stop
