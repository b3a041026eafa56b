"""describe(): the plan shows the mode, models, capping, sampling and compute a job implies."""

from __future__ import annotations

from kubevision.api import describe


def lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines()[1:]:
        label, _, rest = line.strip().partition(": ")
        out[label.strip()] = rest.strip()
    return out


def test_single_trial_shows_the_default_model(job, parse_job):
    text = describe(parse_job(job("image_object_detection")))
    assert text.splitlines()[0] == "AutoMLImageJob test-job"
    rows = lines(text)
    assert rows["task"] == "image_object_detection, ranked by mean_average_precision"
    assert rows["mode"] == "single trial"
    assert rows["models"] == "fasterrcnn_resnet50_fpn (the default for image_object_detection)"
    assert rows["trials"] == "1, 1 at a time"
    assert rows["compute"] == "1 node x 1 GPU per trial"
    assert rows["data"] == "train data/train.jsonl; validation 20% of the training data held out"
    assert "early stop" not in rows


def test_manual_sweep_shows_sampling_capping_and_early_termination(job, parse_job):
    parsed = parse_job(
        job(
            "image_classification",
            limits={
                "maxTrials": 2,
                "maxConcurrentTrials": 4,
                "timeoutMinutes": 60,
                "trialTimeoutMinutes": 20,
            },
            sweep={
                "samplingAlgorithm": "grid",
                "earlyTermination": {
                    "type": "bandit",
                    "slackFactor": 0.2,
                    "evaluationInterval": 2,
                    "delayEvaluation": 6,
                },
            },
            searchSpace=[
                {"modelName": {"type": "choice", "values": ["resnet50", "seresnext"]}},
                {"modelName": {"type": "choice", "values": ["resnet50", "vitb16r224"]}},
            ],
            resources={"nodeCountPerTrial": 2, "gpusPerNode": 4},
            validationData={"uri": "s3://b/val.jsonl"},
        )
    )
    rows = lines(describe(parsed))
    assert rows["mode"] == "manual sweep, grid sampling over 2 sub-spaces"
    assert rows["models"] == "resnet50, seresnext, vitb16r224"
    assert rows["trials"] == "2, 2 at a time (maxConcurrentTrials 4 capped at maxTrials)"
    assert rows["early stop"] == "bandit, slack factor 0.2; every 2 evaluations, after a delay of 6"
    assert rows["timeout"] == "60 min for the job; 20 min per trial"
    assert rows["compute"] == "2 nodes x 4 GPUs per trial"
    assert rows["data"] == "train data/train.jsonl; validation s3://b/val.jsonl"


def test_search_space_without_sweep_says_random_is_implied(job, parse_job):
    parsed = parse_job(
        job(limits={"maxTrials": 3}, searchSpace=[{"numberOfEpochs": {"type": "choice", "values": [5, 10]}}])
    )
    rows = lines(describe(parsed))
    assert rows["mode"] == "manual sweep, random sampling (no sweep given: random) over 1 sub-space"
    assert rows["models"] == "vitb16r224"
    assert rows["early stop"] == "none (every trial runs to completion)"


def test_automode(job, parse_job):
    rows = lines(
        describe(
            parse_job(
                job(
                    "image_classification_multilabel",
                    limits={"maxTrials": 15},
                    resources={"gpusPerNode": 0},
                    trainingParameters={"numberOfEpochs": 5},
                )
            )
        )
    )
    assert rows["mode"] == "AutoMode: kubevision chooses models and hyperparameters for 15 trials"
    assert rows["models"] == "chosen by AutoMode"
    assert rows["compute"] == "1 node x CPU only per trial"
    assert rows["fixed"] == "numberOfEpochs=5"


def test_truncation_and_checkpoint_and_output(job, parse_job):
    parsed = parse_job(
        job(
            limits={"maxTrials": 4},
            sweep={
                "earlyTermination": {
                    "type": "truncation_selection",
                    "truncationPercentage": 25,
                    "excludeFinishedJobs": True,
                }
            },
            searchSpace=[{"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}],
            checkpoint={"fromJob": "last-week"},
            output={"uri": "s3://out"},
        )
    )
    rows = lines(describe(parsed))
    assert (
        rows["early stop"] == "truncation selection, lowest 25%, finished trials excluded; every evaluation"
    )
    assert rows["starts from"] == "best model of job last-week"
    assert rows["output"] == "s3://out"


def test_endpoint(endpoint, parse_endpoint):
    parsed = parse_endpoint(
        endpoint(
            {"name": "blue", "model": {"fromJob": "fridge"}, "trafficPercent": 90, "replicas": 2},
            {"name": "green", "model": {"uri": "s3://m"}, "resources": {"gpus": 1}},
        )
    )
    text = describe(parsed)
    assert text.splitlines()[0] == "InferenceEndpoint fridge"
    rows = lines(text)
    assert rows["deployment blue"] == "best model of job fridge, 90% of traffic, 2 replicas"
    assert rows["deployment green"] == "model s3://m, 10% of traffic, 1 replica, 1 GPU each"
    assert rows["auth"] == "key (requests need the endpoint key)"
