"""The operator's RBAC grants exactly what it needs, in cluster-wide and in namespaced mode.

The tables below are the contract between the chart and kubevision.operator (issue #5): every
(apiGroup, resource, verb) the operator uses, and nothing else. A new API call in the operator means
a new line here and in templates/_helpers.tpl; a grant nobody asked for fails these tests.
"""

from __future__ import annotations

from typing import Any

from chart_helm import NAMESPACE, Helm, Rendered

Grant = tuple[str, str, str]


def _grants(group: str, resources: list[str], verbs: list[str]) -> set[Grant]:
    return {(group, resource, verb) for resource in resources for verb in verbs}


# Objects inside every served namespace.
NAMESPACED: set[Grant] = (
    _grants("kubevision.io", ["automlimagejobs", "automlimagejobs/status", "inferenceendpoints",
                              "inferenceendpoints/status"], ["get", "list", "watch", "patch", "update"])
    # blockOwnerDeletion owner references need this under OwnerReferencesPermissionEnforcement.
    | _grants("kubevision.io", ["automlimagejobs/finalizers", "inferenceendpoints/finalizers"], ["update"])
    | _grants("kubeflow.org", ["experiments"], ["get", "list", "watch", "create", "delete", "patch"])
    | _grants("kubeflow.org", ["trials", "pytorchjobs"], ["get", "list", "watch"])
    | _grants("serving.kserve.io", ["inferenceservices"], ["get", "list", "watch", "create", "patch", "delete"])
    | _grants("", ["configmaps", "secrets"], ["get", "list", "watch", "create", "patch"])
    | _grants("", ["events"], ["create", "patch"])
)
NAMESPACED_PEERING = _grants("kopf.dev", ["kopfpeerings"], ["get", "list", "watch", "patch"])
# Cluster-scoped reads.
CRDS = _grants("apiextensions.k8s.io", ["customresourcedefinitions"], ["get", "list", "watch"])
NAMESPACES = _grants("", ["namespaces"], ["list", "watch"])
CLUSTER_PEERING = _grants("kopf.dev", ["clusterkopfpeerings"], ["get", "list", "watch", "patch"])


def grants_of(role: dict[str, Any]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule fields {rule}"
        for group in rule["apiGroups"]:
            out |= _grants(group, rule["resources"], rule["verbs"])
    assert not any("*" in part for grant in out for part in grant), "wildcards are not least privilege"
    return out


def assert_bound_to_operator(binding: dict[str, Any], role: dict[str, Any], rendered: Rendered) -> None:
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"],
                                  "name": role["metadata"]["name"]}
    service_account = rendered.one("ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": service_account["metadata"]["name"],
                                    "namespace": NAMESPACE}]
    assert rendered.deployment["spec"]["template"]["spec"]["serviceAccountName"] == service_account["metadata"]["name"]


def test_cluster_wide_mode_is_one_cluster_role(helm: Helm) -> None:
    rendered = helm.scenario("default")
    role = rendered.one("ClusterRole")
    assert grants_of(role) == NAMESPACED | CRDS | NAMESPACES
    assert_bound_to_operator(rendered.one("ClusterRoleBinding"), role, rendered)
    assert not rendered.of_kind("Role") and not rendered.of_kind("RoleBinding")


def test_cluster_wide_peering_adds_only_the_cluster_peering(helm: Helm) -> None:
    role = helm.scenario("peering").one("ClusterRole")
    assert grants_of(role) == NAMESPACED | CRDS | NAMESPACES | CLUSTER_PEERING


def test_namespaced_mode_is_a_role_per_watched_namespace(helm: Helm) -> None:
    rendered = helm.scenario("namespaced")
    roles = rendered.of_kind("Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    for role in roles:
        assert grants_of(role) == NAMESPACED
        binding = [b for b in rendered.of_kind("RoleBinding")
                   if b["metadata"]["namespace"] == role["metadata"]["namespace"]]
        assert len(binding) == 1
        assert_bound_to_operator(binding[0], role, rendered)
    # Only the CRD read stays cluster-wide: no namespaces, no secrets outside the watched namespaces.
    cluster_role = rendered.one("ClusterRole")
    assert grants_of(cluster_role) == CRDS
    assert_bound_to_operator(rendered.one("ClusterRoleBinding"), cluster_role, rendered)


def test_namespaced_peering_is_granted_per_namespace(helm: Helm) -> None:
    rendered = helm.scenario("everything-namespaced")
    roles = rendered.of_kind("Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b", "team-c"]
    for role in roles:
        assert grants_of(role) == NAMESPACED | NAMESPACED_PEERING
    assert grants_of(rendered.one("ClusterRole")) == CRDS
    peerings = rendered.of_kind("KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b", "team-c"]


def test_namespaced_mode_without_a_list_serves_the_release_namespace(helm: Helm) -> None:
    rendered = helm.template(sets=("watch.allNamespaces=false",))
    assert [role["metadata"]["namespace"] for role in rendered.of_kind("Role")] == [NAMESPACE]
    assert [arg for arg in rendered.container["args"] if arg.startswith("--namespace")] == [
        f"--namespace={NAMESPACE}"]


def test_rbac_and_service_account_can_be_brought_by_the_user(helm: Helm) -> None:
    rendered = helm.template(sets=("rbac.create=false", "serviceAccount.create=false",
                                   "serviceAccount.name=platform-kubevision"))
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} & set(rendered.kinds())
    assert rendered.deployment["spec"]["template"]["spec"]["serviceAccountName"] == "platform-kubevision"
