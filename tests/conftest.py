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
