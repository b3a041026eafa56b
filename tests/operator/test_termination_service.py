"""The early-termination decision service over real HTTP, with the trial program's own client.

The trial side is `kubevision.trainer.reporting.TerminationClient` (what `kubevision train` calls after
each validation); it is blocking urllib, so it runs in a thread while the service answers in the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import TerminationEndpoint
from kubevision.operator.termination_service import Registration, TerminationService, termination_path
from kubevision.sweep.termination import Policy
from kubevision.trainer.reporting import TerminationClient

BANDIT = Policy(type="bandit", evaluation_interval=1, delay_evaluation=0, slack_factor=0.1)
TOKEN = "s3cret-token"


class Store:
    """Where the service saves its state (the operator uses a ConfigMap; here a dict)."""

    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], str] = {}
        self.loads = 0

    async def save(self, namespace: str, name: str, text: str) -> None:
        self.saved[(namespace, name)] = text

    async def load(self, namespace: str, name: str) -> Registration | None:
        self.loads += 1
        if name != "fridge":
            return None
        return Registration(BANDIT, TOKEN, self.saved.get((namespace, name)))


@pytest.fixture()
async def store() -> Store:
    return Store()


@pytest.fixture()
async def service(store: Store) -> AsyncIterator[TerminationService]:
    svc = TerminationService(loader=store.load, saver=store.save)
    await svc.start("127.0.0.1", 0)
    yield svc
    await svc.stop()


def client(svc: TerminationService, trial: str, token: str | None = TOKEN, job: str = "fridge") -> TerminationClient:
    url = f"http://127.0.0.1:{svc.port}{termination_path('team-a', job)}"
    return TerminationClient(TerminationEndpoint(url=url, token=token), trial, tries=1, timeout_s=5)


async def ask(c: TerminationClient, epoch: int, value: float) -> bool:
    return await asyncio.to_thread(c.should_stop, epoch, value)


async def test_bandit_stops_the_trial_far_below_the_best(service: TerminationService, store: Store) -> None:
    assert await ask(client(service, "t-good"), 1, 0.90) is False
    assert await ask(client(service, "t-close"), 1, 0.85) is False  # 0.85 >= 0.9 / 1.1
    assert await ask(client(service, "t-bad"), 1, 0.50) is True
    assert await ask(client(service, "t-bad"), 2, 0.99) is True  # a stop is never undone
    assert service.stopped("team-a", "fridge") == {"t-bad"}
    saved = json.loads(store.saved[("team-a", "fridge")])
    assert saved["reports"]["t-good"] == [[1, 0.9]] and "t-bad" in saved["stopped"]
    assert store.loads == 1  # loaded lazily once, then served from memory


async def test_a_wrong_or_missing_token_is_refused(service: TerminationService) -> None:
    with pytest.raises(KubevisionError, match="HTTP 401"):
        await ask(client(service, "t-1", token="not-it"), 1, 0.5)
    url = f"http://127.0.0.1:{service.port}{termination_path('team-a', 'fridge')}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"trial": "t-1", "epoch": 1, "metric": 0.5}) as response:
            assert response.status == 401
            assert "bearer token" in (await response.json())["error"]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(url, data=b"{not json", headers=headers) as response:
            assert response.status == 400 and "not JSON" in (await response.json())["error"]
    assert service.service("team-a", "fridge").histories() == {}  # type: ignore[union-attr]


async def test_an_unknown_job_answers_404_and_the_trial_continues(service: TerminationService) -> None:
    assert await ask(client(service, "t-1", job="other"), 1, 0.1) is False
    url = f"http://127.0.0.1:{service.port}{termination_path('team-a', 'other')}"
    async with aiohttp.ClientSession() as session, session.post(url, json={}) as response:
        assert response.status == 404


async def test_an_unreachable_api_answers_503_and_the_trial_continues() -> None:
    async def broken(namespace: str, name: str) -> Registration | None:
        raise RuntimeError("API down")

    svc = TerminationService(loader=broken)
    await svc.start("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{svc.port}{termination_path('team-a', 'fridge')}"
        async with aiohttp.ClientSession() as session, session.post(url, json={}) as response:
            assert response.status == 503
        assert await ask(client(svc, "t-1"), 1, 0.1) is False
    finally:
        await svc.stop()


async def test_histories_survive_a_restart_of_the_service(store: Store) -> None:
    first = TerminationService(loader=store.load, saver=store.save)
    await first.start("127.0.0.1", 0)
    try:
        assert await ask(client(first, "t-good"), 1, 0.9) is False
        assert await ask(client(first, "t-bad"), 1, 0.4) is True
        first.mark_finished("team-a", "fridge", "t-good")
    finally:
        await first.stop()

    second = TerminationService(loader=store.load, saver=store.save)
    await second.start("127.0.0.1", 0)
    try:
        # A new trial is judged against the history recorded before the restart...
        assert await ask(client(second, "t-new"), 1, 0.6) is True
        # ...and a trial told to stop before the restart is still told to stop.
        assert await ask(client(second, "t-bad"), 2, 0.95) is True
        histories = second.service("team-a", "fridge").histories()  # type: ignore[union-attr]
        assert histories["t-good"] == [0.9]
    finally:
        await second.stop()


async def test_an_unreadable_saved_state_starts_afresh_instead_of_failing(store: Store) -> None:
    store.saved[("team-a", "fridge")] = "{broken"
    svc = TerminationService(loader=store.load, saver=store.save)
    await svc.start("127.0.0.1", 0)
    try:
        assert await ask(client(svc, "t-1"), 1, 0.9) is False
        assert json.loads(store.saved[("team-a", "fridge")])["reports"] == {"t-1": [[1, 0.9]]}
    finally:
        await svc.stop()
