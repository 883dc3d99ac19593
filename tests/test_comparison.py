"""Paired tests and convergence speed-ups of one objective against the others."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel
from typer.testing import CliRunner

from anobench.cli import app
from anobench.comparison import convergence_summary, convergence_table, paired_table, steps_to_reach
from anobench.errors import AnobenchError
from test_leaderboard import AUROC, STEPS, log_runs

ARENA = {"dataset": "d", "outliers": "rot", "preset": "p", "scorer": "knn"}


def rows_of(aurocs: dict[tuple[str, str, int], float]) -> pd.DataFrame:
    return pd.DataFrame([{**ARENA, "objective": o, "normal_class_name": c, "seed": s, "auroc": a}
                         for (o, c, s), a in aurocs.items()])


def curve_rows(objective: str, normal_class: str, seed: int, points: list[tuple[int, float]]) -> list[dict]:
    return [{**ARENA, "objective": objective, "normal_class_name": normal_class, "seed": seed, "step": step,
             "auroc": auroc} for step, auroc in points]


@pytest.mark.parametrize(("aurocs", "target", "expected"), [
    ([0.5, 0.7, 0.9], 0.8, 150.0),     # halfway between the checkpoints at 100 and 200
    ([0.5, 0.7, 0.9], 0.7, 100.0),     # exactly at a checkpoint
    ([0.85, 0.7, 0.9], 0.8, 0.0),      # the untrained encoder is already there
    ([0.5, 0.9, 0.6], 0.8, 75.0),      # the first crossing counts, not the last value
    ([0.5, 0.7, 0.75], 0.8, math.nan),  # never reached
])
def test_steps_to_reach(aurocs, target, expected):
    got = steps_to_reach(np.array([0, 100, 200]), np.array(aurocs), target)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_steps_to_reach_sorts_the_checkpoints():
    assert steps_to_reach(np.array([200, 0, 100]), np.array([0.9, 0.5, 0.7]), 0.8) == pytest.approx(150.0)


def test_paired_table_against_hand_computation():
    aurocs = {("firm", "a", 0): 0.9, ("firm", "a", 1): 0.8, ("firm", "b", 0): 0.7,
              ("simclr", "a", 0): 0.85, ("simclr", "a", 1): 0.82, ("simclr", "b", 0): 0.6,
              ("supcon", "a", 0): 0.5}  # one pair with firm only
    table = paired_table(rows_of(aurocs), "firm").set_index("objective")
    diff = np.array([0.05, -0.02, 0.1])
    assert table.loc["simclr", "n_pairs"] == 3
    assert table.loc["simclr", "mean_diff"] == pytest.approx(diff.mean())
    assert table.loc["simclr", "std_diff"] == pytest.approx(diff.std(ddof=1))
    assert (table.loc["simclr", "wins"], table.loc["simclr", "losses"]) == (2, 1)
    assert table.loc["simclr", "p_value"] == pytest.approx(ttest_rel([0.9, 0.8, 0.7], [0.85, 0.82, 0.6]).pvalue)
    half = 4.303 * diff.std(ddof=1) / math.sqrt(3)  # t(0.975, 2 degrees of freedom) from a printed table
    assert table.loc["simclr", "ci_low"] == pytest.approx(diff.mean() - half, rel=1e-3)
    assert table.loc["simclr", "ci_high"] == pytest.approx(diff.mean() + half, rel=1e-3)
    assert table.loc["supcon", "n_pairs"] == 1 and math.isnan(table.loc["supcon", "p_value"])
    assert math.isnan(table.loc["supcon", "ci_low"]) and math.isnan(table.loc["supcon", "ci_high"])


def test_confidence_interval_excludes_zero_exactly_when_p_is_below_five_percent():
    rng = np.random.default_rng(0)
    significant = []
    for shift in [0.0, 0.01, 0.03, 0.1]:
        firm = rng.uniform(0.6, 0.9, 8)
        other = firm - shift + rng.normal(0, 0.03, 8)
        aurocs = {**{("firm", str(i), 0): a for i, a in enumerate(firm)},
                  **{("simclr", str(i), 0): a for i, a in enumerate(other)}}
        row = paired_table(rows_of(aurocs), "firm").iloc[0]
        assert (row["ci_low"] > 0 or row["ci_high"] < 0) == (row["p_value"] < 0.05)
        significant.append(bool(row["p_value"] < 0.05))
    assert set(significant) == {True, False}  # both sides of the boundary were exercised


def test_paired_table_constant_differences():
    aurocs = {("firm", "a", 0): 0.9, ("firm", "b", 0): 0.8, ("oe", "a", 0): 0.9, ("oe", "b", 0): 0.8,
              ("csi", "a", 0): 0.8, ("csi", "b", 0): 0.7}
    table = paired_table(rows_of(aurocs), "firm").set_index("objective")
    assert table.loc["oe", "p_value"] == 1.0 and table.loc["csi", "p_value"] == 0.0


def test_unknown_reference_is_named():
    with pytest.raises(AnobenchError, match="reference objective 'nope' has no finished run; objectives: firm"):
        paired_table(rows_of({("firm", "a", 0): 0.9}), "nope")
    with pytest.raises(AnobenchError, match="no AUROC curve"):
        convergence_table(pd.DataFrame(curve_rows("simclr", "a", 0, [(0, 0.5), (10, 0.6)])), "firm")


def test_convergence_table_and_summary():
    curves = pd.DataFrame(
        curve_rows("firm", "a", 0, [(0, 0.5), (100, 0.7), (200, 0.9)])
        + curve_rows("simclr", "a", 0, [(0, 0.5), (100, 0.6), (200, 0.8)])   # firm reaches 0.8 at 150
        + curve_rows("firm", "b", 0, [(0, 0.9), (100, 0.9), (200, 0.95)])
        + curve_rows("simclr", "b", 0, [(0, 0.5), (100, 0.6), (200, 0.7)])   # firm starts above: inf
        + curve_rows("firm", "c", 0, [(0, 0.5), (100, 0.55), (200, 0.6)])
        + curve_rows("simclr", "c", 0, [(0, 0.5), (100, 0.6), (200, 0.7)])   # never: NaN
        + curve_rows("firm", "d", 0, [(0, 0.5), (100, 0.9), (200, 0.9)])
        + curve_rows("simclr", "d", 0, [(0, 0.5), (100, 0.6), (200, 0.7)])   # 0.7 at 50: 4x
        + curve_rows("firm", "e", 0, [(0, 0.5), (100, 0.9), (200, 0.9)])
        + curve_rows("simclr", "e", 0, [(0, 0.5), (100, 0.8), (200, 0.7)])   # simclr peaked: 0.7 at 200/3 vs 50
        + curve_rows("firm", "f", 0, [(0, 0.6), (100, 0.7), (200, 0.8)])
        + curve_rows("simclr", "f", 0, [(0, 0.6), (100, 0.55), (200, 0.5)])  # both start above 0.5: a tie
    )
    table = convergence_table(curves, "firm").set_index("normal_class_name")
    assert table.loc["a", "reference_steps"] == pytest.approx(150) and table.loc["a", "speedup"] == pytest.approx(200 / 150)
    assert table.loc["b", "speedup"] == math.inf and math.isnan(table.loc["c", "speedup"])
    assert table.loc["d", "speedup"] == pytest.approx(4.0) and table.loc["d", "target_auroc"] == pytest.approx(0.7)
    assert table.loc["a", "objective_steps"] == pytest.approx(200)
    assert table.loc["e", "objective_steps"] == pytest.approx(200 / 3) and table.loc["e", "reference_steps"] == pytest.approx(50)
    assert table.loc["e", "speedup"] == pytest.approx(4 / 3)
    assert table.loc["f", ["objective_steps", "reference_steps", "speedup"]].tolist() == [0.0, 0.0, 1.0]
    summary = convergence_summary(table.reset_index()).iloc[0]
    assert summary["n_pairs"] == 6 and summary["reached_at_init"] == 2 and summary["never_reached"] == 1
    assert summary["median_speedup"] == pytest.approx(np.median([200 / 150, 4.0, 4 / 3, 1.0]))


def test_leaderboard_reference_writes_the_comparison(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri, "cmp")
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "cmp", "--tracking-uri", uri,
                                      "--output-dir", str(tmp_path), "--reference", "firm"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "cmp"
    curves = pd.read_csv(folder / "curves.csv", dtype={"normal_class": str})
    assert len(curves) == 3 * len(AUROC) and set(curves["step"]) == {0, STEPS // 2, STEPS}
    paired = pd.read_csv(folder / "paired_vs_firm.csv").iloc[0]
    firm = [AUROC[("firm", c, s)] for c in "01" for s in (0, 1)]
    simclr = [AUROC[("simclr", c, s)] for c in "01" for s in (0, 1)]
    assert paired["objective"] == "simclr" and paired["n_pairs"] == 4
    assert paired["mean_diff"] == pytest.approx(np.mean(firm) - np.mean(simclr))
    assert paired["p_value"] == pytest.approx(ttest_rel(firm, simclr).pvalue)
    convergence = pd.read_csv(folder / "convergence_vs_firm.csv", dtype={"normal_class_name": str})
    # firm's curve: 0.5, (0.5 + a) / 2, a at steps 0, 10, 20; simclr's final AUROC is the target.
    for row in convergence.itertuples():
        a, target = AUROC[("firm", row.normal_class_name[-1], row.seed)], row.target_auroc
        mid = (0.5 + a) / 2
        needed = 10 * (target - 0.5) / (mid - 0.5) if target <= mid else 10 + 10 * (target - mid) / (a - mid)
        assert row.reference_steps == pytest.approx(needed) and row.speedup == pytest.approx(STEPS / needed)
    assert (folder / "comparison_vs_firm.md").read_text().startswith("# firm against each objective")
    assert "| simclr | 4 |" in (folder / "comparison_vs_firm.md").read_text()


def test_leaderboard_reference_must_exist(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri, "cmp2")
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "cmp2", "--tracking-uri", uri,
                                      "--output-dir", str(tmp_path), "--reference", "csi"])
    assert result.exit_code == 2 and "reference objective 'csi' has no finished run" in result.stderr
    assert not (tmp_path / "cmp2").exists()


def test_pipe_table_aligns_numbers_and_checks_row_width():
    from anobench.markdown import number_cell, pipe_table

    assert pipe_table(["a", "n"], [["x", 1], ["y", number_cell(float("nan"), ".2f")]], right={"n"}) == [
        "| a | n |", "|---|---:|", "| x | 1 |", "| y |  |"]
    with pytest.raises(ValueError, match=r"a table row has 1 cells for 2 columns: \['x'\]"):
        pipe_table(["a", "n"], [["x"]])
