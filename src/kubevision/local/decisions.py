"""The early-termination endpoint of an embedded run: `DecisionService` over HTTP on 127.0.0.1.

Why HTTP for processes on the same machine: it is the protocol the trial program speaks to the
operator in a cluster (`kubevision.sweep.protocol`), so a trial behaves the same in both backends
and the runner needs no second mechanism. The server binds to the loopback interface on a port
the OS picks (two runs never collide), answers only `POST /v1/early-termination`, and requires the
run's bearer token (a random one per runner process, written into each trial.json): another user's
process on a shared machine cannot stop our trials.

After every decision the service's state is written to `early-termination.json` (atomically), so
a runner killed with -9 and resumed still judges new trials against the histories of the finished
ones. A failed write is logged and retried at the next decision: a full disk must not make a trial
that asks "stop?" hang or crash.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubevision.sweep.protocol import DecisionService

__all__ = ["PATH", "DecisionServer"]

PATH = "/v1/early-termination"
_MAX_BODY = 64 * 1024
_logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != PATH:
            self._answer(404, {"error": f"not found; POST {PATH}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._answer(400, {"error": f"Content-Length must be 0..{_MAX_BODY}"})
            return
        body = self.rfile.read(length)
        status, answer = self.server.service.handle(body, self.headers.get("Authorization"))
        if status == 200:
            self.server.persist()
        self._answer(status, answer)

    def do_GET(self) -> None:
        self._answer(405, {"error": f"method not allowed; POST {PATH}"})

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("early-termination endpoint: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: DecisionService, save: Callable[[str], None] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.service = service
        self._save = save
        self._save_lock = threading.Lock()

    def persist(self) -> None:
        if self._save is None:
            return
        with self._save_lock:
            try:
                self._save(self.service.to_json())
            except OSError as err:
                _logger.warning("cannot save the early-termination state (%s); retrying at the next decision", err)


class DecisionServer:
    """Serves `service` on 127.0.0.1 from a background thread (`start`, `url`, `stop`)."""

    def __init__(self, service: DecisionService, *, save: Callable[[str], None] | None = None) -> None:
        self.service = service
        self._server = _Server(service, save)
        self._thread = threading.Thread(target=self._server.serve_forever, name="early-termination", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    def start(self) -> DecisionServer:
        self._thread.start()
        return self

    def persist(self) -> None:
        """Save the state now (the runner calls it after marking a trial finished)."""
        self._server.persist()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DecisionServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
