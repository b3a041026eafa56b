"""`kubevision operator`: flag checking, and the real command (a subprocess) against the emulated API."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest
from click.testing import CliRunner
from kmock_cluster import EXPERIMENTS, JOBS, create, job_manifest, job_status, names, wait_for

from kubevision.api.errors import KubevisionError
from kubevision.cli import cli
from kubevision.cli_operator import runtime_config

DEFAULTS: dict[str, Any] = dict(namespaces=(), all_namespaces=False, peering=None, standalone=False,
                                metrics_port=8080, health_port=8081, termination_port=8082, webhook_port=9443,
                                webhook_cert_dir=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flags_become_the_runtime_config(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("x")
    (tmp_path / "tls.key").write_text("x")
    config = runtime_config(**{**DEFAULTS, "namespaces": ("a", "b", "a"), "peering": "kubevision",
                               "metrics_port": 0, "webhook_cert_dir": tmp_path}, environ={})
    assert config.namespaces == ("a", "b") and not config.clusterwide and config.peering == "kubevision"
    assert config.metrics_port is None and config.health_port == 8081 and config.webhook_cert_dir == tmp_path
    assert runtime_config(**DEFAULTS, environ={"POD_NAMESPACE": "ops"}).namespaces == ("ops",)
    assert runtime_config(**{**DEFAULTS, "all_namespaces": True}, environ={}).clusterwide


@pytest.mark.parametrize(("overrides", "environ", "field", "words"), [
    ({"namespaces": ("a",), "all_namespaces": True}, {}, "--all-namespaces", "not both"),
    ({}, {}, "--namespace", "no namespace to watch"),
    ({"all_namespaces": True, "peering": "p", "standalone": True}, {}, "--standalone", "not both"),
    ({"all_namespaces": True, "webhook_cert_dir": Path("/nonexistent")}, {}, "--webhook-cert-dir", "tls.crt"),
    ({"all_namespaces": True, "health_port": 8080}, {}, "--health-port", "already taken by --metrics-port"),
], ids=["both-scopes", "no-scope", "peering-and-standalone", "no-certificates", "port-clash"])
def test_inconsistent_flags_are_refused_by_name(overrides: dict[str, object], environ: dict[str, str], field: str,
                                                words: str) -> None:
    with pytest.raises(KubevisionError) as caught:
        runtime_config(**{**DEFAULTS, **overrides}, environ=environ)
    assert any(p.field == field and words in p.message for p in caught.value.problems), caught.value


def test_the_command_prints_the_problem_and_exits_1() -> None:
    result = CliRunner().invoke(cli, ["operator", "--namespace", "a", "--all-namespaces"], env={"POD_NAMESPACE": ""})
    assert result.exit_code == 1
    assert "cannot start the operator" in result.output and "--all-namespaces" in result.output


def test_bad_operator_settings_in_the_environment_are_refused() -> None:
    result = CliRunner().invoke(cli, ["operator", "--all-namespaces"],
                                env={"KUBEVISION_BACKOFF_LIMIT": "-2", "KUBECONFIG": "/nonexistent"})
    assert result.exit_code == 1 and "KUBEVISION_BACKOFF_LIMIT" in result.output


def test_no_cluster_connection_is_a_clear_error(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "missing"), "KUBERNETES_SERVICE_HOST": "", "HOME": str(tmp_path)}
    result = CliRunner().invoke(cli, ["operator", "--all-namespaces"], env=env)
    assert result.exit_code == 1 and "no Kubernetes connection" in result.output


async def test_the_real_command_runs_the_operator_and_stops_on_sigterm(cluster: kmock.KubernetesEmulator,
                                                                       tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{str(cluster.url).rstrip('/')}'}}}}]\n"
        "users: [{name: me, user: {token: test-token}}]\n"
        "contexts: [{name: kmock, context: {cluster: kmock, user: me}}]\n"
    )
    metrics, health, termination = free_port(), free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": "", "OMP_NUM_THREADS": "1",
           "KUBEVISION_OUTPUT_PVC": "kubevision-outputs", "KUBEVISION_TERMINATION_URL": "http://op:8082"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubevision.cli", "operator", "--all-namespaces", "--standalone",
        f"--metrics-port={metrics}", f"--health-port={health}", f"--termination-port={termination}",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await create(cluster, JOBS, job_manifest("fridge"))
        await wait_for(lambda: job_status(cluster, "fridge").get("phase") == "Running", timeout=30,
                       what="the job Running under the real command")
        assert names(cluster, EXPERIMENTS) == ["fridge"]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{health}/healthz") as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{metrics}/metrics") as response:
                assert 'kubevision_jobs{phase="Running"} 1.0' in await response.text()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, output.decode()[-3000:]
