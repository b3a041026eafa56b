"""The operator Deployment and its Services, webhook and certificates are wired to each other.

These are the joints a typo breaks without any schema noticing: the flags of `kubevision operator`,
the environment the operator reads, Service selectors and target ports, the webhook's Service, path
and CA source, the Secret cert-manager writes and the one the pod mounts.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from chart_helm import CHART, NAMESPACE, Helm, Rendered

# The documented interface of `kubevision operator` (flags that take a value, and switches).
VALUE_FLAGS = {"--namespace", "--peering", "--metrics-port", "--health-port", "--termination-port",
               "--webhook-port", "--webhook-cert-dir"}
SWITCHES = {"--all-namespaces", "--standalone"}


def flags(rendered: Rendered) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for arg in rendered.container["args"]:
        name, _, value = arg.partition("=")
        assert name in VALUE_FLAGS | SWITCHES, f"{arg} is not a flag of `kubevision operator`"
        assert (name in VALUE_FLAGS) == bool(value), arg
        out.append((name, value or None))
    return out


def port_named(rendered: Rendered, name: str) -> int:
    ports = {port["name"]: port["containerPort"] for port in rendered.container["ports"]}
    return int(ports[name])


@pytest.mark.parametrize(("scenario_name", "expected"), [
    ("default", [("--all-namespaces", None), ("--standalone", None)]),
    ("namespaced", [("--namespace", "team-a"), ("--namespace", "team-b"), ("--standalone", None)]),
    ("peering", [("--all-namespaces", None), ("--peering", "kubevision-prod")]),
    ("webhook-certmanager", [("--all-namespaces", None), ("--standalone", None), ("--webhook-port", "9443"),
                             ("--webhook-cert-dir", "/etc/kubevision/webhook-certs")]),
    ("everything-namespaced", [("--namespace", "team-a"), ("--namespace", "team-b"), ("--namespace", "team-c"),
                               ("--peering", "kubevision"), ("--webhook-port", "9443"),
                               ("--webhook-cert-dir", "/etc/kubevision/webhook-certs")]),
])
def test_operator_flags_follow_the_values(helm: Helm, scenario_name: str, expected: list[Any]) -> None:
    ports = [("--metrics-port", "8080"), ("--health-port", "8081"), ("--termination-port", "8082")]
    got = flags(helm.scenario(scenario_name))
    assert [flag for flag in got if flag not in ports] == expected
    assert [flag for flag in got if flag in ports] == ports


def test_ports_are_configurable_end_to_end(helm: Helm) -> None:
    rendered = helm.template(sets=("metrics.port=9090", "health.port=9091", "termination.port=9092"))
    assert ("--metrics-port", "9090") in flags(rendered) and ("--termination-port", "9092") in flags(rendered)
    assert rendered.container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert port_named(rendered, "health") == 9091
    assert rendered.env()["KUBEVISION_TERMINATION_URL"] == f"http://kv-kubevision-termination.{NAMESPACE}.svc:9092"


def test_pod_is_locked_down(helm: Helm, scenario: str) -> None:
    rendered = helm.scenario(scenario)
    pod = rendered.deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = rendered.container
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert port_named(rendered, "health") == 8081
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # One operator at a time, also during a rollout.
    assert rendered.deployment["spec"]["replicas"] == 1
    assert rendered.deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_operator_environment(helm: Helm) -> None:
    env = helm.scenario("default").env()
    assert env == {
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "POD_ID": {"fieldRef": {"fieldPath": "metadata.name"}},
        "KUBEVISION_TRAINER_IMAGE": "ghcr.io/kubevision/trainer:0.1.0",
        "KUBEVISION_TERMINATION_URL": f"http://kv-kubevision-termination.{NAMESPACE}.svc:8082",
    }
    env = helm.scenario("namespaced").env()
    assert env["KUBEVISION_TRAINER_IMAGE"] == (
        "registry.example.com/kubevision/trainer@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    assert env["KUBEVISION_OUTPUT_PVC"] == "kubevision-outputs"
    assert env["KUBEVISION_OUTPUT_URI"] == "s3://ml-artifacts/kubevision"
    assert env["KUBEVISION_TRIAL_SERVICE_ACCOUNT"] == "kubevision-trial"
    assert helm.scenario("everything-namespaced").env()["KOPF_LOG_FORMAT"] == "json"


def test_images_default_to_the_app_version_and_prefer_a_digest(helm: Helm) -> None:
    assert helm.scenario("default").container["image"] == "ghcr.io/kubevision/operator:0.1.0"
    assert helm.template(sets=("image.tag=0.2.0",)).container["image"] == "ghcr.io/kubevision/operator:0.2.0"
    assert helm.scenario("everything-namespaced").container["image"] == (
        "ghcr.io/kubevision/operator@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210")


def test_services_select_the_operator_pod_on_named_ports(helm: Helm, scenario: str) -> None:
    rendered = helm.scenario(scenario)
    pod_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    container_ports = {port["name"] for port in rendered.container["ports"]}
    for service in rendered.of_kind("Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports
    termination = rendered.one("Service", "kv-kubevision-termination")
    url = rendered.env()["KUBEVISION_TERMINATION_URL"]
    assert url == f"http://{termination['metadata']['name']}.{NAMESPACE}.svc:{termination['spec']['ports'][0]['port']}"


def _webhook_parts(rendered: Rendered) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    config = rendered.one("ValidatingWebhookConfiguration")
    service = rendered.one("Service", "kv-kubevision-webhook")
    volume = next(v for v in rendered.deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "webhook-certs")
    return config, service, volume


@pytest.mark.parametrize("scenario_name", ["webhook-certmanager", "webhook-secret", "everything-namespaced"])
def test_webhook_reaches_the_operator_for_both_kinds(helm: Helm, scenario_name: str) -> None:
    rendered = helm.scenario(scenario_name)
    config, service, _ = _webhook_parts(rendered)
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert port_named(rendered, "webhook") == 9443
    assert {"name": "webhook-certs", "mountPath": "/etc/kubevision/webhook-certs", "readOnly": True} in (
        rendered.container["volumeMounts"])
    by_resource = {hook["rules"][0]["resources"][0]: hook for hook in config["webhooks"]}
    assert set(by_resource) == {"automlimagejobs", "inferenceendpoints"}
    for resource, hook in by_resource.items():
        assert hook["clientConfig"]["service"] == {"name": service["metadata"]["name"], "namespace": NAMESPACE,
                                                   "port": 443, "path": f"/validate-{resource[:-1]}"}
        # Only spec writes: the operator's status patches must not depend on its own webhook.
        assert hook["rules"] == [{"apiGroups": ["kubevision.io"], "apiVersions": ["v1alpha1"],
                                  "operations": ["CREATE", "UPDATE"], "resources": [resource], "scope": "Namespaced"}]
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
        # Metadata-only writes (kopf's finalizer, deletion) skip the webhook; new and changed specs do not.
        (condition,) = hook["matchConditions"]
        assert condition["expression"] == ("request.operation == 'CREATE' || "
                                           "(!has(object.metadata.deletionTimestamp) && object.spec != oldObject.spec)")


def test_webhook_with_cert_manager_gets_its_ca_injected(helm: Helm) -> None:
    rendered = helm.scenario("webhook-certmanager")
    config, _, volume = _webhook_parts(rendered)
    certificate = rendered.one("Certificate")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}")
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert all("caBundle" not in hook["clientConfig"] for hook in config["webhooks"])
    assert "namespaceSelector" not in config["webhooks"][0]
    assert certificate["spec"]["issuerRef"] == {"name": rendered.one("Issuer")["metadata"]["name"], "kind": "Issuer",
                                                "group": "cert-manager.io"}


def test_webhook_with_an_existing_issuer_creates_no_issuer(helm: Helm) -> None:
    rendered = helm.scenario("everything-namespaced")
    assert not rendered.of_kind("Issuer")
    assert rendered.one("Certificate")["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer",
                                                                "group": "cert-manager.io"}
    config, _, _ = _webhook_parts(rendered)
    for hook in config["webhooks"]:
        assert hook["namespaceSelector"] == {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b", "team-c"]}]}


def test_webhook_with_a_user_secret_uses_its_ca_bundle(helm: Helm) -> None:
    rendered = helm.scenario("webhook-secret")
    config, _, volume = _webhook_parts(rendered)
    assert volume["secret"]["secretName"] == "kubevision-webhook-tls"
    assert "annotations" not in config["metadata"]
    for hook in config["webhooks"]:
        assert base64.b64decode(hook["clientConfig"]["caBundle"]).startswith(b"-----BEGIN CERTIFICATE-----")
        assert hook["failurePolicy"] == "Ignore"
    assert not rendered.of_kind("Certificate") and not rendered.of_kind("Issuer")


def test_service_monitor_labels_and_interval(helm: Helm) -> None:
    monitor = helm.scenario("servicemonitor").one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                             "scrapeTimeout": "10s"}]


def test_notes_describe_the_install(helm: Helm) -> None:
    default = helm.run("install", "kv", str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    assert default.returncode == 0, default.stderr
    notes = default.stdout.split("NOTES:", 1)[1]
    assert "Serves:    every namespace (ClusterRole kv-kubevision-kubevision)" in notes
    assert "standalone" in notes and "Ready=False, reason InvalidSpec" in notes
    assert "neither trainer.outputPvc nor trainer.outputUri is set" in notes
    namespaced = helm.run("install", "kv", str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                          "--set", "watch.allNamespaces=false", "--set", "watch.namespaces={a,b}",
                          "--set", "trainer.outputPvc=outputs")
    notes = namespaced.stdout.split("NOTES:", 1)[1]
    assert "Serves:    a, b (a Role in each)" in notes
    assert "neither trainer.outputPvc" not in notes


def test_rendered_flags_and_environment_are_accepted_by_the_operator(helm: Helm, scenario: str,
                                                                      tmp_path: Path) -> None:
    """The contract from the operator's side: the real `kubevision operator` command parses the rendered
    flags into the intended RuntimeConfig, and OperatorSettings reads the rendered environment."""
    from kubevision.cli_operator import operator, runtime_config
    from kubevision.operator.settings import OperatorSettings

    rendered = helm.scenario(scenario)
    (tmp_path / "tls.crt").write_text("certificate")
    (tmp_path / "tls.key").write_text("key")
    args = [f"--webhook-cert-dir={tmp_path}" if arg.startswith("--webhook-cert-dir=") else arg
            for arg in rendered.container["args"]]
    params = operator.make_context("operator", args).params
    config = runtime_config(**params, environ={"POD_NAMESPACE": NAMESPACE})
    wanted = dict(flags(rendered))
    assert config.clusterwide == ("--all-namespaces" in wanted)
    assert list(config.namespaces) == [value for name, value in flags(rendered) if name == "--namespace"]
    assert config.peering == wanted.get("--peering")
    assert config.standalone == ("--standalone" in wanted)
    assert (config.metrics_port, config.health_port, config.termination_port) == (8080, 8081, 8082)
    assert (config.webhook_cert_dir is not None) == ("--webhook-cert-dir" in wanted)

    env = {name: value for name, value in rendered.env().items() if isinstance(value, str)}
    settings = OperatorSettings.from_env(env)
    assert settings.trainer_image == env["KUBEVISION_TRAINER_IMAGE"]
    assert settings.termination_url == env["KUBEVISION_TERMINATION_URL"]
    if scenario == "namespaced":
        assert (settings.output_pvc, settings.output_uri, settings.service_account) == (
            "kubevision-outputs", "s3://ml-artifacts/kubevision", "kubevision-trial")
        assert (settings.image_pull_policy, settings.default_cpu, settings.default_memory, settings.shm_size) == (
            "Always", "8", "32Gi", "8Gi")
        assert (settings.backoff_limit, settings.fs_group) == (0, 2000)
    else:  # unset values leave the operator's defaults
        assert settings == OperatorSettings(trainer_image=settings.trainer_image,
                                            termination_url=settings.termination_url)
