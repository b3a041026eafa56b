"""The one pydantic configuration every API model shares.

Why a shared base: the YAML a user writes, the CR the API server stores and the JSON the operator
patches must all use the same Kubernetes-style camelCase names, reject unknown keys (a misspelt
`learningrate` silently ignored would train with the default and nobody would notice), and still
let Python code use snake_case attributes. Putting that in one place keeps every model consistent.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["API_GROUP", "API_VERSION", "GROUP_VERSION", "KubeModel"]

API_GROUP = "kubevision.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class KubeModel(BaseModel):
    """Base of every API model: camelCase aliases, snake_case attributes, unknown keys are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )
