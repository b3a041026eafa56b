"""The job API: pydantic models of the AutoMLImageJob and InferenceEndpoint custom resources.

No torch and no kubernetes imports here, and nothing else of ours: every other layer imports this one.

`describe`, `load_manifest`, `load_job` and `parse_manifest` are loaded on first use: every layer
imports `kubevision.api.errors` through this package, and building the pydantic models (about half
a second) should not slow down commands that never read a manifest.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from kubevision.api.errors import KubevisionError, Problem

if TYPE_CHECKING:
    from kubevision.api.describe import describe
    from kubevision.api.loading import load_job, load_manifest, parse_manifest

__all__ = ["KubevisionError", "Problem", "describe", "load_job", "load_manifest", "parse_manifest"]

_LAZY = {
    "describe": "kubevision.api.describe",
    "load_job": "kubevision.api.loading",
    "load_manifest": "kubevision.api.loading",
    "parse_manifest": "kubevision.api.loading",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kubevision.api' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
