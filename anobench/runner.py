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
import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd
import torch

import anobench
from anobench import distributed
from anobench.augment import CIFAR10_MEAN, CIFAR10_STD, AugmentRecipe, BatchAugmenter, test_transform
from anobench.batches import BatchComposer
from anobench.checkpoint import Checkpoint
from anobench.config import RunConfig
from anobench.data import OneClassTask, load_dataset, load_exposure_images, one_class_task
from anobench.errors import AnobenchError, ConfigError
from anobench.device import memory_format, resolve_device
from anobench.data.holdout import holdout_split
from anobench.detector import detector_state, log_detector
from anobench.evaluation import FeatureViews, ScorerResult, build_scorers, check_compatible, score_all
from anobench.label_free import (
    THRESHOLD_COLUMNS, HeldOut, calibrated_threshold, evaluation_proxies, is_proxy_key, proxy_columns,
)
from anobench.models import ContrastiveModel
from anobench.objectives import get_objective
from anobench.outliers import get_generator
from anobench.plots import roc_figure
from anobench.plugins import plugin_tags, row_plugins
from anobench.provenance import ENVIRONMENT_TAGS, environment_record
from anobench.results_csv import (
    PLUGINS_COLUMN, SCHEMA_VERSION, ResultsWriteError, append_rows, check_writable, config_columns,
)
from anobench.tracking import MlflowRun, MlflowTracker, git_commit, metric_key
from anobench.training import StepInfo, TrainResult, embed, train

T = TypeVar("T")

CROP_ENSEMBLE_RECIPE = AugmentRecipe(
    crop_scale=(0.55, 1.0), crop_ratio=(3 / 4, 4 / 3), jitter=(0.0, 0.0, 0.0, 0.0), jitter_p=0.0,
    blur_p=0.0,
)
"""The crop ensemble's random crops (docs/method.md §6): RandomResizedCrop(scale 0.55-1) alone."""


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
        proxies: The label-free proxies of the final model (:mod:`anobench.label_free`).
        thresholds: Per scorer spec, the calibrated threshold and the test rates at it
            (:data:`anobench.label_free.THRESHOLD_COLUMNS`).
    """

    config: RunConfig
    run_id: str | None
    normal_class_name: str
    split: str
    train: TrainResult
    scorer_results: list[ScorerResult]
    total_wall_s: float
    proxies: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, dict[str, float | str]] = field(default_factory=dict)


@dataclass
class Evaluation:
    """One evaluation of the model: scorer results, proxies, held-out normals' scores by spec,
    and the features scored (the logged detector stores their training side)."""

    results: list[ScorerResult]
    proxies: dict[str, float]
    held_out_scores: dict[str, np.ndarray]
    views: FeatureViews


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


def run_tags(config: RunConfig, split: str, normal_class_name: str, device: torch.device) -> dict[str, str]:
    """MLflow tags a user filters and groups runs by, plus provenance (the environment the
    result depends on: thread count, hardware, library versions)."""
    environment = environment_record(device)
    return {
        "objective": config.objective,
        "dataset": config.dataset,
        "normal_class": normal_class_name,
        "seed": str(config.seed),
        "preset": config.preset,
        "outliers": config.outliers,
        "oe_source": config.oe_source or "",
        "scorers": ",".join(config.scorers),
        "split": split,
        "run_key": config.key(),
        "config_json": config.to_json(),
        "anobench.version": anobench.__version__,
        "anobench.git_commit": git_commit() or "unknown",
        "torch.version": torch.__version__,
        "python.version": platform.python_version(),
        **{tag: str(environment[field]) for field, tag in ENVIRONMENT_TAGS.items()},
        **plugin_tags(config),
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


# --- convergence (AULC) and resume records; owned by the sweep work (docs/sweeps.md) ---
def eval_steps(eval_checkpoints: int, total_steps: int) -> set[int]:
    """Steps 0, T/K, ..., (K-1)T/K (rounded) at which to measure a T-step run; K = 0: none."""
    return {round(i * total_steps / eval_checkpoints) for i in range(eval_checkpoints)}


def aulc(history: list[tuple[int, float]], total_steps: int) -> float:
    """Area under the AUROC-versus-progress curve, progress = step / total in [0, 1] (trapezoid)."""
    steps, values = zip(*sorted(history))
    return float(np.trapezoid(values, np.asarray(steps, dtype=float) / total_steps))


def convergence_curves(trained: TrainResult, results: list[ScorerResult]) -> dict[str, list[tuple[int, float]]]:
    """Each scorer's test AUROC at the evaluation points and at the end; empty without them, and
    without the scorers that score the final model only (``Scorer.at_checkpoints``)."""
    if not trained.eval_history:
        return {}
    return {
        r.spec: [(step, m[r.spec]) for step, m in trained.eval_history] + [(trained.steps, r.metrics["auroc"])]
        for r in results if r.spec in trained.eval_history[0][1]
    }


def _log_convergence(run: MlflowRun, trained: TrainResult, results: list[ScorerResult]) -> None:
    for spec, curve in convergence_curves(trained, results).items():
        for step, value in curve[:-1]:  # the last point is the final metric, logged with the others
            run.log_metrics({metric_key("auroc", spec): value}, step=step)
        run.log_metrics({metric_key("aulc", spec): aulc(curve, trained.steps)}, step=trained.steps)
    if trained.resumed_from_step:
        run.set_tags({"anobench.resumed_from_step": str(trained.resumed_from_step)})
# --- end of convergence and resume records ---


def _log_label_free(run: MlflowRun, trained: TrainResult, proxies: dict[str, float],
                    thresholds: dict[str, dict[str, float | str]]) -> None:
    """The proxies at every evaluation and at the end, and each scorer's threshold: metrics
    ``rankme``, ``val_auroc/<spec>``, ..., ``threshold/<spec>``, ``fpr_at_threshold/<spec>``,
    ``tpr_at_threshold/<spec>``; tag ``threshold_source/<spec>``. Empty values are not logged."""
    history = [(step, {k: v for k, v in m.items() if is_proxy_key(k)}) for step, m in trained.eval_history]
    for step, values in [*history, (trained.steps, proxies)]:
        run.log_metrics({metric_key(*key.split("/", 1)): v for key, v in values.items() if math.isfinite(v)}, step=step)
    for spec, threshold in thresholds.items():
        run.log_metrics({metric_key(name, spec): float(threshold[name]) for name in THRESHOLD_COLUMNS
                         if name != "threshold_source" and math.isfinite(float(threshold[name]))}, step=trained.steps)
        run.set_tags({metric_key("threshold_source", spec): str(threshold["threshold_source"])})


def run_experiment(
    config: RunConfig,
    tracker: MlflowTracker | None = None,
    results_csv: Path | str | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    checkpoint: Checkpoint | None = None,
    log_model: bool = True,
) -> RunResult:
    """Train one encoder, score its embeddings with every scorer, and record the results.

    Args:
        config: The run.
        tracker: Where to log the run; None logs nowhere.
        results_csv: CSV (a path or str) to append one row per scorer to; None writes none.
        on_step: Progress callback, called after every training step.
        checkpoint: Resume training from it if it exists, save to it during training, and
            delete it once the run is recorded.
        log_model: Log the detector as the run's MLflow model (:mod:`anobench.detector`).

    Under ``torchrun --nproc_per_node=N`` (WORLD_SIZE > 1) the run trains once over N processes
    with DistributedDataParallel: each process composes 1/N of every batch from its 1/N of the
    normal images, with its own sampling and augmentation seed (``seed * 1000 + rank``); the
    losses gather candidates across processes, so the gradient is that of the whole batch.
    BatchNorm becomes SyncBatchNorm on GPUs, so its statistics are those of the whole batch
    (SyncBatchNorm has no CPU kernel: with gloo on the CPU each process normalises its share).
    Only rank 0 scores, tracks and writes the CSV; the other ranks return a result without
    scorer results.

    A run whose CSV rows cannot be written (a full disk) is marked FAILED in MLflow, with the
    error in the tag ``anobench.csv_error``: a FINISHED run always has its rows.

    Raises:
        AnobenchError: For bad names, settings or data, a store or results CSV that cannot be
            written (checked before training starts), or CSV rows that could not be written
            (:class:`~anobench.results_csv.ResultsWriteError`, after training).
    """
    started = time.perf_counter()
    if not isinstance(config, RunConfig):
        raise ConfigError(f"config must be a RunConfig, got {config!r}")
    if not isinstance(results_csv, (str, Path, type(None))):
        raise ConfigError(f"results_csv must be a path or None, got {results_csv!r}")
    results_csv = None if results_csv is None else Path(results_csv)
    if tracker is not None:
        tracker.prepare()  # a store or CSV that cannot be written fails here, not after training
    if results_csv is not None:
        check_writable(results_csv)
    device = resolve_device(config.device)
    # --- one run over several processes (torchrun); docs/sweeps.md ---
    world, rank = distributed.launched_world_size(), distributed.launched_rank()
    own_group = False
    cfg = config.train
    if world > 1:
        if cfg.inliers_per_batch % world or cfg.outliers_per_batch % world:
            raise ConfigError(
                f"batch_size {cfg.batch_size} ({cfg.inliers_per_batch} inliers + "
                f"{cfg.outliers_per_batch} outliers) must split evenly over {world} processes"
            )
        if checkpoint is not None:
            raise ConfigError("training checkpoints are not supported in a multi-process run")
        device, own_group = distributed.join(device)
    objective = checked_build(f"objective {config.objective!r}", get_objective, config.objective,
                              **config.objective_params)
    scorers = checked_build("scorers", build_scorers, config.scorers)
    dataset = load_dataset(config.dataset, config.data_root, config.image_size)
    exposure = {} if config.oe_source is None else {
        "images": load_exposure_images(config.oe_source, config.data_root, config.image_size).to(device)
    }
    make_outliers = checked_build(f"outliers {config.outliers!r}", get_generator, config.outliers,
                                  **exposure)
    task = one_class_task(dataset, config.normal_class)
    # Held-out normals (--val-fraction) leave the task before anything trains on or makes
    # outliers from its training images: they only validate and calibrate (docs/selection.md).
    holdout = holdout_split(len(task.train_images), config.val_fraction, config.seed)
    held_out = HeldOut.build(task.train_images[holdout.validation],
                             config.resolved_val_outliers() if config.val_fraction else "", config.seed)
    task = dataclasses.replace(task, train_images=task.train_images[holdout.train])
    config.check_data_size(len(task.train_images))
    config.check_device_type(device.type)
    # Keep only what the run still reads: the other classes' training images are dead weight.
    split, test_labels = dataset.split, dataset.test.labels
    del dataset

    torch.manual_seed(config.seed)
    sampling_seed = config.seed if world == 1 else config.seed * 1000 + rank
    generator = torch.Generator(device=device).manual_seed(sampling_seed)
    model = ContrastiveModel(cfg.width, cfg.head_hidden, cfg.head_layers, cfg.head_out)
    if world > 1 and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device, memory_format=memory_format(cfg.channels_last))
    objective.build(model.feature_dim)
    check_compatible(scorers, objective, model.feature_dim)
    objective.to(device)
    if cfg.compile:
        model.compile()
    trained_model: torch.nn.Module = model
    if world > 1:
        # find_unused_parameters: an objective may use the features alone, leaving the head idle.
        trained_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    normals = task.train_images.to(device)
    composer = BatchComposer(
        normals[rank::world], cfg.inliers_per_batch // world, cfg.outliers_per_batch // world,
        make_outliers, len(make_outliers.names), objective.recipe,
    )
    augmenter = BatchAugmenter(AugmentRecipe(), config.image_size, CIFAR10_MEAN, CIFAR10_STD)
    total_steps = cfg.total_steps(len(normals))
    steps_per_epoch = -(-len(normals) // cfg.inliers_per_batch)

    crop_augmenter = BatchAugmenter(CROP_ENSEMBLE_RECIPE, config.image_size, CIFAR10_MEAN, CIFAR10_STD)

    def score(checkpoint: bool = False, train_loss: float = math.nan) -> Evaluation:
        """Every scorer on the model as it is now (features embedded afresh), and the label-free
        proxies; at an evaluation checkpoint, only the scorers that run there
        (``Scorer.at_checkpoints``)."""
        views = FeatureViews(
            embed=functools.partial(embed, model, cfg=cfg, device=device),
            test_transform=functools.partial(
                test_transform, size=config.image_size, resize=round(config.image_size * 36 / 32),
                mean=CIFAR10_MEAN, std=CIFAR10_STD,
            ),
            crop_transform=functools.partial(
                crop_augmenter, generator=torch.Generator(device=device).manual_seed(config.seed)
            ),
            train_images=task.train_images, test_images=task.test_images, objective=objective,
        )
        chosen = {s: sc for s, sc in scorers.items() if sc.at_checkpoints or not checkpoint}
        results = score_all(chosen, views, task.test_is_anomaly)
        proxies, held_out_scores = evaluation_proxies(model, views, chosen, held_out, augmenter, train_loss)
        return Evaluation(results, proxies, held_out_scores, views)

    def measure(train_loss: float) -> dict[str, float]:
        """What an evaluation checkpoint records: each scorer's test AUROC and every proxy."""
        evaluation = score(checkpoint=True, train_loss=train_loss)
        return {**{r.spec: r.metrics["auroc"] for r in evaluation.results}, **evaluation.proxies}

    def fit() -> TrainResult:
        trained = train(
            trained_model, objective, composer, augmenter, cfg, total_steps, steps_per_epoch,
            generator, on_step if rank == 0 else None,
            checkpoint=checkpoint,  # checkpoint/AULC hooks: see docs/sweeps.md
            evaluate=measure if rank == 0 else None,
            eval_steps=eval_steps(config.eval_checkpoints, total_steps),
        )
        if world > 1:
            distributed.leave(own_group)  # rank 0 then scores as a single process
        return trained

    def evaluate() -> tuple[TrainResult, Evaluation, dict[str, dict[str, float | str]]]:
        trained = fit()
        final = score(train_loss=trained.loss_since_last_eval)
        labels = task.test_is_anomaly.numpy()
        thresholds = {
            r.spec: calibrated_threshold(scorers[r.spec], final.views, final.held_out_scores.get(r.spec),
                                         r.scores, labels, config.target_fpr)
            for r in final.results
        }
        return trained, final, thresholds

    if rank != 0:
        trained = fit()
        return RunResult(config, None, task.normal_class_name, split, trained, [],
                         time.perf_counter() - started)
    run_id = None
    if tracker is None:
        trained, final, thresholds = evaluate()
    else:
        name = f"{config.objective}-{config.dataset}-{task.normal_class_name}-s{config.seed}"
        with tracker.start_run(name, run_tags(config, split, task.normal_class_name, device)) as run:
            run.log_params(config.flat_params())
            trained, final, thresholds = evaluate()
            _log_outputs(run, config, task, test_labels, trained, final.results)
            _log_convergence(run, trained, final.results)
            _log_label_free(run, trained, final.proxies, thresholds)
            if log_model:
                log_detector(run.run_id, tracker.tracking_uri, detector_state(
                    config, task.normal_class_name, model, objective, scorers, final.views,
                    final.held_out_scores, thresholds))
            run_id = run.run_id
    results = final.results
    total = time.perf_counter() - started
    if results_csv is not None:
        finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        environment = environment_record(device)
        plugins = plugin_tags(config)
        curves = convergence_curves(trained, results)
        rows = [
            {
                "run_key": config.key(), "mlflow_run_id": run_id or "", "finished_at": finished,
                "objective": config.objective, "outliers": config.outliers,
                "dataset": config.dataset, "normal_class": task.normal_class,
                "normal_class_name": task.normal_class_name, "seed": config.seed,
                "preset": config.preset, "scorer": r.spec, **r.metrics, "steps": trained.steps,
                "train_wall_s": round(trained.wall_s, 3), "images_per_s": round(trained.images_per_s, 1),
                "total_wall_s": round(total, 3), "config_json": config.to_json(),
                "aulc": aulc(curves[r.spec], trained.steps) if r.spec in curves else "",
                **proxy_columns(final.proxies, r.spec), **thresholds[r.spec],
                **config_columns(config), **environment, PLUGINS_COLUMN: row_plugins(plugins, r.spec),
                "schema_version": SCHEMA_VERSION,
            }
            for r in results
        ]
        try:
            append_rows(results_csv, rows)
        except ResultsWriteError as error:
            if tracker is not None and run_id is not None:  # FINISHED must mean "rows recorded"
                tracker.mark_failed(run_id, {"anobench.csv_error": str(error)[:5000]})
            raise
    if checkpoint is not None:
        checkpoint.clear()
    return RunResult(config, run_id, task.normal_class_name, split, trained, results, total, final.proxies,
                     thresholds)
