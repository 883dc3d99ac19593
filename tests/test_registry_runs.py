"""Registry-driven smoke tests: every objective x every outlier generator, and every scorer,
through ``anobench run`` on the built-in dataset."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from anobench.cli import app
from anobench.objectives import list_objectives
from anobench.outliers import list_generators
from anobench.scorers import get_scorer, list_scorers

runner = CliRunner()
BASE = ["run", "--preset", "smoke", "--device", "cpu", "--steps", "2", "--scorer", "knn"]


@pytest.mark.parametrize("outliers", list_generators())
@pytest.mark.parametrize("objective", list_objectives())
def test_every_objective_trains_with_every_generator(objective, outliers, tmp_path):
    extra = ["--oe-source", "digits"] if outliers == "oe" else []
    result = runner.invoke(app, [*BASE, "--objective", objective, "--outliers", outliers, *extra])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "results" / "default" / "runs.csv")
    assert rows.loc[0, "objective"] == objective and rows.loc[0, "outliers"] == outliers
    assert 0.0 <= rows.loc[0, "auroc"] <= 1.0


def objective_for(scorer_name: str) -> str:
    """An objective that provides what the scorer reads (a shift head, an own score head)."""
    scorer = get_scorer(scorer_name)
    if scorer.views == "csi":
        return "csi"
    return "oe" if scorer.views == "own-head" else "firm"


@pytest.mark.parametrize("scorer", list_scorers())
def test_every_scorer_scores_through_run(scorer, tmp_path):
    args = ["run", "--preset", "smoke", "--device", "cpu", "--steps", "2", "--scorer", scorer,
            "--objective", objective_for(scorer), "--experiment", "scorers"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "results" / "scorers" / "runs.csv")
    assert rows.loc[0, "scorer"] == scorer
    assert 0.0 <= rows.loc[0, "auroc"] <= 1.0 and 0.0 <= rows.loc[0, "fpr95"] <= 1.0


def test_scorer_needing_a_head_the_objective_lacks_is_one_clear_error():
    result = runner.invoke(app, [*BASE, "--objective", "firm", "--scorer", "csi"])
    assert result.exit_code == 2
    assert "needs an objective with a shift head" in result.stderr


def test_oe_generator_without_source_is_one_clear_error():
    result = runner.invoke(app, [*BASE, "--outliers", "rot90+oe"])
    assert result.exit_code == 2
    assert "--oe-source" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_objective_parameter_is_one_clear_error():
    result = runner.invoke(app, [*BASE, "-p", "tau=-1"])
    assert result.exit_code == 2
    assert "tau" in result.stderr and len(result.stderr.strip().splitlines()) == 1
