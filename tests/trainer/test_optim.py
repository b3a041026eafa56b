"""Optimizer and learning-rate schedules: hyperparameters in, torch optimizer state and LR curve out."""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import pytest
import torch
from torch import nn

from kubevision.api.errors import KubevisionError
from kubevision.api.hyperparameters import resolve_training_parameters
from kubevision.trainer.optim import build_optimizer, build_scheduler, lr_at


def hp(**overrides: Any) -> dict[str, Any]:
    return resolve_training_parameters("image_classification", None, {"modelName": "resnet18", **overrides})


def tiny() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def step_once(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    optimizer.step()


def test_sgd_takes_the_azure_defaults() -> None:
    params = hp()
    optimizer = build_optimizer(tiny(), params)
    assert type(optimizer) is torch.optim.SGD
    (group,) = optimizer.param_groups
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.01, 0.9, True, 0.0001)


def test_weight_decay_applies_to_biases_and_norms_too() -> None:
    model = tiny()
    optimizer = build_optimizer(model, hp(weightDecay=0.05))
    (group,) = optimizer.param_groups
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}
    assert group["weight_decay"] == 0.05


def test_nesterov_without_momentum_falls_back_to_plain_sgd(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kubevision.trainer.optim"):
        optimizer = build_optimizer(tiny(), hp(momentum=0.0, nesterov=True))
    assert optimizer.param_groups[0]["nesterov"] is False
    assert sum("nesterov needs momentum" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_family_takes_betas_and_amsgrad(name: str, cls: type[torch.optim.Optimizer]) -> None:
    optimizer = build_optimizer(
        tiny(), hp(optimizer=name, learningRate=0.003, beta1=0.8, beta2=0.95, amsGradient=True, weightDecay=0.02)
    )
    assert type(optimizer) is cls
    (group,) = optimizer.param_groups
    assert (group["lr"], group["betas"], group["amsgrad"], group["weight_decay"]) == (0.003, (0.8, 0.95), True, 0.02)


def test_frozen_parameters_are_not_optimized() -> None:
    model = tiny()
    for p in model[0].parameters():
        p.requires_grad = False
    optimizer = build_optimizer(model, hp(optimizer="adamw"))
    optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in list(model[1].parameters()) + list(model[2].parameters())}
    assert not optimized & {id(p) for p in model[0].parameters()}


def test_a_fully_frozen_model_is_a_user_error() -> None:
    model = tiny()
    model.requires_grad_(False)
    with pytest.raises(KubevisionError, match="no trainable parameters") as err:
        build_optimizer(model, hp(layersToFreeze=5))
    assert err.value.problems[0].field == "layersToFreeze"


def drive(params: dict[str, Any], *, steps_per_epoch: int, epochs: int) -> list[float]:
    """The learning rate in effect at the start of each epoch, read from a real optimizer and scheduler."""
    model = tiny()
    optimizer = build_optimizer(model, params)
    scheduler = build_scheduler(optimizer, params, steps_per_epoch=steps_per_epoch, epochs=epochs)
    starts = []
    for _ in range(epochs):
        starts.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            step_once(model, optimizer)
            scheduler.step()
    return starts


def test_warmup_cosine_matches_hand_computed_values() -> None:
    # lr 0.01, 2 warmup epochs of 4 steps (W = 8), 10 epochs (T = 40), 0.45 cycles.
    params = hp(learningRate=0.01, warmupCosineLrWarmupEpochs=2, warmupCosineLrCycles=0.45)
    expected = {
        0: 0.0,  # warmup starts at 0
        1: 0.01 * 4 / 8,
        2: 0.01,  # warmup done, cosine at phase 0
        6: 0.01 * 0.5 * (1 + math.cos(math.pi * 0.45 * 2 * (24 - 8) / 32)),  # = 0.01 * 0.578217
        9: 0.01 * 0.5 * (1 + math.cos(math.pi * 0.45 * 2 * (36 - 8) / 32)),
    }
    assert expected[6] == pytest.approx(0.00578217, rel=1e-5)
    starts = drive(params, steps_per_epoch=4, epochs=10)
    for epoch, value in expected.items():
        assert lr_at(params, epoch, 4, 10) == pytest.approx(value, abs=1e-12)
        assert starts[epoch] == pytest.approx(value, abs=1e-12)
    assert starts == pytest.approx([lr_at(params, e, 4, 10) for e in range(10)], abs=1e-12)


def test_warmup_cosine_without_warmup_starts_at_full_rate_and_half_cycle_ends_at_zero() -> None:
    params = hp(learningRate=0.02, warmupCosineLrWarmupEpochs=0, warmupCosineLrCycles=0.5)
    assert lr_at(params, 0, 3, 5) == pytest.approx(0.02)
    assert lr_at(params, 5, 3, 5) == pytest.approx(0.0, abs=1e-15)  # step T: progress 1, cos(pi) = -1


def test_step_schedule_decays_every_step_size_epochs() -> None:
    params = hp(learningRateScheduler="step", learningRate=0.01, stepLrGamma=0.5, stepLrStepSize=3)
    starts = drive(params, steps_per_epoch=4, epochs=8)
    assert starts == pytest.approx([0.01] * 3 + [0.005] * 3 + [0.0025] * 2)
    assert [lr_at(params, e, 4, 8) for e in range(8)] == pytest.approx(starts)


def test_step_schedule_changes_at_the_epoch_boundary_not_inside() -> None:
    params = hp(learningRateScheduler="step", learningRate=1.0, stepLrGamma=0.1, stepLrStepSize=1)
    model = tiny()
    optimizer = build_optimizer(model, params)
    scheduler = build_scheduler(optimizer, params, steps_per_epoch=3, epochs=2)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        step_once(model, optimizer)
        scheduler.step()
    assert seen == pytest.approx([1.0, 1.0, 1.0, 0.1])


@pytest.mark.parametrize("scheduler_name", ["warmup_cosine", "step"])
def test_state_dict_round_trip_continues_identically(scheduler_name: str) -> None:
    params = hp(optimizer="adamw", learningRateScheduler=scheduler_name, stepLrStepSize=1)

    def fresh(epochs: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        model = tiny()
        optimizer = build_optimizer(model, params)
        return model, optimizer, build_scheduler(optimizer, params, steps_per_epoch=5, epochs=epochs)

    model, optimizer, scheduler = fresh(4)
    torch.manual_seed(1)
    for _ in range(7):
        step_once(model, optimizer)
        scheduler.step()
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        buffer,
    )
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # numbers and tensors only

    # The resumed run is built for another epoch count: the saved schedule wins, as a resume must.
    resumed_model, resumed_optimizer, resumed_scheduler = fresh(40)
    resumed_model.load_state_dict(saved["model"])
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed_scheduler.load_state_dict(saved["scheduler"])

    original_lrs: list[float] = []
    resumed_lrs: list[float] = []
    for run_model, run_optimizer, run_scheduler, lrs in (
        (model, optimizer, scheduler, original_lrs),
        (resumed_model, resumed_optimizer, resumed_scheduler, resumed_lrs),
    ):
        torch.manual_seed(2)
        for _ in range(10):
            lrs.append(run_optimizer.param_groups[0]["lr"])
            step_once(run_model, run_optimizer)
            run_scheduler.step()
    assert resumed_lrs == original_lrs
    assert len(set(original_lrs)) > 1  # the schedule actually moved
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_unknown_names_are_user_errors() -> None:
    params = hp()
    with pytest.raises(KubevisionError, match="unknown optimizer"):
        build_optimizer(tiny(), {**params, "optimizer": "rmsprop"})
    with pytest.raises(KubevisionError, match="unknown learning-rate scheduler"):
        lr_at({**params, "learningRateScheduler": "onecycle"}, 0, 1, 1)
