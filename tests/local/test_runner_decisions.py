"""The early-termination endpoint as trials meet it: real HTTP on 127.0.0.1, the trainer's real client.

The client is `kubevision.trainer.reporting.TerminationClient`, exactly what a trial runs; the
service is the sweep's `DecisionService` with a real bandit policy. What is checked is the runner's
hosting: the path, the token, the answers, and the state saved after each decision.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import TerminationEndpoint
from kubevision.local.decisions import PATH, DecisionServer
from kubevision.sweep.protocol import DecisionService
from kubevision.sweep.termination import Policy
from kubevision.trainer.reporting import TerminationClient

BANDIT = Policy(type="bandit", evaluation_interval=1, delay_evaluation=0, slack_factor=0.2)


def test_a_bad_trial_is_told_to_stop_over_http_and_the_state_is_saved(tmp_path: Path) -> None:
    saved = tmp_path / "early-termination.json"
    service = DecisionService(BANDIT, token="s3cret", maximize=True)
    with DecisionServer(service, save=lambda text: saved.write_text(text)) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith(PATH)
        good = TerminationClient(TerminationEndpoint(url=server.url, token="s3cret"), "job-0")
        bad = TerminationClient(TerminationEndpoint(url=server.url, token="s3cret"), "job-1")
        assert good.should_stop(1, 0.8) is False
        assert bad.should_stop(1, 0.5) is True  # 0.5 < 0.8 / 1.2
        assert bad.should_stop(2, 0.9) is True  # once stopped, always stopped
        state = json.loads(saved.read_text())
        assert state["reports"] == {"job-0": [[1, 0.8]], "job-1": [[1, 0.5]]} and "job-1" in state["stopped"]

        restored = DecisionService.from_json(saved.read_text(), BANDIT, token="new", maximize=True)
        assert restored.stopped() == {"job-1"} and restored.histories()["job-0"] == [0.8]


def test_a_wrong_token_is_refused_and_the_trial_says_why() -> None:
    with DecisionServer(DecisionService(BANDIT, token="right")) as server:
        client = TerminationClient(TerminationEndpoint(url=server.url, token="wrong"), "job-0", tries=1)
        with pytest.raises(KubevisionError, match="HTTP 401"):
            client.should_stop(1, 0.5)


def test_other_paths_and_methods_are_not_served() -> None:
    with DecisionServer(DecisionService(None, token=None)) as server:
        base = server.url.removesuffix(PATH)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(urllib.request.Request(base + "/other", data=b"{}", method="POST"), timeout=5)
        assert err.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(server.url, timeout=5)
        assert err.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(urllib.request.Request(server.url, data=b"not json", method="POST"), timeout=5)
        assert err.value.code == 400 and "not JSON" in json.loads(err.value.read())["error"]
