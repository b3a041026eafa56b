"""The gateway against the emulated API: retries with backoff, create-or-adopt, tokens, errors counted."""

from __future__ import annotations

import base64
import socket

import kmock
import pytest
from kmock_cluster import CONFIGMAPS, NS, SECRETS, declare_cluster, path, stored

from kubevision.operator.gateway import CONFIGMAPS as CM
from kubevision.operator.gateway import ApiError, Connection, Gateway, Retry

FAST_RETRY = Retry(tries=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture()
async def api(kmock: kmock.KubernetesEmulator) -> Gateway:  # type: ignore[misc]
    declare_cluster(kmock, katib=False)
    errors: list[tuple[str, int]] = []
    gateway = Gateway(Connection(server=str(kmock.url).rstrip("/"), token="t"), retry=FAST_RETRY,
                      on_error=lambda verb, code: errors.append((verb, code)))
    gateway.errors = errors  # type: ignore[attr-defined]
    yield gateway
    await gateway.close()


def config_map(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}


async def test_server_errors_and_throttling_are_retried_until_they_pass(api: Gateway,
                                                                        kmock: kmock.KubernetesEmulator) -> None:
    kmock.objects[CONFIGMAPS, NS, "a"] = config_map("a", k="v")
    kmock[f"get {path(CONFIGMAPS, NS, 'a')}"][:2] << 503
    kmock[f"patch {path(CONFIGMAPS, NS, 'a')}"][:1] << 429
    assert (await api.get(CM, NS, "a"))["data"] == {"k": "v"}  # type: ignore[index]
    assert await api.patch(CM, NS, "a", {"data": {"k": "w"}}) is not None
    assert stored(kmock, CONFIGMAPS, "a")["data"] == {"k": "w"}  # type: ignore[index]
    assert api.errors == [("GET", 503), ("GET", 503), ("PATCH", 429)]  # type: ignore[attr-defined]


async def test_a_conflict_on_patch_is_retried_but_a_refusal_is_not(api: Gateway,
                                                                   kmock: kmock.KubernetesEmulator) -> None:
    kmock.objects[CONFIGMAPS, NS, "a"] = config_map("a")
    kmock[f"patch {path(CONFIGMAPS, NS, 'a')}"][:1] << 409
    assert await api.patch(CM, NS, "a", {"data": {"x": "1"}}) is not None
    kmock[f"patch {path(CONFIGMAPS, NS, 'a')}"] << 422
    with pytest.raises(ApiError) as caught:
        await api.patch(CM, NS, "a", {"data": {"x": "2"}})
    assert caught.value.status == 422
    assert api.errors.count(("PATCH", 422)) == 1  # type: ignore[attr-defined]


async def test_errors_that_persist_end_as_api_error_after_the_tries(api: Gateway,
                                                                    kmock: kmock.KubernetesEmulator) -> None:
    kmock[f"get {path(CONFIGMAPS, NS, 'a')}"] << 500
    with pytest.raises(ApiError) as caught:
        await api.get(CM, NS, "a")
    assert caught.value.status == 500 and len(api.errors) == FAST_RETRY.tries  # type: ignore[attr-defined]


async def test_an_unreachable_api_is_an_api_error_with_status_0() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = Gateway(Connection(server=f"http://127.0.0.1:{port}"), retry=Retry(tries=2, base_delay=0.01))
    try:
        with pytest.raises(ApiError) as caught:
            await gateway.get(CM, NS, "a")
    finally:
        await gateway.close()
    assert caught.value.status == 0


async def test_missing_objects_are_answers_not_errors(api: Gateway) -> None:
    assert await api.get(CM, NS, "nope") is None
    assert await api.delete(CM, NS, "nope") is False
    assert await api.patch(CM, NS, "nope", {"data": {}}) is None
    assert api.errors == []  # type: ignore[attr-defined]


async def test_create_or_adopt_adds_our_owner_to_an_existing_object(api: Gateway,
                                                                    kmock: kmock.KubernetesEmulator) -> None:
    owner = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "name": "j", "uid": "u-1",
             "controller": True, "blockOwnerDeletion": True}
    body = config_map("a", k="v")
    body["metadata"]["ownerReferences"] = [owner]  # type: ignore[index]
    created = await api.create_or_adopt(CM, body)
    assert created[1] is True
    again = await api.create_or_adopt(CM, body)
    assert again[1] is False and stored(kmock, CONFIGMAPS, "a")["metadata"]["ownerReferences"] == [owner]  # type: ignore[index]
    kmock.objects[CONFIGMAPS, NS, "b"] = config_map("b")  # made by someone else, e.g. an older operator
    body_b = {**body, "metadata": {**body["metadata"], "name": "b"}}  # type: ignore[dict-item]
    _, made = await api.create_or_adopt(CM, body_b)
    assert made is False and stored(kmock, CONFIGMAPS, "b")["metadata"]["ownerReferences"] == [owner]  # type: ignore[index]


async def test_a_create_answered_with_an_error_after_storing_is_adopted(api: Gateway,
                                                                        kmock: kmock.KubernetesEmulator) -> None:
    # The API stored the object but the answer was lost (here: a 503 after the store): the retry finds it.
    kmock[f"post {path(CONFIGMAPS, NS)}"][:1] << 503
    obj, created = await api.create_or_adopt(CM, config_map("a", k="v"))
    assert obj["data"] == {"k": "v"} and created is False


async def test_the_token_is_created_once_and_then_read_back(api: Gateway, kmock: kmock.KubernetesEmulator) -> None:
    meta = {"labels": {"kubevision.io/job": "j"}}
    first = await api.ensure_token(NS, "j-termination-token", meta)
    second = await api.ensure_token(NS, "j-termination-token", meta)
    assert first == second and len(first) >= 32
    secret = stored(kmock, SECRETS, "j-termination-token")
    assert base64.b64decode(secret["data"]["token"]).decode() == first  # type: ignore[index]
    assert secret["metadata"]["labels"] == {"kubevision.io/job": "j"}  # type: ignore[index]
    assert await api.get_token(NS, "j-termination-token") == first
    kmock.objects[SECRETS, NS, "broken"] = {"metadata": {"name": "broken", "namespace": NS}, "data": {}}
    with pytest.raises(ApiError, match="has no key 'token'"):
        await api.ensure_token(NS, "broken", meta)


async def test_config_text_is_written_into_a_new_or_existing_config_map(api: Gateway,
                                                                         kmock: kmock.KubernetesEmulator) -> None:
    meta = {"labels": {"kubevision.io/job": "j"}}
    assert await api.read_config_text(NS, "j-termination", "state.json") is None
    await api.write_config_text(NS, "j-termination", "state.json", '{"a": 1}', meta)
    await api.write_config_text(NS, "j-termination", "state.json", '{"a": 2}', meta)
    assert await api.read_config_text(NS, "j-termination", "state.json") == '{"a": 2}'
    assert stored(kmock, CONFIGMAPS, "j-termination")["metadata"]["labels"] == {"kubevision.io/job": "j"}  # type: ignore[index]


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    retry = Retry(tries=5, base_delay=0.2, max_delay=1.0)
    assert 0.1 <= retry.delay(0) <= 0.2
    assert 0.4 <= retry.delay(2) <= 0.8
    assert retry.delay(10) <= 1.0
    assert retry.delay(0, "3") == 1.0 and retry.delay(0, "0") == 0.0


def test_resource_paths() -> None:
    from kubevision.operator.gateway import CRDS, EXPERIMENTS, JOBS

    assert JOBS.path(NS, "j", "status") == "/apis/kubevision.io/v1alpha1/namespaces/team-a/automlimagejobs/j/status"
    assert EXPERIMENTS.path(NS) == "/apis/kubeflow.org/v1beta1/namespaces/team-a/experiments"
    assert CM.path(NS, "a") == "/api/v1/namespaces/team-a/configmaps/a"
    assert CRDS.path(NS, "experiments.kubeflow.org") == (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/experiments.kubeflow.org")
