"""Reliability of sweeps: many workers writing to one sqlite store, and kill -9 then rerun."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from anobench.scheduler import LocalExecutor, SweepOptions, plan, run_sweep
from anobench.sweep import SweepSpec, expand


def runs_by_status(uri: str, experiment: str) -> dict[str, list]:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    out: dict[str, list] = {}
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        out.setdefault(run.info.status, []).append(run)
    return out


def test_eight_workers_finishing_at_once_lose_and_duplicate_nothing(tmp_path, monkeypatch):
    import sweep_helpers

    monkeypatch.setenv("N_PEERS", "8")
    configs = expand(SweepSpec(seeds=tuple(range(8)), presets=("smoke",)))
    options = SweepOptions.resolve("many", output_dir=tmp_path / "results")
    report = run_sweep(configs, options, LocalExecutor(workers=8, run_fn=sweep_helpers.record_at_once))

    assert [o.error for o in report.failed] == []
    runs = runs_by_status(options.tracking_uri, "many")
    assert list(runs) == ["FINISHED"]
    keys = Counter(r.data.tags["run_key"] for r in runs["FINISHED"])
    assert keys == Counter({c.key(): 1 for c in configs})
    assert all(len(r.data.params) > 25 and r.data.metrics["auroc/knn"] == pytest.approx(0.9) for r in runs["FINISHED"])
    rows = pd.read_csv(options.results_csv)
    assert Counter(rows["run_key"]) == keys
    assert plan(configs, options).pending == []


def sweep_command(tmp_path: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "anobench"), "sweep", "--objective", "firm", "--scorer", "knn",
        "--classes", "0,1", "--seeds", "0,1", "--preset", "smoke", "--steps", "60", "--device", "cpu",
        "--workers", "2", "--checkpoint-every", "3", "--experiment", "killed",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]


def test_kill_9_then_rerun_keeps_finished_runs_and_resumes_the_interrupted_ones(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    csv_path = tmp_path / "results" / "killed" / "runs.csv"
    ckpt_dir = tmp_path / ".anobench" / "checkpoints" / "killed"
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(sweep_command(tmp_path), cwd=tmp_path, stdout=log, stderr=log,
                             start_new_session=True)
    # Kill at a random moment soon after a run wrote its first checkpoint (step 3 of 60) while
    # another run has already finished.
    deadline, seen = time.monotonic() + 240, set()
    while time.monotonic() < deadline and first.poll() is None:
        recorded = set(pd.read_csv(csv_path)["run_key"]) if csv_path.exists() else set()
        fresh = {p.stem for p in ckpt_dir.glob("*.pt")} - seen if ckpt_dir.exists() else set()
        seen |= fresh
        if recorded and fresh - recorded:
            break
        time.sleep(0.05)
    assert first.poll() is None, (tmp_path / "first.log").read_text()
    time.sleep(random.uniform(0.0, 0.3))
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    for _ in range(100):  # the workers die with the sweep process (PR_SET_PDEATHSIG)
        try:
            os.killpg(first.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("worker processes outlived the killed sweep")
    finished_before = {r.data.tags["run_key"]: r.info.run_id for r in runs_by_status(uri, "killed").get("FINISHED", [])}
    interrupted = {p.stem for p in ckpt_dir.glob("*.pt")} - set(finished_before)
    assert finished_before and interrupted

    second = subprocess.run(sweep_command(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stderr
    assert f"{len(finished_before)} skipped" in second.stdout
    assert "resumed from step" in second.stderr

    runs = runs_by_status(uri, "killed")
    assert "RUNNING" not in runs
    finished = {r.data.tags["run_key"]: r for r in runs["FINISHED"]}
    assert len(finished) == len(runs["FINISHED"]) == 4  # one finished run per key
    assert all(finished[k].info.run_id == run_id for k, run_id in finished_before.items())  # kept
    for key in interrupted:
        assert int(finished[key].data.tags["anobench.resumed_from_step"]) % 3 == 0
    rows = pd.read_csv(csv_path)
    assert rows["run_key"].is_unique and set(rows["run_key"]) <= set(finished)
    assert not list(ckpt_dir.glob("*.pt"))

    from anobench.report.leaderboard import write_leaderboard

    regenerated = pd.read_csv(write_leaderboard(uri, "killed", tmp_path / "results")["runs.csv"])
    assert sorted(regenerated["run_key"]) == sorted(finished)



def sweep_in_a_fork(configs, options, start, results) -> None:
    import torch

    import sweep_helpers

    torch.set_num_threads(1)
    start.wait()
    report = run_sweep(configs, options, sweep_helpers.InlineExecutor())
    results.put((len(report.outcomes) - len(report.elsewhere) - len(report.failed), len(report.elsewhere),
                 len(report.skipped), [o.error for o in report.failed]))


def test_two_sweeps_of_one_experiment_at_once_share_the_runs(tmp_path, session_tracking_uri):
    """Two smoke sweeps of one grid started at the same moment (forked, so without minutes of
    imports): each run key is claimed by one of them, trained once, recorded once."""
    configs = expand(SweepSpec(seeds=(0, 1, 2, 3), presets=("smoke",), run={"steps": 5, "device": "cpu"}))
    options = SweepOptions.resolve("two-sweeps", session_tracking_uri, tmp_path / "results")
    fork = multiprocessing.get_context("fork")
    start, results = fork.Barrier(2), fork.SimpleQueue()
    sweeps = [fork.Process(target=sweep_in_a_fork, args=(configs, options, start, results)) for _ in range(2)]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(timeout=300)
    assert [s.exitcode for s in sweeps] == [0, 0]
    reports = [results.get() for _ in sweeps]  # (finished, left to the other, skipped, errors)
    assert [r[3] for r in reports] == [[], []]
    assert sum(r[0] for r in reports) == 4 and sum(r[1] for r in reports) >= 1, reports

    runs = runs_by_status(session_tracking_uri, "two-sweeps")
    assert list(runs) == ["FINISHED"]  # nothing duplicated, nothing left RUNNING or KILLED
    assert Counter(r.data.tags["run_key"] for r in runs["FINISHED"]) == Counter({c.key(): 1 for c in configs})
    rows = pd.read_csv(options.results_csv)
    assert Counter(rows["run_key"]) == Counter({c.key(): 1 for c in configs})
