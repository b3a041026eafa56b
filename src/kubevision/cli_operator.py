"""`kubevision operator`: run the Kubernetes operator (what the Helm chart's Deployment starts).

Why flags for the process and environment variables for cluster facts: the flags say how this process
runs (which namespaces, ports, peering), the KUBEVISION_* variables (see
`kubevision.operator.settings.ENV`) say what the cluster provides to trials (image, storage, endpoint);
the chart sets both. Every inconsistent combination is refused before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kubevision.api.errors import KubevisionError, Problem
from kubevision.cli_guard import guarded

if TYPE_CHECKING:
    from kubevision.operator.main import RuntimeConfig

__all__ = ["COMMANDS", "operator", "runtime_config"]

_PORT = click.IntRange(0, 65535)


@click.command("operator")
@click.option("--namespace", "namespaces", multiple=True, metavar="NS",
              help="Watch this namespace (repeatable). Default: $POD_NAMESPACE.")
@click.option("--all-namespaces", is_flag=True, help="Watch every namespace (cluster-wide RBAC needed).")
@click.option("--peering", metavar="NAME", help="Coordinate replicas through this kopf peering object (HA).")
@click.option("--standalone", is_flag=True, help="No peering: this is the only replica.")
@click.option("--metrics-port", type=_PORT, default=8080, show_default=True, help="Prometheus /metrics (0: off).")
@click.option("--health-port", type=_PORT, default=8081, show_default=True, help="Liveness /healthz (0: off).")
@click.option("--termination-port", type=_PORT, default=8082, show_default=True,
              help="Early-termination decision service for trials (0: off).")
@click.option("--webhook-port", type=_PORT, default=9443, show_default=True, help="Admission webhook (HTTPS).")
@click.option("--webhook-cert-dir", type=click.Path(path_type=Path),
              help="Folder with tls.crt and tls.key; without it there is no webhook server.")
@guarded
def operator(namespaces: tuple[str, ...], all_namespaces: bool, peering: str | None, standalone: bool,
             metrics_port: int, health_port: int, termination_port: int, webhook_port: int,
             webhook_cert_dir: Path | None) -> None:
    """Run the kopf operator: AutoMLImageJobs become Katib Experiments of PyTorchJob trials."""
    config = runtime_config(namespaces=namespaces, all_namespaces=all_namespaces, peering=peering,
                            standalone=standalone, metrics_port=metrics_port, health_port=health_port,
                            termination_port=termination_port, webhook_port=webhook_port,
                            webhook_cert_dir=webhook_cert_dir, environ=dict(os.environ))
    from kubevision.operator.gateway import Connection
    from kubevision.operator.main import run
    from kubevision.operator.settings import OperatorSettings

    settings = OperatorSettings.from_env()
    connection = Connection.from_environment()
    run(config, settings, connection)


def runtime_config(*, namespaces: tuple[str, ...], all_namespaces: bool, peering: str | None, standalone: bool,
                   metrics_port: int, health_port: int, termination_port: int, webhook_port: int,
                   webhook_cert_dir: Path | None, environ: dict[str, str]) -> RuntimeConfig:
    """The RuntimeConfig of these flags, or a KubevisionError naming every inconsistent flag."""
    from kubevision.operator.main import RuntimeConfig

    problems: list[Problem] = []
    if namespaces and all_namespaces:
        problems.append(Problem("give --namespace or --all-namespaces, not both", field="--all-namespaces"))
    if not namespaces and not all_namespaces:
        pod_namespace = environ.get("POD_NAMESPACE", "").strip()
        if pod_namespace:
            namespaces = (pod_namespace,)
        else:
            problems.append(Problem("no namespace to watch: give --namespace NS (repeatable) or --all-namespaces "
                                    "(or set POD_NAMESPACE)", field="--namespace"))
    if peering and standalone:
        problems.append(Problem("give --peering NAME or --standalone, not both", field="--standalone"))
    if webhook_cert_dir is not None:
        for name in ("tls.crt", "tls.key"):
            if not (webhook_cert_dir / name).is_file():
                problems.append(Problem(f"{webhook_cert_dir / name} not found; the folder needs tls.crt and tls.key",
                                        field="--webhook-cert-dir"))
        if webhook_port == 0:
            problems.append(Problem("the webhook needs a port (got 0)", field="--webhook-port"))
    ports = {"--metrics-port": metrics_port, "--health-port": health_port, "--termination-port": termination_port}
    if webhook_cert_dir is not None:
        ports["--webhook-port"] = webhook_port
    seen: dict[int, str] = {}
    for flag, port in ports.items():
        if port and port in seen:
            problems.append(Problem(f"port {port} is already taken by {seen[port]}", field=flag))
        seen.setdefault(port, flag)
    if problems:
        raise KubevisionError("cannot start the operator", problems)
    return RuntimeConfig(namespaces=tuple(dict.fromkeys(namespaces)), clusterwide=all_namespaces, peering=peering,
                         standalone=standalone, metrics_port=metrics_port or None, health_port=health_port or None,
                         termination_port=termination_port or None, webhook_port=webhook_port,
                         webhook_cert_dir=webhook_cert_dir)


COMMANDS = [operator]
