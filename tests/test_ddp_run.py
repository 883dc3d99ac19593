"""One run over two processes: ``torchrun -m anobench.cli run`` with DDP on gloo (CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "anobench.cli", "run"]


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        *TORCHRUN, "--preset", "smoke", "--steps", "3", "--device", "cpu", "--experiment", "ddp",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--output-dir", str(tmp_path / "results"), *args,
    ]
    return subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_two_processes_train_one_run_recorded_once(tmp_path: Path) -> None:
    done = _torchrun(tmp_path, "--scorer", "knn", "--scorer", "mahalanobis")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "results" / "ddp" / "runs.csv")
    assert sorted(rows["scorer"]) == ["knn", "mahalanobis"]  # rank 0 alone wrote
    assert (rows["steps"] == 3).all()
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ddp")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == rows["mlflow_run_id"].iloc[0]
    assert done.stdout.count("AUROC") == 1  # one results table


def test_batch_size_not_split_by_two_is_one_error_line(tmp_path: Path) -> None:
    done = _torchrun(tmp_path, "--batch-size", "15")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "batch_size 15" in errors[0] and "2 processes" in errors[0]
    assert not (tmp_path / "results" / "ddp" / "runs.csv").exists()
