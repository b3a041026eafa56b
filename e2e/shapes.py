"""The player's Katib objects checked against Katib's own API definitions.

Why: the operator's status mapper was written from Katib's types; if the player wrote shapes Katib
never writes (a number where Katib writes a string, a misspelt counter), the e2e scenario would
prove nothing. Each Trial and Experiment the player wrote is validated against the Katib OpenAPI v3
document (../shared/upstream-crds/katib, closed-world: unknown keys are errors) and parsed by the
kubeflow-katib-api models, which are strict about types.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["katib_errors"]

KATIB_OPENAPI = Path(__file__).resolve().parents[2] / "shared" / "upstream-crds" / "katib" / \
    "katib-openapi-v3.swagger.json"
_SCHEMAS = {"Trial": ".v1beta1.Trial", "Experiment": "v1beta1.Experiment"}


def _closed(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


@functools.cache
def _validator(kind: str) -> Any:
    document = _closed(json.loads(KATIB_OPENAPI.read_text()))
    registry: Registry[Any] = Registry().with_resource(
        "urn:katib", Resource.from_contents(document, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:katib#/components/schemas/{_SCHEMAS[kind]}"},
                                           registry=registry)


def katib_errors(obj: Mapping[str, Any]) -> list[str]:
    """Schema and model errors of a Trial or Experiment as stored on the API server ([] when it conforms)."""
    kind = str(obj.get("kind"))
    errors = sorted(f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                    for e in _validator(kind).iter_errors(obj))
    from kubeflow_katib_api import models  # type: ignore[import-untyped, unused-ignore]

    model = getattr(models, f"V1beta1{kind}")
    try:
        model.from_dict(dict(obj))
    except Exception as err:  # pydantic's ValidationError names the field and the type
        errors.append(f"kubeflow-katib-api V1beta1{kind}: {err}")
    return errors
