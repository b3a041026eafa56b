"""How the operator starts: the kopf operator plus its two side servers, in one event loop.

Why one process and one loop: the decision service must see every trial's reports and the handlers'
view of the jobs (registration, finished trials), and the metrics must see the handlers; sharing
memory is simpler and faster than any protocol between processes. kopf runs as `kopf.operator(...)`
(not its CLI), so tests and the benchmark start exactly what the Deployment runs, only pointed at an
emulated API and with shorter intervals.

Servers (ports from `kubevision operator` flags, where 0 turns a server off; here None is off and 0 a
free port, which tests and the benchmark use):
- metrics: http://<host>:<metrics_port>/metrics (Prometheus text);
- liveness: kopf's endpoint http://<host>:<health_port>/healthz;
- decision service: http://<host>:<termination_port>/v1/namespaces/{ns}/jobs/{name}/termination;
- admission webhook (only with a certificate folder): https://<host>:<webhook_port>/validate-automlimagejob.

Shutdown: kopf's `operator()` treats every task created in the loop after it started as its own
and cancels whatever is still pending when it stops, which in an embedded operator includes the
caller's tasks (the test awaiting the shutdown, the benchmark's driver). `operate` therefore spawns
kopf's tasks with `kopf.spawn_tasks` and hands `kopf.run_tasks` an exclusion that covers every task
not created under this operator (tracked by a context variable through the loop's task factory).

Peering: `--peering NAME` makes kopf coordinate replicas through the KopfPeering/ClusterKopfPeering
object NAME; each replica takes a random priority, so exactly one (the highest) works and the others
stand by (kopf freezes operators of equal priority; random priorities avoid that). `--standalone`
skips peering (one replica). Neither: kopf's default (peering when its CRDs exist).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import weakref
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from kubevision.operator.gateway import Connection, Gateway
from kubevision.operator.handlers import Runtime, Timing, build_registry
from kubevision.operator.metrics import OperatorMetrics
from kubevision.operator.settings import OperatorSettings
from kubevision.operator.termination_service import TerminationService

__all__ = ["FINALIZER", "RuntimeConfig", "kopf_settings", "operate", "run"]

_logger = logging.getLogger(__name__)

FINALIZER = "kubevision.io/operator"


@dataclass(frozen=True)
class RuntimeConfig:
    """How this operator process runs (flags of `kubevision operator`); cluster facts are OperatorSettings."""

    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    peering: str | None = None
    standalone: bool = False
    host: str = "0.0.0.0"
    metrics_port: int | None = 8080
    health_port: int | None = 8081
    termination_port: int | None = 8082
    webhook_port: int = 9443
    webhook_cert_dir: Path | None = None
    timing: Timing = field(default_factory=Timing)
    shutdown_grace_s: float = 5.0
    """How long handlers still running at shutdown may finish before they are cancelled."""

    def __post_init__(self) -> None:
        if self.clusterwide == bool(self.namespaces):
            raise ValueError("watch either some namespaces or all of them (clusterwide)")


_SCOPE: contextvars.ContextVar[object | None] = contextvars.ContextVar("kubevision_operator_scope", default=None)


class _ForeignTasks(Collection["asyncio.Task[Any]"]):
    """kopf's `ignored` tasks: every task not created (transitively) under our operator scope.

    Once kopf's root tasks are all done, everything counts as ignored: `operate` then gives the
    stragglers (handlers still running) `shutdown_grace_s` itself instead of kopf's fixed 5 s.
    """

    def __init__(self, ours: weakref.WeakSet[asyncio.Task[Any]]) -> None:
        self._ours = ours
        self.roots: Collection[asyncio.Task[Any]] = ()

    def __contains__(self, task: object) -> bool:
        if self.roots and all(root.done() for root in self.roots):
            return True
        return task not in self._ours

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _track_tasks(loop: asyncio.AbstractEventLoop, scope: object, ours: weakref.WeakSet[asyncio.Task[Any]]) -> Any:
    """Record tasks created while `scope` is current; returns the previous task factory (to restore)."""
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        task = previous(loop, coro, **kwargs) if previous is not None else asyncio.Task(coro, loop=loop, **kwargs)
        if _SCOPE.get() is scope and isinstance(task, asyncio.Task):
            ours.add(task)
        return task

    loop.set_task_factory(factory)
    return previous


def kopf_settings(config: RuntimeConfig) -> kopf.OperatorSettings:
    """kopf's settings for our operator: own finalizer name, quiet events, webhook server if configured."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 600
    if config.webhook_cert_dir is not None:
        settings.admission.server = kopf.WebhookServer(
            addr=config.host,
            port=config.webhook_port,
            certfile=str(config.webhook_cert_dir / "tls.crt"),
            pkeyfile=str(config.webhook_cert_dir / "tls.key"),
        )
    return settings


async def operate(
    config: RuntimeConfig,
    settings: OperatorSettings,
    connection: Connection,
    *,
    ready_flag: asyncio.Event | None = None,
    stop_flag: asyncio.Event | None = None,
    metrics: OperatorMetrics | None = None,
    runtime_hook: Callable[[Runtime], None] | None = None,
) -> None:
    """Run the operator until `stop_flag` is set (or a signal, under `run`)."""
    metrics = metrics if metrics is not None else OperatorMetrics()
    gateway = Gateway(connection, on_error=metrics.api_error)
    runtime = Runtime(settings=settings, gateway=gateway, termination=TerminationService(), metrics=metrics,
                      connection=connection, timing=config.timing)
    runtime.termination.loader = runtime.load_registration
    runtime.termination.saver = runtime.save_termination_state
    if runtime_hook is not None:
        runtime_hook(runtime)
    registry = build_registry(runtime, webhook=config.webhook_cert_dir is not None)
    started: list[Any] = []
    loop = asyncio.get_running_loop()
    stop_flag = stop_flag if stop_flag is not None else asyncio.Event()
    watcher = asyncio.create_task(_mark_stopping(runtime, stop_flag))  # outside our scope: never "hung"
    scope, ours = object(), weakref.WeakSet[asyncio.Task[Any]]()
    foreign = _ForeignTasks(ours)
    token = _SCOPE.set(scope)
    previous_factory = _track_tasks(loop, scope, ours)
    try:
        if config.metrics_port is not None:
            await metrics.start(config.host, config.metrics_port)
            started.append(metrics)
        if config.termination_port is not None:
            await runtime.termination.start(config.host, config.termination_port)
            started.append(runtime.termination)
        tasks = await kopf.spawn_tasks(
            registry=registry,
            settings=kopf_settings(config),
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            standalone=config.standalone or None,
            peering_name=config.peering,
            priority=random.randint(1, 10_000) if config.peering else None,
            liveness_endpoint=(f"http://{config.host}:{config.health_port}/healthz"
                               if config.health_port is not None else None),
            ready_flag=ready_flag,
            stop_flag=stop_flag,
        )
        foreign.roots = tasks
        await kopf.run_tasks(tasks, ignored=foreign)
    finally:
        runtime.stopping = True
        stop_flag.set()  # after a signal, kopf's own waiter on this flag is still pending
        loop.set_task_factory(previous_factory)
        _SCOPE.reset(token)
        watcher.cancel()
        await _finish_stragglers(ours, config.shutdown_grace_s)
        for server in reversed(started):
            await server.stop()
        await gateway.close()


async def _mark_stopping(runtime: Runtime, stop_flag: asyncio.Event) -> None:
    """Tell the handlers to stop acting as soon as the stop is requested (timers may outlive the watches)."""
    await stop_flag.wait()
    runtime.stopping = True


async def _finish_stragglers(ours: weakref.WeakSet[asyncio.Task[Any]], grace_s: float) -> None:
    """Give our tasks still running `grace_s` to finish, then cancel them (kopf's own "hung tasks" step)."""
    current = asyncio.current_task()
    pending = [task for task in list(ours) if not task.done() and task is not current]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=grace_s)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=grace_s)


def run(config: RuntimeConfig, settings: OperatorSettings, connection: Connection) -> None:
    """Blocking entry point of `kubevision operator` (kopf handles SIGTERM/SIGINT).

    kopf's per-object INFO lines ("Timer 'reconcile' succeeded.") would be one line per job every
    resync interval; they are kept at WARNING (failures still show), and our own INFO lines say what
    happened to each job.
    """
    kopf.configure(verbose=False)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(operate(config, settings, connection))
