"""Plugins through entry points: discovery, origins, broken plugins, name clashes, run tags, and the
worked example (examples/anobench-plugin-example) through `anobench run`, a sweep and
`anobench leaderboard` beside `firm`.

A plugin is "installed" the way pip leaves it for importlib.metadata: a ``<name>-<version>.dist-info``
folder with ``METADATA`` and ``entry_points.txt`` on ``sys.path`` (for subprocesses, on
``PYTHONPATH``). The example's dist-info is generated from its own ``pyproject.toml``.
"""

from __future__ import annotations

import doctest
import importlib
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from anobench.cli import app
from anobench.config import RunConfig, preset
from anobench.plugins import REGISTRIES, plugin_tags
from anobench.registry import Origin, PluginError, Registry

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "anobench-plugin-example"
runner = CliRunner()


def write_dist_info(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """Write the dist-info of distribution ``name`` with ``entry_points`` {group: {name: value}}."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = [
        "\n".join([f"[{group}]", *(f"{key} = {value}" for key, value in entries.items())])
        for group, entries in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n\n".join(sections) + "\n")
    return site


def example_site(site: Path) -> list[Path]:
    """The example's dist-info, generated from its pyproject.toml, and its source folder."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    write_dist_info(site, project["name"], project["version"], project["entry-points"])
    return [site, EXAMPLE / "src"]


@pytest.fixture
def installed(monkeypatch):
    """Put folders on sys.path and make every registry discover its plugins again; afterwards the
    registries are as they were."""

    def install(*folders: Path) -> None:
        for folder in folders:
            monkeypatch.syspath_prepend(str(folder))
        for registry in REGISTRIES.values():
            monkeypatch.setattr(registry, "_plugins", None)

    return install


def make_registry(kind: str) -> Registry:
    """A fresh registry of ``kind`` with one built-in entry, "firm"."""
    registry: Registry = Registry(kind)
    registry.register("firm")(dict)
    return registry


def test_entry_points_add_entries_with_their_origin(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "acme-anomaly", "2.3.1", {"anobench.scorers": {"acme": "collections:OrderedDict"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = make_registry("scorer")
    assert "acme" in registry.names() and "firm" in registry.names()
    assert registry.origin("acme") == Origin("acme-anomaly", "2.3.1") and registry.origin("firm") is None
    assert registry.create("acme", a=1) == {"a": 1}


def test_a_plugin_that_fails_to_import_is_one_warning_and_the_rest_works(tmp_path, monkeypatch, caplog):
    write_dist_info(tmp_path, "broken-plugin", "1.0", {"anobench.objectives": {
        "broken": "anobench_no_such_module:Loss", "fine": "collections:OrderedDict"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = make_registry("objective")
    with caplog.at_level(logging.WARNING, logger="anobench.registry"):
        assert {"firm", "fine"} <= set(registry.names()) and "broken" not in registry.names()
    assert [r.getMessage() for r in caplog.records] == [
        "warning: objective plugin 'broken' (anobench_no_such_module:Loss, broken-plugin 1.0) failed to "
        "load: ModuleNotFoundError: No module named 'anobench_no_such_module'; skipped"
    ]
    with pytest.raises(PluginError, match="plugin 'broken' .* failed to load: ModuleNotFoundError"):
        registry.factory("broken")


def test_a_broken_plugin_prints_one_warning_line_and_list_still_works(tmp_path):
    write_dist_info(tmp_path, "broken-plugin", "1.0", {"anobench.scorers": {"broken": "anobench_no_such_module:S"}})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "anobench.cli", "list"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "warning: scorer plugin 'broken' (anobench_no_such_module:S, broken-plugin 1.0) failed to load: "
        "ModuleNotFoundError: No module named 'anobench_no_such_module'; skipped"
    ]
    assert "scorers: center, csi" in done.stdout and "objectives: csi, firm" in done.stdout


def test_a_name_clash_with_a_built_in_is_an_error_naming_both(tmp_path, installed):
    write_dist_info(tmp_path, "clashing", "2.0", {"anobench.objectives": {
        "firm": "anobench.objectives.contrastive:SimCLRObjective"}})
    installed(tmp_path)
    expected = ("objective 'firm' of the plugin clashing 2.0 clashes with the built-in objective of the "
                "same name; rename one of the two entry points (group anobench.objectives)")
    for args in (["list"], ["run", "--preset", "smoke", "--steps", "2", "--device", "cpu"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and result.stderr.strip() == f"error: {expected}"


def test_a_name_two_plugins_share_is_an_error_naming_both(tmp_path, monkeypatch):
    write_dist_info(tmp_path / "a", "first", "1.0", {"anobench.outliers": {"twist": "collections:OrderedDict"}})
    write_dist_info(tmp_path / "b", "second", "3.0", {"anobench.outliers": {"twist": "collections:Counter"}})
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    registry = make_registry("outlier generator")
    with pytest.raises(PluginError, match="'twist' of the plugin second 3.0 clashes with the outlier generator "
                                          "of the plugin first 1.0"):
        registry.names()
    with pytest.raises(PluginError):  # at every lookup, not only the first
        registry.factory("firm")


def test_a_built_in_registered_after_a_plugin_of_its_name_is_an_error(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "early", "0.1", {"anobench.datasets": {"late": "collections:OrderedDict"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = make_registry("dataset")
    assert "late" in registry.names()
    with pytest.raises(PluginError, match="'late' of the plugin early 0.1 clashes with the built-in dataset"):
        registry.register("late")(dict)


def test_run_tags_name_every_plugin_a_run_uses(tmp_path, installed):
    write_dist_info(tmp_path, "more-data", "0.2", {
        "anobench.datasets": {"digits-again": "anobench.data.digits:load_digits_dataset"},
        "anobench.outliers": {"quarter-turn": "anobench.outliers:Rot90"},
    })
    installed(tmp_path, *example_site(tmp_path / "site"))
    config = RunConfig(objective="firm-rot", scorers=["knn", "mean-sim"], dataset="digits-again",
                       outliers="rot90+quarter-turn", train=preset("smoke"))
    assert plugin_tags(config) == {
        "anobench.objectives.firm-rot": "anobench-plugin-example 0.1.0",
        "anobench.scorers.mean-sim": "anobench-plugin-example 0.1.0",
        "anobench.datasets.digits-again": "more-data 0.2",
        "anobench.outliers.quarter-turn": "more-data 0.2",
        "anobench.plugins": "anobench-plugin-example 0.1.0, more-data 0.2",
    }
    assert plugin_tags(RunConfig(objective="firm", scorers=["knn"], train=preset("smoke"))) == {}


@pytest.mark.parametrize("module", ["", ".objective", ".scorer"])
def test_the_example_docstring_examples_run(module, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    result = doctest.testmod(importlib.import_module(f"anobench_plugin_example{module}"))
    assert result.failed == 0 and result.attempted > 0


def test_the_example_plugin_runs_sweeps_and_ranks_beside_firm(tmp_path, installed):
    installed(*example_site(tmp_path / "site"))
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "firm-rot (anobench-plugin-example 0.1.0)" in listed.stdout
    assert "mean-sim (anobench-plugin-example 0.1.0)" in listed.stdout

    smoke = ["--preset", "smoke", "--steps", "2", "--device", "cpu", "--scorer", "knn", "--scorer", "mean-sim"]
    run = runner.invoke(app, ["run", "--objective", "firm-rot", "-p", "tau=0.5", *smoke, "--experiment", "plugin-run"])
    assert run.exit_code == 0, run.output
    rows = pd.read_csv(tmp_path / "results" / "plugin-run" / "runs.csv")
    assert set(rows["objective"]) == {"firm-rot"} and sorted(rows["scorer"]) == ["knn", "mean-sim"]
    assert rows["auroc"].between(0, 1).all()
    assert set(rows["plugins"]) == {"anobench-plugin-example 0.1.0"}

    sweep = runner.invoke(app, ["sweep", "--objective", "firm", "--objective", "firm-rot", *smoke,
                                "--eval-checkpoints", "2", "--seeds", "0", "--classes", "0", "--workers", "1",
                                "--experiment", "plugin-sweep"])
    assert sweep.exit_code == 0, sweep.output
    assert "2 runs: 2 finished" in sweep.stdout

    board = runner.invoke(app, ["leaderboard", "--experiment", "plugin-sweep", "--reference", "firm"])
    assert board.exit_code == 0, board.output
    table = pd.read_csv(tmp_path / "results" / "plugin-sweep" / "leaderboard.csv", keep_default_na=False)
    assert {"firm", "firm-rot"} <= set(table["objective"])
    by_objective_scorer = dict(zip(zip(table["objective"], table["scorer"]), table["plugins"]))
    assert by_objective_scorer[("firm", "knn")] == ""  # the run's other scorer is a plugin's
    assert by_objective_scorer[("firm", "mean-sim")] == "anobench-plugin-example 0.1.0"
    assert by_objective_scorer[("firm-rot", "knn")] == "anobench-plugin-example 0.1.0"
    assert "| plugins |" in (tmp_path / "results" / "plugin-sweep" / "leaderboard.md").read_text().replace("|plugins|", "| plugins |")
    assert "mean-sim" in set(pd.read_csv(tmp_path / "results" / "plugin-sweep" / "runs.csv")["scorer"])
