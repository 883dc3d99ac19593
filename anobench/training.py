"""The training loop: compose a batch, augment two views on the device, step the optimiser.

The loop knows no objective by name: it asks the objective for its batch recipe and its loss.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from anobench.augment import BatchAugmenter
from anobench.batches import BatchComposer
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
    """

    steps: int
    epoch_losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    images_per_s: float = 0.0


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
    model: ContrastiveModel,
    objective: Objective,
    composer: BatchComposer,
    augmenter: BatchAugmenter,
    cfg: TrainConfig,
    total_steps: int,
    steps_per_epoch: int,
    generator: torch.Generator,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train ``model`` (and the objective's own heads) for ``total_steps`` steps.

    Args:
        model: Encoder plus projection head, already on the training device.
        objective: The loss; ``objective.build`` must have been called.
        composer: Draws each uint8 batch (inliers + outliers) on the device.
        augmenter: Makes each augmented view on the device.
        cfg: Optimiser, precision and memory-format settings.
        total_steps: Optimiser steps to take.
        steps_per_epoch: Steps that make one epoch (for the per-epoch loss).
        generator: Source of all sampling and augmentation randomness.
        on_step: Called after every step with the progress so far.

    Raises:
        TrainingError: If the loss becomes non-finite.
    """
    device = composer.device
    params = list(model.parameters()) + list(objective.parameters())
    optimizer, scheduler = make_optimizer(params, cfg, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    fmt = memory_format(cfg.channels_last)
    model.train()
    objective.train()
    result = TrainResult(steps=0)
    epoch_sum = torch.zeros((), device=device)
    epoch_steps = 0
    n_images = 0
    start = time.perf_counter()
    for step in range(1, total_steps + 1):
        batch = composer(generator)
        views = torch.cat([augmenter(batch.images, generator), augmenter(batch.images, generator)])
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
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        epoch_sum += loss.detach()
        epoch_steps += 1
        n_images += len(views)
        result.steps = step
        if epoch_steps == steps_per_epoch or step == total_steps:
            epoch_loss = float(epoch_sum) / epoch_steps
            if not math.isfinite(epoch_loss):
                raise TrainingError(f"the loss became non-finite ({epoch_loss}) by step {step}")
            result.epoch_losses.append(epoch_loss)
            epoch_sum.zero_()
            epoch_steps = 0
        if on_step is not None:
            elapsed = time.perf_counter() - start
            on_step(StepInfo(step, total_steps, float(loss.detach()), n_images / max(elapsed, 1e-9)))
    result.wall_s = time.perf_counter() - start
    result.images_per_s = n_images / max(result.wall_s, 1e-9)
    return result


@torch.no_grad()
def embed(
    model: ContrastiveModel,
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    cfg: TrainConfig,
    device: torch.device,
) -> torch.Tensor:
    """Raw encoder features f(x) of uint8 ``images`` after the test ``transform``.

    Returns:
        (M, F) float32 features on the CPU.
    """
    model.eval()
    fmt = memory_format(cfg.channels_last)
    chunks = []
    for start in range(0, len(images), cfg.eval_batch_size):
        x = transform(images[start : start + cfg.eval_batch_size].to(device))
        with autocast(device, cfg.precision):
            chunks.append(model.encoder(x.contiguous(memory_format=fmt)).float().cpu())
    return torch.cat(chunks)
