"""The one module that talks to the Kubernetes API (besides kopf's own watching and patching).

Why our own small client on aiohttp instead of the `kubernetes` package's: the operator is an asyncio
program and the official client blocks; kopf already depends on aiohttp, and the operator needs
only a handful of verbs on a handful of resources. Handlers call this module and nothing else does
I/O, so the rest (planners, status mapper) stays pure.

Failure policy (issue #5, bad input "API errors and conflicts"):
- 429, 500, 502, 503, 504, 409 Conflict (not on create) and connection errors/timeouts are retried
  here with exponential backoff (`Retry`), honouring Retry-After; what still fails is an `ApiError`,
  which the handlers turn into a kopf temporary error (kopf retries the handler later);
- 404 on get/delete is an answer (None / False), not an error;
- 409 AlreadyExists on create is "create-or-adopt": the object is read back and, if it lacks our
  owner reference, the reference is added. Names are deterministic, so an operator restart mid-job
  finds its children instead of creating duplicates;
- every error response is reported to `on_error(verb, code)` (the API-errors metric).

Credentials: `Connection` is built once (in-cluster service account, else kubeconfig) and also
feeds kopf's login handler, so both clients use the same identity. The in-cluster token file is
re-read on 401 (kubelet rotates bound tokens).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import secrets
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from kubevision.api.errors import KubevisionError

__all__ = [
    "CONFIGMAPS",
    "CRDS",
    "EXPERIMENTS",
    "JOBS",
    "SECRETS",
    "TRIALS",
    "ApiError",
    "Connection",
    "Gateway",
    "Resource",
    "Retry",
]

_logger = logging.getLogger(__name__)

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RETRIED_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Resource:
    """A REST resource: group ('' = core), version, plural, scope."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
            if subresource:
                base += f"/{subresource}"
        return base


JOBS = Resource("kubevision.io", "v1alpha1", "automlimagejobs")
EXPERIMENTS = Resource("kubeflow.org", "v1beta1", "experiments")
TRIALS = Resource("kubeflow.org", "v1beta1", "trials")
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)


@dataclass(frozen=True)
class Connection:
    """Where the API server is and who we are (shared by this gateway and kopf's login)."""

    server: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def bearer(self) -> str | None:
        """The current token: re-read from `token_file` each time (rotated by the kubelet)."""
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError:
                return self.token
        return self.token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        if self.insecure:
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, context: str | None = None) -> Connection:
        """In a pod: the service account; elsewhere: kubeconfig (KUBECONFIG or ~/.kube/config)."""
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (IN_CLUSTER_DIR / "token").exists() and not kubeconfig:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            host = f"[{host}]" if ":" in host else host
            return cls(server=f"https://{host}:{port}", token_file=str(IN_CLUSTER_DIR / "token"),
                       ca_file=str(IN_CLUSTER_DIR / "ca.crt"))
        try:
            from kubernetes import config as kube_config
            from kubernetes.client import Configuration

            configuration = Configuration()
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        except Exception as err:  # no cluster configuration at all: the user's environment
            raise KubevisionError(
                "no Kubernetes connection: not in a pod and no usable kubeconfig "
                f"({type(err).__name__}: {err}); set KUBECONFIG or run inside the cluster"
            ) from None
        auth = (configuration.api_key or {}).get("authorization") or ""
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else None
        return cls(
            server=str(configuration.host).rstrip("/"),
            token=token,
            ca_file=configuration.ssl_ca_cert or None,
            cert_file=configuration.cert_file or None,
            key_file=configuration.key_file or None,
            insecure=not configuration.verify_ssl,
        )


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with jitter: delay_k = min(max_delay, base_delay * 2**k) * [0.5, 1)."""

    tries: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.isdigit():
            return min(self.max_delay, float(retry_after))
        return float(min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + random.random() / 2))


class ApiError(Exception):
    """The API refused or failed a request after the retries (status 0: no answer at all)."""

    def __init__(self, verb: str, path: str, status: int, reason: str, message: str,
                 retry_after: str | None = None) -> None:
        self.verb = verb
        self.path = path
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{verb} {path}: HTTP {status} {reason}: {message}")


class Gateway:
    """Async Kubernetes REST client with retries, plus the few compound operations the operator needs."""

    def __init__(
        self,
        connection: Connection,
        *,
        retry: Retry = Retry(),
        timeout_s: float = 30.0,
        on_error: Callable[[str, int], None] | None = None,
    ) -> None:
        self.connection = connection
        self.retry = retry
        self.timeout_s = timeout_s
        self.on_error = on_error
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.connection.ssl_context(), limit=50)
            self._session = aiohttp.ClientSession(
                base_url=self.connection.server.rstrip("/") + "/",
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                trust_env=False,
            )
        return self._session

    async def request(
        self,
        verb: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
        ok_exists: bool = False,
    ) -> tuple[int, Any]:
        """One API call with retries; returns (status, JSON). 404/409-exists pass through when allowed."""
        data = None if body is None else json.dumps(body)
        last: ApiError | None = None
        for attempt in range(max(1, self.retry.tries)):
            if attempt:
                await asyncio.sleep(self.retry.delay(attempt - 1, last.retry_after if last else None))
            headers = {"Accept": "application/json", "Content-Type": content_type}
            token = self.connection.bearer()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                async with self._client().request(verb, path.lstrip("/"), data=data, params=params,
                                                  headers=headers) as response:
                    text = await response.text()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError) as err:
                self._count(verb, 0)
                last = ApiError(verb, path, 0, type(err).__name__, str(err) or "no answer")
                continue
            payload = _json(text)
            if status < 400:
                return status, payload
            reason = str(payload.get("reason") or "") if isinstance(payload, Mapping) else ""
            message = str(payload.get("message") or text[:300]) if isinstance(payload, Mapping) else text[:300]
            if status == 404 and ok_missing:
                return status, payload
            if status == 409 and ok_exists:
                return status, payload
            self._count(verb, status)
            last = ApiError(verb, path, status, reason or "Error", message, retry_after)
            if status == 409 and verb == "POST":
                break  # AlreadyExists is not transient
            if status == 401 and attempt == 0 and self.connection.token_file:
                continue  # the token may have rotated: bearer() re-reads it
            if status not in RETRIED_STATUSES:
                break
        assert last is not None
        raise last

    def _count(self, verb: str, status: int) -> None:
        if self.on_error is not None:
            self.on_error(verb, status)

    # ---- plain verbs ---------------------------------------------------------------------------

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        status, payload = await self.request("GET", resource.path(namespace, name), ok_missing=True)
        return None if status == 404 else payload

    async def list(self, resource: Resource, namespace: str | None = None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        _, payload = await self.request("GET", resource.path(namespace), params=params)
        return list(payload.get("items") or []) if isinstance(payload, Mapping) else []

    async def create(self, resource: Resource, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        _, payload = await self.request("POST", resource.path(namespace), body=body)
        return payload  # type: ignore[no-any-return]

    async def patch(self, resource: Resource, namespace: str | None, name: str, patch: Mapping[str, Any],
                    *, subresource: str | None = None) -> dict[str, Any] | None:
        """JSON merge patch; None when the object is gone."""
        status, payload = await self.request(
            "PATCH", resource.path(namespace, name, subresource), body=patch,
            content_type="application/merge-patch+json", ok_missing=True,
        )
        return None if status == 404 else payload

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        """Delete in the background (children cascade); False when it was already gone."""
        status, _ = await self.request("DELETE", resource.path(namespace, name),
                                       body={"propagationPolicy": "Background"}, ok_missing=True)
        return status != 404

    # ---- compound operations -------------------------------------------------------------------

    async def crd_present(self, name: str) -> bool:
        """Whether a CustomResourceDefinition (e.g. experiments.kubeflow.org) is installed."""
        return await self.get(CRDS, None, name) is not None

    async def create_or_adopt(self, resource: Resource, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create `body`; if it exists, adopt it (add our owner references). Returns (object, created)."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), str(meta.get("name"))
        status, payload = await self.request("POST", resource.path(namespace), body=body, ok_exists=True)
        if status != 409:
            return payload, True
        existing = await self.get(resource, namespace, name)
        if existing is None:  # deleted between the two calls: try once more
            return await self.create(resource, namespace, body), True
        ours = list(meta.get("ownerReferences") or [])
        theirs = list((existing.get("metadata") or {}).get("ownerReferences") or [])
        missing = [ref for ref in ours if ref.get("uid") not in {t.get("uid") for t in theirs}]
        if missing:
            _logger.info("adopting existing %s %s/%s", resource.plural, namespace, name)
            patched = await self.patch(resource, namespace, name,
                                       {"metadata": {"ownerReferences": theirs + missing}})
            existing = patched or existing
        return existing, False

    async def ensure_token(self, namespace: str, name: str, meta: Mapping[str, Any]) -> str:
        """The job's early-termination token: read from its Secret, created (random) only if absent."""
        token = secrets.token_urlsafe(32)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {**_child_meta(meta), "name": name, "namespace": namespace},
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }
        _, created = await self.create_or_adopt(SECRETS, body)
        if created:
            return token
        existing = await self.get_token(namespace, name)
        if existing:
            return existing
        raise ApiError("GET", SECRETS.path(namespace, name), 422, "Invalid",
                       f"Secret {namespace}/{name} exists but has no key 'token'")

    async def get_token(self, namespace: str, name: str) -> str | None:
        """The token of an existing Secret (None when the Secret or its key is absent)."""
        secret = await self.get(SECRETS, namespace, name)
        if secret is None:
            return None
        encoded = (secret.get("data") or {}).get("token")
        if encoded:
            return base64.b64decode(encoded).decode()
        plain = (secret.get("stringData") or {}).get("token")
        return str(plain) if plain else None

    async def read_config_text(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a ConfigMap (None when the ConfigMap or the key is absent)."""
        config_map = await self.get(CONFIGMAPS, namespace, name)
        value = ((config_map or {}).get("data") or {}).get(key)
        return str(value) if value is not None else None

    async def write_config_text(self, namespace: str, name: str, key: str, text: str,
                                meta: Mapping[str, Any]) -> None:
        """Set one key of a ConfigMap, creating it (with `meta`'s labels and owners) when absent."""
        patched = await self.patch(CONFIGMAPS, namespace, name, {"data": {key: text}})
        if patched is not None:
            return
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**_child_meta(meta), "name": name, "namespace": namespace},
            "data": {key: text},
        }
        status, _ = await self.request("POST", CONFIGMAPS.path(namespace), body=body, ok_exists=True)
        if status == 409:  # created concurrently: set the key on it
            await self.patch(CONFIGMAPS, namespace, name, {"data": {key: text}})


def _child_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Labels and owner references of a sibling child (the planner's), for the children we add."""
    out: dict[str, Any] = {}
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    if meta.get("ownerReferences"):
        out["ownerReferences"] = [dict(ref) for ref in meta["ownerReferences"]]
    return out


def _json(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {"message": text[:300]}
