"""``anobench register``: a run's logged detector goes into the MLflow Model Registry, its model
version pointing at the run and tagged with the run's real headline metrics."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from anobench.cli import app
from anobench.model_registry import register_detector
from anobench.tracking import MlflowTracker, metric_key

runner = CliRunner()


def test_the_version_points_at_the_run_and_carries_its_metrics(logged_run):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    uri, result = logged_run
    mlflow.set_tracking_uri(uri)  # where get_model_info looks up models:/ URIs
    version = register_detector(result.run_id, "firm-digits-0", uri)
    client = MlflowClient(uri)
    stored = client.get_model_version("firm-digits-0", version.version)
    run = client.get_run(result.run_id)
    assert stored.run_id == result.run_id and stored.source == f"{run.info.artifact_uri}/model"
    for scored in result.scorer_results:
        for name in ("auroc", "aupr", "fpr95"):
            assert float(stored.tags[metric_key(name, scored.spec)]) == scored.metrics[name]
    assert stored.tags["run_key"] == result.config.key() and stored.tags["objective"] == "firm"
    assert stored.tags["dataset"] == "digits" and stored.tags["normal_class"] == result.normal_class_name
    assert get_model_info(f"models:/firm-digits-0/{version.version}").metadata["run_key"] == result.config.key()


def test_cli_registers_by_uri_and_best_run_as_new_versions(logged_run):
    uri, result = logged_run
    by_uri = runner.invoke(app, ["register", f"runs:/{result.run_id}", "--name", "cli-detector", "--tracking-uri", uri])
    assert by_uri.exit_code == 0, by_uri.output
    assert by_uri.stdout.strip() == f"registered 'cli-detector' version 1: models:/cli-detector/1 (run {result.run_id})"
    best = runner.invoke(app, ["register", "--best", "--experiment", "detector", "--scorer", "knn",
                               "--name", "cli-detector", "--tracking-uri", uri])
    assert best.exit_code == 0, best.output
    assert "version 2" in best.stdout and f"run {result.run_id}: highest test AUROC" in best.stderr


@pytest.fixture(scope="module")
def run_ids(logged_run):
    """Stand-ins of the error cases' arguments: the logged run, and a run without a model."""
    uri, result = logged_run
    with MlflowTracker(uri, "no-model").start_run("bare", {}) as bare:
        pass
    return {"RUN": result.run_id, "BARE": bare.run_id}


@pytest.mark.parametrize(("args", "expected"), [
    (["0" * 32, "--name", "x"], f"no run '{'0' * 32}' in sqlite:///"),
    (["BARE", "--name", "x"], "has no model at 'model' (was it made with --no-log-model?)"),
    (["RUN", "--name", ""], "invalid registered model name ''"),
    (["RUN", "--name", "a/b"], "invalid registered model name 'a/b': Invalid model name 'a/b'"),
    (["models:/x/1", "--name", "x"], "'models:/x/1' is a registered model already"),
    (["RUN"], "Missing option '--name'"),
], ids=["unknown-run", "no-model", "empty-name", "slash-in-name", "models-uri", "no-name"])
def test_bad_input_is_one_error_line(logged_run, run_ids, args, expected):
    outcome = runner.invoke(app, ["register", *(run_ids.get(a, a) for a in args), "--tracking-uri", logged_run[0]])
    assert outcome.exit_code == 2, outcome.output
    assert len(outcome.stderr.strip().splitlines()) == 1 and outcome.stderr.startswith("error: ")
    assert expected in outcome.stderr and "Traceback" not in outcome.output
