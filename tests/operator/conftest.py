"""Fixtures of the operator's runtime tests (helpers and the declared seam: kmock_cluster.py).

`cluster` is kmock's Kubernetes emulator with our CRDs and Katib's; `operator` is the real operator
started against it (stopped and awaited at teardown). Tests that need Katib absent, a webhook or a
restart build their own with `declare_cluster` / `OperatorHandle`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kmock_cluster import OperatorHandle, VersionedEmulator, declare_cluster


@pytest.fixture()
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """kmock's emulator with API-server-like resourceVersions (see kmock_cluster.VersionedEmulator)."""
    return {**kmock_options, "cls": VersionedEmulator}


@pytest.fixture()
async def cluster(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """The emulator with our CRDs and Katib's (Katib installed)."""
    declare_cluster(kmock, katib=True)
    return kmock


@pytest.fixture()
async def operator(cluster: kmock.KubernetesEmulator) -> AsyncIterator[OperatorHandle]:
    """A started operator against `cluster`; stopped (and awaited) at teardown."""
    handle = OperatorHandle(cluster)
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()
