"""InferenceEndpoint: deployments, traffic split, model source, auth, status."""

from __future__ import annotations

import pytest


def dep(name, traffic=None, **extra):
    out = {"name": name, "model": {"fromJob": "fridge"}, **extra}
    if traffic is not None:
        out["trafficPercent"] = traffic
    return out


def test_one_deployment_takes_all_traffic_by_default(endpoint, parse_endpoint):
    parsed = parse_endpoint(endpoint(dep("main")))
    assert parsed.spec.traffic == {"main": 100}
    assert parsed.spec.auth_mode == "key"
    assert parsed.spec.deployments[0].replicas == 1


def test_one_deployment_with_less_than_all_traffic_is_an_error(endpoint, problems):
    assert problems(endpoint(dep("main", 50))) == {
        "spec.deployments[0].trafficPercent": (
            "got 50; a single deployment takes all traffic: 100 (or omit it)"
        )
    }


def test_two_deployments_split_traffic(endpoint, parse_endpoint):
    parsed = parse_endpoint(endpoint(dep("blue", 90), dep("green", 10)))
    assert parsed.spec.traffic == {"blue": 90, "green": 10}


def test_two_deployments_with_one_share_get_the_remainder(endpoint, parse_endpoint):
    assert parse_endpoint(endpoint(dep("blue"), dep("green", 25))).spec.traffic == {"blue": 75, "green": 25}


def test_two_deployments_must_sum_to_100(endpoint, problems):
    assert problems(endpoint(dep("blue", 60), dep("green", 30))) == {
        "spec.deployments[1].trafficPercent": (
            "trafficPercent values sum to 90 (60 + 30); they must sum to 100"
        )
    }


def test_two_deployments_without_shares_are_an_error(endpoint, problems):
    assert problems(endpoint(dep("blue"), dep("green"))) == {
        "spec.deployments": "two deployments need trafficPercent values that sum to 100"
    }


def test_duplicate_deployment_names(endpoint, problems):
    assert problems(endpoint(dep("blue", 50), dep("blue", 50))) == {
        "spec.deployments[1].name": "duplicate deployment name 'blue'"
    }


def test_at_most_two_deployments(endpoint, problems):
    assert problems(endpoint(dep("a", 50), dep("b", 25), dep("c", 25))) == {
        "spec.deployments": "got 3 items; expected at most 2 items"
    }


def test_at_least_one_deployment(endpoint, problems):
    obj = endpoint()
    obj["spec"]["deployments"] = []
    assert problems(obj) == {"spec.deployments": "got an empty list; expected at least 1 item"}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({}, "needs exactly one of fromJob or uri; got neither"),
        ({"fromJob": "a", "uri": "s3://m"}, "needs exactly one of fromJob or uri; got both"),
    ],
)
def test_model_source_takes_exactly_one(endpoint, problems, model, message):
    assert problems(endpoint({"name": "main", "model": model})) == {"spec.deployments[0].model": message}


def test_model_uri_from_azure_explains_the_download(endpoint, problems):
    found = problems(endpoint({"name": "main", "model": {"uri": "azureml:fridge-model:3"}}))
    assert "az ml model download" in found["spec.deployments[0].model.uri"]


def test_traffic_range(endpoint, problems):
    found = problems(endpoint(dep("blue", 120), dep("green", -20)))
    assert found == {
        "spec.deployments[0].trafficPercent": "got 120; expected an integer from 0 to 100",
        "spec.deployments[1].trafficPercent": "got -20; expected an integer from 0 to 100",
    }


def test_auth_mode(endpoint, parse_endpoint, problems):
    assert parse_endpoint(endpoint(authMode="None")).spec.auth_mode == "none"
    assert problems(endpoint(authMode="token")) == {"spec.authMode": "got 'token'; expected one of key, none"}


def test_serving_resources_and_settings(endpoint, parse_endpoint):
    parsed = parse_endpoint(
        endpoint(
            dep(
                "main",
                replicas=0,
                resources={"cpu": "2", "memory": "8Gi", "gpus": 1},
                inferenceSettings={"boxScoreThreshold": 0.5, "tileGridSize": "3x2"},
            )
        )
    )
    deployment = parsed.spec.deployments[0]
    assert deployment.replicas == 0
    assert deployment.resources is not None and deployment.resources.gpus == 1
    assert deployment.inference_settings == {"boxScoreThreshold": 0.5, "tileGridSize": "3x2"}


def test_deployment_name_is_a_dns_label(endpoint, problems):
    found = problems(endpoint(dep("Blue_1")))
    assert "expected a DNS-1123 name" in found["spec.deployments[0].name"]


def test_status_parses(endpoint, parse_endpoint):
    obj = endpoint()
    obj["status"] = {
        "phase": "Ready",
        "url": "http://fridge.ml.example.com",
        "deployments": [{"name": "main", "ready": True, "trafficPercent": 100, "url": "http://main"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving"}],
        "observedGeneration": 1,
    }
    status = parse_endpoint(obj).status
    assert status is not None and status.deployments[0].ready is True
