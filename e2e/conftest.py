"""Fixtures of the e2e scenarios; the seam, declared.

Real: the kopf operator (`kubevision.operator.main.operate`, as the operator's own tests start it),
its planners, status mapper, gateway and decision service on loopback ports; the trial program
(`kubevision train`, as the PyTorchJob's command line says, in real subprocesses) on real digits;
`kubevision.trainer.predict` loading the model the operator points at.
Emulated: the Kubernetes API server (kmock's emulator with the operator tests' fidelity fixes) and
the controllers of a cluster: Katib, the training operator and the kubelet, played by
`e2e.katib_player` with Katib's rules. Nothing of kubevision is mocked.
"""

from __future__ import annotations

from typing import Any

import kmock
import pytest

from e2e.harness import kmock_cluster


@pytest.fixture()
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """kmock's emulator with API-server-like resourceVersions (kmock_cluster.VersionedEmulator)."""
    return {**kmock_options, "cls": kmock_cluster.VersionedEmulator}


@pytest.fixture()
async def cluster(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """The emulator serving our CRDs and Katib's and the training operator's."""
    kmock_cluster.declare_cluster(kmock, katib=True)
    return kmock
