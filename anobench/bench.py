"""Throughput of the training pipeline against the model's own limit: the API of ``anobench bench``.

Everything is measured in one process, on random uint8 images of the benchmarked dataset's
one-class training shape (CIFAR-10: 5,000 normal 3x32x32 images), with the run's model, batch,
precision and memory format. Every rate counts augmented images through the model (samples x 2
views), so the rates compare directly:

- ``model_img_s``: forward + backward + optimiser step of the model alone on ready-made float
  views: the limit of any run with these settings.
- ``pipeline_img_s``: the real training loop (:func:`anobench.training.train`) with a real
  objective: batch composition, outliers, two augmented views, forward, loss, backward, step.
- ``efficiency``: ``pipeline_img_s / model_img_s``.
- ``augment_img_s`` / ``pil_augment_img_s``: the train augmentation alone, batched on the device
  vs per-image PIL + torchvision transforms through a DataLoader (``benchmarks/pil_pipeline.py``).
- ``epoch_s`` / ``baseline_epoch_s``: one one-class epoch, extrapolated from timed steps: the run's
  steps per epoch (normal images / inliers per batch) times its step time, vs the authors'-style
  pipeline of ``benchmarks/baseline.py`` (PIL DataLoader, fp32, batch 32, same model; the normal
  images plus their precomputed rotations, 1:3, as dataset entries) at its steps per epoch
  (normal images x 4 / 32). ``speedup_vs_baseline`` is their ratio.
- ``peak_rss_mb``: the process's peak resident memory after the model and pipeline measurements
  (before the PIL and baseline pipelines run).

The model and the pipeline alternate step by step inside one run of the training loop (its
progress callback runs one step of the model alone after each training step); after
``warmup_steps`` untimed steps, each step is timed on its own and the fastest of ``steps`` is kept
for each: on a shared machine the fastest step is the one least slowed by other processes, and
alternating exposes both to the same load. The augmentation, PIL and baseline measurements keep
the best of ``repeats`` runs. CUDA is synchronised before every timer read.

Example:
    >>> from anobench.config import preset
    >>> cfg = BenchConfig(train=preset("smoke"), n_normal=64, steps=1, repeats=1, warmup_steps=1,
    ...                   augment=False, baseline=False)
    >>> result = run_bench(cfg)  # doctest: +SKIP
    >>> 0 < result.efficiency  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from anobench.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    AugmentRecipe,
    BatchAugmenter,
    augment_images_per_second,
)
from anobench.batches import BatchComposer
from anobench.config import TrainConfig, preset
from anobench.device import autocast, memory_format, resolve_device
from anobench.errors import ConfigError
from anobench.models import ContrastiveModel
from anobench.objectives import get_objective
from anobench.outliers import DEFAULT_SPEC, get_generator
from anobench.training import StepInfo, make_optimizer, train

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
"""The benchmark scripts of the source checkout (not installed with the package)."""

NORMAL_IMAGES: dict[str, int] = {"cifar10": 5000, "cifar100": 2500, "fashion-mnist": 6000}
"""Normal training images of one class in the one-class protocol, per dataset."""

BASELINE_BATCH_SIZE = 32
"""The paper's batch (inliers and outliers together), used by the authors'-style baseline."""


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how long.

    Attributes:
        train: Model, batch, precision and memory format of the run (default: the quick preset).
        preset: Name the settings came from (recorded in the result).
        objective: Objective of the pipeline measurement.
        outliers: Outlier-generator spec of the pipeline measurement.
        dataset: Dataset whose one-class training shape the random images take
            (a key of :data:`NORMAL_IMAGES`).
        n_normal: Normal training images; None takes the dataset's.
        image_size: Side of the square images.
        device: "auto", "cpu", "cuda" or "cuda:N".
        steps: Timed steps of the model and of the pipeline, each timed on its own.
        repeats: Timed repeats of the augmentation and baseline measurements.
        warmup_steps: Untimed steps first (optimiser state, compilation, allocator warm-up).
        augment: Measure the batched and the PIL augmentation.
        pil_workers: DataLoader worker processes of the PIL pipelines (augmentation and baseline).
        baseline: Measure the authors'-style baseline.
        baseline_steps: Timed baseline steps per repeat.
        seed: Seed of the random images, the models and all sampling.
    """

    train: TrainConfig = field(default_factory=lambda: preset("quick"))
    preset: str = "quick"
    objective: str = "firm"
    outliers: str = DEFAULT_SPEC
    dataset: str = "cifar10"
    n_normal: int | None = None
    image_size: int = 32
    device: str = "auto"
    steps: int = 10
    repeats: int = 3
    warmup_steps: int = 2
    augment: bool = True
    pil_workers: int = 2
    baseline: bool = True
    baseline_steps: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in NORMAL_IMAGES:
            raise ConfigError(
                f"bench dataset must be one of {', '.join(NORMAL_IMAGES)}, got {self.dataset!r}"
            )
        counts = {
            "steps": self.steps, "repeats": self.repeats, "baseline_steps": self.baseline_steps,
            "image_size": self.image_size, "n_normal": self.normal_images,
        }
        for name, value in counts.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.warmup_steps < 0 or self.pil_workers < 0:
            raise ConfigError(
                f"warmup_steps and pil_workers must be >= 0, got {self.warmup_steps}, "
                f"{self.pil_workers}"
            )

    @property
    def normal_images(self) -> int:
        """Normal training images of the benchmarked one-class task."""
        return self.n_normal if self.n_normal is not None else NORMAL_IMAGES[self.dataset]

    @property
    def steps_per_epoch(self) -> int:
        """Steps of one epoch of the run: every normal image once as an inlier."""
        return -(-self.normal_images // self.train.inliers_per_batch)

    @property
    def baseline_steps_per_epoch(self) -> int:
        """Steps of one baseline epoch: normal images and their three rotations, 32 per step."""
        return -(-self.normal_images * 4 // BASELINE_BATCH_SIZE)


@dataclass
class BenchResult:
    """Measured rates (augmented images per second) and times; None where not measured.

    Attributes:
        model_img_s: Forward + backward + step of the model alone: the limit.
        pipeline_img_s: The full training step of the real loop.
        efficiency: ``pipeline_img_s / model_img_s``.
        augment_img_s: The batched augmentation alone.
        pil_augment_img_s: Per-image PIL augmentation through a DataLoader.
        epoch_s: One epoch of the run, extrapolated from the pipeline's step time.
        baseline_epoch_s: One epoch of the authors'-style baseline, extrapolated likewise.
        speedup_vs_baseline: ``baseline_epoch_s / epoch_s``.
        peak_rss_mb: Peak resident memory of the process after the model and pipeline runs.
        settings: The benchmarked configuration and the environment (threads, allocator, ...).
    """

    model_img_s: float
    pipeline_img_s: float
    efficiency: float
    augment_img_s: float | None
    pil_augment_img_s: float | None
    epoch_s: float
    baseline_epoch_s: float | None
    speedup_vs_baseline: float | None
    peak_rss_mb: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field, floats rounded for display; ``settings`` nested."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = round(value, 4) if isinstance(value, float) else value
        return out


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` of the source checkout (the benchmarks are not installed).

    Raises:
        ConfigError: If the file is not there (an installation without the source tree).
    """
    module_name = f"anobench_benchmarks_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = BENCHMARKS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if not path.is_file() or spec is None or spec.loader is None:
        raise ConfigError(f"benchmark script {path} not found; the baseline needs a source checkout")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer read after it includes that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def build_model(cfg: TrainConfig, device: torch.device) -> ContrastiveModel:
    """The run's model on ``device`` in its memory format, compiled if the settings ask."""
    model = ContrastiveModel(cfg.width, cfg.head_hidden, cfg.head_layers, cfg.head_out)
    model = model.to(device, memory_format=memory_format(cfg.channels_last))
    if cfg.compile:
        model.compile()
    return model


def model_step(
    model: ContrastiveModel, cfg: TrainConfig, views: torch.Tensor
) -> Callable[[], None]:
    """One forward + backward + optimiser step of ``model`` alone on the ready-made ``views``.

    The same precision, memory format, optimiser and (fp16) gradient scaling as training; the loss
    is the plain sum of the projections, so nothing but the model is measured.
    """
    device = views.device
    optimizer, _ = make_optimizer(list(model.parameters()), cfg, total_steps=1)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    model.train()

    def step() -> None:
        with autocast(device, cfg.precision):
            _, z = model(views)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(z.float().sum()).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def time_calls(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call of ``fn``, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def run_bench(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> BenchResult:
    """Measure the model's limit, the pipeline, the augmentation and the baseline (see module doc).

    Args:
        cfg: What to measure.
        log: Called with a short line as each measurement starts (progress display).

    Raises:
        AnobenchError: For bad names or settings.
    """
    say = log or (lambda _line: None)
    device = resolve_device(cfg.device)
    tcfg = cfg.train
    objective = get_objective(cfg.objective)
    make_outliers = get_generator(cfg.outliers)
    size = cfg.image_size
    cpu_gen = torch.Generator().manual_seed(cfg.seed)
    images = torch.randint(0, 256, (cfg.normal_images, 3, size, size), dtype=torch.uint8,
                           generator=cpu_gen)
    views_per_step = 2 * tcfg.batch_size

    torch.manual_seed(cfg.seed)
    model = build_model(tcfg, device)
    limit_model = copy.deepcopy(model) if not tcfg.compile else build_model(tcfg, device)
    objective.build(model.feature_dim)
    objective.to(device)
    composer = BatchComposer(
        images.to(device), tcfg.inliers_per_batch, tcfg.outliers_per_batch, make_outliers,
        len(make_outliers.names), objective.recipe,
    )
    augmenter = BatchAugmenter(AugmentRecipe(), size, CIFAR10_MEAN, CIFAR10_STD)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    views = torch.randn(views_per_step, 3, size, size, generator=generator, device=device)
    views = views.contiguous(memory_format=memory_format(tcfg.channels_last))
    limit_step = model_step(limit_model, tcfg, views)

    model_times: list[float] = []
    pipeline_times: list[float] = []
    mark = 0.0

    def between_steps(info: StepInfo) -> None:
        # Called by the training loop after each of its steps: time that step, then one step of
        # the model alone, so that both see the same load on a shared machine.
        nonlocal mark
        synchronize(device)
        if info.step > cfg.warmup_steps:
            pipeline_times.append(time.perf_counter() - mark)
        seconds = time_calls(limit_step, device)
        if info.step > cfg.warmup_steps:
            model_times.append(seconds)
        say(f"step {info.step}/{info.total_steps}: model and pipeline alternate")
        mark = time.perf_counter()

    synchronize(device)
    mark = time.perf_counter()
    train(model, objective, composer, augmenter, tcfg, cfg.warmup_steps + cfg.steps,
          cfg.steps_per_epoch, generator, on_step=between_steps)
    model_img_s = views_per_step / min(model_times)
    pipeline_img_s = views_per_step / min(pipeline_times)
    rss = peak_rss_mb()

    augment_img_s = pil_augment_img_s = None
    if cfg.augment:
        say("augmentation: batched, then per-image PIL through a DataLoader")
        batch = images[:views_per_step].to(device)
        augment_img_s = max(
            augment_images_per_second(augmenter, batch, generator) for _ in range(cfg.repeats)
        )
        pil = load_benchmark("pil_pipeline")
        nhwc = images.permute(0, 2, 3, 1).numpy()
        pil_augment_img_s = max(
            pil.pil_augment_images_per_second(nhwc, tcfg.batch_size, cfg.pil_workers)
            for _ in range(cfg.repeats)
        )

    epoch_s = cfg.steps_per_epoch * views_per_step / pipeline_img_s
    baseline_epoch_s = speedup = None
    if cfg.baseline:
        say(f"baseline: PIL DataLoader, fp32, batch {BASELINE_BATCH_SIZE}, {cfg.repeats} x "
            f"{cfg.baseline_steps} steps")
        baseline = load_benchmark("baseline")
        step_s = baseline.baseline_step_seconds(
            images, tcfg, device, steps=cfg.baseline_steps, repeats=cfg.repeats,
            workers=cfg.pil_workers, seed=cfg.seed,
        )
        baseline_epoch_s = cfg.baseline_steps_per_epoch * step_s
        speedup = baseline_epoch_s / epoch_s

    settings = {
        "preset": cfg.preset, "objective": cfg.objective, "outliers": cfg.outliers,
        "dataset": cfg.dataset, "n_normal": cfg.normal_images, "device": str(device),
        "width": tcfg.width, "head": f"{tcfg.head_layers}x{tcfg.head_hidden}",
        "batch_size": tcfg.batch_size, "inliers_per_batch": tcfg.inliers_per_batch,
        "precision": tcfg.precision, "channels_last": tcfg.channels_last, "compile": tcfg.compile,
        "steps": cfg.steps, "warmup_steps": cfg.warmup_steps, "repeats": cfg.repeats, "steps_per_epoch": cfg.steps_per_epoch,
        "baseline_steps_per_epoch": cfg.baseline_steps_per_epoch, "pil_workers": cfg.pil_workers,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    return BenchResult(
        model_img_s=model_img_s, pipeline_img_s=pipeline_img_s,
        efficiency=pipeline_img_s / model_img_s, augment_img_s=augment_img_s,
        pil_augment_img_s=pil_augment_img_s, epoch_s=epoch_s, baseline_epoch_s=baseline_epoch_s,
        speedup_vs_baseline=speedup, peak_rss_mb=rss, settings=settings,
    )
