"""model_dump(by_alias=True, exclude_none=True) -> parse gives the same model (CR round trip)."""

from __future__ import annotations

import json

import pytest

from kubevision.api import parse_manifest

FULL_SPEC = {
    "validationData": {"uri": "s3://bucket/val.jsonl"},
    "validationDataSize": 0.3,
    "targetColumnName": "labels",
    "primaryMetric": "mean_average_precision",
    "limits": {"maxTrials": 8, "maxConcurrentTrials": 20, "timeoutMinutes": 120, "trialTimeoutMinutes": 30},
    "trainingParameters": {
        "earlyStopping": "yes",
        "advancedSettings": '{"stream_image_files": true}',
        "tileGridSize": "(3, 2)",
        "pretrainedWeights": "/weights/coco.pth",
    },
    "sweep": {
        "samplingAlgorithm": "Random",
        "earlyTermination": {"type": "bandit", "slackAmount": 0.05, "evaluationInterval": 2},
    },
    "searchSpace": [
        {
            "modelName": {"type": "choice", "values": ["yolov5"]},
            "learningRate": {"type": "loguniform", "minValue": -9.2, "maxValue": -4.6},
            "modelSize": {"type": "choice", "values": ["small", "xlarge"]},
        },
        {
            "modelName": {"type": "choice", "values": ["fasterrcnn_resnet50_fpn"]},
            "minSize": {"type": "quniform", "minValue": 480, "maxValue": 800, "q": 32},
            "momentum": {"type": "qnormal", "mu": 0.9, "sigma": 0.02, "q": 0.01},
        },
    ],
    "resources": {
        "nodeCountPerTrial": 2,
        "gpusPerNode": 4,
        "cpu": 16,
        "memory": "64Gi",
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "image": "ghcr.io/kubevision/trainer:0.1",
    },
    "checkpoint": {"fromJob": "earlier"},
    "output": {"uri": "s3://bucket/out"},
}

STATUS = {
    "phase": "Succeeded",
    "conditions": [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Done",
            "lastTransitionTime": "2026-01-31T12:00:00Z",
        }
    ],
    "trials": {"total": 8, "succeeded": 7, "earlyTerminated": 1},
    "bestTrial": {"name": "t-3", "metric": 0.8, "parameters": {"modelName": "yolov5"}, "modelUri": "s3://m"},
    "experimentRef": [{"name": "x-0", "subSpace": 0}],
    "startTime": "2026-01-31T11:00:00Z",
    "completionTime": "2026-01-31T12:00:00Z",
}


def _cases(job, endpoint):
    full = job("image_object_detection", **FULL_SPEC)
    full["status"] = STATUS
    full["metadata"].update({"namespace": "ml", "uid": "u", "generation": 2, "labels": {"a": "b"}})
    return [
        job("image_classification"),
        job("image_classification_multilabel", limits={"maxTrials": 5}),
        job("image_instance_segmentation", trainingParameters={"modelName": "maskrcnn_resnet18_fpn"}),
        full,
        endpoint(
            {"name": "blue", "model": {"fromJob": "a"}},
            {"name": "green", "model": {"uri": "s3://m"}, "trafficPercent": 10},
        ),
    ]


@pytest.mark.parametrize("index", range(5))
def test_python_dump_parses_back_to_the_same_model(job, endpoint, index):
    original = parse_manifest(_cases(job, endpoint)[index])
    again = parse_manifest(original.model_dump(by_alias=True, exclude_none=True))
    assert again == original


@pytest.mark.parametrize("index", range(5))
def test_json_dump_parses_back_to_the_same_model(job, endpoint, index):
    # What the operator sends to and reads from the API server.
    original = parse_manifest(_cases(job, endpoint)[index])
    wire = json.loads(original.model_dump_json(by_alias=True, exclude_none=True))
    assert parse_manifest(wire) == original
    assert "spec" in wire and all("_" not in key for key in wire["spec"])


def test_dump_is_normalised(job, endpoint):
    dumped = parse_manifest(_cases(job, endpoint)[3]).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    params = dumped["spec"]["trainingParameters"]
    assert params["tileGridSize"] == "3x2"
    assert params["earlyStopping"] is True
    assert params["advancedSettings"] == {"streamImageFiles": True}
    assert dumped["spec"]["sweep"]["samplingAlgorithm"] == "random"
    assert dumped["spec"]["resources"]["cpu"] == "16"
