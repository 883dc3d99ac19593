"""The bad-input suite: every kind of bad input ends with exit code 2 and one ``error:`` line that
names the bad value, before any training starts.

Each CLI case runs in-process with typer's CliRunner while training, sweeps and benchmarks are
replaced by spies that fail the test if they are reached; the Python API cases call the API and
check the one-line :class:`~anobench.errors.AnobenchError` it raises.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from typer.testing import CliRunner

import anobench.cli
import anobench.runner
import anobench.scheduler
from anobench.cli import app
from anobench.config import RunConfig, preset
from anobench.errors import AnobenchError
from anobench.runner import run_experiment
from fakedata import write_cifar10, write_imagefolder

runner = CliRunner()

RUN = ["run", "--preset", "smoke", "--device", "cpu"]
SWEEP = ["sweep", "--preset", "smoke", "--device", "cpu"]
BENCH = ["bench", "--no-baseline", "--no-augment"]
CPU_ONLY = {"precision-fp16-auto-without-gpu"}
"""Cases that are valid input on a machine with a GPU."""

# (id, arguments, text the error line must contain: the bad value, or the flag click names)
CLI_CASES: list[tuple[str, list[str], str]] = [
    # scorer specs
    ("knn-k-zero", [*RUN, "--scorer", "knn:k=0"], "got 0"),
    ("knn-k-negative", [*RUN, "--scorer", "knn:k=-1"], "got -1"),
    ("knn-k-text", [*RUN, "--scorer", "knn:k=abc"], "'abc'"),
    ("knn-k-float", [*RUN, "--scorer", "knn:k=1.5"], "1.5"),
    ("knn-k-bool", [*RUN, "--scorer", "knn:k=true"], "True"),
    ("knn-k-beyond-bank", [*RUN, "--scorer", "knn:k=100000"], "k=100000"),
    ("knn-k-equals-bank", [*RUN, "--scorer", "knn:k=124"], "k=124"),
    ("knn-empty-params", [*RUN, "--scorer", "knn:"], "'knn:'"),
    ("knn-param-without-value", [*RUN, "--scorer", "knn:k"], "'k'"),
    ("knn-trailing-comma", [*RUN, "--scorer", "knn:k=1,"], "'knn:k=1,'"),
    ("spec-without-name", [*RUN, "--scorer", ":k=1"], "':k=1'"),
    ("knn-unknown-param", [*RUN, "--scorer", "knn:kk=1"], "'kk'"),
    ("knn-param-twice", [*RUN, "--scorer", "knn:k=1,k=2"], "'k'"),
    ("knn-bad-backend", [*RUN, "--scorer", "knn:backend=bogus"], "'bogus'"),
    ("knn-chunk-nan", [*RUN, "--scorer", "knn:max_chunk_elements=NaN"], "nan"),
    ("knn-norm-k-negative", [*RUN, "--scorer", "knn-norm:k=-3"], "-3"),
    ("knn-shift-k-zero", [*RUN, "--scorer", "knn-shift:k=0"], "got 0"),
    ("knn-ens-k-beyond-bank", [*RUN, "--scorer", "knn-ens:k=100000"], "k=100000"),
    ("lof-zero-neighbours", [*RUN, "--scorer", "lof:n_neighbors=0"], "got 0"),
    ("lof-neighbours-beyond-bank", [*RUN, "--scorer", "lof:n_neighbors=100000"], "n_neighbors=100000"),
    ("kde-negative-gamma", [*RUN, "--scorer", "kde:gamma_scale=-1"], "-1"),
    ("kde-infinite-gamma", [*RUN, "--scorer", "kde:gamma_scale=Infinity"], "inf"),
    ("ocsvm-nu-above-one", [*RUN, "--scorer", "ocsvm:nu=2"], "got 2"),
    ("ocsvm-fractional-folds", [*RUN, "--scorer", "ocsvm:n_folds=1.5"], "1.5"),
    ("gde-zero-reg", [*RUN, "--scorer", "gde:reg=0"], "got 0"),
    ("mahalanobis-takes-no-k", [*RUN, "--scorer", "mahalanobis:k=1"], "'k'"),
    ("unknown-scorer", [*RUN, "--scorer", "nope"], "'nope'"),
    ("scorer-twice", [*RUN, "--scorer", "knn", "--scorer", "knn"], "'knn'"),
    ("csi-scorer-without-shift-head", [*RUN, "--scorer", "csi"], "'csi'"),
    ("oe-head-scorer-without-head", [*RUN, "--scorer", "oe-head"], "'oe-head'"),
    # numbers
    ("outlier-ratio-inf", [*RUN, "--outlier-ratio", "inf"], "inf"),
    ("outlier-ratio-nan", [*RUN, "--outlier-ratio", "nan"], "nan"),
    ("outlier-ratio-negative", [*RUN, "--outlier-ratio", "-1"], "-1"),
    ("outlier-ratio-text", [*RUN, "--outlier-ratio", "abc"], "--outlier-ratio"),
    ("outlier-ratio-too-small-for-batch", [*RUN, "--outlier-ratio", "0.01"], "0.01"),
    ("width-inf", [*RUN, "--width", "inf"], "inf"),
    ("width-nan", [*RUN, "--width", "nan"], "nan"),
    ("width-below-one-channel", [*RUN, "--width", "0.001"], "0.001"),
    ("width-zero", [*RUN, "--width", "0"], "got 0"),
    ("width-negative", [*RUN, "--width", "-1"], "-1"),
    ("lr-inf", [*RUN, "--lr", "inf"], "inf"),
    ("lr-nan", [*RUN, "--lr", "nan"], "nan"),
    ("lr-zero", [*RUN, "--lr", "0"], "got 0"),
    ("lr-negative", [*RUN, "--lr", "-0.1"], "-0.1"),
    ("seed-beyond-int64", [*RUN, "--seed", "99999999999999999999999"], "99999999999999999999999"),
    ("seed-negative", [*RUN, "--seed", "-1"], "-1"),
    ("seed-text", [*RUN, "--seed", "abc"], "--seed"),
    ("steps-zero", [*RUN, "--steps", "0"], "got 0"),
    ("steps-negative", [*RUN, "--steps", "-3"], "-3"),
    ("steps-fraction", [*RUN, "--steps", "1.5"], "--steps"),
    ("epochs-zero", [*RUN, "--epochs", "0"], "got 0"),
    ("batch-size-zero", [*RUN, "--batch-size", "0"], "got 0"),
    ("batch-size-too-small", [*RUN, "--batch-size", "2"], "batch_size 2"),
    ("eval-checkpoints-huge", [*RUN, "--eval-checkpoints", "1000000000"], "1000000000"),
    ("eval-checkpoints-negative", [*RUN, "--eval-checkpoints", "-1"], "-1"),
    ("eval-checkpoints-above-steps", [*RUN, "--steps", "5", "--eval-checkpoints", "6"], "got 6"),
    ("eval-checkpoints-above-epoch-steps",
     ["run", "--preset", "paper", "--device", "cpu", "--epochs", "1", "--eval-checkpoints", "100000"], "100000"),
    ("image-size-too-small", [*RUN, "--image-size", "4"], "got 4"),
    ("image-size-zero", [*RUN, "--image-size", "0"], "got 0"),
    ("image-size-huge", [*RUN, "--image-size", "100000"], "100000"),
    # names and choices
    ("experiment-empty", [*RUN, "--experiment", ""], "''"),
    ("experiment-with-slash", [*RUN, "--experiment", "a/b"], "'a/b'"),
    ("experiment-dot-dot", [*RUN, "--experiment", ".."], "'..'"),
    ("experiment-dot", [*RUN, "--experiment", "."], "'.'"),
    ("experiment-backslash", [*RUN, "--experiment", "a\\b"], "'a\\\\b'"),
    ("experiment-control-char", [*RUN, "--experiment", "a\tb"], "'a\\tb'"),
    ("precision-unknown", [*RUN, "--precision", "fp64"], "'fp64'"),
    ("precision-fp16-on-cpu", [*RUN, "--precision", "fp16"], "'fp16'"),
    ("precision-fp16-auto-without-gpu", ["run", "--preset", "smoke", "--precision", "fp16"], "'fp16'"),
    ("device-tpu", ["run", "--preset", "smoke", "--device", "tpu"], "'tpu'"),
    ("device-cuda-99", ["run", "--preset", "smoke", "--device", "cuda:99"], "'cuda:99'"),
    ("device-malformed-index", ["run", "--preset", "smoke", "--device", "cuda:x"], "'cuda:x'"),
    ("device-empty", ["run", "--preset", "smoke", "--device", ""], "''"),
    ("objective-unknown", [*RUN, "--objective", "nope"], "'nope'"),
    ("dataset-unknown", [*RUN, "--dataset", "nope"], "'nope'"),
    ("preset-unknown", ["run", "--preset", "nope"], "'nope'"),
    ("normal-class-out-of-range", [*RUN, "--normal-class", "10"], "10"),
    ("normal-class-unknown-name", [*RUN, "--normal-class", "unicorn"], "'unicorn'"),
    ("normal-class-negative", [*RUN, "--normal-class", "-1"], "'-1'"),
    ("normal-class-empty", [*RUN, "--normal-class", ""], "''"),
    ("objective-param-negative-tau", [*RUN, "-p", "tau=-1"], "-1"),
    ("objective-param-text-tau", [*RUN, "-p", "tau=abc"], "'abc'"),
    ("objective-param-nan-tau", [*RUN, "-p", "tau=NaN"], "nan"),
    ("objective-param-bad-mode", [*RUN, "-p", "mode=bogus"], "'bogus'"),
    ("objective-param-unknown", [*RUN, "-p", "bogus=1"], "'bogus'"),
    ("objective-param-without-value", [*RUN, "-p", "tau"], "'tau'"),
    ("objective-param-without-key", [*RUN, "-p", "=1"], "'=1'"),
    ("objective-param-twice", [*RUN, "-p", "tau=0.1", "-p", "tau=0.2"], "'tau'"),
    ("outliers-unknown", [*RUN, "--outliers", "bogus"], "'bogus'"),
    ("outliers-dangling-plus", [*RUN, "--outliers", "rot90+"], "'rot90+'"),
    ("outliers-oe-without-source", [*RUN, "--outliers", "oe"], "'oe'"),
    ("oe-source-without-oe", [*RUN, "--oe-source", "digits"], "'digits'"),
    ("oe-source-missing", [*RUN, "--outliers", "oe", "--oe-source", "/nonexistent/oe"], "/nonexistent/oe"),
    ("unknown-option", [*RUN, "--bogus-flag"], "--bogus-flag"),
    # data
    ("data-root-missing", [*RUN, "--dataset", "cifar10", "--data-root", "{tmp}/none"], "{tmp}/none"),
    ("data-root-unset", [*RUN, "--dataset", "cifar10"], "ANOBENCH_DATA_ROOT"),
    ("cifar-corrupt-batch", [*RUN, "--dataset", "cifar10", "--data-root", "{data}/cifar-corrupt"], "test_batch"),
    ("imagefolder-without-anomalies",
     [*RUN, "--dataset", "imagefolder", "--data-root", "{data}/no-anomalies", "--normal-class", "good"], "'good'"),
    ("imagefolder-without-normal-test-images",
     [*RUN, "--dataset", "imagefolder", "--data-root", "{data}/no-normals", "--normal-class", "good"], "'good'"),
    ("imagefolder-without-test-folder",
     [*RUN, "--dataset", "imagefolder", "--data-root", "{data}/no-test", "--normal-class", "good"], "no-test/test"),
    ("imagefolder-corrupt-image",
     [*RUN, "--dataset", "imagefolder", "--data-root", "{data}/corrupt", "--normal-class", "good"], "000.png"),
    ("imagefolder-class-without-training-images",
     [*RUN, "--dataset", "imagefolder", "--data-root", "{data}/mvtec", "--normal-class", "defect"], "'defect'"),
    ("imagefolder-k-beyond-its-bank",
     [*RUN, "--dataset", "imagefolder", "--data-root", "{data}/mvtec", "--normal-class", "good",
      "--scorer", "knn:k=8"], "k=8"),
    # sweeps
    ("sweep-reversed-seed-range", [*SWEEP, "--seeds", "4-0"], "'4-0'"),
    ("sweep-huge-seed-range", [*SWEEP, "--seeds", "0-99999999"], "'0-99999999'"),
    ("sweep-text-seed", [*SWEEP, "--seeds", "x"], "'x'"),
    ("sweep-negative-seed", [*SWEEP, "--seeds", "-1"], "-1"),
    ("sweep-missing-done-csv", [*SWEEP, "--done-csv", "{tmp}/none.csv"], "{tmp}/none.csv"),
    ("sweep-foreign-done-csv", [*SWEEP, "--done-csv", "{data}/foreign.csv"], "foreign.csv"),
    ("sweep-folder-as-done-csv", [*SWEEP, "--done-csv", "{data}"], "{data}"),
    ("sweep-checkpoint-every-zero", [*SWEEP, "--checkpoint-every", "0"], "got 0"),
    ("sweep-checkpoint-every-negative", [*SWEEP, "--checkpoint-every", "-5"], "-5"),
    ("sweep-k-beyond-bank", [*SWEEP, "--classes", "0,1", "--scorer", "knn:k=100000"], "k=100000"),
    ("sweep-k-zero", [*SWEEP, "--scorer", "knn:k=0"], "got 0"),
    ("sweep-experiment-with-slash", [*SWEEP, "--experiment", "a/b"], "'a/b'"),
    ("sweep-experiment-empty", [*SWEEP, "--experiment", ""], "''"),
    ("sweep-outlier-ratio-inf", [*SWEEP, "--outlier-ratio", "inf"], "inf"),
    ("sweep-width-below-one-channel", [*SWEEP, "--width", "0.001"], "0.001"),
    ("sweep-eval-checkpoints-above-steps", [*SWEEP, "--eval-checkpoints", "1000000"], "1000000"),
    ("sweep-unknown-class", [*SWEEP, "--classes", "unicorn"], "'unicorn'"),
    ("sweep-all-with-other-classes", [*SWEEP, "--classes", "all,1"], "'all'"),
    ("sweep-unknown-executor", [*SWEEP, "--executor", "slurm"], "'slurm'"),
    ("sweep-zero-workers", [*SWEEP, "--workers", "0"], "got 0"),
    ("sweep-zero-cpus-per-run", [*SWEEP, "--executor", "ray", "--cpus-per-run", "0"], "got 0"),
    ("sweep-objective-param-negative-tau", [*SWEEP, "-p", "tau=-1"], "-1"),
    ("sweep-imagefolder-without-anomalies",
     [*SWEEP, "--dataset", "imagefolder", "--data-root", "{data}/no-anomalies", "--classes", "good"], "'good'"),
    ("sweep-image-size-too-small", [*SWEEP, "--image-size", "4"], "got 4"),
    ("sweep-device-tpu", ["sweep", "--preset", "smoke", "--device", "tpu"], "'tpu'"),
    ("sweep-missing-file", ["sweep", "{tmp}/none.toml"], "none.toml"),
    # other commands
    ("leaderboard-experiment-with-slash", ["leaderboard", "--experiment", "a/b"], "'a/b'"),
    ("leaderboard-experiment-empty", ["leaderboard", "--experiment", ""], "''"),
    ("leaderboard-unknown-experiment", ["leaderboard", "--experiment", "nonexistent"], "'nonexistent'"),
    ("bench-unknown-preset", [*BENCH, "--preset", "nope"], "'nope'"),
    ("bench-width-below-one-channel", [*BENCH, "--width", "0.001"], "0.001"),
    ("bench-batch-too-small", [*BENCH, "--batch-size", "2"], "batch_size 2"),
    ("bench-zero-head-layers", [*BENCH, "--head-layers", "0"], "got 0"),
    ("bench-zero-steps", [*BENCH, "--steps", "0"], "got 0"),
    ("bench-zero-repeats", [*BENCH, "--repeats", "0"], "got 0"),
    ("bench-negative-warmup", [*BENCH, "--warmup-steps", "-1"], "-1"),
    ("bench-unknown-dataset", [*BENCH, "--dataset", "digits"], "'digits'"),
    ("bench-unknown-precision", [*BENCH, "--precision", "fp64"], "'fp64'"),
    ("list-extra-argument", ["list", "extra"], "extra"),
    ("unknown-command", ["bogus"], "'bogus'"),
]

# (id, sweep file text, text the error line must contain)
SWEEP_FILE_CASES: list[tuple[str, str, str]] = [
    ("unknown-top-key", 'expriment = "x"', "'expriment'"),
    ("unknown-run-key", "[run]\nstep = 3", "'run.step'"),
    ("unknown-grid-key", '[grid]\nobjectivs = ["firm"]', "'grid.objectivs'"),
    ("run-steps-text", '[run]\nsteps = "many"', "'many'"),
    ("run-outlier-ratio-inf", "[run]\noutlier_ratio = inf", "inf"),
    ("run-width-nan", "[run]\nwidth = nan", "nan"),
    ("run-eval-checkpoints-above-steps", "[run]\neval_checkpoints = 1000", "1000"),
    ("run-device-tpu", '[run]\ndevice = "tpu"', "'tpu'"),
    ("run-image-size-huge", "[run]\nimage_size = 4096", "4096"),
    ("grid-negative-seed", "[grid]\nseeds = [-1]", "-1"),
    ("grid-text-seed", '[grid]\nseeds = ["a"]', "'a'"),
    ("grid-knn-k-zero", '[grid]\nscorers = ["knn:k=0"]', "got 0"),
    ("grid-number-as-scorer", "[grid]\nscorers = [1.5]", "1.5"),
    ("later-grid-k-beyond-bank", '[[grid]]\nobjectives = ["firm"]\n[[grid]]\nscorers = ["knn:k=100000"]', "k=100000"),
    ("experiment-with-slash", 'experiment = "a/b"', "'a/b'"),
    ("experiment-number", "experiment = 3", "3"),
    ("run-table-not-a-table", 'run = "x"', "'x'"),
    ("objective-params-negative-tau", "[objective_params.firm]\ntau = -1", "-1"),
    ("not-toml", "[grid\n", "not valid TOML"),
]


def api_train(**changes: Any) -> Callable[[], object]:
    return lambda: dataclasses.replace(preset("smoke"), **changes)


def api_run(**changes: Any) -> Callable[[], object]:
    return lambda: RunConfig(**{"objective": "firm", "scorers": ["knn"], "train": preset("smoke"), **changes})


def smoke_config() -> RunConfig:
    return RunConfig(objective="firm", scorers=["knn"], device="cpu", train=preset("smoke"))


# (id, call, text the error message must contain)
API_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("scorers-as-string", api_run(scorers="knn"), "'knn'"),
    ("scorers-empty", api_run(scorers=[]), "scorer"),
    ("scorers-holding-a-number", api_run(scorers=["knn", 3]), "3"),
    ("seed-text", api_run(seed="abc"), "'abc'"),
    ("seed-bool", api_run(seed=True), "True"),
    ("seed-float", api_run(seed=1.0), "1.0"),
    ("normal-class-float", api_run(normal_class=1.5), "1.5"),
    ("image-size-float", api_run(image_size=32.0), "32.0"),
    ("eval-checkpoints-bool", api_run(eval_checkpoints=True), "True"),
    ("device-malformed", api_run(device="gpu0"), "'gpu0'"),
    ("data-root-path", api_run(data_root=Path("data")), "Path('data')"),
    ("objective-params-list", api_run(objective_params=["tau"]), "['tau']"),
    ("objective-params-number-keys", api_run(objective_params={1: 2}), "{1: 2}"),
    ("train-as-dict", api_run(train={"steps": 3}), "{'steps': 3}"),
    ("oe-source-number", api_run(outliers="oe", oe_source=3), "3"),
    ("steps-fraction", api_train(steps=2.5), "2.5"),
    ("steps-text", api_train(steps="10"), "'10'"),
    ("batch-size-text", api_train(batch_size="16"), "'16'"),
    ("batch-size-bool", api_train(batch_size=True), "True"),
    ("outlier-ratio-inf-does-not-hang", api_train(outlier_ratio=math.inf), "inf"),
    ("outlier-ratio-huge-does-not-hang", api_train(outlier_ratio=1e300), "1e+300"),
    ("width-below-one-channel", api_train(width=0.001), "0.001"),
    ("precision-unknown", api_train(precision="fp8"), "'fp8'"),
    ("channels-last-text", api_train(channels_last="yes"), "'yes'"),
    ("momentum-negative", api_train(momentum=-0.5), "-0.5"),
    ("weight-decay-nan", api_train(weight_decay=math.nan), "nan"),
    ("warmup-fraction-one", api_train(warmup_fraction=1.0), "1.0"),
    ("head-layers-zero", api_train(head_layers=0), "got 0"),
    ("eval-batch-size-float", api_train(eval_batch_size=512.0), "512.0"),
    ("run-experiment-config-by-name", lambda: run_experiment("firm"), "'firm'"),
    ("run-experiment-results-csv-number", lambda: run_experiment(smoke_config(), results_csv=5), "5"),
]


class TrainingStarted(AssertionError):
    """Raised by the spies: bad input reached training, a sweep or a benchmark."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Tiny datasets with one defect each, and a CSV that is not a results CSV."""
    root = tmp_path_factory.mktemp("data")
    for name in ("mvtec", "no-anomalies", "no-normals", "no-test", "corrupt"):
        write_imagefolder(root / name, n_train=8, n_test_good=2, n_test_defect=2, size=8)
    shutil.rmtree(root / "no-anomalies" / "test" / "defect")
    shutil.rmtree(root / "no-normals" / "test" / "good")
    shutil.rmtree(root / "no-test" / "test")
    (root / "corrupt" / "test" / "good" / "000.png").write_bytes(b"not an image")
    folder = write_cifar10(root / "cifar-corrupt", n_train_per_class=2, n_test_per_class=1)
    (folder / "test_batch").write_bytes(b"\x80garbage")
    (root / "foreign.csv").write_text("name,value\na,1\n")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module; no case may record a run in it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'm.db'}"
    yield uri
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    assert not ids or not client.search_runs(ids), "a bad input recorded an MLflow run"


@pytest.fixture(autouse=True)
def no_training(monkeypatch, store) -> None:
    """Fail the test if a run starts training, a sweep starts its runs or a benchmark measures."""

    def started(*args: Any, **kwargs: Any) -> None:
        raise TrainingStarted("bad input reached training")

    monkeypatch.setattr(anobench.runner, "train", started)
    monkeypatch.setattr(anobench.scheduler, "run_sweep", started)
    monkeypatch.setattr(anobench.cli, "run_bench", started)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)


def the_error_line(args: list[str]) -> str:
    """Run the CLI in-process; the single ``error:`` line of its failure (exit code 2)."""
    result = runner.invoke(app, args)
    assert not isinstance(result.exception, TrainingStarted), f"{args} started training"
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(args, expected, id=name, marks=pytest.mark.skipif(
        name in CPU_ONLY and torch.cuda.is_available(), reason="valid on a machine with a GPU"))
    for name, args, expected in CLI_CASES
])
def test_bad_cli_input_gives_one_line_before_training(args, expected, tmp_path, data):
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, data=data)

    line = the_error_line([fill(a) for a in args])
    assert fill(expected) in line
    assert not list(tmp_path.rglob("runs.csv"))


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*case[1:], id=case[0]) for case in SWEEP_FILE_CASES])
def test_bad_sweep_file_gives_one_line_before_training(text, expected, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    line = the_error_line(["sweep", str(path), "--preset", "smoke"])
    assert expected in line


@pytest.mark.parametrize(("call", "expected"), [pytest.param(*case[1:], id=case[0]) for case in API_CASES])
def test_bad_api_input_raises_one_line_error(call, expected):
    with pytest.raises(AnobenchError) as error:
        call()
    message = str(error.value)
    assert expected in message and "\n" not in message


def test_the_suite_covers_at_least_100_kinds_of_bad_input():
    kinds = [(where, case[0]) for where, cases in (("cli", CLI_CASES), ("file", SWEEP_FILE_CASES), ("api", API_CASES))
             for case in cases]
    assert len(set(kinds)) == len(kinds) >= 100


def test_results_csv_may_be_a_str(tmp_path):
    with pytest.raises(TrainingStarted):  # accepted: the run gets as far as training
        run_experiment(smoke_config(), results_csv=str(tmp_path / "runs.csv"))


def test_validation_keeps_the_run_key():
    """The checks change no valid config's key (committed studies are resumed by key)."""
    config = RunConfig(objective="firm", scorers=["knn", "mahalanobis"], normal_class="0", seed=1,
                       device="cpu", eval_checkpoints=4, train=preset("smoke"))
    assert config.key() == "ce2c3a40ede96500"  # as computed before these checks existed


@pytest.mark.parametrize("ratio", [0.01, 0.5, 1.0, 3.0, 7.5, 1000.0])
def test_minimum_batch_size_is_the_smallest_valid_batch(ratio):
    train = dataclasses.replace(preset("smoke"), outlier_ratio=ratio, batch_size=10**6)
    smallest = train.minimum_batch_size()
    dataclasses.replace(train, batch_size=smallest)
    with pytest.raises(AnobenchError, match=f"use batch_size >= {smallest}$"):
        dataclasses.replace(train, batch_size=smallest - 1)
