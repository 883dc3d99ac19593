"""End-to-end tests of ``anobench run`` and its bad-input handling."""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from anobench.cli import app
from fakedata import write_cifar10

runner = CliRunner()

SMOKE = ["--preset", "smoke", "--device", "cpu"]


def invoke(*args: str):
    return runner.invoke(app, ["run", *args])


def one_error_line(result) -> str:
    """The single error line of a failed invocation (and no traceback)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_run_on_generated_cifar10_learns_the_normal_class(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # check the default store: ./mlflow.db
    write_cifar10(tmp_path / "data", n_train_per_class=40, n_test_per_class=20)
    result = invoke(
        "--objective", "firm", "--scorer", "knn", "--scorer", "mahalanobis", "--dataset", "cifar10",
        "--data-root", str(tmp_path / "data"), "--normal-class", "airplane", "--steps", "40",
        "--experiment", "e2e", *SMOKE,
    )
    assert result.exit_code == 0, result.output
    assert "AUROC" in result.stdout

    rows = pd.read_csv(tmp_path / "results" / "e2e" / "runs.csv")
    assert sorted(rows["scorer"]) == ["knn", "mahalanobis"]
    assert (rows["auroc"] > 0.8).all(), rows[["scorer", "auroc"]]
    assert (rows["normal_class_name"] == "airplane").all()

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("e2e")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["objective"] == "firm"
    assert run.data.params["train.steps"] == "40"
    assert run.data.tags["dataset"] == "cifar10"
    assert "split" in run.data.tags and "torch.version" in run.data.tags
    assert run.data.tags["torch.num_threads"] == str(torch.get_num_threads())
    assert rows["torch_threads"].eq(torch.get_num_threads()).all()
    assert rows["hardware"].iloc[0] == run.data.tags["hardware"] and rows["hardware"].iloc[0]
    versions = json.loads(rows["versions"].iloc[0])
    assert {"anobench", "python", "torch", "numpy", "mlflow"} <= set(versions)
    assert versions["torch"] in torch.__version__
    assert run.data.metrics["auroc/knn"] == pytest.approx(rows.set_index("scorer").loc["knn", "auroc"])
    for key in ("aupr/knn", "fpr95/knn", "auroc/mahalanobis", "loss"):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "test_scores.csv", "roc.png"} <= artifacts
    config = json.loads(open(client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))).read())
    assert config["objective"] == "firm" and config["dataset"] == "cifar10"
    scores = pd.read_csv(client.download_artifacts(run.info.run_id, "test_scores.csv", str(tmp_path)))
    assert len(scores) == 200 and {"score:knn", "score:mahalanobis", "is_anomaly"} <= set(scores.columns)


def test_default_dataset_runs_with_smoke_preset(tmp_path):
    result = invoke("--objective", "firm", "--scorer", "knn", *SMOKE, "--steps", "3")
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "results" / "default" / "runs.csv")
    assert rows.loc[0, "dataset"] == "digits" and rows.loc[0, "steps"] == 3


def test_same_seed_repeats_the_run_exactly(tmp_path):
    for _ in range(2):
        assert invoke("--steps", "3", *SMOKE).exit_code == 0
    rows = pd.read_csv(tmp_path / "results" / "default" / "runs.csv")
    assert rows.loc[0, "auroc"] == rows.loc[1, "auroc"]
    assert rows.loc[0, "run_key"] == rows.loc[1, "run_key"]


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--objective", "nope", "unknown objective 'nope'; valid names: "),
        ("--scorer", "nope", "unknown scorer 'nope'; valid names: "),
        ("--dataset", "nope", "unknown dataset 'nope'; valid names: "),
        ("--preset", "nope", "unknown preset 'nope'; valid names: paper, quick, smoke"),
    ],
)
def test_unknown_names_list_the_valid_ones(flag, value, expected):
    args = [*SMOKE, flag, value] if flag != "--preset" else ["--device", "cpu", flag, value]
    line = one_error_line(invoke(*args))
    assert expected in line
    assert "firm" in line if flag == "--objective" else True


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--epochs", "0"], "epochs must be > 0, got 0"),
        (["--steps", "-3"], "steps must be > 0, got -3"),
        (["--batch-size", "0"], "batch_size must be > 0, got 0"),
        (["--batch-size", "2"], "batch_size 2 is too small to hold an inlier and an outlier"),
        (["--normal-class", "10"], "10"),
        (["--normal-class", "unicorn"], "unicorn"),
    ],
)
def test_bad_settings_give_one_clear_line(args, expected):
    assert expected in one_error_line(invoke(*SMOKE, *args))


def test_missing_data_folder_names_the_path_and_layout(tmp_path):
    line = one_error_line(invoke(*SMOKE, "--dataset", "cifar10", "--data-root", str(tmp_path / "none")))
    assert str(tmp_path / "none") in line and "cifar-10-batches-py" in line


def test_missing_data_root_names_the_variable():
    line = one_error_line(invoke(*SMOKE, "--dataset", "cifar10"))
    assert "ANOBENCH_DATA_ROOT" in line


def test_incomplete_data_folder_is_reported(tmp_path):
    folder = write_cifar10(tmp_path / "data", n_train_per_class=2, n_test_per_class=1)
    (folder / "data_batch_3").unlink()
    line = one_error_line(invoke(*SMOKE, "--dataset", "cifar10", "--data-root", str(tmp_path / "data")))
    assert "data_batch_3" in line


def test_corrupt_data_file_is_reported(tmp_path):
    folder = write_cifar10(tmp_path / "data", n_train_per_class=2, n_test_per_class=1)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": "garbage"})[:10])
    line = one_error_line(invoke(*SMOKE, "--dataset", "cifar10", "--data-root", str(tmp_path / "data")))
    assert "test_batch" in line


def test_data_root_from_environment(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "envdata", n_train_per_class=8, n_test_per_class=2)
    monkeypatch.setenv("ANOBENCH_DATA_ROOT", str(tmp_path / "envdata"))
    result = invoke(*SMOKE, "--dataset", "cifar10", "--steps", "2")
    assert result.exit_code == 0, result.output


def test_list_shows_every_registry():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for word in ("objectives: ", "firm", "scorers: ", "knn", "datasets: ", "digits", "presets: "):
        assert word in result.stdout


def test_eval_checkpoints_record_the_auroc_curve_and_aulc(tmp_path):
    result = invoke(*SMOKE, "--steps", "4", "--eval-checkpoints", "2", "--experiment", "curve")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "results" / "curve" / "runs.csv").iloc[0]
    assert 0.0 <= row["aulc"] <= 1.0 and row["eval_checkpoints"] == 2


def test_lr_flag_reaches_the_training_config(tmp_path):
    result = invoke(*SMOKE, "--steps", "2", "--lr", "0.003", "--experiment", "lr")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "results" / "lr" / "runs.csv").iloc[0]
    assert json.loads(row["config_json"])["train"]["lr"] == 0.003
