"""The authors'-style training pipeline: the baseline ``anobench bench`` compares an epoch with.

Built as the FIRM authors' code builds it: the normal training images and their rotations by 90,
180 and 270 degrees are precomputed as dataset entries (1:3, a 4x-enlarged set), a torch
DataLoader with worker processes draws shuffled batches of 32 and transforms every PIL image twice
with the paper's augmentation (``benchmarks/pil_pipeline.py``), and the model (the same
:class:`~anobench.models.ContrastiveModel`) trains in float32, default memory format, with SGD
and the FIRM loss. Only the pipeline differs from anobench's run: the model, the loss and the
optimiser are the same code.

Run as a script to time it on random CIFAR-10-shaped images:

    .venv/bin/python benchmarks/baseline.py --width 0.25 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from anobench.bench import BASELINE_BATCH_SIZE, load_benchmark, synchronize
from anobench.config import TrainConfig, preset
from anobench.models import ContrastiveModel
from anobench.objectives import OUTLIER_LABEL, FIRMObjective, StepOutputs
from anobench.training import make_optimizer

WARMUP_STEPS = 3
"""Untimed steps first: the first batches pay for starting the DataLoader workers."""


class RotationSet(Dataset):
    """The normal images followed by their three rotations; each item is two augmented views.

    Args:
        images: (N, 3, H, W) uint8 normal images.
        transform: Augmentation of one PIL image into a float tensor.
    """

    def __init__(
        self, images: torch.Tensor, transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        nhwc = images.permute(0, 2, 3, 1).numpy()
        self.images = np.ascontiguousarray(
            np.concatenate([np.rot90(nhwc, k, axes=(1, 2)) for k in range(4)])
        )
        n = len(nhwc)
        self.generator_ids = np.repeat(np.arange(4), n)
        self.labels = np.where(self.generator_ids == 0, 0, OUTLIER_LABEL)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        image = Image.fromarray(self.images[index])
        return (self.transform(image), self.transform(image), int(self.labels[index]),
                int(self.generator_ids[index]))


def baseline_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg``'s model and optimiser with the baseline's batch 32, fp32 and default memory format."""
    return dataclasses.replace(
        cfg, batch_size=BASELINE_BATCH_SIZE, precision="fp32", channels_last=False, compile=False
    )


def baseline_step_seconds(
    images: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    steps: int = 20,
    repeats: int = 3,
    workers: int = 2,
    seed: int = 0,
) -> float:
    """Seconds per training step of the baseline: the best of ``repeats`` runs of ``steps`` steps.

    Args:
        images: (N, 3, H, W) uint8 normal training images.
        cfg: The run's settings; its model (width, head) and optimiser are used.
        device: Training device.
        steps: Timed steps per repeat.
        repeats: Timed repeats; the best is kept.
        workers: DataLoader worker processes.
        seed: Seed of the model and the shuffling.
    """
    pil_pipeline = load_benchmark("pil_pipeline")
    bcfg = baseline_config(cfg)
    torch.manual_seed(seed)
    model = ContrastiveModel(bcfg.width, bcfg.head_hidden, bcfg.head_layers, bcfg.head_out)
    model = model.to(device).train()
    objective = FIRMObjective().to(device)
    optimizer, _ = make_optimizer(list(model.parameters()), bcfg, total_steps=1)
    dataset = RotationSet(images, pil_pipeline.make_pil_transform(images.shape[-1]))
    loader = DataLoader(
        dataset, batch_size=BASELINE_BATCH_SIZE, shuffle=True, num_workers=workers,
        drop_last=True, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
    )

    def batches() -> Iterator[tuple[torch.Tensor, ...]]:
        while True:
            yield from loader

    stream = batches()

    def step() -> None:
        x1, x2, labels, generator_ids = next(stream)
        n = len(x1)
        x = torch.cat([x1, x2]).to(device, non_blocking=True)
        features, z = model(x)
        outputs = StepOutputs(
            features1=features[:n], features2=features[n:], z1=z[:n], z2=z[n:],
            labels=labels.to(device), generator_ids=generator_ids.to(device),
            source_index=torch.full((n,), -1, dtype=torch.long, device=device),
        )
        loss = objective(outputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(WARMUP_STEPS):
        step()
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=preset("quick").width)
    parser.add_argument("--n-normal", type=int, default=5000, help="normal images (CIFAR-10: 5000)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    images = torch.randint(0, 256, (args.n_normal, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    cfg = dataclasses.replace(preset("quick"), width=args.width)
    step_s = baseline_step_seconds(images, cfg, torch.device(args.device), args.steps,
                                   args.repeats, args.workers)
    steps_per_epoch = -(-args.n_normal * 4 // BASELINE_BATCH_SIZE)
    print(f"{step_s * 1e3:.1f} ms/step, {2 * BASELINE_BATCH_SIZE / step_s:.0f} img/s, "
          f"epoch of {steps_per_epoch} steps: {steps_per_epoch * step_s:.1f} s")


if __name__ == "__main__":
    main()
