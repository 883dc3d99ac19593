"""Run functions for scheduler tests, importable by spawned worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from anobench.config import RunConfig
from anobench.results_csv import SCHEMA_VERSION, append_rows, config_columns
from anobench.scheduler import RunOutcome, SweepOptions, run_label, run_one
from anobench.store_lock import LockedMlflowTracker


def wait_for_peers(folder: Path, me: str, n: int, timeout: float = 120.0) -> None:
    """A file barrier: return once ``n`` runs have reached it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / me).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.iterdir()))} of {n} runs reached the barrier")
        time.sleep(0.02)


def record_at_once(config: RunConfig, options: SweepOptions, progress=None) -> RunOutcome:
    """Records a fake run in MLflow and the CSV the way run_experiment does, after every run of
    the sweep has reached the same point, so all of them write to the store at the same moment."""
    key = config.key()
    wait_for_peers(options.output_dir / "barrier", key, int(os.environ["N_PEERS"]))
    tracker = LockedMlflowTracker(options.tracking_uri, options.experiment)
    with tracker.start_run(run_label(config), {"run_key": key, "objective": config.objective}) as run:
        run.log_params(config.flat_params())
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1), "auroc/knn": 0.5 + step / 10}, step=step)
        run.log_text(config.to_json(), "config.json")
        run_id = run.run_id
    append_rows(options.results_csv, [{
        "run_key": key, "mlflow_run_id": run_id, "objective": config.objective, "scorer": "knn",
        "auroc": 0.9, **config_columns(config), "schema_version": SCHEMA_VERSION,
    }])
    return RunOutcome(key, run_label(config), ok=True, run_id=run_id, auroc={"knn": 0.9})


def fail_or_crash(config: RunConfig, options: SweepOptions, progress=None) -> RunOutcome:
    """Seed 0 finishes, seed 1 fails with an error, seed 2 kills its worker process."""
    if config.seed == 1:
        return RunOutcome(config.key(), run_label(config), ok=False, error="ValueError: planned")
    if config.seed == 2:
        os._exit(3)
    if progress is not None:
        progress(1, 1)
    return RunOutcome(config.key(), run_label(config), ok=True)


class InlineExecutor:
    """Runs each config with :func:`run_one` in this process, one after the other."""

    workers = 1

    def run(self, configs: list[RunConfig], options: SweepOptions, events=None) -> list[RunOutcome]:
        return [run_one(config, options) for config in configs]
