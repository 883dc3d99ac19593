"""Faults on the stores a study writes to: kills while a store is created, many fresh writers,
full disks, outputs that cannot be written, bad tracking URIs, signals, orphaned runs and two
sweeps of one experiment. Nothing may be lost, duplicated or left unusable (docs/reliability.md).

The tmpfs cases mount small file systems and need root; they skip cleanly without it.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

import anobench.runner
import anobench.scheduler
from anobench.cli import app
from anobench.config import RunConfig, preset
from anobench.interrupts import Terminated, check_interrupted, sigterm_as_interrupt
from anobench.report.leaderboard import load_runs
from anobench.results_csv import RESULT_COLUMNS, ResultsWriteError, append_rows, torn_last_row
from anobench.run_ownership import HOST, PID, PID_START, RunClaimed, claim_run, process_state
from anobench.scheduler import SweepOptions, plan
from anobench.store import StoreError, _half_built, ensure_store, require_store
from anobench.store_lock import LockedMlflowTracker
from anobench.tracking import MlflowTracker
from test_bad_input import TrainingStarted, the_error_line

PYTHON = sys.executable
ANOBENCH = str(Path(sys.executable).parent / "anobench")
runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def row(key: str, scorer: str = "knn", padding: int = 0) -> dict:
    return {"run_key": key, "scorer": scorer, "auroc": 0.9, "config_json": "x" * padding, "schema_version": 3}


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` for the block; skips the test where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


# --- store creation: kills, half-built stores, many fresh writers ---------------------------

BUILD = "import sys; from anobench.store import ensure_store; ensure_store(sys.argv[1])"


def test_kill_9_while_a_store_is_created_never_leaves_a_half_built_one(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    for _ in range(3):
        builder = subprocess.Popen([PYTHON, "-c", BUILD, uri], cwd=tmp_path, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("mlflow.db.partial-*")) and builder.poll() is None:
            assert time.monotonic() < deadline, "the store was never being built"
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, 2.0))  # a random moment of the build (it takes seconds)
        builder.kill()
        builder.wait()
        assert not db.exists() or _half_built(db, uri) is None  # absent, or complete: never half
    ensure_store(uri)  # a later command works
    assert _half_built(db, uri) is None
    assert not list(tmp_path.glob("mlflow.db.partial-*"))  # the killed builds are cleaned up
    assert MlflowClient(uri).get_experiment("0").name == "Default"


def test_a_store_half_built_by_mlflow_is_set_aside_and_rebuilt_with_one_line(tmp_path, caplog):
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    db = tmp_path / "half.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)  # what a kill leaves after MLflow's first step
    engine.dispose()
    uri = f"sqlite:///{db}"
    assert _half_built(db, uri) is not None
    ensure_store(uri)
    assert _half_built(db, uri) is None
    aside = list(tmp_path.glob("half.db.incomplete-*"))
    assert len(aside) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "anobench.store"]
    assert len(warnings) == 1 and "half-built" in warnings[0] and str(aside[0]) in warnings[0]
    MlflowTracker(uri, "after-repair").experiment_id(MlflowClient(uri))


def test_a_store_with_runs_at_another_schema_is_refused_not_touched(tmp_path, session_tracking_uri):
    import shutil
    import sqlite3

    MlflowClient(session_tracking_uri).search_experiments()  # the session store exists
    db = tmp_path / "old.db"
    shutil.copy(session_tracking_uri[len("sqlite:///"):], db)
    with sqlite3.connect(db) as con:
        con.execute("update alembic_version set version_num = 'abc123'")
        if not con.execute("select count(*) from runs").fetchone()[0]:
            con.execute("insert into runs (run_uuid, experiment_id, lifecycle_stage, status) values ('x', 0, 'active', 'FINISHED')")
    before = db.read_bytes()
    with pytest.raises(StoreError, match="mlflow db upgrade"):
        ensure_store(f"sqlite:///{db}")
    assert db.read_bytes() == before


def write_a_run(uri: str, key: str, csv_path: Path, start: Any) -> None:
    """What `anobench run` does to the store and the CSV (store and experiment creation, the
    run, its rows), without the training; every writer starts at the same moment."""
    start.wait()
    with LockedMlflowTracker(uri, "eight").start_run(f"writer-{key}", {"run_key": key}) as run:
        run.log_metrics({"auroc/knn": 0.9}, step=5)
    append_rows(csv_path, [{"run_key": key, "mlflow_run_id": run.run_id, "scorer": "knn", "auroc": 0.9}])


def test_eight_fresh_writers_in_an_empty_folder_all_finish(tmp_path):
    uri, csv_path = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "results" / "eight" / "runs.csv"
    fork = multiprocessing.get_context("fork")  # forked writers skip the imports: seconds, not minutes
    start = fork.Barrier(8)
    writers = [fork.Process(target=write_a_run, args=(uri, f"key{i}", csv_path, start)) for i in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    assert [w.exitcode for w in writers] == [0] * 8
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("eight").experiment_id])
    assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 8})
    assert Counter(r.data.tags["run_key"] for r in runs) == Counter({f"key{i}": 1 for i in range(8)})
    assert sorted(pd.read_csv(csv_path)["run_key"]) == [f"key{i}" for i in range(8)]


def test_experiment_creation_that_loses_a_race_gets_the_winner():
    class Client:
        calls = 0

        def get_experiment_by_name(self, name):
            self.calls += 1
            return None if self.calls == 1 else type("Experiment", (), {"experiment_id": "7"})()

        def create_experiment(self, name):
            raise MlflowException("Experiment(name=x) already exists", error_code=RESOURCE_ALREADY_EXISTS)

    assert MlflowTracker("sqlite:///unused.db", "x").experiment_id(Client()) == "7"


# --- reading never creates a store ------------------------------------------------------------

def test_leaderboard_and_ui_on_a_mistyped_store_create_nothing(tmp_path):
    typo = tmp_path / "mlfow.db"
    for args in (["leaderboard", "--tracking-uri", f"sqlite:///{typo}"],
                 ["ui", "--tracking-uri", f"sqlite:///{typo}", "--port", str(closed_port())]):
        line = the_error_line(args)
        assert f"no MLflow store at {typo}" in line
    with pytest.raises(StoreError):
        require_store(f"sqlite:///{typo}")
    assert not typo.exists() and not list(tmp_path.iterdir())


# --- bad tracking URIs and outputs: one line, exit 2, in seconds, before training ------------

@pytest.fixture
def no_training(monkeypatch):
    def started(*args, **kwargs):
        raise TrainingStarted("bad input reached training")

    monkeypatch.setattr(anobench.runner, "train", started)
    monkeypatch.setattr(anobench.runner, "load_dataset", started)
    monkeypatch.setattr(anobench.scheduler.LocalExecutor, "run", started)


RUN = ["run", "--preset", "smoke", "--steps", "2"]
SWEEP = ["sweep", "--preset", "smoke", "--steps", "2", "--seeds", "0"]
BAD_URIS = [
    ("unknown-scheme", "bogus://x", "'bogus'"),
    ("closed-port", "http://127.0.0.1:{port}", "cannot reach the tracking store"),
    ("database-closed-port", "postgresql://u@127.0.0.1:{port}/db", "cannot reach the tracking store"),
    ("malformed-port", "http://127.0.0.1:abc", "'http://127.0.0.1:abc'"),
    ("sqlite-without-file", "sqlite://", "needs a file"),
    ("sqlite-folder-under-a-file", "sqlite:///{tmp}/a-file/mlflow.db", "{tmp}/a-file"),
    ("sqlite-store-is-a-folder", "sqlite:///{tmp}", "is a folder"),
]


@pytest.mark.parametrize("command", [RUN, SWEEP], ids=["run", "sweep"])
@pytest.mark.parametrize(("uri", "expected"), [pytest.param(u, e, id=n) for n, u, e in BAD_URIS])
def test_a_bad_tracking_uri_fails_fast_with_one_line(command, uri, expected, tmp_path, no_training):
    (tmp_path / "a-file").write_text("")
    port = closed_port()
    started = time.monotonic()
    line = the_error_line([*command, "--tracking-uri", uri.format(tmp=tmp_path, port=port)])
    assert time.monotonic() - started < 10
    assert expected.format(tmp=tmp_path, port=port) in line


@pytest.mark.parametrize("command", [RUN, SWEEP], ids=["run", "sweep"])
def test_an_output_dir_that_is_a_file_fails_before_training(command, tmp_path, no_training):
    (tmp_path / "out").write_text("")
    line = the_error_line([*command, "--output-dir", str(tmp_path / "out")])
    assert f"{tmp_path / 'out'}" in line


@pytest.mark.parametrize("command", [RUN, SWEEP], ids=["run", "sweep"])
def test_a_results_csv_with_foreign_columns_fails_before_training(command, tmp_path, no_training):
    folder = tmp_path / "results" / "default"
    folder.mkdir(parents=True)
    (folder / "runs.csv").write_text("name,value\na,1\n")
    line = the_error_line(command)
    assert "other columns" in line and "runs.csv" in line


def test_a_read_only_output_dir_fails_before_training(tmp_path, no_training):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as folder:
        line = the_error_line([*RUN, "--output-dir", str(folder)])
    assert str(folder) in line and "Read-only file system" in line


# --- results CSV rows: whole or absent ----------------------------------------------------------

def test_a_short_write_leaves_no_torn_row_and_names_the_rows(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    append_rows(path, [row("before")])
    before = path.read_bytes()
    real_write, calls = os.write, []

    def short_then_full(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch, pytest.raises(ResultsWriteError) as error:
        patch.setattr(os, "write", short_then_full)
        append_rows(path, [row("lost", "knn"), row("lost", "mahalanobis")])
    assert len(calls) == 2  # the rest of a short write is written, not dropped
    assert "lost/knn, lost/mahalanobis" in str(error.value) and "No space left" in str(error.value)
    assert path.read_bytes() == before and torn_last_row(path) is None
    append_rows(path, [row("after")])
    assert list(pd.read_csv(path)["run_key"]) == ["before", "after"]


def test_a_full_tmpfs_never_tears_a_row(tmp_path):
    with tmpfs(tmp_path / "small", "size=200k") as folder:
        path, written = folder / "runs.csv", 0
        with pytest.raises(ResultsWriteError, match="No space left"):
            while True:
                append_rows(path, [row(f"key{written}", padding=3000)])
                written += 1
        rows = pd.read_csv(path)
        assert list(rows["run_key"]) == [f"key{i}" for i in range(written)] and written > 10
        assert torn_last_row(path) is None and list(rows.columns) == list(RESULT_COLUMNS)


def test_appending_after_a_torn_last_line_cuts_it_off(tmp_path, caplog):
    path = tmp_path / "runs.csv"
    append_rows(path, [row("whole")])
    with path.open("a") as handle:
        handle.write("torn,abc")
    assert torn_last_row(path) == f"the last line has no newline and 2 of {len(RESULT_COLUMNS)} fields"
    append_rows(path, [row("next")])
    assert list(pd.read_csv(path)["run_key"]) == ["whole", "next"]
    assert any("torn last line" in r.getMessage() for r in caplog.records)


def fail_csv_writes(monkeypatch) -> None:
    real_write = os.write

    def full_disk_for_csv(fd: int, data) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("runs.csv"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk_for_csv)


def test_a_full_disk_fails_the_run_and_leaderboard_rebuilds_a_torn_csv(tmp_path, monkeypatch, session_tracking_uri):
    run = ["run", "--preset", "smoke", "--steps", "2", "--device", "cpu", "--experiment", "disk"]
    with monkeypatch.context() as patch:
        fail_csv_writes(patch)
        result = runner.invoke(app, run)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "/knn" in lines[0] and "rows not recorded" in lines[0]
    client = MlflowClient(session_tracking_uri)
    failed = client.search_runs([client.get_experiment_by_name("disk").experiment_id])[0]
    assert failed.info.status == "FAILED" and "No space left" in failed.data.tags["anobench.csv_error"]
    csv_path = tmp_path / "results" / "disk" / "runs.csv"
    assert csv_path.read_text() == ""

    assert runner.invoke(app, run).exit_code == 0
    with csv_path.open("a") as handle:
        handle.write("torn-row,with,too,few")
    board = runner.invoke(app, ["leaderboard", "--experiment", "disk"])
    assert board.exit_code == 0, board.output
    warning = [line for line in board.stderr.splitlines() if "torn" in line]
    assert len(warning) == 1 and "rebuilt it from the store" in warning[0]
    assert torn_last_row(csv_path) is None and len(pd.read_csv(csv_path)) == 1


# --- orphaned RUNNING runs, signals, claims -----------------------------------------------------

def orphan(tracker: MlflowTracker, key: str, host: str | None = None) -> str:
    """A RUNNING run whose process is gone (a dead pid on this host, or any pid on ``host``)."""
    client = tracker._client()
    run = client.create_run(tracker.experiment_id(client), tags={
        "run_key": key, HOST: host or socket.gethostname(), PID: str(dead_pid()), PID_START: "1"})
    return run.info.run_id


def status(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.status


def test_the_next_run_sweep_or_leaderboard_marks_orphans_killed(tmp_path, session_tracking_uri):
    tracker = LockedMlflowTracker(session_tracking_uri, "orphans")
    by_run, other_host = orphan(tracker, "a"), orphan(tracker, "b", host="elsewhere")
    with tracker.start_run("next", {"run_key": "c", "config_json": RunConfig(objective="firm", scorers=["knn"], train=preset("smoke")).to_json()}):
        pass
    assert status(session_tracking_uri, by_run) == "KILLED"
    assert status(session_tracking_uri, other_host) == "RUNNING"  # cannot be checked from here

    by_leaderboard = orphan(tracker, "d")
    load_runs(session_tracking_uri, "orphans")
    assert status(session_tracking_uri, by_leaderboard) == "KILLED"

    config = RunConfig(objective="firm", scorers=["knn"], seed=5, train=preset("smoke"))
    by_sweep = orphan(tracker, "e")
    pending_elsewhere = orphan(tracker, config.key(), host="elsewhere")
    plan([config], SweepOptions.resolve("orphans", session_tracking_uri, tmp_path / "results"))
    assert status(session_tracking_uri, by_sweep) == "KILLED"
    assert status(session_tracking_uri, pending_elsewhere) == "KILLED"  # the sweep takes its key over
    assert status(session_tracking_uri, other_host) == "RUNNING"


def test_a_claim_is_refused_while_the_key_runs_or_is_finished(session_tracking_uri):
    tracker = LockedMlflowTracker(session_tracking_uri, "claims")
    client = tracker._client()
    experiment_id = tracker.experiment_id(client)
    with tracker.start_run("live", {"run_key": "live"}):
        with pytest.raises(RunClaimed, match=f"process {os.getpid()}"):
            claim_run(client, experiment_id, "live")
    with pytest.raises(RunClaimed, match="finished"):
        claim_run(client, experiment_id, "live")
    stale = orphan(tracker, "stale")
    claim_run(client, experiment_id, "stale")
    assert status(session_tracking_uri, stale) == "KILLED"
    assert process_state({HOST: socket.gethostname(), PID: str(dead_pid())}) == "dead"


class SignalledInAFinalizer:
    def __del__(self) -> None:  # the handler runs here, and Python drops what it raises
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_whose_exception_python_drops_is_raised_again(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    with sigterm_as_interrupt():
        SignalledInAFinalizer()
        with pytest.raises(Terminated, match="SIGTERM"):
            check_interrupted()  # what a loop calls at each step
    with pytest.raises(Terminated, match="SIGTERM"):
        with sigterm_as_interrupt():
            SignalledInAFinalizer()  # and nothing checks: the block's end raises it
    assert reported == []  # no "Exception ignored" report: it is raised again instead
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)  # not dropped: raised at once, as usual


def running_run(uri: str, experiment: str, timeout: float = 600) -> str:
    client, deadline = MlflowClient(uri), time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'") if found else []
        if runs:
            return runs[0].info.run_id
        time.sleep(0.2)
    raise AssertionError(f"no RUNNING run in {experiment!r} within {timeout} s")


@pytest.mark.parametrize(("sig", "code", "expected"), [(signal.SIGTERM, 143, "KILLED"), (signal.SIGKILL, -9, "RUNNING")],
                         ids=["sigterm", "kill-9"])
def test_a_killed_run_is_never_left_running(sig, code, expected, tmp_path, session_tracking_uri):
    experiment = f"signal-{sig.name}"
    process = subprocess.Popen(
        [ANOBENCH, "run", "--preset", "smoke", "--steps", "100000", "--device", "cpu", "--experiment", experiment],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    run_id = running_run(session_tracking_uri, experiment)
    time.sleep(1.0)  # the run is created just before training starts
    process.send_signal(sig)
    stderr = process.communicate(timeout=300)[1]  # interpreter teardown: ~10-50 s when loaded
    assert process.returncode == code, stderr
    assert status(session_tracking_uri, run_id) == expected
    if sig == signal.SIGTERM:
        assert stderr.strip().splitlines()[-1].startswith("interrupted by SIGTERM")
        assert MlflowClient(session_tracking_uri).get_run(run_id).data.tags["anobench.error"].startswith("Terminated")
    else:  # nothing could run in the killed process: the next command on the store marks it
        with LockedMlflowTracker(session_tracking_uri, experiment).start_run("next", {"run_key": "next"}):
            pass
        assert status(session_tracking_uri, run_id) == "KILLED"
