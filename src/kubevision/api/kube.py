"""Kubernetes-shaped pieces shared by both resources: metadata, conditions, tolerations, quantities.

Why our own models rather than the kubernetes client's: `kubevision.api` must not import the
kubernetes package (the trainer and the CLI run without it), and these models must validate a
hand-written YAML with the same clear messages as the rest of the job. They follow the upstream
API types field for field, so a CR read back from the API server (uid, resourceVersion,
managedFields, ...) parses without loss.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from kubevision.api.base import KubeModel
from kubevision.api.values import show
from kubevision.api.violations import Violation, raise_violations

__all__ = [
    "Condition",
    "DnsLabel",
    "ObjectMeta",
    "OwnerReference",
    "Quantity",
    "Toleration",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
QUANTITY_PATTERN = _QUANTITY.pattern


def _check_dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"got {show(value)}; expected a DNS-1123 name: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


DnsLabel = Annotated[
    str,
    AfterValidator(_check_dns_label),
    Field(json_schema_extra={"pattern": _DNS_LABEL.pattern, "maxLength": 63}),
]
"""A Kubernetes object name usable as a label value and in child names (DNS-1123 label)."""


def _number_to_str(value: Any) -> Any:
    """`cpu: 4` in YAML is an int; Kubernetes treats it as the quantity "4"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        hint = ""
        if re.search(r"[kKmMgGtTpP][bB]$", value):
            hint = " ('GB'-style suffixes are not Kubernetes units: write 16G or 16Gi)"
        raise ValueError(
            f"got {show(value)}; expected a Kubernetes quantity such as 500m, 4, 16Gi or 16G{hint}"
        )
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_number_to_str),
    AfterValidator(_check_quantity),
    # int-or-string in the CRD, like Kubernetes' own quantities: `cpu: 4` and `memory: 16Gi` both apply.
    Field(json_schema_extra={"pattern": QUANTITY_PATTERN, "x-kubernetes-int-or-string": True}),
]
"""A Kubernetes resource quantity (`500m`, `4`, `16Gi`); numbers are accepted and kept as strings."""


class OwnerReference(KubeModel):
    """metav1.OwnerReference: set by the operator on children, read back unchanged."""

    api_version: str = Field(description="API version of the owner.")
    kind: str = Field(description="Kind of the owner.")
    name: str = Field(description="Name of the owner.")
    uid: str = Field(description="UID of the owner.")
    controller: bool | None = Field(None, description="Whether the owner is the managing controller.")
    block_owner_deletion: bool | None = Field(None, description="Foreground deletion waits for this object.")


class ObjectMeta(KubeModel):
    """metav1.ObjectMeta: `name` is required; the server-set fields are accepted so CRs round-trip."""

    name: DnsLabel = Field(description="Name of the resource (DNS-1123 label; child objects derive from it).")
    generate_name: str | None = Field(None, description="Prefix for a server-generated name.")
    namespace: DnsLabel | None = Field(None, description="Namespace (cluster mode).")
    labels: dict[str, str] | None = Field(None, description="Labels.")
    annotations: dict[str, str] | None = Field(None, description="Annotations.")
    uid: str | None = Field(None, description="Set by the API server.")
    resource_version: str | None = Field(None, description="Set by the API server.")
    generation: int | None = Field(None, description="Set by the API server; bumped on spec changes.")
    creation_timestamp: datetime | None = Field(None, description="Set by the API server.")
    deletion_timestamp: datetime | None = Field(None, description="Set by the API server on deletion.")
    deletion_grace_period_seconds: int | None = Field(None, description="Set by the API server on deletion.")
    self_link: str | None = Field(None, description="Deprecated; set by old API servers.")
    owner_references: list[OwnerReference] | None = Field(None, description="Owners of this object.")
    finalizers: list[str] | None = Field(None, description="Finalizers blocking deletion.")
    managed_fields: list[dict[str, Any]] | None = Field(None, description="Server-side apply bookkeeping.")


class Condition(KubeModel):
    """metav1.Condition, the shape GitOps tools (ArgoCD, kstatus) read health from."""

    type: str = Field(description="Condition type, e.g. Ready or Succeeded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(None, description="CamelCase reason for the last transition.")
    message: str | None = Field(None, description="Human-readable detail.")
    last_transition_time: datetime | None = Field(None, description="When the status last changed.")
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation this is based on.")

    @field_validator("status", mode="before")
    @classmethod
    def _yaml_bool(cls, value: Any) -> Any:
        """Unquoted `status: True` in YAML is a bool; Kubernetes means the string."""
        if isinstance(value, bool):
            return "True" if value else "False"
        return value


class Toleration(KubeModel):
    """core/v1 Toleration, validated like the API server does (so mistakes show before submit)."""

    key: str | None = Field(None, description="Taint key; empty with operator Exists tolerates every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal (default Equal).")
    value: str | None = Field(None, description="Taint value (operator Equal only).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty means all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="NoExecute only: how long the pod stays bound after the taint appears."
    )

    @model_validator(mode="after")
    def _kubernetes_rules(self) -> Toleration:
        problems = []
        if self.operator == "Exists" and self.value:
            problems.append(Violation(("value",), f"got {show(self.value)}; operator Exists takes no value"))
        if not self.key and self.operator != "Exists":
            problems.append(
                Violation(
                    ("operator",),
                    "a toleration without a key must use operator Exists (it matches every taint)",
                )
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            problems.append(
                Violation(
                    ("tolerationSeconds",),
                    f"applies only to effect NoExecute; got effect {show(self.effect)}",
                )
            )
        if problems:
            raise_violations(problems)
        return self
