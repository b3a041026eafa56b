"""The two custom resources: AutoMLImageJob and InferenceEndpoint (kubevision.io/v1alpha1).

Why pydantic models are the source of truth: the same classes validate a YAML on a laptop, a CR
in the admission webhook and the objects the operator reads back, and they generate the CRD
schema (`kubevision crds`), so the three cannot disagree. Each field carries a description: it is
what `kubectl explain` prints.

Single-field rules live on the field; rules across fields of a sub-model live on that model; rules
that need the task live in `kubevision.api.rules`, run by `AutoMLImageJobSpec`. Every rule reports
the exact field it is about (see `kubevision.api.violations`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from kubevision.api.base import KubeModel
from kubevision.api.kube import Condition, DnsLabel, ObjectMeta, Quantity, Toleration
from kubevision.api.search_space import SubSpace
from kubevision.api.tasks import PRIMARY_METRIC, Task
from kubevision.api.training_parameters import AdvancedSettings, TrainingParameters
from kubevision.api.values import show
from kubevision.api.violations import Violation, raise_violations

__all__ = [
    "AdvancedSettings",
    "AutoMLImageJob",
    "AutoMLImageJobSpec",
    "AutoMLImageJobStatus",
    "BestTrial",
    "Checkpoint",
    "Condition",
    "DataInput",
    "Deployment",
    "DeploymentStatus",
    "EarlyTermination",
    "ExperimentRef",
    "InferenceEndpoint",
    "InferenceEndpointSpec",
    "InferenceEndpointStatus",
    "Limits",
    "ModelSource",
    "ObjectMeta",
    "Output",
    "Resources",
    "ServingResources",
    "Sweep",
    "Toleration",
    "TrainingParameters",
    "TrialCounts",
]

AZUREML_HINT = (
    "azureml: URIs resolve only inside Azure ML; download the data first "
    "(`az ml data download --name <asset> --version <version> --download-path ./data`) "
    "and set `path` to the local JSONL file or MLTable folder"
)
AZUREML_MODEL_HINT = (
    "azureml: URIs resolve only inside Azure ML; download the model first "
    "(`az ml model download --name <model> --version <version> --download-path ./model`) "
    "and point at the local MLflow model folder"
)


def _check_location(value: str | None, *, remote: bool) -> str | None:
    """Shared checks of `path`/`uri` strings: non-empty, no azureml:, local vs remote."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("got an empty string")
    if value.lower().startswith("azureml:"):
        raise ValueError(f"got {show(value)}; {AZUREML_HINT}")
    if remote and "://" not in value:
        raise ValueError(
            f"got {show(value)}; expected a URI such as s3://bucket/train.jsonl (use `path` for a local file)"
        )
    if not remote and "://" in value:
        raise ValueError(f"got {show(value)}; that is a URI: use `uri` instead of `path`")
    return value


def _check_model_uri(value: str | None) -> str | None:
    """A model location: anything but azureml:, which resolves only inside Azure ML."""
    if value is not None and value.lower().startswith("azureml:"):
        raise ValueError(f"got {show(value)}; {AZUREML_MODEL_HINT}")
    return value


def _exactly_one_model(from_job: str | None, uri: str | None, uri_name: str) -> None:
    """A model comes from a job or from a URI: exactly one of the two (Checkpoint, ModelSource)."""
    if (from_job is None) == (uri is None):
        got = "neither" if from_job is None else "both"
        raise_violations([Violation((), f"needs exactly one of fromJob or {uri_name}; got {got}")])


class DataInput(KubeModel):
    """Labelled images: a JSONL file or MLTable folder, local (`path`) or remote (`uri`)."""

    path: str | None = Field(
        None, description="Local JSONL file or MLTable folder (relative to the job file)."
    )
    uri: str | None = Field(
        None, description="Remote JSONL file or MLTable folder: s3://, gs://, https://, ..."
    )

    @field_validator("path")
    @classmethod
    def _local(cls, value: str | None) -> str | None:
        return _check_location(value, remote=False)

    @field_validator("uri")
    @classmethod
    def _remote(cls, value: str | None) -> str | None:
        return _check_location(value, remote=True)

    @model_validator(mode="after")
    def _exactly_one(self) -> DataInput:
        if self.path is None and self.uri is None:
            raise_violations([Violation((), "needs exactly one of path or uri; got neither")])
        if self.path is not None and self.uri is not None:
            raise_violations([Violation(("uri",), "needs exactly one of path or uri; got both")])
        return self

    @property
    def location(self) -> str:
        """The path or the URI, whichever is set."""
        return self.path if self.path is not None else str(self.uri)


class Limits(KubeModel):
    """Budget of the job (reference 1.4)."""

    timeout_minutes: int = Field(
        10080, ge=1, le=86400, description="Whole-job timeout in minutes (default 7 days)."
    )
    max_trials: int = Field(
        1, ge=1, le=1000, description="Trials to run; 1 = one trial with default settings."
    )
    max_concurrent_trials: int = Field(
        1, ge=1, le=100, description="Trials running at once; capped at maxTrials."
    )
    trial_timeout_minutes: int | None = Field(
        None, ge=1, le=86400, description="Per-trial timeout in minutes."
    )

    @property
    def effective_max_concurrent_trials(self) -> int:
        """maxConcurrentTrials capped at maxTrials, as Azure does silently (4 of 2 -> 2)."""
        return min(self.max_concurrent_trials, self.max_trials)


class EarlyTermination(KubeModel):
    """Early-termination policy of a sweep (reference 5.4); parameters depend on `type`."""

    type: Literal["bandit", "median_stopping", "truncation_selection"] = Field(
        description="bandit, median_stopping or truncation_selection."
    )
    evaluation_interval: int = Field(
        1, ge=0, description="Apply the policy every N metric reports (0, Azure's SDK default, means 1)."
    )
    delay_evaluation: int = Field(
        0, ge=0,
        description="The policy applies from metric report N on (at multiples of evaluationInterval that are >= N).",
    )
    slack_factor: float | None = Field(
        None, ge=0, description="bandit: allowed slack as a ratio of the best."
    )
    slack_amount: float | None = Field(None, ge=0, description="bandit: allowed slack as an absolute amount.")
    truncation_percentage: int | None = Field(
        None,
        ge=1,
        le=99,
        description="truncation_selection: cancel the lowest N% of trials at each evaluation.",
    )
    exclude_finished_jobs: bool | None = Field(
        None, description="truncation_selection: ignore finished trials when ranking (default false)."
    )

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def effective_evaluation_interval(self) -> int:
        return max(1, self.evaluation_interval)

    @model_validator(mode="after")
    def _parameters_of_type(self) -> EarlyTermination:
        out = []
        if self.type == "bandit":
            if self.slack_factor is None and self.slack_amount is None:
                out.append(Violation((), "bandit needs slackFactor or slackAmount; got neither"))
            elif self.slack_factor is not None and self.slack_amount is not None:
                out.append(Violation(("slackAmount",), "bandit takes slackFactor or slackAmount, not both"))
        else:
            for key, value in (("slackFactor", self.slack_factor), ("slackAmount", self.slack_amount)):
                if value is not None:
                    out.append(Violation((key,), f"applies only to type bandit; this policy is {self.type}"))
        if self.type == "truncation_selection":
            if self.truncation_percentage is None:
                out.append(Violation((), "truncation_selection needs truncationPercentage (1 to 99)"))
        else:
            for key, present in (
                ("truncationPercentage", self.truncation_percentage is not None),
                ("excludeFinishedJobs", self.exclude_finished_jobs is not None),
            ):
                if present:
                    out.append(
                        Violation(
                            (key,), f"applies only to type truncation_selection; this policy is {self.type}"
                        )
                    )
        if out:
            raise_violations(out)
        return self


class Sweep(KubeModel):
    """How the search space is sampled and when poor trials stop (reference 5.3, 5.4)."""

    sampling_algorithm: Literal["random", "grid", "bayesian"] = Field(
        "random",
        description="random (default), grid (choice only) or bayesian (choice, uniform, quniform).",
    )
    early_termination: EarlyTermination | None = Field(
        None, description="Stop poorly performing trials early."
    )

    @field_validator("sampling_algorithm", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        """Azure accepts "Random", "RANDOM", ...; store lowercase."""
        return value.lower() if isinstance(value, str) else value


class Resources(KubeModel):
    """Compute of each trial.

    `gpusPerNode` defaults to 1: AutoML for images is GPU training (Azure requires GPUs), and a
    cluster pod without a GPU request would silently train on CPU. Set 0 to train on CPU
    deliberately (tests, tiny data); the local backend uses at most the GPUs it finds.
    """

    node_count_per_trial: int = Field(
        1, ge=1, le=64, description="Nodes (pods) per trial; >1 is multi-node DDP."
    )
    gpus_per_node: int = Field(1, ge=0, le=16, description="GPUs per node; 0 trains on CPU.")
    cpu: Quantity | None = Field(None, description="CPU request per node, e.g. 8 or 7500m.")
    memory: Quantity | None = Field(None, description="Memory request per node, e.g. 64Gi.")
    node_selector: dict[str, str] | None = Field(None, description="Node labels the trial pods must match.")
    tolerations: list[Toleration] | None = Field(None, description="Taints the trial pods tolerate.")
    image: str | None = Field(None, description="Trainer container image (default: the operator's).")


class Checkpoint(KubeModel):
    """Incremental training: start from an earlier job's best model or from a model URI."""

    from_job: DnsLabel | None = Field(
        None, description="AutoMLImageJob (same namespace) whose best model to start from."
    )
    model_uri: str | None = Field(None, description="URI or path of an MLflow model directory or model.pt.")

    @field_validator("model_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _check_model_uri(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Checkpoint:
        _exactly_one_model(self.from_job, self.model_uri, "modelUri")
        return self


class Output(KubeModel):
    """Where trials and the best model are written."""

    uri: str = Field(
        min_length=1, description="Local folder (embedded mode) or s3://, gs://, pvc://claim/path."
    )


class AutoMLImageJobSpec(KubeModel):
    """What to train: task, data, budget, fixed settings, search space, compute."""

    task: Task = Field(
        description="image_classification, image_classification_multilabel, "
        "image_object_detection or image_instance_segmentation."
    )
    training_data: DataInput = Field(description="Training images and labels.")
    validation_data: DataInput | None = Field(
        None,
        description="Validation images and labels (default: hold out validationDataSize of trainingData).",
    )
    validation_data_size: float = Field(
        0.2, gt=0, lt=1, description="Fraction held out for validation when validationData is not given."
    )
    target_column_name: str = Field("label", min_length=1, description="JSONL key holding the labels.")
    primary_metric: Literal["accuracy", "iou", "mean_average_precision"] | None = Field(
        None, description="Fixed per task: accuracy, iou (multi-label) or mean_average_precision."
    )
    limits: Limits = Field(default_factory=Limits, description="Trial count, concurrency and timeouts.")
    training_parameters: TrainingParameters = Field(
        default_factory=TrainingParameters, description="Fixed hyperparameters applied to every trial."
    )
    search_space: Annotated[list[SubSpace], Field(min_length=1)] | None = Field(
        None, description="Sub-spaces (one per model family) of hyperparameter distributions to sweep."
    )
    sweep: Sweep | None = Field(
        None, description="Sampling algorithm and early termination of a manual sweep."
    )
    resources: Resources = Field(
        default_factory=Resources, description="Nodes, GPUs and scheduling of each trial."
    )
    checkpoint: Checkpoint | None = Field(
        None, description="Start from an earlier model (incremental training)."
    )
    output: Output | None = Field(None, description="Where outputs are written (default: backend-specific).")

    @model_validator(mode="after")
    def _job_rules(self) -> AutoMLImageJobSpec:
        from kubevision.api.rules import job_violations

        violations = job_violations(self)
        if violations:
            raise_violations(violations)
        return self

    @property
    def effective_primary_metric(self) -> str:
        """The metric trials are ranked by (only one per task is supported)."""
        return PRIMARY_METRIC[self.task]

    @property
    def is_automode(self) -> bool:
        """AutoMode: several trials and neither a search space nor a sweep (reference 5.1)."""
        return self.limits.max_trials > 1 and not self.search_space and self.sweep is None

    @property
    def mode(self) -> Literal["single", "sweep", "automode"]:
        """single trial, manual sweep, or AutoMode."""
        if self.is_automode:
            return "automode"
        return "sweep" if self.search_space else "single"

    @property
    def effective_sweep(self) -> Sweep | None:
        """The sweep settings of a manual sweep; a searchSpace without `sweep` samples at random."""
        if not self.search_space:
            return None
        return self.sweep if self.sweep is not None else Sweep()


class TrialCounts(KubeModel):
    """How many trials are in each state."""

    total: int = Field(0, ge=0, description="Trials created so far.")
    running: int = Field(0, ge=0, description="Trials running.")
    succeeded: int = Field(0, ge=0, description="Trials that finished.")
    failed: int = Field(0, ge=0, description="Trials that failed.")
    early_terminated: int = Field(0, ge=0, description="Trials stopped by the early-termination policy.")


class BestTrial(KubeModel):
    """The best trial so far by the primary metric."""

    name: str = Field(description="Trial name.")
    metric: float | None = Field(None, description="Its primary-metric value.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Its hyperparameters (camelCase).")
    model_uri: str | None = Field(None, description="Where its MLflow model is stored.")


class ExperimentRef(KubeModel):
    """A Katib Experiment of this job: one per search-space sub-space (Katib has no conditional spaces)."""

    name: str = Field(description="Experiment name.")
    namespace: str | None = Field(None, description="Experiment namespace (default: the job's).")
    sub_space: int | None = Field(None, ge=0, description="Index of the searchSpace sub-space it samples.")


class AutoMLImageJobStatus(KubeModel):
    """Written by the operator / local runner; never by users."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        None, description="Pending, Running, Succeeded or Failed."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Ready and Succeeded conditions.")
    trials: TrialCounts | None = Field(None, description="Trial counts by state.")
    best_trial: BestTrial | None = Field(None, description="Best trial so far.")
    experiment_ref: list[ExperimentRef] = Field(
        default_factory=list, description="Katib Experiments of this job."
    )
    start_time: datetime | None = Field(None, description="When the first trial started.")
    completion_time: datetime | None = Field(None, description="When the job finished.")
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation last acted on.")
    message: str | None = Field(None, description="Human-readable state or error.")


class AutoMLImageJob(KubeModel):
    """An AutoML training job for images: trains, tunes and picks the best model."""

    api_version: Literal["kubevision.io/v1alpha1"] = Field(
        "kubevision.io/v1alpha1", description="kubevision.io/v1alpha1."
    )
    kind: Literal["AutoMLImageJob"] = Field("AutoMLImageJob", description="AutoMLImageJob.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: AutoMLImageJobSpec = Field(description="What to train.")
    status: AutoMLImageJobStatus | None = Field(None, description="Observed state.")


# ---- InferenceEndpoint ------------------------------------------------------------------------


class ModelSource(KubeModel):
    """The model a deployment serves: the best model of a job, or an MLflow model URI."""

    from_job: DnsLabel | None = Field(
        None, description="AutoMLImageJob (same namespace) whose best model to serve."
    )
    uri: str | None = Field(
        None, description="MLflow model directory: local path or s3://, gs://, pvc:// URI."
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _check_model_uri(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        _exactly_one_model(self.from_job, self.uri, "uri")
        return self


class ServingResources(KubeModel):
    """Compute of each serving replica."""

    cpu: Quantity | None = Field(None, description="CPU request per replica.")
    memory: Quantity | None = Field(None, description="Memory request per replica.")
    gpus: int = Field(0, ge=0, le=16, description="GPUs per replica (XAI is slow on CPU).")
    node_selector: dict[str, str] | None = Field(None, description="Node labels the replicas must match.")
    tolerations: list[Toleration] | None = Field(None, description="Taints the replicas tolerate.")


class Deployment(KubeModel):
    """One model version behind the endpoint."""

    name: DnsLabel = Field(description="Deployment name (unique in the endpoint).")
    model: ModelSource = Field(description="Model to serve.")
    traffic_percent: int | None = Field(
        None, ge=0, le=100, description="Share of requests (all deployments sum to 100; one deployment: 100)."
    )
    replicas: int = Field(1, ge=0, le=100, description="Replicas (0 scales to zero where supported).")
    resources: ServingResources | None = Field(None, description="Compute per replica.")
    inference_settings: dict[str, Any] | None = Field(
        None, description="Overrides of the model's settings.json (e.g. boxScoreThreshold, tileGridSize)."
    )


class InferenceEndpointSpec(KubeModel):
    """One or two deployments (two = canary) behind one URL."""

    deployments: list[Deployment] = Field(
        min_length=1, max_length=2, description="One deployment, or two for a canary split."
    )
    auth_mode: Literal["key", "none"] = Field("key", description="key (bearer key required) or none.")

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _deployments(self) -> InferenceEndpointSpec:
        out = []
        seen: set[str] = set()
        for i, dep in enumerate(self.deployments):
            if dep.name in seen:
                out.append(Violation(("deployments", i, "name"), f"duplicate deployment name '{dep.name}'"))
            seen.add(dep.name)
        shares = [d.traffic_percent for d in self.deployments]
        if len(shares) == 1:
            if shares[0] not in (None, 100):
                out.append(
                    Violation(
                        ("deployments", 0, "trafficPercent"),
                        f"got {shares[0]}; a single deployment takes all traffic: 100 (or omit it)",
                    )
                )
        elif shares[0] is None and shares[1] is None:
            out.append(
                Violation(("deployments",), "two deployments need trafficPercent values that sum to 100")
            )
        elif None not in shares and sum(s or 0 for s in shares) != 100:
            out.append(
                Violation(
                    ("deployments", 1, "trafficPercent"),
                    f"trafficPercent values sum to {sum(s or 0 for s in shares)} "
                    f"({' + '.join(str(s) for s in shares)}); they must sum to 100",
                )
            )
        if out:
            raise_violations(out)
        return self

    @property
    def traffic(self) -> dict[str, int]:
        """Deployment name -> traffic percent, with the unset share filled in (sums to 100)."""
        given = sum(d.traffic_percent or 0 for d in self.deployments)
        return {
            d.name: d.traffic_percent if d.traffic_percent is not None else 100 - given
            for d in self.deployments
        }


class DeploymentStatus(KubeModel):
    """Observed state of one deployment."""

    name: str = Field(description="Deployment name.")
    ready: bool = Field(False, description="Whether it serves requests.")
    traffic_percent: int | None = Field(None, ge=0, le=100, description="Share of requests it receives.")
    url: str | None = Field(None, description="Its own URL (for testing a canary directly).")


class InferenceEndpointStatus(KubeModel):
    """Written by the operator / `kubevision serve`; never by users."""

    phase: Literal["Pending", "Ready", "Failed"] | None = Field(None, description="Pending, Ready or Failed.")
    url: str | None = Field(None, description="Scoring URL.")
    deployments: list[DeploymentStatus] = Field(default_factory=list, description="Per-deployment state.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready condition.")
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation last acted on.")
    message: str | None = Field(None, description="Human-readable state or error.")


class InferenceEndpoint(KubeModel):
    """An HTTP endpoint serving one model, or two with a traffic split."""

    api_version: Literal["kubevision.io/v1alpha1"] = Field(
        "kubevision.io/v1alpha1", description="kubevision.io/v1alpha1."
    )
    kind: Literal["InferenceEndpoint"] = Field("InferenceEndpoint", description="InferenceEndpoint.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: InferenceEndpointSpec = Field(description="Deployments and authentication.")
    status: InferenceEndpointStatus | None = Field(None, description="Observed state.")
