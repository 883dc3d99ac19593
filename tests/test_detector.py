"""The logged detector: a fresh process reloads it and reproduces the run's test scores."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from anobench.detector import STATE_FILE, Detector, IncompatibleModelError

RELOAD = """
import sys, mlflow, numpy as np, pandas as pd
from anobench.data import load_dataset
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
images = load_dataset("digits", None, 32).test.images.permute(0, 2, 3, 1).numpy()
model.predict(images).to_csv(sys.argv[3], index=False)
"""


def test_fresh_process_reproduces_test_scores(logged_run, tmp_path):
    import mlflow

    uri, result = logged_run
    out = tmp_path / "predicted.csv"
    subprocess.run([sys.executable, "-c", RELOAD, uri, result.run_id, str(out)], check=True)
    predicted = pd.read_csv(out)
    mlflow.set_tracking_uri(uri)
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/test_scores.csv"))
    for spec in result.config.scorers:
        np.testing.assert_array_equal(predicted[f"score:{spec}"], logged[f"score:{spec}"])
        threshold = result.thresholds[spec]["threshold"]
        np.testing.assert_array_equal(predicted[f"is_anomaly:{spec}"], logged[f"score:{spec}"] > threshold)
    assert (predicted["p_value"] == predicted[f"p_value:{result.config.scorers[0]}"]).all()
    assert predicted["p_value"].between(0, 1).all()


def test_other_format_is_refused(logged_run, tmp_path):
    import mlflow

    uri, result = logged_run
    mlflow.set_tracking_uri(uri)
    folder = mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/model")
    state_path = next(p for p in __import__("pathlib").Path(folder).rglob(STATE_FILE))
    state = torch.load(state_path, weights_only=True)
    meta = json.loads(state["meta"])
    state["meta"] = json.dumps({**meta, "format": 999})
    torch.save(state, tmp_path / STATE_FILE)
    with pytest.raises(IncompatibleModelError, match="format 999"):
        Detector().load(tmp_path / STATE_FILE)
    assert "head" in state and not state["head"]  # no scorer reads projections: head left out


@pytest.mark.parametrize("objective, scorers", [("csi", ["csi:samples=1", "knn"]), ("oe", ["oe-head", "knn"])])
def test_models_with_heads_reproduce_test_scores(objective, scorers, tmp_path, monkeypatch):
    """The shift head and CSI's training views (csi), the OE head (oe-head): the reloaded model
    scores the run's test images exactly as the run did."""
    import mlflow

    from anobench.config import RunConfig, preset
    from anobench.data import load_dataset
    from anobench.runner import run_experiment
    from anobench.tracking import MlflowTracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = RunConfig(objective=objective, scorers=scorers, preset="smoke",
                       train=dataclasses.replace(preset("smoke"), steps=2))
    result = run_experiment(config, MlflowTracker(uri, "heads"))
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    images = load_dataset("digits", None, 32).test.images.permute(0, 2, 3, 1).numpy()
    predicted = model.predict(images)
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/test_scores.csv"))
    for spec in scorers:
        np.testing.assert_array_equal(predicted[f"score:{spec}"], logged[f"score:{spec}"])
