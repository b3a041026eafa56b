"""Prometheus metrics of the operator: jobs by phase, trials by state, reconcile time, API errors.

Why these four: a platform team's first questions are "how many jobs are running or failing", "how
many trials are burning GPUs", "is the operator keeping up" and "is it fighting the API server".
Each answers one of them; everything else is in the jobs' status.

Why a registry of our own (not prometheus_client's global one): tests and the benchmark start
several operators in one process, and the global registry refuses a second metric of the same name.
The gauges follow a per-job table (job -> phase, job -> trial counts): each observation moves the
totals by its difference (constant time per reconcile, however many jobs), a deleted job leaves them
with `forget`, and a restart rebuilds them as the jobs are resumed.

Served on `--metrics-port` at /metrics by a small aiohttp app in the operator's event loop.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from kubevision.operator.aioserver import AppServer

__all__ = ["PHASES", "TRIAL_STATES", "OperatorMetrics"]

PHASES = ("Pending", "Running", "Succeeded", "Failed")
TRIAL_STATES = ("running", "succeeded", "failed", "earlyTerminated")


class OperatorMetrics:
    """The operator's metrics on their own registry, plus the /metrics HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("kubevision_jobs", "AutoMLImageJobs by phase.", ["phase"], registry=self.registry)
        self.trials = Gauge("kubevision_trials", "Trials of all jobs by state.", ["state"], registry=self.registry)
        self.reconcile_seconds = Histogram(
            "kubevision_reconcile_duration_seconds",
            "Time spent in one reconcile of a job, by handler.",
            ["handler"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.api_errors = Counter(
            "kubevision_api_errors",
            "Kubernetes API calls that failed (code 0: no answer), before retries succeed or give up.",
            ["verb", "code"],
            registry=self.registry,
        )
        self._phases: dict[tuple[str, str], str] = {}
        self._counts: dict[tuple[str, str], dict[str, int]] = {}
        self._server = AppServer()
        for phase in PHASES:
            self.jobs.labels(phase=phase).set(0)
        for state in TRIAL_STATES:
            self.trials.labels(state=state).set(0)

    def api_error(self, verb: str, code: int) -> None:
        self.api_errors.labels(verb=verb, code=str(code)).inc()

    def observe_job(self, namespace: str, name: str, phase: str | None, trials: Mapping[str, int] | None) -> None:
        """Record a job's latest phase and trial counts; the totals move by the difference (O(1))."""
        key = (namespace, name)
        if phase and self._phases.get(key) != phase:
            self._move_phase(self._phases.get(key), phase)
            self._phases[key] = phase
        if trials is not None:
            new = {state: int(trials.get(state, 0)) for state in TRIAL_STATES}
            old = self._counts.get(key)
            if old != new:
                self._move_counts(old, new)
                self._counts[key] = new

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._move_phase(self._phases.pop(key, None), None)
        old = self._counts.pop(key, None)
        if old is not None:
            self._move_counts(old, None)

    def _move_phase(self, old: str | None, new: str | None) -> None:
        if old in PHASES:
            self.jobs.labels(phase=old).dec()
        if new in PHASES:
            self.jobs.labels(phase=new).inc()

    def _move_counts(self, old: Mapping[str, int] | None, new: Mapping[str, int] | None) -> None:
        for state in TRIAL_STATES:
            delta = (new or {}).get(state, 0) - (old or {}).get(state, 0)
            if delta:
                self.trials.labels(state=state).inc(delta)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def _serve(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self, host: str = "0.0.0.0", port: int = 8080) -> int:
        """Serve /metrics until `stop`; returns the bound port (useful with port 0)."""
        application = web.Application()
        application.router.add_get("/metrics", self._serve)
        return await self._server.start(application, host, port)

    async def stop(self) -> None:
        await self._server.stop()

    @property
    def port(self) -> int | None:
        """The bound port while serving (None before `start`)."""
        return self._server.port
