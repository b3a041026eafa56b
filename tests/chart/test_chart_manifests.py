"""Every manifest the chart renders is a valid Kubernetes object, in every value scenario.

Core kinds are validated offline against the upstream Kubernetes JSON schemas bundled by
`kubernetes-validate`, in strict mode (unknown fields rejected), for the oldest Kubernetes the chart
supports and the newest the package knows. Objects typed by other projects' CRDs (ServiceMonitor,
cert-manager Issuer/Certificate, kopf peerings) have no schema there: their apiVersion, kind and
required fields are checked by hand, against what their controllers need.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from chart_helm import CHART, NAMESPACE, SCENARIOS, Helm, Rendered
from kubernetes_validate.utils import schema_contents  # type: ignore[import-untyped]
from referencing import Registry, Resource

OLDEST_KUBERNETES = "1.29"  # Chart.yaml kubeVersion
NEWEST_KUBERNETES = ".".join(kubernetes_validate.latest_version().split(".")[:2])
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration", "CustomResourceDefinition",
                  "ClusterKopfPeering"}


def _check_service_monitor(doc: dict[str, Any], rendered: Rendered) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    spec = doc["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    selector = spec["selector"]["matchLabels"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    services = [svc for svc in rendered.of_kind("Service") if selector.items() <= svc["metadata"]["labels"].items()]
    assert [svc["metadata"]["name"] for svc in services] == [f"{rendered.deployment['metadata']['name']}-metrics"]
    port_names = {port["name"] for port in services[0]["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert re.fullmatch(r"\d+[smh]", endpoint["interval"]) and re.fullmatch(r"\d+[smh]", endpoint["scrapeTimeout"])


def _check_issuer(doc: dict[str, Any], rendered: Rendered) -> None:
    assert doc["apiVersion"] == "cert-manager.io/v1"
    assert doc["spec"] == {"selfSigned": {}}


def _check_certificate(doc: dict[str, Any], rendered: Rendered) -> None:
    assert doc["apiVersion"] == "cert-manager.io/v1"
    spec = doc["spec"]
    assert set(spec) <= {"secretName", "dnsNames", "issuerRef", "duration", "renewBefore", "privateKey"}
    assert spec["secretName"] and spec["dnsNames"] and spec["issuerRef"]["name"]
    assert spec["issuerRef"]["kind"] in {"Issuer", "ClusterIssuer"}
    assert spec["issuerRef"]["group"] == "cert-manager.io"
    fullname = rendered.deployment["metadata"]["name"]
    if spec["issuerRef"]["name"] == f"{fullname}-selfsigned":  # the chart's own issuer must be rendered
        assert spec["issuerRef"]["kind"] == "Issuer"
        rendered.one("Issuer", spec["issuerRef"]["name"])
    webhook_service = rendered.one("Service", f"{fullname}-webhook")
    assert f"{webhook_service['metadata']['name']}.{NAMESPACE}.svc" in spec["dnsNames"]
    for field in ("duration", "renewBefore"):
        assert re.fullmatch(r"\d+h", spec[field]), spec[field]
    assert spec["privateKey"]["rotationPolicy"] == "Always"


def _check_peering(doc: dict[str, Any], rendered: Rendered) -> None:
    assert doc["apiVersion"] == "kopf.dev/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata"}
    assert doc["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    peering_arg = [arg for arg in rendered.container["args"] if arg.startswith("--peering=")]
    assert peering_arg == [f"--peering={doc['metadata']['name']}"]
    crds = {crd["spec"]["names"]["kind"]: crd for crd in rendered.of_kind("CustomResourceDefinition")}
    if crds:  # peering.createCRDs: the CRD the object needs is in the same release
        crd = crds[doc["kind"]]
        assert crd["spec"]["group"] == "kopf.dev"
        assert crd["spec"]["scope"] == ("Cluster" if doc["kind"] == "ClusterKopfPeering" else "Namespaced")


HAND_CHECKED = {
    "ServiceMonitor": _check_service_monitor,
    "Issuer": _check_issuer,
    "Certificate": _check_certificate,
    "ClusterKopfPeering": _check_peering,
    "KopfPeering": _check_peering,
}


@cache
def strict_validator(kind: str, api_version: str, version: str) -> Any:
    """kubernetes_validate.validate(strict=True) without re-reading its multi-megabyte definitions file
    for every document: the same schema files and registry, built once per kind and version."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    schema = schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    definitions = schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _validate(doc: dict[str, Any], rendered: Rendered) -> None:
    kind = doc["kind"]
    if kind in HAND_CHECKED:
        HAND_CHECKED[kind](doc, rendered)
        return
    for version in (OLDEST_KUBERNETES, NEWEST_KUBERNETES):
        error = jsonschema.exceptions.best_match(strict_validator(kind, doc["apiVersion"], version).iter_errors(doc))
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path)
            name = doc["metadata"]["name"]
            pytest.fail(f"{kind}/{name} is invalid for Kubernetes {version} at {where}: {error.message}")


def test_every_rendered_manifest_is_valid(helm: Helm, scenario: str) -> None:
    rendered = helm.scenario(scenario)
    assert rendered.docs
    for doc in rendered.docs:
        name = doc["metadata"]["name"]
        assert DNS1123_LABEL.match(name.replace(".", "-")), name
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], f"{doc['kind']}/{name} is cluster-scoped"
        else:
            assert doc["metadata"]["namespace"], f"{doc['kind']}/{name} has no namespace"
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kubevision"
        assert labels["app.kubernetes.io/instance"] == "kv"
        _validate(doc, rendered)


def test_the_validator_rejects_a_broken_manifest(helm: Helm) -> None:
    """Guards the test above: a field typo in a rendered Deployment must not validate, with our cached
    validator as with kubernetes_validate's own entry point, and a good one validates with both."""
    deployment = yaml.safe_load(yaml.safe_dump(helm.scenario("default").deployment))
    kubernetes_validate.validate(deployment, NEWEST_KUBERNETES, strict=True)
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(deployment, NEWEST_KUBERNETES, strict=True)
    errors = list(strict_validator("Deployment", "apps/v1", NEWEST_KUBERNETES).iter_errors(deployment))
    assert [error.message for error in errors] == ["Additional properties are not allowed ('paht' was unexpected)"]


def test_default_install_renders_only_the_core_objects(helm: Helm) -> None:
    rendered = helm.scenario("default")
    assert rendered.kinds() == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "Service",
                                "ServiceAccount"]
    assert {svc["metadata"]["name"] for svc in rendered.of_kind("Service")} == {
        "kv-kubevision-metrics", "kv-kubevision-termination"}


@pytest.mark.parametrize(("name", "kinds"), [
    ("webhook-certmanager", {"ValidatingWebhookConfiguration", "Certificate", "Issuer"}),
    ("webhook-secret", {"ValidatingWebhookConfiguration", "Role", "RoleBinding"}),
    ("servicemonitor", {"ServiceMonitor"}),
    ("peering", {"ClusterKopfPeering", "CustomResourceDefinition"}),
    ("everything-namespaced", {"ValidatingWebhookConfiguration", "Certificate", "ServiceMonitor", "KopfPeering",
                               "Role", "RoleBinding"}),
])
def test_optional_objects_appear_with_their_values(helm: Helm, name: str, kinds: set[str]) -> None:
    default_kinds = set(helm.scenario("default").kinds())
    assert set(helm.scenario(name).kinds()) - default_kinds == kinds


def test_scenarios_cover_every_ci_values_file() -> None:
    files = {path.name for path in (CHART / "ci").glob("*.yaml")}
    assert files == {name for values in SCENARIOS.values() for name in values}


def test_chart_crds_are_valid_customresourcedefinitions(helm: Helm) -> None:
    rendered = helm.scenario("default", include_crds=True)
    crds = rendered.of_kind("CustomResourceDefinition")
    assert sorted(crd["metadata"]["name"] for crd in crds) == ["automlimagejobs.kubevision.io",
                                                                "inferenceendpoints.kubevision.io"]
    for crd in crds:
        _validate(crd, rendered)
