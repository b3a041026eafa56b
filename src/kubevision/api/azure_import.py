"""`kubevision import-azure`: turn an Azure ML CLI v2 AutoML image job file into an AutoMLImageJob.

Why a converter and not a second input format: users arrive with Azure job files that already encode
a tuned search space. Accepting two syntaxes forever would double every error message and every
document; converting once, printing the result and letting the user keep it keeps one API.

What the conversion promises:
- every key of the Azure file is either carried over or named in a note saying why it was dropped
  (compute, log verbosity, Azure-only properties); nothing disappears silently;
- Azure snake_case becomes the camelCase of our API, including the runtime/v1 spellings the reference
  lists (`img_size`, `split_ratio`, ...), the `advanced_settings` JSON string (parsed into an object)
  and the function-call strings (`"choice('a', 'b')"`, `"uniform(0.001, 0.01)"`) that Azure's own
  examples and SDK-serialized jobs use inside `search_space`;
- the result is validated with the same code as `kubevision validate`, and any problem is reported
  against the Azure file, its line and the Azure key, because that is the file the user has open.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic.alias_generators import to_camel

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.hyperparameters import RT_TO_CAMEL, SDK_TO_CAMEL
from kubevision.api.loading import parse_manifest
from kubevision.api.tasks import PRIMARY_METRIC, Task

__all__ = ["convert_azure_job", "import_azure_job", "to_yaml"]

API_VERSION = "kubevision.io/v1alpha1"
KIND = "AutoMLImageJob"

# v1 names the hyperparameter table does not know (it has the SDK and the runtime names): the YOLO
# NMS threshold was `box_iou_thresh` in v1 (reference 4.4).
V1_PARAMETER_NAMES: dict[str, str] = {"box_iou_thresh": "nmsIouThreshold"}

# Training parameters that are not hyperparameters in kubevision: they name the hold-out split, which
# is a top-level field of the job (v1 `split_ratio`, runtime `validation_size`).
_SPLIT_NAMES = ("split_ratio", "validation_size")

# Azure tasks that are not about images: named in the error so the user knows why, not just "invalid".
_NON_IMAGE_TASKS = (
    "classification",
    "regression",
    "forecasting",
    "text_classification",
    "text_classification_multilabel",
    "text_ner",
)

# Positional parameter names of each distribution, in the order the Azure SDK's function-call strings
# and constructors take them (azure.ai.ml.sweep: Uniform(min_value, max_value), QNormal(mu, sigma, q)...).
_DISTRIBUTION_ARGS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "loguniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "lognormal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "qlognormal": ("mu", "sigma", "q"),
}

_DNS_LABEL_MAX = 63
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# Spec keys in the order a reader wants them: what, on which data, how much, how, where.
_SPEC_ORDER = (
    "task",
    "primaryMetric",
    "targetColumnName",
    "trainingData",
    "validationData",
    "validationDataSize",
    "limits",
    "trainingParameters",
    "sweep",
    "searchSpace",
    "resources",
    "checkpoint",
    "output",
)
_DISTRIBUTION_ORDER = ("type", "values", "upper", "minValue", "maxValue", "mu", "sigma", "q")

AzurePath = tuple[str | int, ...]


def import_azure_job(path: str | Path, *, name: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Read an Azure ML CLI v2 AutoML image job file and return (AutoMLImageJob manifest, notes).

    `notes` are one-line messages about everything that was dropped or needs the user's attention
    (Azure compute, Azure data assets). `name` overrides metadata.name. Raises `KubevisionError` for an
    unreadable file, invalid YAML, a job that is not an AutoML image job, or a result that kubevision
    would reject (reported against the Azure file's keys and lines).
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise KubevisionError(f"cannot read {source}", [Problem(reason, file=source)]) from err
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(err, "problem", None) or str(err)
        raise KubevisionError(
            f"{source} is not valid YAML", [Problem(str(reason), file=source, line=line)]
        ) from err
    return convert_azure_job(doc, source=source, name=name, default_name=path.stem, lines=_line_index(text))


def convert_azure_job(
    doc: Any,
    *,
    source: str = "<azure job>",
    name: str | None = None,
    default_name: str = "azure-job",
    lines: Mapping[AzurePath, int] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Convert an already-loaded Azure job document; see `import_azure_job`.

    `lines` maps Azure key paths to line numbers so problems can point into the file.
    """
    converter = _Converter(source, lines or {})
    manifest = converter.convert(doc, name=name, default_name=default_name)
    converter.validate(manifest)
    return manifest, converter.notes


def to_yaml(manifest: Mapping[str, Any]) -> str:
    """Dump a manifest as block-style YAML, keys in reading order (metadata, then the spec's story)."""
    return yaml.dump(
        _ordered_manifest(manifest),
        Dumper=_BlockDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


class _Converter:
    """One conversion: collects notes (kept going) and problems (raised together at the end)."""

    def __init__(self, source: str, lines: Mapping[AzurePath, int]) -> None:
        self.source = source
        self.lines = lines
        self.notes: list[str] = []
        self.problems: list[Problem] = []
        # manifest path -> Azure path, to report validation problems against the user's file
        self.origins: dict[tuple[str | int, ...], AzurePath] = {}

    # -- reporting ---------------------------------------------------------------------------------

    def note(self, apath: AzurePath, message: str) -> None:
        self.notes.append(f"{_dotted(apath)}: {message}" if apath else message)

    def problem(self, apath: AzurePath, message: str) -> None:
        self.problems.append(self._problem(apath, message))

    def _problem(self, apath: AzurePath, message: str) -> Problem:
        return Problem(message, file=self.source, line=self._line(apath), field=_dotted(apath) or None)

    def _line(self, apath: AzurePath) -> int | None:
        for end in range(len(apath), -1, -1):
            line = self.lines.get(apath[:end])
            if line is not None:
                return line
        return None

    def fail(self, apath: AzurePath, message: str) -> KubevisionError:
        return KubevisionError(
            f"{self.source}: cannot import this Azure job", [self._problem(apath, message)]
        )

    def put(self, target: dict[str, Any], mpath: tuple[str | int, ...], key: str, value: Any,
            apath: AzurePath) -> None:
        target[key] = value
        self.origins[(*mpath, key)] = apath

    # -- the job -----------------------------------------------------------------------------------

    def convert(self, doc: Any, *, name: str | None, default_name: str) -> dict[str, Any]:
        if not isinstance(doc, Mapping):
            raise self.fail((), f"expected a mapping of Azure job keys, found {_kind(doc)}")
        job_type = doc.get("type")
        if job_type is None:
            raise self.fail(("type",), "missing; an Azure AutoML job file says `type: automl`")
        if str(job_type).lower() != "automl":
            raise self.fail(
                ("type",),
                f"'{job_type}' is not an AutoML job; only `type: automl` jobs with an image task can be "
                "imported",
            )
        task = self.task(doc.get("task"))
        spec: dict[str, Any] = {}
        self.put(spec, ("spec",), "task", task.value, ("task",))
        metadata = self.metadata(doc, name=name, default_name=default_name)

        handled = {"$schema", "type", "task", "name", "display_name", "experiment_name", "description",
                   "tags"}
        handlers = {
            "compute": self.compute,
            "log_verbosity": self.log_verbosity,
            "primary_metric": self.primary_metric,
            "target_column_name": self.target_column,
            "training_data": self.data,
            "validation_data": self.data,
            "validation_data_size": self.validation_data_size,
            "limits": self.limits,
            "training_parameters": self.training_parameters,
            "sweep": self.sweep,
            "search_space": self.search_space,
            "properties": self.properties,
            "resources": self.resources,
            "outputs": self.outputs,
        }
        for key, value in doc.items():
            if key in handled:
                continue
            handler = handlers.get(str(key))
            if handler is None:
                self.note((str(key),), "not an AutoML image job setting kubevision knows; dropped")
                continue
            handler(spec, str(key), value, task)
        if self.problems:
            raise KubevisionError(f"{self.source}: cannot import this Azure job", self.problems)
        manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
        return _ordered_manifest(manifest)

    def task(self, value: Any) -> Task:
        if value is None:
            raise self.fail(("task",), "missing; name one of " + ", ".join(t.value for t in Task))
        # CLI YAML writes image_classification; REST JSON ImageClassification; the runtime
        # image-classification. All three mean the same task.
        normalized = _snake(str(value)).replace("-", "_")
        try:
            return Task(normalized)
        except ValueError:
            pass
        if normalized in _NON_IMAGE_TASKS:
            message = (f"'{value}' is an Azure AutoML task for tabular or text data; kubevision imports "
                       "image tasks only: ")
        else:
            message = f"'{value}' is not an AutoML image task; expected one of "
        raise self.fail(("task",), message + ", ".join(t.value for t in Task))

    def metadata(self, doc: Mapping[str, Any], *, name: str | None, default_name: str) -> dict[str, Any]:
        raw_name = name if name is not None else doc.get("name")
        apath: AzurePath = () if name is not None else ("name",)
        if raw_name is None or str(raw_name).strip() == "":
            raw_name, apath = default_name, ()
        safe = _dns_label(str(raw_name))
        if safe != str(raw_name):
            where = "--name" if name is not None else ("name" if apath else "the file name")
            self.notes.append(f"{where}: '{raw_name}' became metadata.name '{safe}' "
                              "(Kubernetes names are lowercase DNS-1123 labels of at most 63 characters)")
        metadata: dict[str, Any] = {"name": safe}
        self.origins[("metadata", "name")] = apath
        labels: dict[str, str] = {}
        annotations: dict[str, str] = {}
        if doc.get("display_name") is not None:
            annotations["kubevision.io/display-name"] = str(doc["display_name"])
        if doc.get("experiment_name") is not None:
            experiment = str(doc["experiment_name"])
            if _is_label_value(experiment):
                labels["kubevision.io/experiment"] = experiment
            else:
                annotations["kubevision.io/experiment"] = experiment
        if doc.get("description") is not None:
            annotations["kubevision.io/description"] = str(doc["description"])
        tags = doc.get("tags")
        if tags is not None:
            self.tags(tags, labels, annotations)
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations
        return metadata

    def tags(self, tags: Any, labels: dict[str, str], annotations: dict[str, str]) -> None:
        if not isinstance(tags, Mapping):
            self.problem(("tags",), f"expected a mapping of tag names to values, found {_kind(tags)}")
            return
        leftovers: dict[str, str] = {}
        for key, raw in tags.items():
            value = _tag_text(raw)
            if _is_label_key(str(key)) and _is_label_value(value):
                labels[str(key)] = value
            elif _is_label_key(str(key)):
                annotations[str(key)] = value
            else:
                leftovers[str(key)] = value
        if leftovers:
            annotations["kubevision.io/azure-tags"] = json.dumps(leftovers, sort_keys=True)
            self.note(("tags",), f"{', '.join(sorted(leftovers))}: not valid Kubernetes label or annotation "
                      "keys; kept as JSON in the annotation kubevision.io/azure-tags")

    # -- top-level keys ------------------------------------------------------------------------------

    def compute(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        self.note((key,), f"'{value}' dropped; kubevision runs trials on this machine or as pods of your "
                  "Kubernetes cluster (choose nodes with spec.resources: gpusPerNode, nodeSelector, "
                  "tolerations)")

    def log_verbosity(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        self.note((key,), f"'{value}' dropped; kubevision jobs have no log level setting")

    def primary_metric(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        # REST spells it MeanAveragePrecision; our API takes the snake_case metric name.
        metric = _snake(str(value)) if isinstance(value, str) else value
        if isinstance(metric, str) and metric.replace("_", "") == PRIMARY_METRIC[task].replace("_", ""):
            metric = PRIMARY_METRIC[task]
        self.put(spec, ("spec",), "primaryMetric", metric, (key,))

    def target_column(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        self.put(spec, ("spec",), "targetColumnName", value, (key,))

    def validation_data_size(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        self.put(spec, ("spec",), "validationDataSize", value, (key,))

    def data(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        field = "trainingData" if key == "training_data" else "validationData"
        if isinstance(value, str):
            location: Any = value
            extra: dict[str, Any] = {}
            where: AzurePath = (key,)
        elif isinstance(value, Mapping):
            extra = {str(k): v for k, v in value.items() if k not in ("path", "type", "mode")}
            location = value.get("path")
            where = (key, "path")
            data_type = value.get("type")
            if data_type is not None and str(data_type) != "mltable":
                self.note((key, "type"), f"'{data_type}' dropped; kubevision reads a JSONL file or an "
                          "MLTable folder and tells them apart by the path")
        else:
            self.problem((key,), f"expected {{path: ..., type: mltable}}, found {_kind(value)}")
            return
        for extra_key in extra:
            self.note((key, extra_key), "dropped; not a data setting kubevision uses")
        if not isinstance(location, str) or not location:
            self.problem(where, "missing the path of the MLTable folder or JSONL file")
            return
        self.put(spec, ("spec",), field, self.data_location(location, where), where)

    def data_location(self, location: str, apath: AzurePath) -> dict[str, str]:
        if location.lower().startswith("azureml:"):
            # kubevision cannot resolve Azure assets, and `validate` rejects azureml: URIs; point the
            # job where the download will land so the result is valid and the next step is obvious.
            name, selector = _azureml_asset(location)
            local = f"data/{name}"
            how = (f"`az ml data download --name {name} {selector} --download-path data`" if selector
                   else "the Azure ML studio, `az ml data download` or `azcopy`")
            self.note(apath, f"'{location}' is an Azure ML data location, which kubevision cannot "
                      f"resolve; the imported job reads {local} instead. Download the data with {how}, "
                      "then point `path` at the MLTable folder or JSONL file (or `uri` at storage the "
                      "trials can read, such as a PVC mount)")
            return {"path": local}
        match = _URL_SCHEME.match(location)
        if match:
            scheme = match.group(1).lower()
            if scheme == "file":
                return {"path": location[len("file://"):]}
            if scheme in ("wasb", "wasbs", "abfs", "abfss", "adl"):
                self.note(apath, f"'{location}' is Azure storage; trials need read access to it (credentials "
                          "in the trial pods), or copy the data next to the job and use `path`")
            return {"uri": location}
        # A local path is relative to the Azure job's folder, and so is a kubevision job's: keep it.
        return {"path": location}

    def limits(self, spec: dict[str, Any], key: str, value: Any, task: Task, apath: AzurePath = ()) -> None:
        apath = apath or (key,)
        if not isinstance(value, Mapping):
            self.problem(apath, f"expected a mapping, found {_kind(value)}")
            return
        limits: dict[str, Any] = spec.setdefault("limits", {})
        known = ("timeout_minutes", "max_trials", "max_concurrent_trials", "trial_timeout_minutes")
        for name, item in value.items():
            name = str(name)
            if name in known:
                if to_camel(name) in limits:
                    self.note((*apath, name), "also set elsewhere in the job; this value wins")
                self.put(limits, ("spec", "limits"), to_camel(name), item, (*apath, name))
            else:
                self.note((*apath, name), "not a limit of AutoML image jobs; dropped")
        if not limits:
            del spec["limits"]

    def training_parameters(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        if not isinstance(value, Mapping):
            self.problem((key,), f"expected a mapping of hyperparameters, found {_kind(value)}")
            return
        params: dict[str, Any] = {}
        mpath = ("spec", "trainingParameters")
        for raw_name, item in value.items():
            name = str(raw_name)
            apath: AzurePath = (key, name)
            if name in _SPLIT_NAMES:
                self.split_ratio(spec, item, apath)
            elif name == "advanced_settings":
                settings = self.advanced_settings(item, apath)
                if settings is not None:
                    self.put(params, mpath, "advancedSettings", settings, apath)
            elif name in ("checkpoint_run_id", "checkpoint_dataset_id", "checkpoint_filename"):
                self.note(apath, f"'{item}' refers to an Azure run or dataset, which kubevision cannot "
                          "fetch; dropped. Download the model and set spec.checkpoint.modelUri to "
                          "continue training from it")
            elif name == "checkpoint_model":
                self.checkpoint_model(spec, item, apath)
            else:
                self.put(params, mpath, self.parameter_name(name, apath), item, apath)
        if params:
            spec["trainingParameters"] = params

    def split_ratio(self, spec: dict[str, Any], value: Any, apath: AzurePath) -> None:
        if "validationDataSize" in spec:
            self.note(apath, "ignored; validation_data_size is also set and wins")
            return
        self.note(apath, "v1/runtime name of the hold-out fraction; imported as spec.validationDataSize")
        self.put(spec, ("spec",), "validationDataSize", value, apath)

    def advanced_settings(self, value: Any, apath: AzurePath) -> dict[str, Any] | None:
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as err:
                self.problem(apath, f"not valid JSON ({err.msg}: line {err.lineno}, column {err.colno}); "
                             "advanced_settings is a JSON object written as a string, e.g. "
                             "'{\"apply_mosaic_for_yolo\": false}'")
                return None
        else:
            parsed = value
        if not isinstance(parsed, Mapping):
            self.problem(apath, f"expected a JSON object of settings, found {_kind(parsed)}")
            return None
        return {to_camel(str(k)): v for k, v in parsed.items()}

    def checkpoint_model(self, spec: dict[str, Any], value: Any, apath: AzurePath) -> None:
        uri = value.get("path") if isinstance(value, Mapping) else value
        if not isinstance(uri, str) or not uri:
            self.problem(apath, "expected {type: mlflow_model, path: ...}")
            return
        if uri.lower().startswith("azureml:"):
            self.note(apath, f"'{uri}' is an Azure ML model, which kubevision cannot fetch; dropped. "
                      "Download it (`az ml model download`) and set spec.checkpoint.modelUri to the "
                      "MLflow model folder")
            return
        self.put(spec, ("spec",), "checkpoint", {"modelUri": uri}, apath)
        self.origins[("spec", "checkpoint", "modelUri")] = apath

    def parameter_name(self, name: str, apath: AzurePath) -> str:
        """The camelCase API name of an Azure hyperparameter (SDK, runtime or v1 spelling).

        A name none of the tables knows is camelCased anyway, so validation names it (with a
        spelling suggestion) instead of the import dropping it.
        """
        if name in SDK_TO_CAMEL:
            return SDK_TO_CAMEL[name]
        old = RT_TO_CAMEL.get(name) or V1_PARAMETER_NAMES.get(name)
        if old is not None and old != to_camel(name):
            self.note(apath, f"Azure runtime/v1 spelling; imported as {old}")
            return old
        return to_camel(name)

    def sweep(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        if not isinstance(value, Mapping):
            self.problem((key,), f"expected a mapping, found {_kind(value)}")
            return
        sweep: dict[str, Any] = {}
        mpath = ("spec", "sweep")
        for raw_name, item in value.items():
            name = str(raw_name)
            apath: AzurePath = (key, name)
            if name == "limits":
                # Older Azure examples nest max_trials/max_concurrent_trials under sweep.limits.
                self.limits(spec, name, item, task, apath)
            elif name == "sampling_algorithm":
                self.put(sweep, mpath, "samplingAlgorithm", self.sampling_algorithm(item, apath), apath)
            elif name == "early_termination":
                policy = self.early_termination(item, apath)
                if policy is not None:
                    self.put(sweep, mpath, "earlyTermination", policy, apath)
            else:
                self.note(apath, "not a sweep setting kubevision knows; dropped")
        if sweep:
            spec["sweep"] = sweep

    def sampling_algorithm(self, value: Any, apath: AzurePath) -> Any:
        if isinstance(value, Mapping):  # SDK form {type: random, seed: 1, rule: sobol}
            for extra in value:
                if extra != "type":
                    self.note((*apath, str(extra)), "dropped; kubevision's samplers take no such option")
            value = value.get("type")
        # The SDK accepts "Random", "RANDOM" and "random" alike.
        return _snake(value) if isinstance(value, str) else value

    def early_termination(self, value: Any, apath: AzurePath) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problem(apath, f"expected {{type: bandit|median_stopping|truncation_selection, ...}}, "
                         f"found {_kind(value)}")
            return None
        policy: dict[str, Any] = {}
        mpath = ("spec", "sweep", "earlyTermination")
        for raw_name, item in value.items():
            name = str(raw_name)
            if name == "type" and isinstance(item, str):
                # REST/SDK spellings: Bandit, BanditPolicy, MedianStopping, truncation_selection.
                item = re.sub(r"_?policy$", "", _snake(item))
            self.put(policy, mpath, to_camel(name), item, (*apath, name))
        return policy

    def search_space(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, list):
            self.problem((key,), f"expected a list of sub-spaces, found {_kind(value)}")
            return
        spaces: list[dict[str, Any]] = []
        for index, subspace in enumerate(value):
            apath: AzurePath = (key, index)
            if not isinstance(subspace, Mapping):
                self.problem(apath, "expected a mapping of hyperparameter distributions, found "
                             + _kind(subspace))
                continue
            converted: dict[str, Any] = {}
            mpath = ("spec", "searchSpace", index)
            for raw_name, item in subspace.items():
                name = str(raw_name)
                camel = self.parameter_name(name, (*apath, name))
                distribution = self.distribution(item, (*apath, name))
                if distribution is not None:
                    self.put(converted, mpath, camel, distribution, (*apath, name))
                    for sub in distribution:
                        # a function-call string has no sub-keys to point at: the whole value it is
                        sub_apath = (*apath, name, _snake_key(sub)) if isinstance(item, Mapping) else ()
                        self.origins[(*mpath, camel, sub)] = sub_apath or (*apath, name)
            spaces.append(converted)
        spec["searchSpace"] = spaces

    def distribution(self, value: Any, apath: AzurePath) -> dict[str, Any] | None:
        if isinstance(value, Mapping):
            out = {to_camel(str(k)): v for k, v in value.items()}
            if isinstance(out.get("type"), str):
                out["type"] = _snake(out["type"])
            return _ordered(out, _DISTRIBUTION_ORDER)
        if isinstance(value, str):
            call = _parse_call(value)
            if call is not None:
                function, args, kwargs = call
                return self.call_distribution(function, args, kwargs, value, apath)
            # A bare value in a sub-space (Azure's examples write `model_name: "yolov5"`) is fixed.
            return {"type": "choice", "values": [value]}
        if isinstance(value, list):
            return {"type": "choice", "values": list(value)}
        if value is None:
            self.problem(apath, "empty; expected a distribution such as {type: choice, values: [...]}")
            return None
        return {"type": "choice", "values": [value]}

    def call_distribution(self, function: str, args: list[Any], kwargs: dict[str, Any], text: str,
                          apath: AzurePath) -> dict[str, Any] | None:
        names = _DISTRIBUTION_ARGS.get(function)
        if names is None:
            self.problem(apath, f"'{text}': unknown distribution '{function}'; expected one of "
                         + ", ".join(_DISTRIBUTION_ARGS))
            return None
        if function == "choice":
            # choice(1, 2), choice([1, 2]) and choice(values=[1, 2]) are all in use.
            if kwargs:
                values = kwargs.pop("values", None)
            elif len(args) == 1 and isinstance(args[0], list):
                values = args[0]
            else:
                values = args
            if kwargs or values is None:
                self.problem(apath, f"'{text}': expected choice(value, ...) or choice(values=[...])")
                return None
            return {"type": "choice", "values": list(values)}
        if len(args) > len(names) or set(kwargs) - set(names):
            self.problem(apath, f"'{text}': {function} takes ({', '.join(names)})")
            return None
        params = dict(zip(names, args, strict=False)) | kwargs
        missing = [n for n in names if n not in params]
        if missing:
            self.problem(apath, f"'{text}': {function} needs {', '.join(missing)}")
            return None
        return {"type": function} | {to_camel(n): params[n] for n in names}

    def properties(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        if not isinstance(value, Mapping):
            self.problem((key,), f"expected a mapping, found {_kind(value)}")
            return
        for raw_name, item in value.items():
            name = str(raw_name)
            apath: AzurePath = (key, name)
            if name == "node_count_per_trial":
                try:
                    count = int(str(item).strip())
                except ValueError:
                    self.problem(apath, f"'{item}' is not a whole number of nodes")
                    continue
                resources = spec.setdefault("resources", {})
                self.put(resources, ("spec", "resources"), "nodeCountPerTrial", count, apath)
            elif name == "enable_automode":
                self.note(apath, "dropped; in kubevision AutoMode is simply maxTrials > 1 with no "
                          "searchSpace and no sweep")
            else:
                self.note(apath, "Azure job property kubevision does not use; dropped")

    def resources(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        if not isinstance(value, Mapping):
            self.note((key,), "dropped")
            return
        for raw_name, item in value.items():
            name = str(raw_name)
            apath: AzurePath = (key, name)
            if name == "instance_count":
                self.note(apath, f"{item} Azure VMs for the whole job; dropped. Trials run in parallel up to "
                          "limits.maxConcurrentTrials; nodes per trial are spec.resources.nodeCountPerTrial")
            elif name == "instance_type":
                self.note(apath, f"'{item}' dropped; request GPUs with spec.resources.gpusPerNode and pick "
                          "node types with spec.resources.nodeSelector")
            else:
                self.note(apath, "Azure compute setting; dropped")

    def outputs(self, spec: dict[str, Any], key: str, value: Any, task: Task) -> None:
        if not isinstance(value, Mapping):
            self.problem((key,), f"expected a mapping of outputs, found {_kind(value)}")
            return
        for raw_name, item in value.items():
            name = str(raw_name)
            apath: AzurePath = (key, name)
            if name != "best_model":
                self.note(apath, "only outputs.best_model exists for AutoML image jobs; dropped")
                continue
            if not isinstance(item, Mapping):
                self.note(apath, "no path given; the best model is written to the job's default output")
                continue
            uri = item.get("path") or item.get("storage_uri")
            for extra in item:
                if extra not in ("type", "path", "storage_uri"):
                    self.note((*apath, str(extra)), "dropped")
            if not uri:
                self.note(apath, "no path given; the best model is written to the job's default output")
                continue
            output_key = "path" if "path" in item else "storage_uri"
            if str(uri).lower().startswith("azureml:"):
                self.note((*apath, output_key), f"'{uri}' is an Azure ML location; dropped, so outputs go "
                          "to the backend's default; set spec.output.uri to a folder, s3://, gs:// or "
                          "pvc:// location to choose")
                continue
            self.put(spec, ("spec",), "output", {"uri": str(uri)}, (*apath, output_key))
            self.origins[("spec", "output", "uri")] = (*apath, output_key)

    # -- validation ----------------------------------------------------------------------------------

    def validate(self, manifest: dict[str, Any]) -> None:
        """Run the result through the same checks as `kubevision validate` (no data check)."""
        try:
            parse_manifest(manifest, source=self.source)
        except KubevisionError as err:
            raise KubevisionError(
                f"{self.source}: the imported job would not be valid in kubevision",
                [self.remap(p) for p in err.problems] or [Problem(err.headline, file=self.source)],
            ) from err

    def remap(self, problem: Problem) -> Problem:
        """Point a problem with the converted manifest at the Azure key it came from."""
        if not problem.field:
            return Problem(problem.message, file=self.source, field=problem.field)
        tokens = _field_tokens(problem.field)
        for end in range(len(tokens), 0, -1):
            apath = self.origins.get(tokens[:end])
            if apath is not None:
                field = f"{_dotted(apath)} (kubevision {problem.field})" if apath else problem.field
                return Problem(problem.message, file=self.source, line=self._line(apath), field=field)
        return Problem(problem.message, file=self.source, field=f"kubevision {problem.field}")


# -- helpers ------------------------------------------------------------------------------------------


def _azureml_asset(location: str) -> tuple[str, str | None]:
    """(name, `az ml` version/label option) of `azureml:<name>:<version>`, `azureml:<name>@<label>`
    or an azureml:// URI (the option is None where the URI names no version)."""
    selector: str | None = None
    if "://" not in location:
        ref = location.split(":", 1)[1]
        if ":" in ref:
            name, version = ref.split(":", 1)
            selector = f"--version {version}"
        elif "@" in ref:
            name, label = ref.split("@", 1)
            selector = f"--label {label}"
        else:
            name = ref
    else:
        parts = [p for p in location.split("://", 1)[1].split("/") if p]
        name = parts[-1] if parts else ""
        for i, part in enumerate(parts[:-1]):
            if part == "data":  # .../data/<name>/versions/<version>
                name = parts[i + 1]
                if i + 3 < len(parts) and parts[i + 2] == "versions":
                    selector = f"--version {parts[i + 3]}"
                break
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "azureml-data"
    return name, selector


def _parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]] | None:
    """Parse "uniform(0.001, 0.01)" / "choice('a', 'b')" into (function, args, kwargs), else None.

    Only literals are evaluated (never code); a bare word inside the call is taken as a string, since
    hand-written jobs say choice(sgd, adam) as often as choice('sgd', 'adam').
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        return None
    try:
        args = [_literal(arg) for arg in call.args]
        kwargs = {kw.arg: _literal(kw.value) for kw in call.keywords if kw.arg is not None}
    except ValueError:
        return None
    return call.func.id.lower(), args, kwargs


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        return list(range(*[int(_literal(a)) for a in node.args]))
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    return ast.literal_eval(node)


def _line_index(text: str) -> dict[AzurePath, int]:
    """Map every key path of a YAML document to its 1-based line, for problems that point into the file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    index: dict[AzurePath, int] = {}

    def walk(node: yaml.Node, path: AzurePath) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    child = (*path, str(key_node.value))
                    index[child] = key_node.start_mark.line + 1
                    walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return index


def _field_tokens(field: str) -> tuple[str | int, ...]:
    """'spec.searchSpace[0].learningRate' or 'spec.searchSpace.0.learningRate' -> path tuple."""
    tokens: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+", field):
        tokens.append(int(part) if part.isdigit() else part)
    return tuple(tokens)


def _dotted(path: AzurePath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _snake(text: str) -> str:
    """MeanAveragePrecision -> mean_average_precision; already snake_case stays; IOU -> iou."""
    text = text.strip()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return text.replace(" ", "_").lower()


def _snake_key(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", camel).lower()


def _dns_label(text: str) -> str:
    """A Kubernetes object name (DNS-1123 label): lowercase alphanumerics and '-', at most 63."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")[:_DNS_LABEL_MAX].rstrip("-")
    return name or "azure-job"


def _is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= _DNS_LABEL_MAX and bool(_LABEL_NAME.match(value)))


def _is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= _DNS_LABEL_MAX and bool(_LABEL_NAME.match(name))


def _tag_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _ordered(mapping: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    first = {k: mapping[k] for k in order if k in mapping}
    return first | {k: v for k, v in mapping.items() if k not in first}


def _ordered_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    out = _ordered(manifest, ("apiVersion", "kind", "metadata", "spec", "status"))
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping):
        out["metadata"] = _ordered(metadata, ("name", "namespace", "labels", "annotations"))
    spec = out.get("spec")
    if isinstance(spec, Mapping):
        spec = _ordered(spec, _SPEC_ORDER)
        spaces = spec.get("searchSpace")
        if isinstance(spaces, list):
            spec["searchSpace"] = [_ordered_subspace(s) for s in spaces]
        out["spec"] = spec
    return out


def _ordered_subspace(subspace: Any) -> Any:
    if not isinstance(subspace, Mapping):
        return subspace
    ordered = _ordered(subspace, ("modelName",))
    return {k: _ordered(v, _DISTRIBUTION_ORDER) if isinstance(v, Mapping) else v for k, v in ordered.items()}


class _BlockDumper(yaml.SafeDumper):
    """Block style, list items indented under their key (as kubectl prints), no anchors/aliases.

    Lists of plain scalars (`values: [15, 30]`) stay on one line, the way Azure's examples and ours
    write choices: twenty one-word lines per search space would bury the structure.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    scalars = all(isinstance(item, str | int | float | bool) or item is None for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=scalars and bool(data))


_BlockDumper.add_representer(list, _represent_list)
