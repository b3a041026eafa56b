"""A minimal asynchronous Kubernetes REST client for the player (aiohttp, merge patches).

Why not the operator's gateway: the player stands for other controllers (Katib, the training
operator, the kubelet); sharing the operator's own client would let one bug hide itself on both
sides. Why not the `kubernetes` package: it is synchronous, and the player shares its event loop with
the operator under test and the emulated API server. Resources are written `group/version/plural`
(`v1/plural` for the core group), as in the operator's tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["ApiError", "KubeApi", "resource_path"]


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {text[:300]}")
        self.status = status


def resource_path(resource: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    parts = resource.split("/")
    base = f"/api/{parts[0]}" if len(parts) == 2 else f"/apis/{parts[0]}/{parts[1]}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{parts[-1]}"
    if name:
        base += f"/{name}"
    if subresource:
        base += f"/{subresource}"
    return base


class KubeApi:
    """GET/LIST/CREATE/PATCH/DELETE against one API server (a token is optional: kmock takes any)."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json"
                    ) -> dict[str, Any] | None:
        if self._session is None:  # created in the loop that uses it
            self._session = aiohttp.ClientSession(headers=self._headers)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._session.request(method, self.server + path, json=body, headers=headers) as response:
            if response.status == 404:
                return None
            if response.status >= 300:
                raise ApiError(response.status, method, path, await response.text())
            result: dict[str, Any] = await response.json(content_type=None)
            return result

    async def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", resource_path(resource, namespace, name))

    async def list(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        result = await self._call("GET", resource_path(resource, namespace))
        return list((result or {}).get("items") or [])

    async def create(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = str((body.get("metadata") or {}).get("namespace"))
        result = await self._call("POST", resource_path(resource, namespace), dict(body))
        if result is None:
            raise ApiError(404, "POST", resource_path(resource, namespace), "resource not served")
        return result

    async def patch(self, resource: str, namespace: str, name: str, body: Mapping[str, Any],
                    subresource: str | None = None) -> dict[str, Any] | None:
        """A JSON merge patch; None when the object is gone."""
        return await self._call("PATCH", resource_path(resource, namespace, name, subresource), dict(body),
                                "application/merge-patch+json")

    async def delete(self, resource: str, namespace: str, name: str) -> bool:
        return await self._call("DELETE", resource_path(resource, namespace, name)) is not None
