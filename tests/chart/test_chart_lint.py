"""`helm lint --strict` passes for the default values and every CI scenario, and the values schema bites.

Strict lint turns helm's warnings into failures; the schema checks show that values.schema.json is
enforced by helm itself (a typo or a wrong type stops the install) and that the combinations the
schema cannot express stop the render with a message that says what to change.
"""

from __future__ import annotations

import json

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from chart_helm import CHART, SCENARIOS, Helm


def test_lint_strict(helm: Helm, scenario: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for name in SCENARIOS[scenario]:
        args += ["--values", str(CHART / "ci" / name)]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_values_schema_is_a_valid_draft7_schema_that_accepts_the_defaults() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))
    for path in (CHART / "ci").glob("*.yaml"):
        values = yaml.safe_load(path.read_text())
        assert set(values) <= set(schema["properties"]), path.name


@pytest.mark.parametrize(("sets", "message"), [
    (("replicaCount=abc",), "/replicaCount': got string, want integer"),
    # One replica: a standby would still receive trials' reports (README, Peering and replicas).
    (("replicaCount=2",), "/replicaCount': maximum: got 2, want 1"),
    (("replicas=1",), "additional properties 'replicas' not allowed"),
    (("webhook.failurePolicy=Sometimes",), "/webhook/failurePolicy"),
    (("watch.allNamespaces=false", "watch.namespaces[0]=Team_A"), "/watch/namespaces/0"),
    (("image.digest=abc123",), "/image/digest"),
    (("trainer.outputUri=bucket/path",), "/trainer/outputUri"),
    (("webhook.certManager.issuerRef.kind=ClusterIssuer",), "/webhook/certManager/issuerRef"),
    (("metrics.serviceMonitor.interval=often",), "/metrics/serviceMonitor/interval"),
    (("trainer.backoffLimit=-1",), "/trainer/backoffLimit"),
    (("trainer.image.pullPolicy=Sometimes",), "/trainer/image/pullPolicy"),
    (("trainer.defaultResources.memory=lots",), "/trainer/defaultResources/memory"),
])
def test_schema_rejects_bad_values(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    error = helm.template_error(sets=sets)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


@pytest.mark.parametrize(("sets", "message"), [
    (("webhook.enabled=true",), "webhook.enabled needs a serving certificate: set webhook.certManager.enabled=true"),
    (("webhook.enabled=true", "webhook.tls.secretName=my-tls"), "webhook.tls.secretName needs webhook.tls.caBundle"),
    (("webhook.enabled=true", "webhook.tls.secretName=my-tls", "webhook.certManager.enabled=true"),
     "webhook.certManager.enabled and webhook.tls.secretName are both set"),
    (("watch.namespaces[0]=team-a",), "watch.namespaces is set but watch.allNamespaces is true"),
])
def test_inconsistent_values_fail_with_a_specific_message(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    assert message in helm.template_error(sets=sets)
