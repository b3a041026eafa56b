"""The decision protocol: bytes and headers in, status and JSON out; and the trainer's client against it over HTTP."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import TerminationEndpoint
from kubevision.sweep.protocol import DecisionService
from kubevision.sweep.termination import Policy
from kubevision.trainer.reporting import TerminationClient

TOKEN = "s3cret-token"
AUTH = f"Bearer {TOKEN}"
BANDIT = Policy("bandit", 1, 0, 0.2, None, None, False)


def body(trial: str, epoch: int, metric: Any) -> bytes:
    return json.dumps({"trial": trial, "epoch": epoch, "metric": metric}).encode()


def ask(service: DecisionService, trial: str, epoch: int, metric: Any) -> dict[str, Any]:
    status, answer = service.handle(body(trial, epoch, metric), AUTH)
    assert status == 200, answer
    return answer


# ---- authentication and malformed requests --------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
def test_missing_or_wrong_token_is_401(authorization: str | None) -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    status, answer = service.handle(body("t0", 1, 0.5), authorization)
    assert status == 401
    assert "token" in answer["error"]
    assert service.histories() == {}


def test_the_right_token_in_any_scheme_case_is_accepted() -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    assert service.handle(body("t0", 1, 0.5), f"bearer {TOKEN}")[0] == 200
    assert service.handle(body("t0", 2, 0.5), f"  Bearer   {TOKEN} ")[0] == 200


def test_a_service_without_token_accepts_any_caller() -> None:
    service = DecisionService(BANDIT, token=None)
    assert service.handle(body("t0", 1, 0.5), None)[0] == 200


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"epoch": 1, "metric": 0.5}).encode(), "'trial'"),
        (json.dumps({"trial": "", "epoch": 1, "metric": 0.5}).encode(), "'trial'"),
        (json.dumps({"trial": "t", "epoch": True, "metric": 0.5}).encode(), "'epoch'"),
        (json.dumps({"trial": "t", "epoch": -1, "metric": 0.5}).encode(), "'epoch'"),
        (json.dumps({"trial": "t", "epoch": 1.5, "metric": 0.5}).encode(), "'epoch'"),
        (json.dumps({"trial": "t", "epoch": 1}).encode(), "'metric' is missing"),
        (json.dumps({"trial": "t", "epoch": 1, "metric": "0.5"}).encode(), "'metric'"),
        (json.dumps({"trial": "t", "epoch": 1, "metric": False}).encode(), "'metric'"),
    ],
)
def test_malformed_body_is_400_with_a_message(raw: bytes, needle: str) -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    status, answer = service.handle(raw, AUTH)
    assert status == 400
    assert needle in answer["error"]
    assert service.histories() == {}


@pytest.mark.parametrize(
    "raw",
    [b'{"trial": "t1", "epoch": 1, "metric": NaN}', b'{"trial": "t1", "epoch": 1, "metric": 1' + b"0" * 400 + b"}"],
)
def test_non_finite_numbers_count_like_null(raw: bytes) -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    ask(service, "t0", 1, 0.5)
    status, answer = service.handle(raw, AUTH)
    assert (status, answer["stop"]) == (200, True)
    assert math.isnan(service.histories()["t1"][0])


def test_unknown_keys_are_ignored() -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    status, _ = service.handle(json.dumps({"trial": "t", "epoch": 1, "metric": 0.5, "rank": 0}).encode(), AUTH)
    assert status == 200


# ---- decisions and histories ---------------------------------------------------------------------


def test_decisions_follow_the_policy_and_a_stop_is_final() -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    first = ask(service, "t0", 1, 0.8)
    assert first["stop"] is False
    assert "bandit" in first["reason"]
    answer = ask(service, "t1", 1, 0.6)  # threshold 0.8 / 1.2 = 0.667
    assert answer["stop"] is True
    assert "bandit" in answer["reason"]
    again = ask(service, "t1", 2, 0.99)  # even a great report does not undo a stop
    assert again["stop"] is True
    assert again["reason"].startswith("already told to stop")
    assert service.stopped() == {"t1"}
    assert service.histories() == {"t0": [0.8], "t1": [0.6]}
    assert service.stop_reason("t1") == answer["reason"]
    assert service.stop_reason("t0") is None


def test_a_null_metric_counts_as_the_worst_value() -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    ask(service, "t0", 1, 0.5)
    assert ask(service, "t1", 1, None)["stop"] is True
    minimizing = DecisionService(BANDIT, token=TOKEN, maximize=False)
    ask(minimizing, "t0", 1, 0.5)
    assert ask(minimizing, "t1", 1, None)["stop"] is True
    assert math.isnan(service.histories()["t1"][0])


def test_a_repeated_epoch_replaces_it_and_drops_later_ones() -> None:
    """A trial resumed from its epoch-2 checkpoint reports epoch 3 again: it must not count twice."""
    service = DecisionService(None, token=TOKEN)
    for epoch, metric in ((1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)):
        ask(service, "t0", epoch, metric)
    ask(service, "t0", 3, 0.35)
    assert service.histories() == {"t0": [0.1, 0.2, 0.35]}
    ask(service, "t0", 4, 0.45)
    assert service.histories() == {"t0": [0.1, 0.2, 0.35, 0.45]}


def test_evaluation_frequency_epochs_are_consecutive_reports() -> None:
    """Epochs 2, 4, 6 (evaluationFrequency 2) are reports 1, 2, 3: intervals count reports, not epochs."""
    policy = Policy("bandit", 3, 0, 0.2, None, None, False)
    service = DecisionService(policy, token=TOKEN)
    for epoch in (2, 4, 6):
        ask(service, "t0", epoch, 0.9)
    assert ask(service, "t1", 2, 0.1)["stop"] is False
    assert ask(service, "t1", 4, 0.1)["stop"] is False
    assert ask(service, "t1", 6, 0.1)["stop"] is True


def test_without_a_policy_every_answer_is_continue_but_histories_are_kept() -> None:
    service = DecisionService(None, token=TOKEN)
    ask(service, "t0", 1, 0.9)
    answer = ask(service, "t1", 1, 0.0)
    assert answer == {"stop": False, "reason": "no early-termination policy"}
    assert service.histories() == {"t0": [0.9], "t1": [0.0]}


def test_mark_finished_feeds_truncation_exclude_finished_jobs() -> None:
    policy = Policy("truncation_selection", 1, 0, None, None, 25, True)
    service = DecisionService(policy, token=TOKEN)
    for trial, metric in (("f1", 0.1), ("f2", 0.05), ("a", 0.9), ("b", 0.8), ("c", 0.7)):
        ask(service, trial, 1, metric)
    service.mark_finished("f1")
    service.mark_finished("f2")
    assert ask(service, "d", 1, 0.6)["stop"] is True


def test_state_survives_a_restart_through_json() -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    ask(service, "t0", 1, 0.8)
    ask(service, "t1", 1, None)
    ask(service, "t2", 1, 0.79)
    service.mark_finished("t0")
    text = service.to_json()
    json.loads(text)  # strict JSON: null, not NaN
    assert "NaN" not in text
    restored = DecisionService.from_json(text, BANDIT, token=TOKEN)
    assert restored.stopped() == {"t1"}
    assert restored.histories().keys() == {"t0", "t1", "t2"}
    assert restored.histories()["t2"] == [0.79]
    assert restored.to_json() == text
    # the restored service keeps deciding with the old histories
    status, answer = restored.handle(body("t3", 1, 0.5), AUTH)
    assert (status, answer["stop"]) == (200, True)
    assert restored.handle(body("t3", 1, 0.5), "Bearer other")[0] == 401


@pytest.mark.parametrize("text", ["", "[]", '{"version": 99}', '{"version": 1, "reports": {"t": [[1]]}}'])
def test_unreadable_state_is_a_clear_error(text: str) -> None:
    with pytest.raises(KubevisionError, match="early-termination state is unreadable"):
        DecisionService.from_json(text, BANDIT, token=TOKEN)


def test_concurrent_reports_from_many_threads_are_all_recorded() -> None:
    service = DecisionService(BANDIT, token=TOKEN)
    errors: list[object] = []

    def trial(name: str) -> None:
        for epoch in range(1, 51):
            status, answer = service.handle(body(name, epoch, 0.5), AUTH)
            if status != 200 or answer["stop"]:
                errors.append((name, epoch, status, answer))

    threads = [threading.Thread(target=trial, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert service.histories() == {f"t{i}": [0.5] * 50 for i in range(8)}


# ---- the trainer's client over real HTTP -----------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[DecisionService, str]]:
    """The service behind http.server on 127.0.0.1, as the embedded runner hosts it."""
    service = DecisionService(BANDIT, token=TOKEN)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, answer = service.handle(self.rfile.read(length), self.headers.get("Authorization"))
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield service, f"http://127.0.0.1:{server.server_address[1]}/decide"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_trainers_termination_client_speaks_this_protocol(served: tuple[DecisionService, str]) -> None:
    service, url = served
    leader = TerminationClient(TerminationEndpoint(url=url, token=TOKEN), "trial-0", tries=1)
    laggard = TerminationClient(TerminationEndpoint(url=url, token=TOKEN), "trial-1", tries=1)
    assert leader.should_stop(1, 0.8) is False
    assert laggard.should_stop(1, math.nan) is True  # sent as null: the worst value
    assert service.histories()["trial-0"] == [0.8]
    assert service.stopped() == {"trial-1"}


def test_the_trainers_client_treats_a_wrong_token_as_an_error(served: tuple[DecisionService, str]) -> None:
    _, url = served
    client = TerminationClient(TerminationEndpoint(url=url, token="wrong"), "trial-0", tries=1)
    with pytest.raises(KubevisionError, match="HTTP 401"):
        client.should_stop(1, 0.5)
