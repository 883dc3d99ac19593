"""The label-free decisions inside a run: held-out normals stay out of training, proxies and
thresholds reach MLflow, the results CSV, curves.csv and selection.csv."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import anobench.runner
from anobench.config import RunConfig, preset
from anobench.data import load_dataset, one_class_task
from anobench.data.holdout import holdout_split
from anobench.label_free import PROXIES, THRESHOLD_COLUMNS
from anobench.report.leaderboard import write_leaderboard
from anobench.runner import run_experiment
from anobench.tracking import MlflowTracker

STEPS = 8


def config(**changes) -> RunConfig:
    return RunConfig(objective="firm", scorers=["knn", "knn-shift"], device="cpu", eval_checkpoints=2,
                     train=dataclasses.replace(preset("smoke"), steps=STEPS), **changes)


def image_keys(images: torch.Tensor) -> set[bytes]:
    """Each image and its three rotations, as bytes: an outlier made from an image is one of them."""
    return {torch.rot90(image, k, dims=(1, 2)).contiguous().numpy().tobytes() for image in images for k in range(4)}


def test_held_out_normals_never_enter_a_training_batch(monkeypatch):
    cfg = config(val_fraction=0.25)
    task = one_class_task(load_dataset(cfg.dataset, None, cfg.image_size), cfg.normal_class)
    split = holdout_split(len(task.train_images), cfg.val_fraction, cfg.seed)
    held_out, kept = task.train_images[split.validation], task.train_images[split.train]
    seen: list[torch.Tensor] = []
    composer_class = anobench.runner.BatchComposer

    class RecordingComposer(composer_class):
        def __call__(self, generator):
            batch = super().__call__(generator)
            seen.append(batch.images.cpu())
            return batch

    monkeypatch.setattr(anobench.runner, "BatchComposer", RecordingComposer)
    run_experiment(cfg)
    batches = torch.cat(seen)
    assert len(seen) == STEPS and len(held_out) == round(0.25 * len(task.train_images))
    assert not image_keys(held_out) & {image.contiguous().numpy().tobytes() for image in batches}
    # the inliers all come from the kept images (the check above could not fail if nothing trained)
    assert {image.numpy().tobytes() for image in batches} & image_keys(kept)


def test_proxies_and_thresholds_reach_mlflow_and_the_csv(tmp_path, session_tracking_uri):
    tracker = MlflowTracker(session_tracking_uri, "label-free")
    result = run_experiment(config(val_fraction=0.25), tracker=tracker, results_csv=tmp_path / "runs.csv")
    rows = pd.read_csv(tmp_path / "runs.csv").set_index("scorer")
    client = MlflowClient(session_tracking_uri)
    metrics = client.get_run(result.run_id).data.metrics
    val_history = client.get_metric_history(result.run_id, "val_auroc/knn")
    assert sorted(m.step for m in val_history) == [0, STEPS // 2, STEPS]
    for name in ("rankme", "alignment", "uniformity", "train_loss"):
        assert math.isfinite(rows.loc["knn", name]) and rows.loc["knn", name] == pytest.approx(metrics[name])
    assert 0 <= rows.loc["knn", "val_auroc"] <= 1 and rows.loc["knn", "threshold_source"] == "held-out"
    # the rotation ensemble has no held-out proxies and calibrates on the training normals
    assert np.isnan(rows.loc["knn-shift", "val_auroc"])
    assert rows.loc["knn-shift", "threshold_source"] == "train-leave-one-out"
    for spec in ("knn", "knn-shift"):
        threshold = result.thresholds[spec]["threshold"]
        scores = next(r.scores for r in result.scorer_results if r.spec == spec)
        assert rows.loc[spec, "fpr_at_threshold"] == pytest.approx(
            float((scores[~labels_of(result)] > threshold).mean()))
    assert set(PROXIES + THRESHOLD_COLUMNS) <= set(rows.columns)


def test_without_held_out_normals_the_held_out_proxies_are_empty():
    result = run_experiment(config())
    assert "val_auroc/knn" not in result.proxies and math.isfinite(result.proxies["rankme"])
    assert {t["threshold_source"] for t in result.thresholds.values()} == {"train-leave-one-out"}


def test_leaderboard_writes_selection_and_proxy_curves(tmp_path, session_tracking_uri):
    tracker = MlflowTracker(session_tracking_uri, "selection")
    for objective in ("firm", "simclr"):
        for normal_class in ("0", "1"):
            run_experiment(dataclasses.replace(config(val_fraction=0.25), objective=objective,
                                               normal_class=normal_class, scorers=["knn"]), tracker=tracker)
    paths = write_leaderboard(session_tracking_uri, "selection", tmp_path)
    curves = pd.read_csv(paths["curves.csv"])
    assert curves["val_auroc"].notna().all() and curves.loc[curves["step"] > 0, "train_loss"].notna().all()
    selection = pd.read_csv(paths["selection.csv"])
    assert set(selection["proxy"]) == set(PROXIES) and set(selection["level"]) == {"objective", "checkpoint"}
    objective_level = selection[selection["level"] == "objective"]
    assert (objective_level["n_contexts"] == 2).all()  # two classes, one seed: two choices of objective
    assert "## Label-free selection" in paths["leaderboard.md"].read_text()


def labels_of(result) -> np.ndarray:
    """The test labels of a run's task (True = anomaly)."""
    task = one_class_task(load_dataset(result.config.dataset, None, result.config.image_size),
                          result.config.normal_class)
    return task.test_is_anomaly.numpy()
