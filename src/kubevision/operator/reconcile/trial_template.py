"""The Katib trialTemplate: a PyTorchJob (kubeflow.org/v1) running `kubevision train` with the sampled values.

Why these choices (reference kubeflow-kserve 1.5, 1.6, 2.1, 2.2, 5.1):
- Master 1 + Worker nodeCountPerTrial-1 (no Worker section for one node); the container is named
  `pytorch` (the training operator requires it) and is the primary container Katib's StdOut collector
  wraps; only the Master pod (`training.kubeflow.org/job-role: master`) gets the collector.
- The training operator does not launch torchrun: a trial with more than one process (several nodes
  or GPUs) runs `torchrun --no-python kubevision train ...`, and torchrun reads the PET_* variables
  the operator sets (nnodes, nproc-per-node, node rank, master address). One process runs the
  program directly. nprocPerNode = gpusPerNode, or "1" on CPU.
- The command is explicit (an image ENTRYPOINT would need registry access from Katib's webhook) and
  made of single shell words: the StdOut collector re-joins it with spaces into `sh -c`.
- Values reach the program as `--set name=value`; AutoMode passes a portfolio index instead
  (`--sampled-from /etc/kubevision/automode.json --sampled-index N`). The trial name comes from the
  meta parameter `trialName` (reference `${trialSpec.Name}`): Katib substitutes only
  `${trialParameters.*}` placeholders.
- restartPolicy OnFailure with runPolicy.backoffLimit: a preempted or OOM-killed pod restarts and
  the trial program resumes from its last checkpoint; cleanPodPolicy Running removes workers stuck in
  a collective once the master ends; activeDeadlineSeconds = trialTimeoutMinutes.
- Pods carry `sidecar.istio.io/inject: "false"` (an Istio sidecar keeps Katib's collector from ever
  finishing, katib#2614) and an in-memory /dev/shm (DataLoader workers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.models import Resources
from kubevision.api.trial import TERMINATION_TOKEN_ENV
from kubevision.operator.reconcile.storage import CONFIG_MOUNT, STAGING_ENV, STAGING_MOUNT, Storage
from kubevision.operator.settings import OperatorSettings

__all__ = [
    "AUTOMODE_FILE",
    "AUTOMODE_PARAMETER",
    "CONTAINER",
    "FAILURE_CONDITION",
    "JOB_FILE",
    "PRIMARY_POD_LABELS",
    "SUCCESS_CONDITION",
    "TRIAL_NAME_PARAMETER",
    "TrialTemplateInput",
    "placeholder",
    "trial_template",
]

CONTAINER = "pytorch"
JOB_FILE = f"{CONFIG_MOUNT}/job.yaml"
AUTOMODE_FILE = f"{CONFIG_MOUNT}/automode.json"
AUTOMODE_PARAMETER = "config"
TRIAL_NAME_PARAMETER = "trialName"
SUCCESS_CONDITION = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
PRIMARY_POD_LABELS = {"training.kubeflow.org/job-role": "master"}
GPU_RESOURCE = "nvidia.com/gpu"
_PLACEHOLDER = re.compile(r"\$\{trialParameters\.[A-Za-z0-9_]+\}")
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_.,:+/@%=-]+$")


def placeholder(name: str) -> str:
    """`${trialParameters.<name>}`, the only placeholder form Katib substitutes."""
    return "${trialParameters." + name + "}"


@dataclass(frozen=True)
class TrialTemplateInput:
    """Everything the trial template depends on (all decided by the planner)."""

    parameter_names: Sequence[str]
    """Katib parameter names, each passed as `--set name=value` (AutoMode: just `config`)."""
    automode: bool
    fixed_values: Mapping[str, str]
    """Literal `--set name=value` pairs (AutoMode's refinement keeps the best config's other values)."""
    resources: Resources
    storage: Storage
    config_map: str
    labels: Mapping[str, str]
    image: str
    checkpoint: str | None
    termination_url: str | None
    token_secret: str
    trial_timeout_minutes: int | None


def command(spec: TrialTemplateInput) -> list[str]:
    """The container command of every trial pod (with `${trialParameters.*}` placeholders)."""
    trial = placeholder(TRIAL_NAME_PARAMETER)
    args = ["kubevision", "train", "--job", JOB_FILE]
    if spec.automode:
        args += ["--sampled-from", AUTOMODE_FILE, "--sampled-index", placeholder(AUTOMODE_PARAMETER)]
    for name in spec.parameter_names:
        if spec.automode and name == AUTOMODE_PARAMETER:
            continue
        args += ["--set", f"{name}={placeholder(name)}"]
    for name, value in spec.fixed_values.items():
        args += ["--set", f"{name}={value}"]
    args += ["--output", f"{spec.storage.output_root}/trials/{trial}", "--trial-name", trial]
    if spec.checkpoint is not None:
        args += ["--checkpoint", spec.checkpoint]
    if spec.termination_url is not None:
        args += ["--termination-url", spec.termination_url]
    if processes_per_trial(spec.resources) > 1:
        args = ["torchrun", "--no-python", *args]
    unsafe = [arg for arg in args if not _SAFE_ARG.match(_PLACEHOLDER.sub("x", arg))]
    if unsafe:
        raise KubevisionError(
            "the trial command cannot run under Katib's StdOut collector, which re-joins it into `sh -c`",
            [Problem(f"{arg!r} contains spaces, quotes or shell characters") for arg in unsafe],
        )
    return args


def nproc_per_node(resources: Resources) -> str:
    """PyTorchJob spec.nprocPerNode: one process per GPU, one on CPU."""
    return str(resources.gpus_per_node) if resources.gpus_per_node > 0 else "1"


def processes_per_trial(resources: Resources) -> int:
    return resources.node_count_per_trial * max(1, resources.gpus_per_node)


def _container(spec: TrialTemplateInput, settings: OperatorSettings) -> dict[str, Any]:
    res = spec.resources
    requests = {
        "cpu": str(res.cpu) if res.cpu is not None else settings.default_cpu,
        "memory": str(res.memory) if res.memory is not None else settings.default_memory,
    }
    resources: dict[str, Any] = {"requests": requests}
    if res.gpus_per_node > 0:
        resources["limits"] = {GPU_RESOURCE: res.gpus_per_node}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command(spec),
        "resources": resources,
        "volumeMounts": spec.storage.volume_mounts(),
    }
    env: list[dict[str, Any]] = []
    if spec.termination_url is not None:
        env.append(
            {
                "name": TERMINATION_TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": spec.token_secret, "key": "token"}},
            }
        )
    if spec.storage.remote_output:
        env.append({"name": STAGING_ENV, "value": STAGING_MOUNT})
    if env:
        container["env"] = env
    return container


def _pod_template(spec: TrialTemplateInput, settings: OperatorSettings) -> dict[str, Any]:
    res = spec.resources
    pod: dict[str, Any] = {
        "containers": [_container(spec, settings)],
        "volumes": spec.storage.volumes(spec.config_map, settings.shm_size),
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    if settings.fs_group is not None:
        pod["securityContext"] = {"fsGroup": settings.fs_group}
    if res.node_selector:
        pod["nodeSelector"] = dict(sorted(res.node_selector.items()))
    if res.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in res.tolerations]
    labels = {**dict(spec.labels), "sidecar.istio.io/inject": "false"}
    return {"metadata": {"labels": labels}, "spec": pod}


def trial_template(spec: TrialTemplateInput, settings: OperatorSettings) -> dict[str, Any]:
    """Experiment.spec.trialTemplate with a PyTorchJob trialSpec."""
    # Each replica gets its own copy: shared dicts would come out of a YAML dump as anchors and aliases.
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": _pod_template(spec, settings)}
    }
    workers = spec.resources.node_count_per_trial - 1
    if workers > 0:
        replicas["Worker"] = {
            "replicas": workers, "restartPolicy": "OnFailure", "template": _pod_template(spec, settings)
        }
    run_policy: dict[str, Any] = {"cleanPodPolicy": "Running", "backoffLimit": settings.backoff_limit}
    if spec.trial_timeout_minutes is not None:
        run_policy["activeDeadlineSeconds"] = spec.trial_timeout_minutes * 60
    trial_parameters = [
        {"name": name, "description": f"{name} sampled by Katib", "reference": name}
        for name in spec.parameter_names
    ]
    trial_parameters.append(
        {
            "name": TRIAL_NAME_PARAMETER,
            "description": "Trial name (names the output folder)",
            "reference": "${trialSpec.Name}",
        }
    )
    return {
        "primaryContainerName": CONTAINER,
        "primaryPodLabels": dict(PRIMARY_POD_LABELS),
        "successCondition": SUCCESS_CONDITION,
        "failureCondition": FAILURE_CONDITION,
        "retain": False,
        "trialParameters": trial_parameters,
        "trialSpec": {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "metadata": {"labels": dict(spec.labels)},
            "spec": {
                "nprocPerNode": nproc_per_node(spec.resources),
                "runPolicy": run_policy,
                "pytorchReplicaSpecs": replicas,
            },
        },
    }
