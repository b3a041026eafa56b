"""Metric reports (Katib stdout line + metrics.jsonl) and the early-termination client against a real HTTP server.

Seam: the conftest's `no_network` guard is narrowed here to allow the loopback interface only, so
the client talks to a real `http.server` on 127.0.0.1 while any other address still fails the test.
The Katib side is checked with Katib's own default filter regex and its RFC 3339 timestamp rule.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import TerminationEndpoint
from kubevision.trainer.reporting import MetricsReporter, TerminationClient

KATIB_DEFAULT_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Overrides the conftest guard: loopback connections pass, everything else is refused."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        if isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address)
        raise AssertionError(f"network access to {address!r} in a trainer test")

    def refuse(self: socket.socket, address: Any) -> int:
        raise AssertionError(f"network access to {address!r} in a trainer test")

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


def katib_parse(line: str) -> tuple[str, dict[str, float]]:
    """What Katib's file-metrics-collector takes from one line: timestamp token and name=value pairs."""
    first, _ = line.split(" ", 1)
    return first, {name: float(value) for name, value, *_ in KATIB_DEFAULT_FILTER.findall(line)}


def test_one_katib_line_per_report_primary_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reporter = MetricsReporter(tmp_path, "accuracy", enabled=True)
    metrics = {"log_loss": 0.31, "accuracy": 0.905, "precision_score_macro": 1.5e-05, "recall_score_macro": 1}
    line = reporter.report(3, metrics)
    out = capsys.readouterr().out
    assert out == line + "\n"
    stamp, pairs = katib_parse(line)
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)  # RFC 3339 in UTC
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert line.split(" ")[1:3] == ["epoch=3", "accuracy=0.905"]
    assert pairs == {
        "epoch": 3,
        "accuracy": 0.905,
        "log_loss": 0.31,
        "precision_score_macro": 1.5e-05,
        "recall_score_macro": 1.0,
    }


def test_non_finite_and_missing_values_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    reporter = MetricsReporter(tmp_path, "iou", enabled=True)
    with caplog.at_level(logging.WARNING, logger="kubevision.trainer.reporting"):
        line = reporter.report(1, {"iou": math.nan, "f1": math.inf, "auc": None, "loss": 0.2})  # type: ignore[dict-item]
        reporter.report(2, {"iou": math.nan})
    assert "nan" not in line and "inf" not in line and "auc" not in line and "iou" not in line
    assert katib_parse(line)[1] == {"epoch": 1, "loss": 0.2}
    assert sum("primary metric iou" in r.message for r in caplog.records) == 1  # warned once
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert record["metrics"] == {"loss": 0.2}
    capsys.readouterr()


def test_zero_dimensional_tensors_and_numpy_scalars_are_numbers(tmp_path: Path) -> None:
    reporter = MetricsReporter(tmp_path, "accuracy", enabled=False)
    metrics: dict[str, Any] = {"accuracy": torch.tensor(0.5), "loss": np.float32(0.25), "n": np.int64(3)}
    line = reporter.report(1, metrics)
    assert katib_parse(line)[1] == {"epoch": 1, "accuracy": 0.5, "loss": 0.25, "n": 3}


def test_names_katib_would_truncate_stay_out_of_the_line_but_in_the_record(tmp_path: Path) -> None:
    reporter = MetricsReporter(tmp_path, "mean_average_precision", enabled=True)
    line = reporter.report(1, {"mean_average_precision": 0.5, "mAP@0.5": 0.7})
    assert "@" not in line
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["metrics"] == {"mean_average_precision": 0.5, "mAP@0.5": 0.7}


def test_metrics_jsonl_appends_the_same_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reporter = MetricsReporter(tmp_path / "out", "accuracy", enabled=True)
    first = reporter.report(
        1, {"accuracy": 0.5, "log_loss": 1.0}, {"seconds": 2.5, "note": math.nan, "images": np.int64(40)}
    )
    second = reporter.report(2, {"accuracy": 0.75})
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0] == {
        "time": first.split(" ")[0],
        "epoch": 1,
        "metrics": {"accuracy": 0.5, "log_loss": 1.0},
        "seconds": 2.5,
        "note": None,
        "images": 40,
    }
    assert records[1]["time"] == second.split(" ")[0] and records[1]["time"] > records[0]["time"]
    with pytest.raises(ValueError, match="overwrite"):
        reporter.report(3, {"accuracy": 0.8}, {"metrics": 1})
    capsys.readouterr()


def test_a_disabled_reporter_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = MetricsReporter(tmp_path, "accuracy", enabled=False).report(1, {"accuracy": 0.5})
    assert "accuracy=0.5" in line
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "metrics.jsonl").exists()


def test_an_unwritable_metrics_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "metrics.jsonl").mkdir()
    with pytest.raises(KubevisionError, match=r"cannot write metrics to .*metrics\.jsonl: Is a directory"):
        MetricsReporter(tmp_path, "accuracy", enabled=True).report(1, {"accuracy": 0.5})
    capsys.readouterr()


class Runner:
    """A tiny early-termination endpoint: answers from a script of (status, body) and records requests."""

    def __init__(self, answers: list[tuple[int, Any]], delay_s: float = 0.0) -> None:
        self.answers = answers
        self.delay_s = delay_s
        self.requests: list[tuple[dict[str, str], Any]] = []
        runner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                runner.requests.append((dict(self.headers), body))
                status, answer = runner.answers.pop(0) if len(runner.answers) > 1 else runner.answers[0]
                time.sleep(runner.delay_s)
                payload = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/trials/decide"

    def __enter__(self) -> Runner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def client(url: str, token: str | None = "s3cret", **kwargs: Any) -> TerminationClient:
    return TerminationClient(TerminationEndpoint(url=url, token=token), "trial-7", backoff_s=0.01, **kwargs)


def test_asks_the_runner_with_the_token_and_follows_its_answer(caplog: pytest.LogCaptureFixture) -> None:
    with Runner([(200, {"stop": False}), (200, {"stop": True, "reason": "bandit: 0.41 < 0.67"})]) as runner:
        c = client(runner.url)
        assert c.should_stop(2, 0.5) is False
        with caplog.at_level(logging.INFO, logger="kubevision.trainer.reporting"):
            assert c.should_stop(4, 0.41) is True
    (headers, body), _ = runner.requests
    assert body == {"trial": "trial-7", "epoch": 2, "metric": 0.5}
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert "bandit: 0.41 < 0.67" in caplog.text


def test_no_endpoint_never_stops_and_sends_nothing(no_network: list[object]) -> None:
    assert TerminationClient(None, "t").should_stop(1, 0.1) is False
    assert no_network == []


def test_a_non_finite_metric_is_sent_as_null() -> None:
    with Runner([(200, {"stop": True})]) as runner:
        assert client(runner.url, token=None).should_stop(1, math.nan) is True
    ((headers, body),) = runner.requests
    assert body["metric"] is None and "Authorization" not in headers


def test_transient_failures_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    with Runner([(503, {"error": "busy"}), (500, "oops"), (200, {"stop": True})]) as runner:
        assert client(runner.url).should_stop(1, 0.3) is True
    assert len(runner.requests) == 3


def test_an_unreachable_runner_means_continue(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="kubevision.trainer.reporting"):
        assert client(f"http://127.0.0.1:{port}/decide").should_stop(1, 0.3) is False
    assert time.monotonic() - started < 5
    assert "did not answer for epoch 1" in caplog.text and "the trial continues" in caplog.text


def test_a_slow_runner_times_out_and_the_trial_continues(caplog: pytest.LogCaptureFixture) -> None:
    with Runner([(200, {"stop": True})], delay_s=0.5) as runner:
        with caplog.at_level(logging.WARNING, logger="kubevision.trainer.reporting"):
            assert client(runner.url, timeout_s=0.1, tries=2).should_stop(1, 0.3) is False
        assert len(runner.requests) == 2
    assert "timed out" in caplog.text


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_token_is_a_misconfiguration(status: int) -> None:
    with (
        Runner([(status, {"error": "bad token"})]) as runner,
        pytest.raises(KubevisionError, match=rf"refused this trial \(HTTP {status}\)"),
    ):
        client(runner.url).should_stop(1, 0.3)
    assert len(runner.requests) == 1  # not retried


@pytest.mark.parametrize("answer", ["not json", {"verdict": "stop"}, {"stop": "yes"}, [1, 2]])
def test_an_unusable_answer_means_continue(answer: Any, caplog: pytest.LogCaptureFixture) -> None:
    with Runner([(200, answer)]) as runner:
        assert client(runner.url).should_stop(1, 0.3) is False
    assert "unusable answer" in caplog.text


def test_a_client_error_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    with Runner([(404, {"error": "no such trial"})]) as runner:
        assert client(runner.url).should_stop(1, 0.3) is False
    assert len(runner.requests) == 1
    assert "HTTP 404" in caplog.text


def test_proxies_from_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    with Runner([(200, {"stop": True})]) as runner:
        assert client(runner.url).should_stop(1, 0.3) is True


def test_forget_from_drops_redone_epochs_and_a_torn_line(tmp_path: Path) -> None:
    reporter = MetricsReporter(tmp_path, "accuracy", enabled=True)
    for epoch in (1, 2, 3):
        reporter.report(epoch, {"accuracy": 0.1 * epoch})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "metr')  # killed mid-write
    assert reporter.forget_from(3) == 2
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
