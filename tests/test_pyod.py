"""PyOD detectors as scorers (``pyod:NAME[:key=value,...]``): scores against PyOD itself, the
cross-fitted training scores, the one-line errors, and a sweep through to the leaderboard and the
reloaded model."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from pyod.models.ecod import ECOD
from pyod.models.iforest import IForest
from typer.testing import CliRunner

import anobench.runner
from anobench.cli import app
from anobench.config import RunConfig, preset
from anobench.errors import ConfigError
from anobench.scorers import get_scorer

runner = CliRunner()
RUN = ["run", "--preset", "smoke", "--device", "cpu", "--steps", "2"]


def features(seed: int, n: int, d: int = 8) -> np.ndarray:
    """float64 features that float32 represents exactly (scorers receive float32 features)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=(n, 1))
    return x.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize(("params", "reference"), [
    pytest.param({"detector": "ECOD"}, lambda: ECOD(), id="ecod"),
    pytest.param({"detector": "IForest", "n_estimators": 30},
                 lambda: IForest(n_estimators=30, random_state=0), id="iforest-default-random-state"),
    pytest.param({"detector": "IForest", "n_estimators": 30, "random_state": 7},
                 lambda: IForest(n_estimators=30, random_state=7), id="iforest-random-state-7"),
])
def test_scores_equal_the_detector_fitted_directly(params: dict[str, Any], reference: Any) -> None:
    bank, queries = features(0, 80), features(1, 25)
    scorer = get_scorer("pyod", **params).fit(torch.from_numpy(bank).float())
    expected = reference().fit(bank).decision_function(queries)
    np.testing.assert_array_equal(scorer.decision_function(queries), expected)


@pytest.mark.parametrize(("detector", "reference", "same_as_pyod"),
                         [("ECOD", ECOD, True), ("IForest", IForest, False)])
def test_training_scores_are_cross_fitted(detector: str, reference: Any, same_as_pyod: bool) -> None:
    """Fold f (rows i with i mod 3 = f) is scored by a detector fitted on the other rows. ECOD
    ranks its queries among the fitted rows and the queries, so that is PyOD's training score;
    IForest's training scores come from trees grown on the row itself."""
    bank = features(2, 30)
    kwargs = {"n_estimators": 30, "random_state": 0} if reference is IForest else {}
    expected = np.empty(len(bank))
    for f in range(3):
        fold = [i for i in range(len(bank)) if i % 3 == f]
        others = [i for i in range(len(bank)) if i % 3 != f]
        expected[fold] = reference(**kwargs).fit(bank[others]).decision_function(bank[fold])
    scorer = get_scorer("pyod", detector=detector, n_folds=3, **kwargs).fit(bank)
    np.testing.assert_array_equal(scorer.score_train(), expected)
    in_sample = reference(**kwargs).fit(bank).decision_scores_
    assert np.array_equal(scorer.score_train(), in_sample) == same_as_pyod


def the_error_line(args: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The one ``error:`` line of a run that must fail before training (exit code 2)."""

    def started(*_: Any, **__: Any) -> None:
        raise AssertionError("bad input reached training")

    monkeypatch.setattr(anobench.runner, "train", started)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("spec", "expected"), [
    ("pyod:Foo", "unknown detector 'Foo'; valid names: ABOD, CBLOF,"),
    ("pyod:IForest:n_trees=5",
     "scorer 'pyod:IForest': unknown parameter 'n_trees'; valid parameters: n_estimators,"),
    ("pyod:KNN:n_neighbors=abc", "n_neighbors must be a positive integer, got 'abc'"),
    ("pyod:n_estimators=5", "spec 'pyod:n_estimators=5' names no detector"),
    ("pyod:ECOD:detector=KNN", "parameter 'detector' is given twice"),
    ("pyod:ECOD:n_folds=1", "n_folds must be >= 2, got 1"),
])
def test_bad_specs_give_one_line_before_training(
    spec: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert expected in the_error_line([*RUN, "--scorer", "knn", "--scorer", spec], monkeypatch)


def test_neighbour_count_is_checked_against_the_bank() -> None:
    config = RunConfig(objective="firm", scorers=["pyod:KNN:n_neighbors=500"], train=preset("smoke"))
    with pytest.raises(ConfigError, match="n_neighbors=500 needs at least 501 normal training images"):
        config.check_data_size(126)


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyod", None)  # what an environment without PyOD finds
    line = the_error_line([*RUN, "--scorer", "pyod:ECOD"], monkeypatch)
    assert line == "error: scorer 'pyod:ECOD' needs PyOD: pip install 'anobench[pyod]'"


def test_sweep_leaderboard_and_reloaded_model(tmp_path, session_tracking_uri) -> None:
    import mlflow

    from anobench.data import load_dataset

    specs = ["knn", "pyod:ECOD", "pyod:IForest:n_estimators=20"]
    scorer_flags = [a for s in specs for a in ("--scorer", s)]
    sweep = runner.invoke(app, ["sweep", "--objective", "firm", *scorer_flags, "--preset", "smoke",
                                "--steps", "2", "--classes", "0", "--seeds", "0", "--device", "cpu",
                                "--workers", "1", "--experiment", "pyod"])
    assert sweep.exit_code == 0, sweep.output
    board = runner.invoke(app, ["leaderboard", "--experiment", "pyod"])
    assert board.exit_code == 0, board.output
    table = pd.read_csv(tmp_path / "results" / "pyod" / "leaderboard.csv").set_index("scorer")
    assert set(table.index) == set(specs)
    assert np.isfinite(table["auroc_mean"]).all() and table["auroc_mean"].between(0, 1).all()

    # The logged model stores the bank and refits each detector on it: same scores as the run.
    mlflow.set_tracking_uri(session_tracking_uri)  # the sweep's store, whatever an earlier test set
    experiment = mlflow.get_experiment_by_name("pyod").experiment_id
    run_id = mlflow.MlflowClient().search_runs([experiment])[0].info.run_id
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    predicted = model.predict(load_dataset("digits", None, 32).test.images.permute(0, 2, 3, 1).numpy())
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/test_scores.csv"))
    for spec in specs[1:]:
        np.testing.assert_array_equal(predicted[f"score:{spec}"], logged[f"score:{spec}"])
