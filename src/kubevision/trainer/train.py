"""The trial program: one trial of image classification, from a TrialConfig to exported outputs.

Why one orchestrating module: the pieces (data pipeline, model registry, optimizer and schedule,
early stopping, checkpointing, reporting, export) each live in a small module with its own tests;
this file only puts them in the order reference section 7 prescribes and decides what survives a
crash. Both backends run exactly this (the local runner as a subprocess, Katib in a PyTorchJob).

Output layout (DESIGN.md), all written by global rank 0:
  <output>/metrics.jsonl        one record per validation (the same as the Katib stdout line)
  <output>/checkpoints/         last.pt (resume), best.pt (best-epoch weights), epoch_<n>.pt
  <output>/mlflow-model/        MLmodel, artifacts/{model.pt, settings.json}, labels.json
  <output>/model.onnx, labels.json
  <output>/summary.json         status, best epoch and metrics, per-class report, confusion matrix

Restarting a trial on the same output dir (pod rescheduled, preemption, kill -9) resumes from
checkpoints/last.pt and finishes the planned epochs; a finished trial is not trained again.

The output may be an object-store URI (`--output s3://bucket/.../trials/t7`): the trial then writes
the same layout in a node-local staging folder that `remote` downloads the resume state into before
training and uploads after every checkpoint and at the end (see kubevision.trainer.remote).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn

from kubevision.api.errors import KubevisionError
from kubevision.api.tasks import Task
from kubevision.api.trial import TrialConfig
from kubevision.trainer import checkpoint as ckpt
from kubevision.trainer import remote
from kubevision.trainer.data import build_datasets, build_loaders, check_bad_images
from kubevision.trainer.distributed import DistributedContext, init_distributed, shutdown
from kubevision.trainer.early_stopping import EarlyStopper
from kubevision.trainer.engine import amp_settings, clip_for_model, evaluate, train_one_epoch
from kubevision.trainer.entry import check_hyperparameters
from kubevision.trainer.export import write_model_artifacts
from kubevision.trainer.freezing import freeze_layers
from kubevision.trainer.loss import build_loss
from kubevision.trainer.metrics import (
    classification_report,
    confusion_matrix,
    multiclass_metrics,
    multilabel_confusion_matrix,
    multilabel_metrics,
)
from kubevision.trainer.models import build_classifier, extract_state_dict, load_intersecting
from kubevision.trainer.optim import build_optimizer, build_scheduler
from kubevision.trainer.reporting import MetricsReporter, TerminationClient

__all__ = ["run_trial"]

log = logging.getLogger("kubevision.train")

# Azure's runtime seeds distributed trials with 47 when no randomSeed is given, so every rank agrees
# on the validation split; we use it for the split of every trial, distributed or not, so that a
# resumed trial validates on the same images.
DEFAULT_SPLIT_SEED = 47


@dataclass
class _Stop:
    """Set by SIGTERM/SIGINT: finish the current epoch, checkpoint, export the best model, exit."""

    requested: bool = False
    signal_name: str = ""

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@dataclass
class _Best:
    epoch: int = 0
    score: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)


def run_trial(config: TrialConfig) -> int:
    """Run one trial; returns the process exit code (0 = finished, early-stopped or terminated)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = init_distributed(config.runtime.device)
    try:
        return _run(config, ctx)
    finally:
        shutdown(ctx)


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # Deterministic kernels where they exist; warn_only keeps ops without one usable.
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = False


def _incremental_weights(config: TrialConfig, model: nn.Module, model_name: str) -> None:
    """Start from an earlier model (checkpoint.modelUri / --checkpoint): same model, any class head."""
    uri = config.checkpoint_model_uri
    if not uri:
        return
    path = remote.fetch_model(uri) if remote.is_uri(uri) else Path(uri)
    for candidate in (path / "artifacts" / "model.pt", path / "mlflow-model" / "artifacts" / "model.pt"):
        if path.is_dir() and candidate.is_file():
            path = candidate
            break
    if path.is_dir():
        raise KubevisionError(f"checkpoint {uri}: no model.pt found (expected an mlflow-model folder or model.pt)")
    if not path.is_file():
        raise KubevisionError(f"checkpoint {uri}: file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file is a user problem, not a crash
        raise KubevisionError(f"checkpoint {uri}: cannot read {path}: {err}") from None
    earlier = raw.get("model_name") if isinstance(raw, Mapping) else None
    if earlier is not None and earlier != model_name:
        raise KubevisionError(
            f"checkpoint {uri} is a {earlier} model but this trial trains {model_name}; "
            "incremental training needs the same modelName"
        )
    report = load_intersecting(model, extract_state_dict(raw, source=str(path)), source=str(path))
    log.info("incremental training: %s", report.summary(str(path)))


def _build_model(config: TrialConfig, hp: Mapping[str, Any], num_classes: int) -> nn.Module:
    model_name = str(hp["modelName"])
    weights = hp.get("pretrainedWeights")
    model = build_classifier(
        model_name, num_classes, pretrained_weights=str(weights) if weights else None,
        image_size=int(hp["trainingCropSize"]),
    )
    _incremental_weights(config, model, model_name)
    frozen = freeze_layers(model, model_name, int(hp.get("layersToFreeze") or 0))
    if frozen:
        log.info("frozen layers: %s", ", ".join(frozen))
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, nn.Module) else model


def _metrics(task: Task, probs: np.ndarray, targets: np.ndarray, classes: list[str]) -> dict[str, float]:
    if task == Task.IMAGE_CLASSIFICATION_MULTILABEL:
        return multilabel_metrics(targets, probs, classes)
    return multiclass_metrics(targets, probs, classes)


def _run(config: TrialConfig, ctx: DistributedContext) -> int:
    hp = check_hyperparameters(config)
    # A URI output: every node's first process fetches the remote resume state into its staging folder.
    output = remote.open_output(config.output_dir, writer=ctx.is_main, pull=ctx.local_rank == 0)
    ctx.barrier()
    out = output.local_dir
    if ctx.is_main:
        ckpt.check_writable(out)
    task = Task(config.task)
    multilabel = task == Task.IMAGE_CLASSIFICATION_MULTILABEL
    if task not in (Task.IMAGE_CLASSIFICATION, Task.IMAGE_CLASSIFICATION_MULTILABEL):
        raise KubevisionError(f"the trial program trains classification tasks so far; got task {task.value}")

    seed = hp.get("randomSeed")
    split_seed = int(seed) if seed is not None else DEFAULT_SPLIT_SEED
    # Shuffling and augmentation: the user's seed, else a fresh one drawn by rank 0 and shared, since
    # every rank must agree; it is stored in the checkpoint so a resumed trial continues the same run.
    run_seed = int(seed) if seed is not None else int(ctx.broadcast_object(random.SystemRandom().randrange(2**31)))
    previous_state = ckpt.load_training_state(out)
    if previous_state is not None and "run_seed" in previous_state:
        run_seed = int(previous_state["run_seed"])
    _seed_everything(run_seed + ctx.rank, seed is not None)

    bundle = build_datasets(config, hp, seed=split_seed)
    loaders = build_loaders(bundle, hp, ctx, runtime=config.runtime, seed=run_seed)
    classes = list(bundle.classes)
    model = _build_model(config, hp, len(classes)).to(ctx.device)
    channels_last = ctx.device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if ctx.world_size > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    loss_setup = build_loss(task.value, hp, bundle.class_counts, num_images=len(bundle.train))
    if loss_setup.weighted or hp.get("weightedLoss"):
        log.info("loss: %s", loss_setup.reason)
    loss_fn = loss_setup.fn.to(ctx.device)
    epochs = int(hp["numberOfEpochs"])
    accumulation = int(hp["gradientAccumulationStep"])
    steps_per_epoch = max(1, math.ceil(len(loaders.train) / accumulation))
    optimizer = build_optimizer(model, hp)
    scheduler = build_scheduler(optimizer, hp, steps_per_epoch=steps_per_epoch, epochs=epochs)
    amp = amp_settings(ctx.device, config.runtime.amp)
    scaler = torch.amp.GradScaler("cuda") if amp.use_scaler else None
    clip = clip_for_model(str(hp["modelName"]))
    stopper = EarlyStopper(bool(hp["earlyStopping"]), int(hp["earlyStoppingPatience"]), int(hp["earlyStoppingDelay"]))
    reporter = MetricsReporter(out, config.primary_metric, enabled=ctx.is_main)
    terminator = TerminationClient(config.early_termination if ctx.is_main else None, config.trial_name)
    eval_every = int(hp["evaluationFrequency"])
    checkpoint_every = hp.get("checkpointFrequency")

    best = _Best()
    start_epoch = 1
    state = previous_state
    status = "completed"
    if state is not None:
        if state.get("status") in ("completed", "early_stopped", "early_terminated"):
            log.info("trial already finished (%s); nothing to do", state["status"])
            if ctx.is_main:
                output.push_all()  # what an earlier run could not upload
            return 0
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        stopper.load_state_dict(state["early_stopping"])
        ckpt.restore_rng_state(state["rng"])
        best = _Best(int(state["best_epoch"]), float(state["best_score"]), dict(state.get("best_metrics", {})))
        start_epoch = int(state["epoch"]) + 1
        reporter.forget_from(start_epoch)
        log.info("resuming from %s at epoch %d of %d", out / "checkpoints" / "last.pt", start_epoch, epochs)

    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    seen_images = bad_images = 0
    started = time.monotonic()
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, epochs + 1):
            if loaders.train_sampler is not None:
                loaders.train_sampler.set_epoch(epoch)
            model.train()
            stats = train_one_epoch(
                model, loaders.train, optimizer, scheduler, loss_fn, ctx=ctx, amp=amp, scaler=scaler,
                grad_accumulation=accumulation, clip=clip, epoch=epoch, channels_last=channels_last,
            )
            seen_images += stats.images + stats.bad_images
            bad_images += stats.bad_images
            check_bad_images(bad_images, seen_images, config.runtime.max_bad_image_fraction)

            stop_now = False
            if epoch % eval_every == 0 or epoch == epochs:
                model.eval()
                result = evaluate(model, loaders.val, loss_fn, ctx=ctx, amp=amp, multilabel=multilabel,
                                  channels_last=channels_last)
                bad_images += result.bad_images
                metrics = _metrics(task, result.probs, result.targets, classes)
                metrics["log_loss_train"] = stats.loss
                metrics["learning_rate"] = stats.lr
                score = metrics.get(config.primary_metric, float("nan"))
                # Azure counts epochs from 0 in its early-stopping delay (reference 7); ours start at 1.
                decision = stopper.update(epoch - 1, score)
                if decision.is_best:
                    best = _Best(epoch, score, dict(metrics))
                    if ctx.is_main:
                        ckpt.save_best_weights(out, _unwrap(model).state_dict())
                reporter.report(epoch, metrics, {"seconds": round(stats.seconds, 3), "images": stats.images})
                if decision.stop:
                    status = "early_stopped"
                    stop_now = True
                elif terminator.should_stop(epoch, score):
                    status = "early_terminated"
                    stop_now = True
                stop_now = bool(ctx.broadcast_object(stop_now))
                status = str(ctx.broadcast_object(status))
            if stop.requested and not stop_now:
                status, stop_now = "interrupted", True
            if ctx.is_main:
                ckpt.save_training_state(
                    out,
                    {
                        "model": _unwrap(model).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler is not None else {},
                        "epoch": epoch,
                        "best_score": best.score,
                        "best_epoch": best.epoch,
                        "best_metrics": best.metrics,
                        "early_stopping": stopper.state_dict(),
                        "rng": ckpt.capture_rng_state(),
                        "config": {k: v for k, v in hp.items() if isinstance(v, str | int | float | bool)},
                        "classes": classes,
                        "status": "running",
                        "run_seed": run_seed,
                    },
                    epoch_copy=bool(checkpoint_every) and epoch % int(checkpoint_every or 1) == 0,
                )
                output.push_checkpoint()
            if stop_now:
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

    if status == "interrupted":
        log.warning("stopped by %s after epoch %d; rerun on the same output dir to resume", stop.signal_name, epoch)
    _finish(config, ctx, output, model, loaders, loss_fn, amp, multilabel, task, classes, hp, best, status, epoch,
            time.monotonic() - started, bad_images)
    return 0


def _finish(config: TrialConfig, ctx: DistributedContext, output: remote.TrialOutput, model: nn.Module,
            loaders: Any, loss_fn: nn.Module, amp: Any, multilabel: bool, task: Task, classes: list[str],
            hp: Mapping[str, Any], best: _Best, status: str, last_epoch: int, seconds: float,
            bad_images: int) -> None:
    """Best weights back in, the detailed report on them, the model exported, summary.json written."""
    out = output.local_dir
    if output.is_remote and ctx.is_distributed:
        # Only rank 0's node has the current best.pt (other nodes' staging copies are from the start).
        best_weights = ctx.broadcast_object(ckpt.load_best_weights(out) if ctx.is_main else None)
    else:
        best_weights = ckpt.load_best_weights(out)
    if best_weights is not None:
        _unwrap(model).load_state_dict(best_weights)
    model.eval()
    channels_last = ctx.device.type == "cuda"
    result = evaluate(model, loaders.val, loss_fn, ctx=ctx, amp=amp, multilabel=multilabel, channels_last=channels_last)
    if not ctx.is_main:
        return
    report = classification_report(result.targets, result.probs, classes, multilabel)
    matrix: Any = (multilabel_confusion_matrix(result.targets, result.probs, 0.5) if multilabel
                   else confusion_matrix(result.targets, result.probs))
    export = write_model_artifacts(
        out, model=_unwrap(model), model_name=str(hp["modelName"]), task=task.value, classes=classes, hp=hp,
        metrics=best.metrics, epoch=best.epoch, training_run_id=config.trial_name, onnx=config.runtime.export_onnx,
    )
    summary = {
        "trial": config.trial_name,
        "status": status,
        "primary_metric": config.primary_metric,
        "best_epoch": best.epoch,
        "best_score": best.score,
        "epochs_run": last_epoch,
        "epochs_planned": int(hp["numberOfEpochs"]),
        "metrics": best.metrics,
        "classification_report": report,
        "confusion_matrix": matrix,
        "classes": classes,
        "hyperparameters": dict(hp),
        "bad_images": bad_images,
        "train_duration_seconds": round(seconds, 3),
        "model_dir": output.location(export.mlflow_model_dir),
    }
    ckpt.atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    if status != "interrupted":  # an interrupted trial resumes on restart; a finished one does not rerun
        ckpt.mark_finished(out, status)
    output.push_all()
    # "best accuracy 0.91", never "accuracy=0.91": Katib's collector would take it for an observation.
    log.info("trial %s %s: best %s %.4f at epoch %d; model in %s", config.trial_name, status,
             config.primary_metric, best.score, best.epoch, output.location(export.mlflow_model_dir))
