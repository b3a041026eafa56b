"""CustomResourceDefinitions generated from the pydantic models.

Why generated: the pydantic models are the one definition of the API; a hand-written CRD schema
would drift from them within a week. `kubevision crds --out crds/` writes the files and CI fails when
the committed files differ from what the models produce.

Why a converter and not `model_json_schema()` as is: Kubernetes requires a *structural* OpenAPI v3.0
schema (apiextensions.k8s.io/v1): no `$ref`, a `type` on every node (except nodes marked
`x-kubernetes-preserve-unknown-fields` or `x-kubernetes-int-or-string`), no `oneOf`/`anyOf` that
introduces types or properties, `nullable` instead of a `null` type, OpenAPI 3.0 style
`exclusiveMinimum: true`, and no keywords outside JSONSchemaProps. `to_structural` rewrites pydantic's
JSON Schema (2020-12 flavoured) into that subset; `structural_problems` checks the result so a model
change that cannot be expressed fails loudly in tests instead of at `kubectl apply` time.

The CRD validates shape and ranges only; cross-field rules (grid only with choice, ViT crop sizes, ...)
stay in pydantic and reach users through the admission webhook or the InvalidSpec condition.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

__all__ = ["GROUP", "VERSION", "CrdInfo", "crd_manifest", "render_crds", "structural_problems", "to_structural"]

GROUP = "kubevision.io"
VERSION = "v1alpha1"

Schema = dict[str, Any]

# Keywords of apiextensions.k8s.io/v1 JSONSchemaProps that we emit; anything else pydantic produces
# (title, examples, discriminator, $defs, ...) is dropped.
_ALLOWED_KEYS = frozenset(
    {
        "type", "format", "description", "properties", "required", "items", "additionalProperties",
        "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
        "pattern", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "nullable",
        "multipleOf",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
    }
)
# Formats the API server knows; others are dropped rather than rejected (pydantic emits e.g. "uri").
_KNOWN_FORMATS = frozenset(
    {"int32", "int64", "float", "double", "byte", "date", "date-time", "datetime", "duration", "uuid",
     "hostname", "ipv4", "ipv6", "email", "password"}
)
_SCALARS = ("string", "integer", "number", "boolean")


class CrdInfo(BaseModel):
    """Naming and presentation of one CRD (what `kubectl get` shows)."""

    kind: str
    plural: str
    short_names: list[str]
    description: str
    printer_columns: list[dict[str, Any]]


def _resolve(node: Schema, defs: Mapping[str, Schema]) -> Schema:
    """Inline one `$ref` (keeping sibling keys such as a field's description) and repeat."""
    while "$ref" in node:
        name = node["$ref"].split("/")[-1]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**copy.deepcopy(defs[name]), **siblings}
    return node


def _describe_default(node: Schema) -> None:
    """Fold `default` into the description: defaults are applied by pydantic, not by the API server.

    Why not CRD defaulting: the operator parses every CR with the same pydantic models as the local
    runner, so one place applies defaults; server-side defaults would also make GitOps diffs noisy.
    """
    if "default" not in node:
        return
    default = node.pop("default")
    if default in (None, [], {}):
        return
    text = node.get("description", "").rstrip()
    rendered = "true" if default is True else "false" if default is False else default
    suffix = f"Default: {rendered}."
    if "default" not in text.lower():
        node["description"] = f"{text} {suffix}".strip()


def _merge_variants(variants: list[Schema]) -> Schema:
    """Collapse a union into one structural node.

    Objects merge their properties (a discriminated union becomes one object whose `type` enum lists
    every variant); integer+number is a number; integer+string is int-or-string; anything else that
    mixes types keeps any value (`x-kubernetes-preserve-unknown-fields`), and pydantic does the checking.
    """
    types = {v.get("type") for v in variants}
    if types == {"object"} and all("properties" in v for v in variants):
        merged: Schema = {"type": "object", "properties": {}}
        required: set[str] | None = None
        for variant in variants:
            for key, prop in variant["properties"].items():
                if key in merged["properties"]:
                    merged["properties"][key] = _merge_variants([merged["properties"][key], prop])
                else:
                    merged["properties"][key] = prop
            req = set(variant.get("required", []))
            required = req if required is None else required & req
        if required:
            merged["required"] = sorted(required)
        return merged
    if len(types) == 1 and next(iter(types)) in _SCALARS:
        merged = {"type": next(iter(types))}
        enums = [v.get("enum") for v in variants]
        if all(e is not None for e in enums):
            merged["enum"] = [x for e in enums for x in (e or [])]
        descriptions = [v["description"] for v in variants if "description" in v]
        if descriptions:
            merged["description"] = descriptions[0]
        return merged
    if types == {"integer", "number"}:
        return {"type": "number"}
    if types == {"integer", "string"}:
        return {"x-kubernetes-int-or-string": True}
    return {"x-kubernetes-preserve-unknown-fields": True}


def to_structural(schema: Schema, defs: Mapping[str, Schema] | None = None) -> Schema:
    """Rewrite a pydantic JSON Schema node (and its children) into a structural CRD schema node."""
    defs = schema.get("$defs", {}) if defs is None else defs
    node = _resolve(copy.deepcopy(schema), defs)
    node.pop("$defs", None)
    _describe_default(node)

    union = node.pop("anyOf", None) or node.pop("oneOf", None)
    if union is not None:
        nullable = any(v.get("type") == "null" for v in union)
        variants = [to_structural(v, defs) for v in union if v.get("type") != "null"]
        inner = variants[0] if len(variants) == 1 else _merge_variants(variants)
        outer = {k: v for k, v in node.items() if k in ("description",)}
        node = {**inner, **outer}
        if nullable:
            node["nullable"] = True
        # The merged node is already structural; only tidy it.
        return _tidy(node)

    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)  # an int-or-string node carries no type of its own
        return _tidy(node)
    if node.get("type") == "object":
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props is not None:
            node["properties"] = {k: to_structural(v, defs) for k, v in props.items()}
            node.pop("additionalProperties", None)
        elif isinstance(extra, dict) and extra:
            node["additionalProperties"] = to_structural(extra, defs)
        else:
            node.pop("additionalProperties", None)
            node["x-kubernetes-preserve-unknown-fields"] = True
    elif node.get("type") == "array":
        node["items"] = to_structural(node.get("items", {}), defs)
    elif "type" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    return _tidy(node)


def _tidy(node: Schema) -> Schema:
    """Drop keywords JSONSchemaProps lacks and convert numeric exclusive bounds to OpenAPI 3.0 form."""
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        value = node.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            node[key] = True
    if node.get("format") not in _KNOWN_FORMATS:
        node.pop("format", None)
    if "enum" in node:
        node["enum"] = [e for e in node["enum"] if e is not None]
    return {k: v for k, v in node.items() if k in _ALLOWED_KEYS}


def structural_problems(node: Schema, path: str = "") -> list[str]:
    """Every way `node` breaks the structural-schema rules we rely on (empty list = structural)."""
    problems: list[str] = []
    here = path or "<root>"
    exempt = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    if "type" not in node and not exempt:
        problems.append(f"{here}: no type")
    for key in node:
        if key not in _ALLOWED_KEYS:
            problems.append(f"{here}: keyword {key!r} is not allowed")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{here}: properties and additionalProperties together")
    if isinstance(node.get("type"), list):
        problems.append(f"{here}: type must be a single string")
    for key, child in node.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{}}")
    return problems


def _mark_conditions(status: Schema) -> None:
    """`status.conditions` is a list-map keyed by type, like every Kubernetes condition list."""
    conditions = status.get("properties", {}).get("conditions")
    if conditions and conditions.get("type") == "array":
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]


def crd_manifest(model: type[BaseModel], info: CrdInfo) -> dict[str, Any]:
    """One CRD for a resource model whose fields include `spec` and `status`."""
    full = model.model_json_schema(by_alias=True, mode="validation")
    defs = full.get("$defs", {})
    spec = to_structural(full["properties"]["spec"], defs)
    status = to_structural(full["properties"]["status"], defs)
    status.pop("nullable", None)
    # kopf records handler results under status.<handler-id>; keep them rather than let the API
    # server prune them.
    status["x-kubernetes-preserve-unknown-fields"] = True
    _mark_conditions(status)
    root: Schema = {
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "kubevision.io/v1alpha1"},
            "kind": {"type": "string", "description": info.kind},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    problems = structural_problems(root)
    if problems:
        raise ValueError(f"{info.kind} schema is not structural: " + "; ".join(problems))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kubevision", "app.kubernetes.io/part-of": "kubevision"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short_names,
                "categories": ["kubevision"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.printer_columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _infos() -> list[tuple[type[BaseModel], CrdInfo, str]]:
    from kubevision.api.models import AutoMLImageJob, InferenceEndpoint

    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    job = CrdInfo(
        kind="AutoMLImageJob",
        plural="automlimagejobs",
        short_names=["kvjob", "imagejob"],
        description="An AutoML job for images: task, labelled data, limits and an optional search space. "
        "kubevision trains and tunes models and reports the best trial.",
        printer_columns=[
            {"name": "Task", "type": "string", "jsonPath": ".spec.task"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Trials", "type": "integer", "jsonPath": ".status.trials.total",
             "description": "Trials started so far"},
            {"name": "Succeeded", "type": "integer", "jsonPath": ".status.trials.succeeded", "priority": 1},
            {"name": "Best", "type": "number", "jsonPath": ".status.bestTrial.metric",
             "description": "Primary metric of the best trial"},
            age,
        ],
    )
    endpoint = CrdInfo(
        kind="InferenceEndpoint",
        plural="inferenceendpoints",
        short_names=["kvep", "kvendpoint"],
        description="An HTTP endpoint serving one or two (canary) deployments of trained models, with "
        "predictions and explanations.",
        printer_columns=[
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            age,
        ],
    )
    return [
        (AutoMLImageJob, job, "kubevision.io_automlimagejobs.yaml"),
        (InferenceEndpoint, endpoint, "kubevision.io_inferenceendpoints.yaml"),
    ]


def render_crds() -> dict[str, str]:
    """File name -> CRD YAML text, for `kubevision crds` and the drift check in CI."""
    header = "# Generated by `kubevision crds` from kubevision.api.models. Do not edit by hand.\n"
    out: dict[str, str] = {}
    for model, info, filename in _infos():
        text = yaml.safe_dump(crd_manifest(model, info), sort_keys=False, width=100, allow_unicode=True)
        out[filename] = header + text
    return out
