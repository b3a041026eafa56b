"""Checks of planned manifests against the upstream schemas, Katib's own rules and the real trial CLI.

Why here and not in the package: these are the acceptance checks of issue #5 ("every generated
Experiment and PyTorchJob validated against ../shared/upstream-crds and the kubeflow-katib-api
models"); they read the shared reference copies, which the operator image does not ship.

- `katib_schema_errors`: the Experiment against the Katib OpenAPI v3 document (every $ref resolved),
  made closed-world: an object schema listing `properties` rejects keys it does not list (the
  generated schema is open, so a misspelt `parallelTrialCounts` would otherwise pass).
- `pytorchjob_schema_errors`: the trialSpec against the PyTorchJob CRD's openAPIV3Schema, closed the
  same way (a structural schema prunes unknown fields silently on the server).
- `katib_model_roundtrip`: `kubeflow_katib_api.models.V1beta1Experiment.from_dict(m).to_dict() == m`
  (strict types; nothing dropped).
- `katib_webhook_errors`: the rules Katib's validating webhook applies (reference kubeflow-kserve 1.1),
  written from its validator: name, counts, objective, algorithm, feasible spaces, trial parameters.
- `trial_commands`: the Master command after Katib's substitution of sample values, parsed by the real
  `kubevision train` click command and `kubevision.trainer.entry.config_from_cli` (tests only: the
  operator itself never imports the trainer).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SHARED = Path(__file__).resolve().parents[3] / "shared" / "upstream-crds"
KATIB_OPENAPI = SHARED / "katib" / "katib-openapi-v3.swagger.json"
PYTORCHJOB_CRD = SHARED / "training-operator-v1" / "kubeflow.org_pytorchjobs.yaml"
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

KATIB_ALGORITHMS = {"random", "tpe", "grid", "multivariate-tpe", "bayesianoptimization", "cmaes", "sobol",
                    "hyperband", "pbt"}
PARAMETER_TYPES = {"int", "double", "categorical", "discrete"}
DISTRIBUTIONS = {"uniform", "logUniform", "normal", "logNormal"}
META_REFERENCES = re.compile(r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[.+\]|Annotations\[.+\])\}$")
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")
KATIB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _close(node: Any) -> Any:
    """Add additionalProperties: false to every object schema that lists properties and says nothing else."""
    if isinstance(node, dict):
        out = {k: _close(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


@functools.cache
def _katib_validator() -> jsonschema.Draft202012Validator:
    doc = json.loads(KATIB_OPENAPI.read_text())
    closed = _close(doc)
    registry: Registry[Any] = Registry().with_resource(
        "urn:katib", Resource.from_contents(closed, default_specification=DRAFT202012)
    )
    schema = {"$ref": "urn:katib#/components/schemas/v1beta1.Experiment"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _pytorchjob_validator() -> jsonschema.Draft202012Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1 MB: the C loader reads it 10x faster
    crd = yaml.load(PYTORCHJOB_CRD.read_text(), Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _close(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, instance: Any) -> list[str]:
    return sorted(
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    )


def katib_schema_errors(experiment: Mapping[str, Any]) -> list[str]:
    """Schema errors of an Experiment against Katib's OpenAPI definitions (closed-world)."""
    return _errors(_katib_validator(), experiment)


def pytorchjob_schema_errors(pytorchjob: Mapping[str, Any]) -> list[str]:
    """Schema errors of a PyTorchJob against the training operator's CRD (closed-world)."""
    return _errors(_pytorchjob_validator(), pytorchjob)


def katib_model_roundtrip(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The Experiment through the kubeflow-katib-api pydantic models and back (raises on bad types)."""
    from kubeflow_katib_api.models import V1beta1Experiment  # type: ignore[import-untyped]

    model = V1beta1Experiment.from_dict(copy.deepcopy(dict(experiment)))
    assert model is not None
    out: dict[str, Any] = model.to_dict()
    return out


def _float(text: str) -> float:
    return float(text)


def katib_webhook_errors(experiment: Mapping[str, Any]) -> list[str]:
    """Katib's validating-webhook rules for an Experiment (reference kubeflow-kserve 1.1)."""
    errors: list[str] = []
    meta = experiment.get("metadata", {})
    name = meta.get("name", "")
    if not KATIB_NAME.match(name) or len(name) > 40:
        errors.append(f"metadata.name {name!r}: must match {KATIB_NAME.pattern} and have <= 40 characters")
    if experiment.get("apiVersion") != "kubeflow.org/v1beta1" or experiment.get("kind") != "Experiment":
        errors.append("apiVersion/kind must be kubeflow.org/v1beta1 Experiment")
    spec = experiment["spec"]
    max_trials = spec.get("maxTrialCount")
    parallel = spec.get("parallelTrialCount")
    failed = spec.get("maxFailedTrialCount")
    if not isinstance(max_trials, int) or max_trials <= 0:
        errors.append("maxTrialCount must be > 0")
    if not isinstance(parallel, int) or parallel <= 0 or (isinstance(max_trials, int) and parallel > max_trials):
        errors.append("parallelTrialCount must be > 0 and <= maxTrialCount")
    if not isinstance(failed, int) or failed < 0 or (isinstance(max_trials, int) and failed > max_trials):
        errors.append("maxFailedTrialCount must be >= 0 and <= maxTrialCount")
    objective = spec.get("objective", {})
    if objective.get("type") not in ("minimize", "maximize"):
        errors.append("objective.type must be minimize or maximize")
    if not objective.get("objectiveMetricName"):
        errors.append("objective.objectiveMetricName is required")
    if objective.get("objectiveMetricName") in objective.get("additionalMetricNames", []):
        errors.append("additionalMetricNames must not contain the objective metric")
    for strategy in objective.get("metricStrategies", []):
        if strategy.get("value") not in ("min", "max", "latest"):
            errors.append(f"metricStrategies {strategy}: value must be min, max or latest")
    algorithm = spec.get("algorithm", {}).get("algorithmName")
    if algorithm not in KATIB_ALGORITHMS:
        errors.append(f"algorithm {algorithm!r} is not in katib-config")
    params = spec.get("parameters") or []
    if not params:
        errors.append("spec.parameters must be specified")
    names = [p.get("name") for p in params]
    if len(set(names)) != len(names):
        errors.append(f"duplicate parameter names {names}")
    grid_points = 1
    for p in params:
        errors.extend(_parameter_errors(p, algorithm))
        values = p.get("feasibleSpace", {}).get("list")
        grid_points *= len(values) if values else 0
    if algorithm == "grid" and isinstance(max_trials, int) and grid_points and max_trials > grid_points:
        errors.append(f"grid: maxTrialCount {max_trials} > {grid_points} grid points")
    errors.extend(_template_errors(spec.get("trialTemplate", {}), set(names)))
    return errors


def _parameter_errors(p: Mapping[str, Any], algorithm: str | None) -> list[str]:
    errors: list[str] = []
    name = p.get("name")
    ptype = p.get("parameterType")
    space = p.get("feasibleSpace", {})
    if ptype not in PARAMETER_TYPES:
        errors.append(f"{name}: parameterType {ptype!r}")
        return errors
    if ptype in ("int", "double"):
        if "list" in space or "min" not in space or "max" not in space:
            errors.append(f"{name}: {ptype} needs min and max and no list")
            return errors
        parse = int if ptype == "int" else _float
        try:
            low, high = parse(space["min"]), parse(space["max"])
            if "step" in space and parse(space["step"]) <= 0:
                errors.append(f"{name}: step must be > 0")
        except ValueError as err:
            errors.append(f"{name}: {err}")
            return errors
        if low > high:
            errors.append(f"{name}: min > max")
        dist = space.get("distribution")
        if dist is not None and dist not in DISTRIBUTIONS:
            errors.append(f"{name}: distribution {dist!r}")
        if dist in ("logUniform", "logNormal") and low <= 0:
            errors.append(f"{name}: {dist} needs min > 0")
        if algorithm == "grid":
            if ptype == "double" and "step" not in space:
                errors.append(f"{name}: grid needs a step for double parameters")
            if dist in ("normal", "logNormal"):
                errors.append(f"{name}: Optuna's grid rejects {dist}")
    else:
        if any(k in space for k in ("min", "max", "step")) or not space.get("list"):
            errors.append(f"{name}: {ptype} needs a non-empty list and no min/max/step")
            return errors
        values = space["list"]
        if len(set(values)) != len(values) or not all(isinstance(v, str) for v in values):
            errors.append(f"{name}: list values must be unique strings")
        if ptype == "discrete":
            for v in values:
                try:
                    float(v)
                except ValueError:
                    errors.append(f"{name}: discrete value {v!r} is not a number")
    return errors


def _template_errors(template: Mapping[str, Any], parameter_names: set[str]) -> list[str]:
    errors: list[str] = []
    if not template.get("primaryContainerName"):
        errors.append("trialTemplate.primaryContainerName is required")
    if ("trialSpec" in template) == ("configMap" in template):
        errors.append("trialTemplate needs exactly one of trialSpec and configMap")
        return errors
    trial_spec = template["trialSpec"]
    if not trial_spec.get("apiVersion") or not trial_spec.get("kind"):
        errors.append("trialSpec needs apiVersion and kind")
    meta = trial_spec.get("metadata", {})
    if "name" in meta or "namespace" in meta:
        errors.append("trialSpec must not set metadata.name or metadata.namespace")
    used = set(PLACEHOLDER.findall(json.dumps(trial_spec)))
    declared = [tp.get("name") for tp in template.get("trialParameters", [])]
    if set(declared) != used:
        errors.append(f"trialParameters {sorted(declared)} vs placeholders in trialSpec {sorted(used)}")
    if len(set(declared)) != len(declared):
        errors.append("duplicate trialParameters")
    referenced = set()
    for tp in template.get("trialParameters", []):
        ref = tp.get("reference", "")
        if ref in parameter_names:
            referenced.add(ref)
        elif not META_REFERENCES.match(ref):
            errors.append(f"trialParameter {tp.get('name')}: reference {ref!r} is neither a parameter nor meta")
    if referenced != parameter_names:
        errors.append(f"parameters not referenced by trialParameters: {sorted(parameter_names - referenced)}")
    containers = [
        c["name"]
        for replica in trial_spec.get("spec", {}).get("pytorchReplicaSpecs", {}).values()
        for c in replica["template"]["spec"]["containers"]
    ]
    if template.get("primaryContainerName") not in containers:
        errors.append("primaryContainerName is not a container of the trial")
    return errors


def all_errors(experiment: Mapping[str, Any]) -> list[str]:
    """Every upstream check of one Experiment (schema, webhook rules, PyTorchJob CRD, model round trip)."""
    errors = [f"katib schema: {e}" for e in katib_schema_errors(experiment)]
    errors += [f"katib webhook: {e}" for e in katib_webhook_errors(experiment)]
    trial_spec = experiment["spec"]["trialTemplate"]["trialSpec"]
    errors += [f"pytorchjob: {e}" for e in pytorchjob_schema_errors(trial_spec)]
    for values in sample_assignments(experiment):
        job = substitute(experiment, values, trial_name=f"{experiment['metadata']['name']}-abcd1234")
        errors += [f"pytorchjob after substitution: {e}" for e in pytorchjob_schema_errors(job)]
    if katib_model_roundtrip(experiment) != experiment:
        errors.append("kubeflow-katib-api round trip changed the manifest")
    return errors


def _hyperopt_float(value: float) -> str:
    """A double as Katib's Python suggestion services send it (str(float): '1e-05', '0.0123')."""
    return str(float(value))


def sample_assignments(experiment: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """Parameter values as Katib would assign them: each list's first and last value, each range's ends.

    Normal and log-normal ranges are mu -+ 3 sigma and unbounded in hyperopt, so their ends are not
    values a trial must accept; they are sampled at their centre (mu).
    """
    params = experiment["spec"]["parameters"]
    for end in (0, -1):
        values: dict[str, str] = {}
        for p in params:
            space = p["feasibleSpace"]
            if p["parameterType"] in ("categorical", "discrete"):
                values[p["name"]] = space["list"][end]
                continue
            low, high = float(space["min"]), float(space["max"])
            dist = space.get("distribution")
            if dist == "normal":
                value = (low + high) / 2
            elif dist == "logNormal":
                value = math.exp((math.log(low) + math.log(high)) / 2)
            else:
                value = low if end == 0 else high
            values[p["name"]] = str(int(value)) if p["parameterType"] == "int" else _hyperopt_float(value)
        yield values


def substitute(experiment: Mapping[str, Any], values: Mapping[str, str], *, trial_name: str) -> dict[str, Any]:
    """The trial's PyTorchJob as Katib makes it: placeholders replaced in the JSON text, then name set."""
    template = experiment["spec"]["trialTemplate"]
    text = json.dumps(template["trialSpec"])
    for tp in template["trialParameters"]:
        ref = tp["reference"]
        if ref == "${trialSpec.Name}":
            value = trial_name
        elif ref == "${trialSpec.Namespace}":
            value = experiment["metadata"]["namespace"]
        else:
            value = values[ref]
        text = text.replace("${trialParameters." + tp["name"] + "}", value)
    job: dict[str, Any] = json.loads(text)
    job.setdefault("metadata", {})["name"] = trial_name
    job["metadata"]["namespace"] = experiment["metadata"]["namespace"]
    return job


def replicas(pytorchjob: Mapping[str, Any]) -> dict[str, Any]:
    return dict(pytorchjob["spec"]["pytorchReplicaSpecs"])


def master_container(pytorchjob: Mapping[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = replicas(pytorchjob)["Master"]["template"]["spec"]["containers"][0]
    return container


def parse_train_command(command: list[str], config_map: Mapping[str, Any], tmp: Path) -> Any:
    """The trial command parsed by the real `kubevision train` (click) and turned into a TrialConfig.

    The ConfigMap's files are written to `tmp` and /etc/kubevision/ is mapped there, as the volume
    would be in the pod.
    """
    from kubevision.cli import cli
    from kubevision.trainer.entry import config_from_cli

    args = list(command)
    if args[:2] == ["torchrun", "--no-python"]:
        args = args[2:]
    assert args[:2] == ["kubevision", "train"], args
    for key, text in config_map["data"].items():
        (tmp / key).write_text(text)
    args = [a.replace("/etc/kubevision/", f"{tmp}/") for a in args[2:]]
    train = cli.commands["train"]
    with train.make_context("train", args) as ctx:
        params = dict(ctx.params)
    return config_from_cli(
        trial_config=params["trial_config"],
        job_file=params["job_file"],
        sets=params["sets"],
        output_dir=params["output_dir"],
        checkpoint=params["checkpoint"],
        trial_name=params["trial_name"],
        termination_url=params["termination_url"],
        sampled_from=params["sampled_from"],
        sampled_index=params["sampled_index"],
    )


def example_jobs() -> list[Path]:
    """Every examples/*.yaml that holds an AutoMLImageJob."""
    return sorted(p for p in EXAMPLES.glob("*.yaml") if "kind: AutoMLImageJob" in p.read_text())


def parse_job(manifest: Mapping[str, Any]) -> Any:
    """An AutoMLImageJob from a manifest dict (validated by the API models)."""
    from kubevision.api.loading import parse_manifest
    from kubevision.api.models import AutoMLImageJob

    job = parse_manifest(manifest)
    assert isinstance(job, AutoMLImageJob)
    return job


def job_manifest(name: str, spec: Mapping[str, Any], **meta: Any) -> dict[str, Any]:
    """An AutoMLImageJob manifest with `spec` (camelCase, as a user writes it)."""
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob",
            "metadata": {"name": name, **meta}, "spec": dict(spec)}


HAND_JOBS: dict[str, dict[str, Any]] = {
    # One trial on CPU with a fixed model: a one-point grid Experiment.
    "individual": job_manifest("single-cpu", {
        "task": "image_classification",
        "trainingData": {"path": "data/digits/train.jsonl"},
        "validationData": {"path": "data/digits/val.jsonl"},
        "limits": {"trialTimeoutMinutes": 30},
        "trainingParameters": {"modelName": "resnet18", "numberOfEpochs": 2},
        "resources": {"gpusPerNode": 0, "cpu": 2, "memory": "4Gi"},
    }),
    # Random sampling over three sub-spaces using every Azure distribution.
    "random-subspaces": job_manifest("dists", {
        "task": "image_object_detection",
        "trainingData": {"uri": "s3://bucket/od/train.jsonl"},
        "limits": {"maxTrials": 10, "maxConcurrentTrials": 4},
        "sweep": {"samplingAlgorithm": "random"},
        "searchSpace": [
            {"modelName": {"type": "choice", "values": ["fasterrcnn_resnet50_fpn"]},
             "learningRate": {"type": "loguniform", "minValue": -9.2, "maxValue": -4.6},
             "optimizer": {"type": "choice", "values": ["SGD", "adamw"]},
             "nesterov": {"type": "choice", "values": [True, "no"]},
             "tileGridSize": {"type": "choice", "values": ["(3, 2)", "2x2"]},
             "minSize": {"type": "quniform", "minValue": 480, "maxValue": 800, "q": 32},
             "momentum": {"type": "uniform", "minValue": 0.8, "maxValue": 0.99}},
            {"modelName": {"type": "choice", "values": ["retinanet_resnet50_fpn"]},
             "learningRate": {"type": "qloguniform", "minValue": -9.2, "maxValue": -4.6, "q": 0.0001},
             "weightDecay": {"type": "normal", "mu": 0.0005, "sigma": 0.0001},
             "layersToFreeze": {"type": "randint", "upper": 5},
             "randomSeed": {"type": "randint", "upper": 4000},
             "stepLrGamma": {"type": "quniform", "minValue": 0.1, "maxValue": 0.5, "q": 0.05}},
            {"modelName": {"type": "choice", "values": ["fasterrcnn_resnet18_fpn"]},
             "learningRate": {"type": "lognormal", "mu": -6.9, "sigma": 0.5},
             "beta1": {"type": "qnormal", "mu": 0.9, "sigma": 0.02, "q": 0.01},
             "beta2": {"type": "qlognormal", "mu": -0.001, "sigma": 0.0005, "q": 0.0001}},
        ],
    }),
    # Grid over two sub-spaces (4 and 2 points) with more trials than points.
    "grid": job_manifest("grid-job", {
        "task": "image_classification",
        "trainingData": {"path": "data/train.jsonl"},
        "limits": {"maxTrials": 10, "maxConcurrentTrials": 3},
        "sweep": {"samplingAlgorithm": "grid"},
        "searchSpace": [
            {"modelName": {"type": "choice", "values": ["resnet18", "resnet34"]},
             "learningRate": {"type": "choice", "values": [0.01, 0.00001]}},
            {"modelName": {"type": "choice", "values": ["mobilenetv2"]},
             "optimizer": {"type": "choice", "values": ["sgd", "adam"]}},
        ],
    }),
    # Bayesian sampling (one sub-space, choice/uniform/quniform).
    "bayesian": job_manifest("bayes", {
        "task": "image_classification_multilabel",
        "trainingData": {"path": "data/ml/train.jsonl"},
        "limits": {"maxTrials": 20, "maxConcurrentTrials": 2},
        "sweep": {"samplingAlgorithm": "Bayesian"},
        "searchSpace": [
            {"modelName": {"type": "choice", "values": ["resnet50", "seresnext"]},
             "learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.05},
             "numberOfEpochs": {"type": "quniform", "minValue": 5, "maxValue": 20, "q": 5}},
        ],
    }),
    # AutoMode on 80 GB GPUs.
    "automode": job_manifest("auto", {
        "task": "image_classification",
        "trainingData": {"path": "data/train.jsonl"},
        "limits": {"maxTrials": 10, "maxConcurrentTrials": 3},
        "trainingParameters": {"trainingCropSize": 64},
        "resources": {"gpusPerNode": 1, "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
    }),
    # Bandit early termination: trials call the operator's decision service.
    "early-termination": job_manifest("bandit", {
        "task": "image_object_detection",
        "trainingData": {"path": "data/od/train.jsonl"},
        "limits": {"maxTrials": 6, "maxConcurrentTrials": 2},
        "sweep": {"samplingAlgorithm": "random",
                  "earlyTermination": {"type": "bandit", "evaluationInterval": 2, "slackFactor": 0.2,
                                       "delayEvaluation": 6}},
        "searchSpace": [{"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}],
    }),
    # Three nodes x 8 GPUs per trial, pinned to a tainted pool.
    "multinode": job_manifest("a-very-long-multinode-detection-job-name-for-katib", {
        "task": "image_instance_segmentation",
        "trainingData": {"uri": "gs://bucket/seg/train.jsonl"},
        "limits": {"maxTrials": 4, "maxConcurrentTrials": 2, "trialTimeoutMinutes": 240},
        "sweep": {"samplingAlgorithm": "random"},
        "searchSpace": [{"learningRate": {"type": "uniform", "minValue": 0.0001, "maxValue": 0.001}}],
        "resources": {"nodeCountPerTrial": 3, "gpusPerNode": 8, "cpu": "64", "memory": "512Gi",
                      "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "pool": "gpu"},
                      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                      "image": "registry.example/kubevision-trainer:1.2.3"},
    }, namespace="vision"),
    # Incremental training from a model on another claim; outputs to the job's own claim.
    "checkpoint": job_manifest("incremental", {
        "task": "image_classification",
        "trainingData": {"uri": "pvc://datasets/digits/train.jsonl"},
        "validationData": {"path": "digits/val.jsonl"},
        "checkpoint": {"modelUri": "pvc://models/digits-v1/mlflow-model"},
        "output": {"uri": "pvc://results/incremental"},
        "limits": {"maxTrials": 2, "maxConcurrentTrials": 2},
        "sweep": {"samplingAlgorithm": "random"},
        "searchSpace": [{"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}],
    }),
}
"""Hand-written jobs covering each planner path (issue #5's list)."""

SETTINGS_KW: dict[str, Any] = {
    "output_pvc": "kubevision-shared",
    "termination_url": "http://kubevision-operator.kubevision-system.svc:8082",
}
OWNER: dict[str, str] = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "name": "owner", "uid": "0f1e2d3c-uid",
}
