"""Shared test setup: every test runs in its own working directory with its own MLflow store."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Run each test in a fresh folder, with no data root or tracking URI from the outside."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANOBENCH_DATA_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
