"""Validating admission webhook: `kubectl apply` of a bad job fails at once, with the pydantic message.

Why a webhook on top of the InvalidSpec condition: without it, an invalid job is stored and only its
status says what is wrong, which a GitOps tool shows as "Degraded" long after the commit; with it,
the apply itself fails and prints every problem (field, what was found, what is allowed). The same
validation (`kubevision.api.parse_manifest`) runs in `kubevision validate`, so a job valid on a laptop
is valid in the cluster.

Paths (kopf routes by handler id): /validate-automlimagejob and /validate-inferenceendpoint; the Helm
chart's ValidatingWebhookConfiguration points there. An UPDATE that leaves `spec` unchanged is always
allowed: metadata and finalizer updates of an object stored before the webhook existed must not be
blocked (its status already says InvalidSpec).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubevision.api.errors import KubevisionError
from kubevision.api.loading import parse_manifest

__all__ = ["ENDPOINT_WEBHOOK_ID", "JOB_WEBHOOK_ID", "problems_of", "register_webhooks"]

JOB_WEBHOOK_ID = "validate-automlimagejob"
ENDPOINT_WEBHOOK_ID = "validate-inferenceendpoint"


def problems_of(body: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> str | None:
    """The validation message of a manifest under admission, or None when it may be stored."""
    if old is not None and old.get("spec") == body.get("spec"):
        return None
    manifest = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    meta = manifest.get("metadata") or {}
    try:
        parse_manifest(manifest, source=f"{body.get('kind', 'object')} {meta.get('name', '')}".strip())
    except KubevisionError as err:
        return str(err)
    return None


def register_webhooks(registry: kopf.OperatorRegistry) -> None:
    """The two validating handlers (ids = URL paths) on `registry`."""

    def check(body: kopf.Body, old: Any = None, **_: Any) -> None:
        message = problems_of(body, old if isinstance(old, Mapping) else None)
        if message is not None:
            raise kopf.AdmissionError(message, code=422)

    kopf.on.validate("kubevision.io", "v1alpha1", "automlimagejobs", id=JOB_WEBHOOK_ID,
                     operations=["CREATE", "UPDATE"], registry=registry)(check)
    kopf.on.validate("kubevision.io", "v1alpha1", "inferenceendpoints", id=ENDPOINT_WEBHOOK_ID,
                     operations=["CREATE", "UPDATE"], registry=registry)(check)
