"""The early-termination decision endpoint of the cluster: one `DecisionService` per job, over aiohttp.

Why in the operator process: bandit, median stopping and truncation selection compare a trial with
all other trials of the job, which only a component that hears from every trial can do; Katib's own
early stopping is medianstop only. The decision code is `kubevision.sweep` (the same the local
runner hosts), so a job stops the same trials on a laptop and in a cluster. This module is glue:
routing, authentication hand-off, persistence.

Route: `POST /v1/namespaces/{namespace}/jobs/{name}/termination`, body and answers exactly as
`kubevision.trainer.reporting.TerminationClient` speaks them (401 for a wrong token comes from the
DecisionService itself; 404 when the job is unknown or has no policy: the client then continues).

Persistence: after each answered report the job's state (`DecisionService.to_json`) is written
through `saver` (the operator stores it in the ConfigMap `<job>-termination`, owned by the job) before
the answer is sent, so an operator restart keeps every history. Jobs are loaded lazily through
`loader` on their first request after a restart, so the service answers even before kopf resumes
the job; the kopf handlers also register jobs eagerly and mark trials finished as Katib reports them.
A failed save is logged and retried on the next report; the decision itself stands.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from kubevision.api.errors import KubevisionError
from kubevision.operator.aioserver import AppServer
from kubevision.sweep.protocol import DecisionService
from kubevision.sweep.termination import Policy

__all__ = ["ROUTE", "Loader", "Registration", "Saver", "TerminationService", "termination_path"]

_logger = logging.getLogger(__name__)

ROUTE = "/v1/namespaces/{namespace}/jobs/{name}/termination"


def termination_path(namespace: str, name: str) -> str:
    """The path a trial of job `namespace/name` posts its reports to."""
    return ROUTE.format(namespace=namespace, name=name)


@dataclass(frozen=True)
class Registration:
    """What a job's service is made of: its policy, its token, and the state saved before a restart."""

    policy: Policy
    token: str
    saved_state: str | None = None


Key = tuple[str, str]
Loader = Callable[[str, str], Awaitable[Registration | None]]
Saver = Callable[[str, str, str], Awaitable[None]]


class TerminationService:
    """Per-job DecisionServices behind one HTTP route."""

    def __init__(self, *, loader: Loader | None = None, saver: Saver | None = None) -> None:
        self.loader = loader
        self.saver = saver
        self._services: dict[Key, DecisionService] = {}
        self._finished: dict[Key, set[str]] = {}
        self._dirty: set[Key] = set()
        self._loading: dict[Key, asyncio.Lock] = {}
        self._saving: dict[Key, asyncio.Lock] = {}
        self._server = AppServer()

    # ---- registry -------------------------------------------------------------------------------

    def register(self, namespace: str, name: str, registration: Registration) -> DecisionService:
        """Host a job (restoring saved histories); a job already hosted keeps its live service."""
        key = (namespace, name)
        if key in self._services:
            return self._services[key]
        service: DecisionService | None = None
        if registration.saved_state:
            try:
                service = DecisionService.from_json(registration.saved_state, registration.policy,
                                                    token=registration.token, maximize=True)
            except KubevisionError as err:
                _logger.warning("job %s/%s: %s; starting with empty histories", namespace, name, err)
        if service is None:
            service = DecisionService(registration.policy, token=registration.token, maximize=True)
        self._services[key] = service
        self._finished[key] = set(json.loads(service.to_json())["finished"])
        return service

    def unregister(self, namespace: str, name: str) -> None:
        """Forget a job (deleted or finished); its saved state stays with the job's ConfigMap."""
        key = (namespace, name)
        self._services.pop(key, None)
        self._finished.pop(key, None)
        self._dirty.discard(key)
        self._loading.pop(key, None)
        self._saving.pop(key, None)

    def service(self, namespace: str, name: str) -> DecisionService | None:
        return self._services.get((namespace, name))

    def jobs(self) -> list[Key]:
        return sorted(self._services)

    def mark_finished(self, namespace: str, name: str, trial: str) -> None:
        """Katib reports `trial` done (any terminal state); no-op for a job that is not hosted.

        The change is saved by the next `flush` (the operator's timer) or the next report.
        """
        key = (namespace, name)
        service = self._services.get(key)
        known = self._finished.setdefault(key, set())
        if service is not None and trial not in known:
            service.mark_finished(trial)
            known.add(trial)
            self._dirty.add(key)

    async def flush(self, namespace: str, name: str) -> None:
        """Save the job's state if trials were marked finished since the last save."""
        service = self._services.get((namespace, name))
        if service is not None and (namespace, name) in self._dirty:
            await self._save(namespace, name, service)

    def stopped(self, namespace: str, name: str) -> set[str]:
        """Trials of the job this service told to stop (empty when not hosted)."""
        service = self._services.get((namespace, name))
        return service.stopped() if service is not None else set()

    async def _lookup(self, namespace: str, name: str) -> DecisionService | None:
        key = (namespace, name)
        if key in self._services or self.loader is None:
            return self._services.get(key)
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._services:
                return self._services[key]
            registration = await self.loader(namespace, name)
            return None if registration is None else self.register(namespace, name, registration)

    async def _save(self, namespace: str, name: str, service: DecisionService) -> None:
        if self.saver is None:
            return
        lock = self._saving.setdefault((namespace, name), asyncio.Lock())
        async with lock:
            self._dirty.discard((namespace, name))
            try:
                await self.saver(namespace, name, service.to_json())
            except Exception as err:  # the decision stands; the next report or flush saves again
                self._dirty.add((namespace, name))
                _logger.warning("job %s/%s: cannot save early-termination state: %s", namespace, name, err)

    # ---- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        try:
            service = await self._lookup(namespace, name)
        except Exception as err:  # the API is unreachable: the trial retries, then continues
            _logger.warning("job %s/%s: cannot load its early-termination settings: %s", namespace, name, err)
            return web.json_response({"error": f"cannot load job {namespace}/{name}: {err}"}, status=503)
        if service is None:
            return web.json_response(
                {"error": f"job {namespace}/{name} is unknown here or has no early-termination policy"}, status=404
            )
        body = await request.read()
        status, answer = service.handle(body, request.headers.get("Authorization"))
        if status == 200:
            await self._save(namespace, name, service)
        return web.json_response(answer, status=status)

    def app(self) -> web.Application:
        application = web.Application(client_max_size=64 * 1024)
        application.router.add_post(ROUTE, self._handle)
        return application

    async def start(self, host: str = "0.0.0.0", port: int = 8082) -> int:
        """Serve until `stop`; returns the bound port (useful with port 0)."""
        return await self._server.start(self.app(), host, port)

    async def stop(self) -> None:
        await self._server.stop()

    @property
    def port(self) -> int | None:
        """The bound port while serving (None before `start`)."""
        return self._server.port
