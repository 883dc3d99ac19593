"""Shared test setup: every test runs in its own working directory, with no data root from the
outside, and logs to one MLflow sqlite store per test session (creating a store costs seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def session_tracking_uri(tmp_path_factory):
    """A sqlite MLflow store shared by the whole test session."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch, session_tracking_uri):
    """Run each test in a fresh folder, logging to the session's MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANOBENCH_DATA_ROOT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", session_tracking_uri)
    return tmp_path


@pytest.fixture(scope="session")
def logged_run(tmp_path_factory):
    """``(tracking URI, RunResult)`` of a tiny finished run (firm on digits, smoke preset, 2 steps)
    whose detector is logged as its MLflow model, in experiment ``detector`` of a store of its own.
    Its scorers read plain features and (``knn-ens``) random test-time crops."""
    import dataclasses

    from anobench.config import RunConfig, preset
    from anobench.runner import run_experiment
    from anobench.tracking import MlflowTracker

    folder = tmp_path_factory.mktemp("logged_run")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = RunConfig(objective="firm", scorers=["knn", "mahalanobis", "knn-ens"],
                       train=dataclasses.replace(preset("smoke"), steps=2), preset="smoke")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the experiment's artifacts (./mlruns) go next to the store
        return uri, run_experiment(config, MlflowTracker(uri, "detector"))
