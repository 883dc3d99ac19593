"""The training loop: compose a batch, augment two views on the device, step the optimiser.

The loop knows no objective by name: it asks the objective for its batch recipe and its loss.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Literal, overload

import torch
from torch import nn

from anobench import distributed
from anobench.augment import BatchAugmenter
from anobench.batches import BatchComposer
from anobench.checkpoint import Checkpoint
from anobench.config import TrainConfig
from anobench.device import autocast, memory_format
from anobench.errors import AnobenchError
from anobench.models import ContrastiveModel
from anobench.objectives import Objective, StepOutputs


class TrainingError(AnobenchError):
    """Training diverged (a non-finite loss)."""


@dataclass(frozen=True)
class StepInfo:
    """Progress of the loop after one step, for progress displays."""

    step: int
    total_steps: int
    loss: float
    images_per_s: float


@dataclass
class TrainResult:
    """What a training run produced besides the model.

    Attributes:
        steps: Optimiser steps taken.
        epoch_losses: Mean loss of each (possibly partial, the last) epoch.
        wall_s: Training wall time in seconds.
        images_per_s: Augmented images (samples x 2 views) processed per second.
        eval_history: ``(step, metrics)`` of every evaluation made during training.
        resumed_from_step: The step a checkpoint resumed the run from (0: a fresh start).
        loss_since_last_eval: Mean loss of the steps after the last evaluation (all steps
            without one; NaN if none).
    """

    steps: int
    epoch_losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    images_per_s: float = 0.0
    eval_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    resumed_from_step: int = 0
    loss_since_last_eval: float = math.nan


ONE_CYCLE_DIV = 25.0
ONE_CYCLE_FINAL_DIV = 1e4


def one_cycle_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Learning-rate multiplier of the OneCycle schedule (cosine warm-up, then cosine decay).

    The shape of ``torch.optim.lr_scheduler.OneCycleLR`` with its defaults (start at
    lr/25, peak lr after ``warmup_fraction`` of the steps, end at lr/(25 * 1e4)), written out so
    that any number of steps works (OneCycleLR divides by zero for some short runs).
    """
    start, end = 1.0 / ONE_CYCLE_DIV, 1.0 / (ONE_CYCLE_DIV * ONE_CYCLE_FINAL_DIV)
    warmup = warmup_fraction * total_steps

    def cosine(a: float, b: float, fraction: float) -> float:
        return b + (a - b) * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))) / 2.0

    if step < warmup:
        return cosine(start, 1.0, step / warmup)
    return cosine(1.0, end, (step - warmup) / max(total_steps - warmup, 1e-9))


def make_optimizer(
    params: list[torch.nn.Parameter], cfg: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with momentum and weight decay under the OneCycle schedule, as in the paper."""
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: one_cycle_factor(step, total_steps, cfg.warmup_fraction)
    )
    return optimizer, scheduler


def train(
    model: ContrastiveModel | nn.Module,
    objective: Objective,
    composer: BatchComposer,
    augmenter: BatchAugmenter,
    cfg: TrainConfig,
    total_steps: int,
    steps_per_epoch: int,
    generator: torch.Generator,
    on_step: Callable[[StepInfo], None] | None = None,
    checkpoint: Checkpoint | None = None,
    evaluate: Callable[[float], dict[str, float]] | None = None,
    eval_steps: Collection[int] = (),
) -> TrainResult:
    """Train ``model`` (and the objective's own heads) for ``total_steps`` steps.

    Args:
        model: Encoder plus projection head, already on the training device; under torchrun,
            wrapped in DistributedDataParallel (the objective's own gradients are then averaged
            here, and the logged loss and throughput cover every process).
        objective: The loss; ``objective.build`` must have been called.
        composer: Draws each uint8 batch (inliers + outliers) on the device.
        augmenter: Makes each augmented view on the device.
        cfg: Optimiser, precision and memory-format settings.
        total_steps: Optimiser steps to take.
        steps_per_epoch: Steps that make one epoch (for the per-epoch loss).
        generator: Source of all sampling and augmentation randomness.
        on_step: Called after every step with the progress so far.
        checkpoint: Resume from it if it exists, and save the training state to it.
        evaluate: Measures the model (in eval mode) at each of ``eval_steps``; step 0 is before
            the first step. It gets the mean training loss since the previous evaluation (NaN
            at step 0); its results go to ``TrainResult.eval_history``.
        eval_steps: Steps after which to call ``evaluate``.

    Raises:
        TrainingError: If the loss becomes non-finite.
    """
    device = composer.device
    params = list(model.parameters()) + list(objective.parameters())
    optimizer, scheduler = make_optimizer(params, cfg, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    fmt = memory_format(cfg.channels_last)
    result = TrainResult(steps=0)
    epoch_sum = torch.zeros((), device=device)
    interval_sum, interval_steps = torch.zeros((), device=device), 0  # the loss since the last evaluation
    epoch_steps = 0
    n_images = 0
    prior_wall = 0.0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"])
        composer.load_state_dict(state["composer"])
        result = TrainResult(**state["result"])
        result.resumed_from_step = result.steps
        epoch_sum.fill_(state["epoch_sum"])
        interval_sum.fill_(state.get("interval_sum", 0.0))  # absent from checkpoints made before it
        interval_steps = state.get("interval_steps", 0)
        epoch_steps, n_images, prior_wall = state["epoch_steps"], state["n_images"], result.wall_s
    eval_wall = 0.0

    def measure(step: int) -> None:
        nonlocal eval_wall, interval_steps
        if evaluate is None or step not in eval_steps:
            return
        began = time.perf_counter()
        train_loss = float(interval_sum) / interval_steps if interval_steps else math.nan  # this process's loss
        result.eval_history.append((step, evaluate(train_loss)))
        interval_sum.zero_()
        interval_steps = 0
        model.train()
        objective.train()
        eval_wall += time.perf_counter() - began

    start = time.perf_counter()  # before the step-0 evaluation, whose time measure() subtracts
    if result.steps == 0:
        measure(0)
    model.train()
    objective.train()
    for step in range(result.steps + 1, total_steps + 1):
        batch = composer(generator)
        # Both views in one augmenter call (each sample still draws its own parameters per view):
        # half the op launches and gathers of two calls (docs/performance.md).
        views = augmenter(batch.images.repeat(2, 1, 1, 1), generator)
        with autocast(device, cfg.precision):
            features, z = model(views.contiguous(memory_format=fmt))
        n = len(batch.images)
        outputs = StepOutputs(
            features1=features[:n].float(), features2=features[n:].float(), z1=z[:n].float(),
            z2=z[n:].float(), labels=batch.labels, generator_ids=batch.generator_ids,
            source_index=batch.source_index,
        )
        loss = objective(outputs)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if distributed.is_distributed():
            distributed.average_gradients(objective.parameters())
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        epoch_sum += loss.detach()
        epoch_steps += 1
        interval_sum += loss.detach()
        interval_steps += 1
        n_images += len(views) * distributed.world_size()
        result.steps = step
        if epoch_steps == steps_per_epoch or step == total_steps:
            epoch_loss = float(distributed.average(epoch_sum)) / epoch_steps
            if not math.isfinite(epoch_loss):
                raise TrainingError(f"the loss became non-finite ({epoch_loss}) by step {step}")
            result.epoch_losses.append(epoch_loss)
            epoch_sum.zero_()
            epoch_steps = 0
        measure(step)
        if checkpoint is not None and checkpoint.due(step, total_steps):
            result.wall_s = prior_wall + time.perf_counter() - start - eval_wall
            checkpoint.save({
                "model": model.state_dict(), "objective": objective.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "generator": generator.get_state(),
                "composer": composer.state_dict(), "result": dataclasses.asdict(result),
                "epoch_sum": float(epoch_sum), "epoch_steps": epoch_steps, "n_images": n_images,
                "interval_sum": float(interval_sum), "interval_steps": interval_steps,
            })
        if on_step is not None:
            elapsed = prior_wall + time.perf_counter() - start - eval_wall
            on_step(StepInfo(step, total_steps, float(loss.detach()), n_images / max(elapsed, 1e-9)))
    result.wall_s = prior_wall + time.perf_counter() - start - eval_wall
    result.images_per_s = n_images / max(result.wall_s, 1e-9)
    result.loss_since_last_eval = float(interval_sum) / interval_steps if interval_steps else math.nan
    return result


@overload
def embed(
    model: ContrastiveModel,
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device,
    *,
    projections: Literal[False] = False,
) -> torch.Tensor: ...


@overload
def embed(
    model: ContrastiveModel,
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device,
    *,
    projections: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


@torch.no_grad()
def embed(
    model: ContrastiveModel,
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device,
    *,
    projections: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Raw encoder features f(x) of uint8 ``images`` after ``transform``.

    ``transform`` (the test transform, or a test-time augmentation) runs on ``device``, one batch
    of ``cfg.eval_batch_size`` images at a time.

    Args:
        projections: Also return the projection head's raw output g(f(x)), before the L2
            normalisation the contrastive losses apply (what CSI's detector reads).

    Returns:
        (M, F) float32 features on the CPU; with ``projections``, the pair of (M, F) features
        and (M, D) raw projections.
    """
    model.eval()
    fmt = memory_format(cfg.channels_last)
    features, heads = [], []
    for start in range(0, len(images), cfg.eval_batch_size):
        x = transform(images[start : start + cfg.eval_batch_size].to(device))
        with autocast(device, cfg.precision):
            f = model.encoder(x.contiguous(memory_format=fmt))
            if projections:
                heads.append(model.head(f).float().cpu())
        features.append(f.float().cpu())
    if projections:
        return torch.cat(features), torch.cat(heads)
    return torch.cat(features)
