"""Sweep grids (flags and TOML files), planning by run key, the local scheduler and `anobench sweep`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from anobench.cli import app
from anobench.errors import AnobenchError, ConfigError
from anobench.results_csv import SCHEMA_VERSION
from anobench.scheduler import LocalExecutor, SweepOptions, plan, run_sweep, worker_slots
from anobench.sweep import SweepSpec, build_spec, expand, parse_int_list, spec_from_toml

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
runner = CliRunner()


def store() -> str:
    """The test session's MLflow store (tests/conftest.py)."""
    return os.environ["MLFLOW_TRACKING_URI"]


def finished_runs(experiment: str) -> list:
    client = mlflow.tracking.MlflowClient(tracking_uri=store())
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")


def test_grid_expands_to_one_run_per_encoder_with_every_scorer():
    spec = SweepSpec(objectives=("firm", "simclr", "supcon"), scorers=("knn", "mahalanobis"),
                     classes=("0", "1", "2"), seeds=(0, 1), presets=("smoke",))
    configs = expand(spec)
    assert len(configs) == 18 and len({c.key() for c in configs}) == 18
    assert all(c.scorers == ["knn", "mahalanobis"] for c in configs)
    assert {(c.objective, c.normal_class, c.seed) for c in configs} == {
        (o, k, s) for o in ("firm", "simclr", "supcon") for k in ("0", "1", "2") for s in (0, 1)
    }


def test_all_classes_and_train_overrides():
    spec = build_spec(classes="all", presets=("smoke",), steps=7, seeds="0-1", eval_checkpoints=2)
    configs = expand(spec)
    assert sorted({c.normal_class for c in configs}, key=int) == [str(i) for i in range(10)]
    assert len(configs) == 20
    assert {c.train.steps for c in configs} == {7} and {c.eval_checkpoints for c in configs} == {2}


def test_every_checked_in_sweep_file_parses_and_expands():
    files = sorted(BENCHMARKS.glob("*.toml"))
    assert files
    for path in files:
        spec = spec_from_toml(path)
        if "digits" in spec.datasets:
            assert expand(spec)


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('experiment = "e"\n[grid]\nobjectives = ["firm"]\nseeds = [0, 1]\n'
                    '[run]\nsteps = 5\n[objective_params.firm]\ntau = 0.5\n')
    spec = build_spec(path, seeds="3", objective_params={"mode": "pairwise"})
    assert spec.seeds == (3,) and spec.experiment == "e" and spec.run == {"steps": 5}
    assert spec.objective_params == {"firm": {"tau": 0.5, "mode": "pairwise"}}


MULTI_GRID = """experiment = "multi"
[[grid]]
objectives = ["firm", "simclr"]
scorers = ["knn"]
classes = [0, 1]
seeds = [0, 1]
presets = ["smoke"]
[[grid]]
objectives = ["csi"]
scorers = ["knn", "csi"]
seeds = [0]
[objective_params.csi]
tau = 0.4
"""


def test_several_grids_join_in_class_order(tmp_path):
    path = tmp_path / "multi.toml"
    path.write_text(MULTI_GRID)
    configs = expand(build_spec(path))
    got = [(c.seed, c.normal_class, c.objective) for c in configs]
    assert got == [(0, "0", "firm"), (0, "0", "simclr"), (0, "0", "csi"), (0, "1", "firm"), (0, "1", "simclr"),
                   (0, "1", "csi"), (1, "0", "firm"), (1, "0", "simclr"), (1, "1", "firm"), (1, "1", "simclr")]
    scorers = {c.objective: c.scorers for c in configs}
    assert scorers == {"firm": ["knn"], "simclr": ["knn"], "csi": ["knn", "csi"]}
    assert [c.objective_params for c in configs if c.objective == "csi"] == [{"tau": 0.4}, {"tau": 0.4}]
    assert {c.preset for c in configs} == {"smoke"}


def test_several_grids_load_each_dataset_once(tmp_path, monkeypatch):
    import anobench.data

    calls = []
    real = anobench.data.load_dataset
    monkeypatch.setattr(anobench.data, "load_dataset", lambda *args: calls.append(args) or real(*args))
    path = tmp_path / "multi.toml"
    path.write_text(MULTI_GRID)
    assert len(expand(build_spec(path))) == 10
    assert calls == [("digits", None, 32)]


def test_a_flag_overrides_every_grid(tmp_path):
    path = tmp_path / "multi.toml"
    path.write_text(MULTI_GRID)
    configs = expand(build_spec(path, seeds="5", classes="1"))
    assert sorted((c.objective, c.normal_class, c.seed) for c in configs) == [
        ("csi", "1", 5), ("firm", "1", 5), ("simclr", "1", 5)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[grid]]\nobjectives = ["firm"]\n[[grid]]\nseed = [0]', "unknown key 'grid.seed'"),
        ('[[grid]]\nobjectives = ["firm"]\n[[grid]]\nseeds = []', "grid.seeds is empty"),
        ('grid = []', "grid is an empty list"),
        ('[[grid]]\nobjectives = ["firm"]\n[[grid]]\nobjectives = ["nope"]', "unknown objective 'nope'"),
    ],
)
def test_bad_later_grid_is_named(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        expand(build_spec(path, presets=("smoke",)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[grid]\nobjectivs = ["firm"]', "unknown key 'grid.objectivs'; valid keys: objectives"),
        ('expriment = "x"', "unknown key 'expriment'"),
        ('[run]\nstep = 3', "unknown key 'run.step'"),
        ('[run]\nsteps = "many"', "run.steps must be int, got 'many'"),
        ('[grid]\nseeds = ["a"]', "grid.seeds must hold integers, got 'a'"),
        ('[grid]\nobjectives = ["nope"]', "unknown objective 'nope'; valid names: "),
        ('[grid]\nscorers = ["nope"]', "unknown scorer 'nope'"),
        ('[grid]\ndatasets = ["nope"]', "unknown dataset 'nope'"),
        ('[grid]\npresets = ["huge"]', "unknown preset 'huge'"),
        ('[grid]\noutliers = ["rot90+nope"]', "unknown outlier generator 'nope' in 'rot90+nope'"),
        ('[grid]\nclasses = ["unicorn"]', "unicorn"),
        ('[grid]\nseeds = []', "grid.seeds is empty"),
        ('[objective_params.simclr]\ntau = 0.1', "objective_params for 'simclr', which is not in the grid"),
        ('[objective_params.firm]\ntau = -1', "objective 'firm'"),
        ("[grid\n", "is not valid TOML"),
    ],
)
def test_bad_sweep_files_name_the_bad_key_or_value(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(AnobenchError) as error:
        expand(build_spec(path))
    message = str(error.value)
    assert expected in message and "\n" not in message


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read sweep file .*none.toml"):
        spec_from_toml(tmp_path / "none.toml")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seeds", "0,x"], "--seeds: 'x' is not an integer"),
        (["--classes", "all,1"], "'all' cannot be combined"),
        (["--address", "ray://h:1"], "--address needs --executor ray"),
        (["--executor", "ray", "--workers", "2"], "--workers is for --executor local"),
        (["--executor", "slurm"], "--executor must be local or ray, got 'slurm'"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--objective", "nope"], "unknown objective 'nope'"),
        (["--steps", "0"], "steps must be > 0, got 0"),
    ],
)
def test_bad_flags_give_one_error_line(args, expected):
    result = runner.invoke(app, ["sweep", "--preset", "smoke", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_parse_int_list():
    assert parse_int_list("--seeds", "0,2-4") == (0, 2, 3, 4)


def test_worker_slots_pin_gpus_or_split_cpu_threads():
    gpu = worker_slots(None, gpus=2, cpus=16)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in gpu] == ["0", "1"] and gpu[0].threads == 8
    cpu = worker_slots(4, gpus=0, cpus=8)
    assert len(cpu) == 4 and {s.threads for s in cpu} == {2}
    assert {s.env["CUDA_VISIBLE_DEVICES"] for s in cpu} == {""}
    assert len(worker_slots(None, gpus=0, cpus=8)) == 1


def test_failed_and_crashed_runs_are_reported_and_the_sweep_goes_on(tmp_path):
    configs = expand(SweepSpec(seeds=(0, 1, 2), presets=("smoke",)))
    options = SweepOptions.resolve("crash", output_dir=tmp_path / "results")
    report = run_sweep(configs, options, LocalExecutor(workers=2, run_fn=_helpers().fail_or_crash))
    by_seed = {c.seed: o for c, o in zip(configs, report.outcomes)}
    assert by_seed[0].ok
    assert not by_seed[1].ok and by_seed[1].error == "ValueError: planned"
    assert not by_seed[2].ok and "worker process died (exit code 3)" in by_seed[2].error
    assert len(report.failed) == 2


def _helpers():
    import sweep_helpers

    return sweep_helpers


def test_sweep_command_skips_finished_runs_records_failures_and_sets_the_exit_code(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('experiment = "cli"\n[grid]\nobjectives = ["firm", "simclr"]\nscorers = ["knn", "mahalanobis"]\n'
                    'presets = ["smoke"]\n[run]\nsteps = 4\ndevice = "cpu"\neval_checkpoints = 2\n'
                    '[objective_params.firm]\ntau = 1e-30\n')
    first = runner.invoke(app, ["sweep", str(path), "--workers", "2"])
    assert first.exit_code == 1, first.output
    assert "1 finished, 0 skipped (already finished), 1 failed" in first.stdout
    assert "FAILED firm/" in first.stderr and "non-finite" in first.stderr

    client = mlflow.tracking.MlflowClient(tracking_uri=store())
    exp = client.get_experiment_by_name("cli")
    runs = {r.data.tags["objective"]: r for r in client.search_runs([exp.experiment_id])}
    assert runs["firm"].info.status == "FAILED" and "non-finite" in runs["firm"].data.tags["anobench.error"]
    simclr = runs["simclr"]
    assert simclr.info.status == "FINISHED"
    history = client.get_metric_history(simclr.info.run_id, "auroc/knn")
    assert sorted(m.step for m in history) == [0, 2, 4]
    assert 0 <= simclr.data.metrics["aulc/knn"] <= 1
    rows = pd.read_csv(tmp_path / "results" / "cli" / "runs.csv")
    assert sorted(rows["scorer"]) == ["knn", "mahalanobis"] and (rows["schema_version"] == SCHEMA_VERSION).all()
    assert rows["aulc"].notna().all()

    path.write_text(path.read_text().replace("tau = 1e-30", "tau = 0.2"))
    second = runner.invoke(app, ["sweep", str(path), "--workers", "2"])
    assert second.exit_code == 0, second.output
    assert "1 finished, 1 skipped (already finished), 0 failed" in second.stdout
    third = runner.invoke(app, ["sweep", str(path)])
    assert third.exit_code == 0 and "0 finished, 2 skipped" in third.stdout
    assert len(finished_runs("cli")) == 2


def test_keys_in_exported_csvs_count_as_finished(tmp_path):
    configs = expand(SweepSpec(seeds=(0, 1), presets=("smoke",)))
    export = tmp_path / "export.csv"
    pd.DataFrame({"run_key": [configs[1].key()], "scorer": ["knn"]}).to_csv(export, index=False)
    options = SweepOptions.resolve("exported", output_dir=tmp_path / "results", done_csvs=(export,))
    the_plan = plan(configs, options)
    assert [c.key() for c in the_plan.pending] == [configs[0].key()]
    assert [c.key() for c in the_plan.skipped] == [configs[1].key()]
