"""One run end to end: data -> training -> embeddings -> every scorer -> tracking and CSV rows.

This is the Python API behind ``anobench run``; tests call it directly.

Example:
    >>> from anobench.config import RunConfig, preset
    >>> result = run_experiment(RunConfig(objective="firm", scorers=["knn"], train=preset("smoke")))  # doctest: +SKIP
    >>> result.scorer_results[0].metrics["auroc"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd
import torch

import anobench
from anobench.augment import CIFAR10_MEAN, CIFAR10_STD, AugmentRecipe, BatchAugmenter, test_transform
from anobench.batches import BatchComposer
from anobench.config import RunConfig
from anobench.data import OneClassTask, load_dataset, one_class_task
from anobench.errors import AnobenchError, ConfigError
from anobench.device import memory_format, resolve_device
from anobench.evaluation import ScorerResult, build_scorers, score_all
from anobench.models import ContrastiveModel
from anobench.objectives import get_objective
from anobench.outliers import get_generator
from anobench.plots import roc_figure
from anobench.results_csv import append_rows
from anobench.tracking import MlflowRun, MlflowTracker, git_commit, metric_key
from anobench.training import StepInfo, TrainResult, embed, train

T = TypeVar("T")


@dataclass
class RunResult:
    """Everything a finished run produced.

    Attributes:
        config: The run's configuration.
        run_id: The MLflow run id, or None when the run was not tracked.
        normal_class_name: Name of the normal class.
        split: The dataset's split definition.
        train: Training statistics.
        scorer_results: Scores and metrics of every scorer.
        total_wall_s: Wall time of the whole run, data loading and scoring included.
    """

    config: RunConfig
    run_id: str | None
    normal_class_name: str
    split: str
    train: TrainResult
    scorer_results: list[ScorerResult]
    total_wall_s: float


def checked_build(what: str, factory: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a registry factory, turning its argument errors into a ConfigError naming ``what``.

    Raises:
        ConfigError: If the factory rejects its arguments (TypeError or ValueError).
    """
    try:
        return factory(*args, **kwargs)
    except AnobenchError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{what}: {error}") from error


def run_tags(config: RunConfig, split: str, normal_class_name: str) -> dict[str, str]:
    """MLflow tags a user filters and groups runs by, plus provenance."""
    return {
        "objective": config.objective,
        "dataset": config.dataset,
        "normal_class": normal_class_name,
        "seed": str(config.seed),
        "preset": config.preset,
        "outliers": config.outliers,
        "scorers": ",".join(config.scorers),
        "split": split,
        "run_key": config.key(),
        "anobench.version": anobench.__version__,
        "anobench.git_commit": git_commit() or "unknown",
        "torch.version": torch.__version__,
        "python.version": platform.python_version(),
    }


def _log_outputs(
    run: MlflowRun, config: RunConfig, task: OneClassTask, test_labels: torch.Tensor,
    trained: TrainResult, results: list[ScorerResult],
) -> None:
    for epoch, loss in enumerate(trained.epoch_losses, start=1):
        run.log_metrics({"loss": loss}, step=epoch)
    metrics = {"train_wall_s": trained.wall_s, "images_per_s": trained.images_per_s}
    for result in results:
        metrics.update({metric_key(name, result.spec): value for name, value in result.metrics.items()})
    run.log_metrics(metrics, step=trained.steps)
    run.log_text(config.to_json(), "config.json")
    is_anomaly = task.test_is_anomaly.numpy()
    frame = pd.DataFrame({"test_index": np.arange(len(is_anomaly)), "label": test_labels.numpy(),
                          "is_anomaly": is_anomaly})
    for result in results:
        frame[f"score:{result.spec}"] = result.scores
    run.log_frame(frame, "test_scores.csv")
    figure = roc_figure({r.spec: r.scores for r in results}, is_anomaly,
                        f"{config.objective} on {config.dataset}, normal {task.normal_class_name}")
    run.log_figure(figure, "roc.png")


def run_experiment(
    config: RunConfig,
    tracker: MlflowTracker | None = None,
    results_csv: Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> RunResult:
    """Train one encoder, score its embeddings with every scorer, and record the results.

    Args:
        config: The run.
        tracker: Where to log the run; None logs nowhere.
        results_csv: CSV to append one row per scorer to; None writes none.
        on_step: Progress callback, called after every training step.

    Raises:
        AnobenchError: For bad names, settings or data (checked before training starts).
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    objective = checked_build(f"objective {config.objective!r}", get_objective, config.objective,
                              **config.objective_params)
    scorers = checked_build("scorers", build_scorers, config.scorers)
    make_outliers = checked_build(f"outliers {config.outliers!r}", get_generator, config.outliers)
    dataset = load_dataset(config.dataset, config.data_root, config.image_size)
    task = one_class_task(dataset, config.normal_class)
    cfg = config.train

    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    model = ContrastiveModel(cfg.width, cfg.head_hidden, cfg.head_layers, cfg.head_out)
    model = model.to(device, memory_format=memory_format(cfg.channels_last))
    objective.build(model.feature_dim)
    objective.to(device)
    if cfg.compile:
        model.compile()
    normals = task.train_images.to(device)
    composer = BatchComposer(
        normals, cfg.inliers_per_batch, cfg.outliers_per_batch, make_outliers,
        len(make_outliers.names), objective.recipe,
    )
    augmenter = BatchAugmenter(AugmentRecipe(), config.image_size, CIFAR10_MEAN, CIFAR10_STD)
    total_steps = cfg.total_steps(len(normals))
    steps_per_epoch = -(-len(normals) // cfg.inliers_per_batch)

    def evaluate() -> tuple[TrainResult, list[ScorerResult]]:
        trained = train(model, objective, composer, augmenter, cfg, total_steps, steps_per_epoch,
                        generator, on_step)
        transform = functools.partial(
            test_transform, size=config.image_size, resize=round(config.image_size * 36 / 32),
            mean=CIFAR10_MEAN, std=CIFAR10_STD,
        )
        train_features = embed(model, task.train_images, transform, cfg, device)
        test_features = embed(model, task.test_images, transform, cfg, device)
        return trained, score_all(scorers, train_features, test_features, task.test_is_anomaly)

    run_id = None
    if tracker is None:
        trained, results = evaluate()
    else:
        name = f"{config.objective}-{config.dataset}-{task.normal_class_name}-s{config.seed}"
        with tracker.start_run(name, run_tags(config, dataset.split, task.normal_class_name)) as run:
            run.log_params(config.flat_params())
            trained, results = evaluate()
            _log_outputs(run, config, task, dataset.test.labels, trained, results)
            run_id = run.run_id
    total = time.perf_counter() - started
    if results_csv is not None:
        finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        append_rows(results_csv, [
            {
                "run_key": config.key(), "mlflow_run_id": run_id or "", "finished_at": finished,
                "objective": config.objective, "outliers": config.outliers,
                "dataset": config.dataset, "normal_class": task.normal_class,
                "normal_class_name": task.normal_class_name, "seed": config.seed,
                "preset": config.preset, "scorer": r.spec, **r.metrics, "steps": trained.steps,
                "train_wall_s": round(trained.wall_s, 3), "images_per_s": round(trained.images_per_s, 1),
                "total_wall_s": round(total, 3), "config_json": config.to_json(),
            }
            for r in results
        ])
    return RunResult(config, run_id, task.normal_class_name, dataset.split, trained, results, total)
