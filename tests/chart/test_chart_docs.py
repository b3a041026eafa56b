"""The chart README says what the chart does: every value documented, the ArgoCD health checks real.

The Lua health checks are executed with a real Lua 5.1 interpreter (lupa; ArgoCD's gopher-lua
implements Lua 5.1) against status shapes of our CRDs, and the README must carry the exact code of
the files under charts/kubevision/files/argocd, so what users copy is what is tested.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_helm import CHART
from lupa import lua51  # type: ignore[import-untyped]

README = (CHART / "README.md").read_text()
LUA_DIR = CHART / "files" / "argocd"
# Values documented as one row (maps of Kubernetes fields), not key by key.
WHOLE_ROWS = {"resources", "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe"}


def value_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and path not in WHOLE_ROWS:
            keys += value_keys(value, path)
        else:
            keys.append(path)
    return keys


def test_every_value_has_a_row_in_the_readme_table(chart_values: dict[str, Any]) -> None:
    table = README.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")}
    keys = value_keys(chart_values)
    assert len(keys) > 40
    missing = [key for key in keys if key not in rows]
    assert not missing, f"values without a README row: {missing}"
    stale = sorted(rows - set(keys))
    assert not stale, f"README rows for values that do not exist: {stale}"


def test_readme_carries_the_tested_lua_verbatim() -> None:
    scripts = sorted(LUA_DIR.glob("*.lua"))
    assert [path.name for path in scripts] == ["automlimagejob-health.lua", "inferenceendpoint-health.lua"]
    for path in scripts:
        assert f"```lua\n{path.read_text()}```" in README, f"README's copy of {path.name} differs from the file"


def _lua_value(runtime: Any, value: Any) -> Any:
    """Python JSON -> Lua the way ArgoCD hands objects to health scripts (arrays 1-based)."""
    if isinstance(value, dict):
        return runtime.table_from({key: _lua_value(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_lua_value(runtime, item) for item in value])
    return value


def health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _lua_value(runtime, obj)
    result = runtime.execute((LUA_DIR / script).read_text())
    return str(result["status"]), str(result["message"])


def resource(kind: str, status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "kubevision.io/v1alpha1", "kind": kind,
                           "metadata": {"name": "x", "namespace": "team-a", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-29T12:00:00Z", "observedGeneration": 1}


JOB_CASES = [
    (None, 1, "Progressing", "Waiting for the kubevision operator"),
    ({"phase": "Pending", "observedGeneration": 1}, 1, "Progressing", "Pending"),
    ({"phase": "Running", "observedGeneration": 1,
      "conditions": [cond("Ready", "True", "ExperimentRunning", "4 of 10 trials done"),
                     cond("Succeeded", "Unknown", "Running")]}, 1, "Progressing", "4 of 10 trials done"),
    ({"phase": "Succeeded", "observedGeneration": 2,
      "conditions": [cond("Ready", "True", "Completed"), cond("Succeeded", "True", "MaxTrialsReached",
                                                            "best trial x-abc12345: accuracy=0.97")]},
     3, "Progressing", "Waiting for the operator to see generation 3"),
    ({"phase": "Succeeded", "observedGeneration": 3,
      "conditions": [cond("Succeeded", "True", "TimeoutReached")]}, 3, "Healthy", "TimeoutReached"),
    ({"phase": "Succeeded"}, 1, "Healthy", "Succeeded"),
    ({"phase": "Failed", "observedGeneration": 1,
      "conditions": [cond("Succeeded", "False", "ExperimentFailed", "5 trials failed")]}, 1, "Degraded",
     "5 trials failed"),
    ({"phase": "Pending", "observedGeneration": 1,
      "conditions": [cond("Ready", "False", "InvalidSpec", "spec.limits.maxTrials: must be at most 1000")]}, 1,
     "Degraded", "spec.limits.maxTrials: must be at most 1000"),
    ({"phase": "Pending", "observedGeneration": 1,
      "conditions": [cond("Ready", "False", "KatibNotInstalled", "experiments.kubeflow.org is not installed")]}, 1,
     "Progressing", "experiments.kubeflow.org is not installed"),
]


@pytest.mark.parametrize(("status", "generation", "expected", "message"), JOB_CASES)
def test_automlimagejob_health(status: dict[str, Any] | None, generation: int, expected: str, message: str) -> None:
    assert health("automlimagejob-health.lua", resource("AutoMLImageJob", status, generation)) == (expected, message)


ENDPOINT_CASES = [
    (None, "Progressing", "Waiting for the kubevision operator"),
    ({"phase": "Pending", "observedGeneration": 1, "conditions": [cond("Ready", "False", "PredictorNotReady",
                                                                       "deployment v2: 0/1 ready")]},
     "Progressing", "deployment v2: 0/1 ready"),
    ({"phase": "Ready", "observedGeneration": 1, "url": "http://digits.team-a.example.com",
      "conditions": [cond("Ready", "True", "AllDeploymentsReady")]}, "Healthy", "AllDeploymentsReady"),
    ({"phase": "Failed", "observedGeneration": 1, "conditions": [cond("Ready", "False", "ModelLoadFailed",
                                                                      "v2: FailedToLoad")]},
     "Degraded", "v2: FailedToLoad"),
    ({"phase": "Pending", "observedGeneration": 1, "conditions": [cond("Ready", "False", "InvalidSpec",
                                                                       "trafficPercent must add up to 100")]},
     "Degraded", "trafficPercent must add up to 100"),
]


@pytest.mark.parametrize(("status", "expected", "message"), ENDPOINT_CASES)
def test_inferenceendpoint_health(status: dict[str, Any] | None, expected: str, message: str) -> None:
    assert health("inferenceendpoint-health.lua", resource("InferenceEndpoint", status)) == (expected, message)


def test_health_checks_read_only_fields_our_crds_define() -> None:
    """The Lua reads status.phase/conditions/observedGeneration/message: they must exist in the CRDs, with
    the phase values the scripts compare against."""
    for crd_file, phases in (("kubevision.io_automlimagejobs.yaml", {"Succeeded", "Failed"}),
                             ("kubevision.io_inferenceendpoints.yaml", {"Ready", "Failed"})):
        crd = yaml.safe_load((CHART / "crds" / crd_file).read_text())
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        assert {"phase", "conditions", "observedGeneration", "message"} <= set(status)
        assert phases <= set(status["phase"]["enum"])
        assert {"type", "status", "reason", "message"} <= set(status["conditions"]["items"]["properties"])
