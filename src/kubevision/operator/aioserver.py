"""One small aiohttp server lifecycle for the operator's HTTP endpoints (metrics, decisions).

Why shared: both endpoints start inside kopf's event loop, must report the port they bound (tests
and the benchmark pass port 0), and must close cleanly when the operator stops, or aiohttp warns
about unclosed sites. One implementation keeps those three rules in one place.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["AppServer"]


class AppServer:
    """Serves one `web.Application` on host:port between `start` and `stop`."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, application: web.Application, host: str, port: int) -> int:
        """Bind and serve; returns the bound port (the real one when `port` is 0)."""
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
