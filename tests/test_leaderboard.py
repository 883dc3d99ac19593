"""`anobench leaderboard`: tables and plots from an experiment's MLflow runs."""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ttest_rel
from typer.testing import CliRunner

from anobench.cli import app
from anobench.config import RunConfig, preset
from anobench.report.leaderboard import leaderboard_table, markdown_table, per_class_table
from anobench.results_csv import RESULT_COLUMNS, SCHEMA_VERSION
from anobench.runner import run_tags
from anobench.tracking import MlflowTracker

# AUROC of (objective, class, seed), and a curve that rises to it.
AUROC = {
    ("firm", "0", 0): 0.95, ("firm", "0", 1): 0.93, ("firm", "1", 0): 0.90, ("firm", "1", 1): 0.94,
    ("simclr", "0", 0): 0.85, ("simclr", "0", 1): 0.88, ("simclr", "1", 0): 0.80, ("simclr", "1", 1): 0.86,
}
STEPS = 20


def log_runs(uri: str, experiment: str, config_artifact: bool = True) -> None:
    tracker = MlflowTracker(uri, experiment)
    for (objective, normal_class, seed), auroc in AUROC.items():
        config = RunConfig(objective=objective, scorers=["knn"], normal_class=normal_class, seed=seed,
                           eval_checkpoints=2, train=dataclasses.replace(preset("smoke"), steps=STEPS))
        with tracker.start_run("r", run_tags(config, "split", f"class{normal_class}", torch.device("cpu"))) as run:
            run.log_params(config.flat_params())
            if config_artifact:
                run.log_text(config.to_json(), "config.json")
            run.log_metrics({"auroc/knn": 0.5}, step=0)
            run.log_metrics({"auroc/knn": (0.5 + auroc) / 2}, step=STEPS // 2)
            run.log_metrics({"auroc/knn": auroc, "aupr/knn": auroc - 0.1, "fpr95/knn": 1 - auroc,
                             "aulc/knn": 0.25 * (0.5 + (0.5 + auroc) / 2) + 0.25 * ((0.5 + auroc) / 2 + auroc),
                             "train_wall_s": 1.0, "images_per_s": 100.0}, step=STEPS)
    with tracker.start_run("failed", {"run_key": "broken", "objective": "firm"}):
        pass  # a FINISHED run without config.json would break loading; failed runs are ignored below
    client = tracker._client()
    broken = client.search_runs([tracker.experiment_id(client)], "tags.run_key = 'broken'")[0]
    client.set_terminated(broken.info.run_id, status="FAILED")


def test_leaderboard_files(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri, "lb")
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "lb", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "lb"

    runs = pd.read_csv(folder / "runs.csv", dtype={"normal_class": str})
    assert tuple(runs.columns) == RESULT_COLUMNS and len(runs) == 8 and (runs["schema_version"] == SCHEMA_VERSION).all()
    got = {(r.objective, r.normal_class, r.seed): r.auroc for r in runs.itertuples()}
    assert got == pytest.approx(AUROC)
    assert (runs["steps"] == STEPS).all() and runs["aulc"].notna().all()
    assert (runs["train.steps"] == STEPS).all() and (runs["eval_checkpoints"] == 2).all()

    per_class = pd.read_csv(folder / "per_class.csv").set_index("objective")
    firm0 = [AUROC[("firm", "0", s)] for s in (0, 1)]
    assert per_class.loc["firm", "class0"] == f"{statistics.mean(firm0):.4f} ± {statistics.stdev(firm0):.4f}"

    board = pd.read_csv(folder / "leaderboard.csv").set_index("objective")
    seed_means = {o: [np.mean([AUROC[(o, c, s)] for c in "01"]) for s in (0, 1)] for o in ("firm", "simclr")}
    assert board.loc["firm", "auroc_mean"] == pytest.approx(np.mean(seed_means["firm"]))
    assert board.loc["firm", "auroc_std"] == pytest.approx(statistics.stdev(seed_means["firm"]))
    assert board.loc["firm", "rank"] == 1 and board.loc["simclr", "rank"] == 2
    assert np.isnan(board.loc["firm", "p_value_vs_best"])
    # The class is the unit: each objective's AUROC averaged over the two seeds, per class.
    class_means = {o: [np.mean([AUROC[(o, c, s)] for s in (0, 1)]) for c in "01"] for o in ("firm", "simclr")}
    expected_p = ttest_rel(class_means["simclr"], class_means["firm"]).pvalue
    assert board.loc["simclr", "p_value_vs_best"] == pytest.approx(expected_p)
    assert board.loc["simclr", "n_pairs"] == 4 and board.loc["simclr", "best"] == "firm/knn"
    assert board.loc["firm", "aulc_mean"] == pytest.approx(runs[runs.objective == "firm"]["aulc"].mean())

    markdown = (folder / "leaderboard.md").read_text()
    assert "| 1 | firm | knn |" in markdown and "| 2 | simclr | knn |" in markdown
    for png in ("auroc_curves.png", "per_class_auroc.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (folder / png).stat().st_size > 5000


def test_the_tracking_store_alone_regenerates_the_tables(tmp_path):
    """Runs carry their config as a tag, so a copied store without its artifacts is enough."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    log_runs(uri, "tags-only", config_artifact=False)
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "tags-only", "--tracking-uri", uri,
                                      "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(tmp_path / "out" / "tags-only" / "runs.csv", dtype={"normal_class": str})
    assert {(r.objective, r.normal_class, r.seed): r.auroc for r in runs.itertuples()} == pytest.approx(AUROC)


def test_missing_experiment_is_one_error_line(tmp_path):
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "nope"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: no experiment 'nope' in sqlite:///")
    assert len(result.stderr.strip().splitlines()) == 1


def test_figures_keep_one_colour_per_objective_across_panels():
    from matplotlib.container import BarContainer

    from anobench.report.leaderboard import curves_figure, per_class_figure

    curves = pd.DataFrame([{"scorer": s, "objective": o, "progress": p, "auroc": 0.6 + p / 4, "normal_class_name": "a"}
                           for s, objectives in [("csi", ["csi"]), ("knn", ["csi", "firm", "oe"]), ("oe-head", ["oe"])]
                           for o in objectives for p in (0.0, 0.5, 1.0)])
    fig = curves_figure(curves)
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert set(colours) == {"csi", "firm", "oe"} and all(len(c) == 1 for c in colours.values())
    assert len({next(iter(c)) for c in colours.values()}) == 3
    bars = per_class_figure(curves.rename(columns={"progress": "seed"}))
    fills = {}
    for ax in bars.axes:
        for container in (c for c in ax.containers if isinstance(c, BarContainer)):
            fills.setdefault(container.get_label(), set()).update(tuple(bar.get_facecolor()) for bar in container)
    assert set(fills) == {"csi", "firm", "oe"} and all(len(c) == 1 for c in fills.values())
    assert len({next(iter(c)) for c in fills.values()}) == 3


def result_row(normal_class: str, seed: int, auroc: float, objective: str = "firm") -> dict:
    return {"dataset": "d", "outliers": "o", "preset": "p", "objective": objective, "scorer": "knn",
            "normal_class_name": normal_class, "seed": seed, "auroc": auroc, "run_key": f"{normal_class}{seed}",
            "aulc": 0.5, "aupr": 0.5, "fpr95": 0.5, "train_wall_s": 1.0, "plugins": ""}


def test_partial_seeds_compare_seeds_on_common_classes_only():
    # seed 1 has only class "a": the mean weighs each class once, the std compares seeds on "a".
    rows = pd.DataFrame([result_row("a", 0, 0.6), result_row("b", 0, 0.8), result_row("a", 1, 0.7)])
    table = leaderboard_table(rows)
    assert table.loc[0, "auroc_mean"] == pytest.approx((0.65 + 0.8) / 2)
    assert table.loc[0, "auroc_std"] == pytest.approx(statistics.stdev([0.6, 0.7]))
    assert table.loc[0, "n_seeds"] == 2 and table.loc[0, "n_classes"] == 2


def test_one_seed_has_no_spread_rather_than_zero():
    rows = pd.DataFrame([result_row("a", 0, 0.6, "csi"), result_row("b", 0, 0.8, "csi")])
    table = leaderboard_table(rows)
    assert table.loc[0, "auroc_mean"] == pytest.approx(0.7) and np.isnan(table.loc[0, "auroc_std"])
    assert markdown_table(table).splitlines()[2] == "| d | o | p | 1 | csi | knn | 0.7000 | 0.5000 | 1 |  |"
    assert per_class_table(rows).loc[0, "a"] == "0.6000"
