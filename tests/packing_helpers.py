"""Fake run functions for the packing tests, importable by spawned worker processes."""

from __future__ import annotations

import json
import os
import time

from anobench.config import RunConfig
from anobench.results_csv import SCHEMA_VERSION, append_rows, config_columns
from anobench.scheduler import RunOutcome, SweepOptions, run_label
from sweep_helpers import wait_for_peers

PEERS = 6
"""Seeds below this wait until that many runs run at once (2 fake GPUs x 3)."""


def packed_run(config: RunConfig, options: SweepOptions, progress=None) -> RunOutcome:
    """Logs its attempt (GPU, threads, times); seeds < PEERS meet at a barrier, seed PEERS runs
    out of memory on its first attempt, seed PEERS + 1 fails with a plain error on its first;
    a finished run appends its CSV row, so a later sweep skips it."""
    key = config.key()
    log = options.output_dir / "attempts"
    log.mkdir(parents=True, exist_ok=True)
    attempt = len(list(log.glob(f"{key}-*.json")))
    started = time.time()
    if config.seed < PEERS:
        wait_for_peers(options.output_dir / "barrier", key, PEERS)
    error = None
    if attempt == 0 and config.seed == PEERS:
        error = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    elif attempt == 0 and config.seed == PEERS + 1:
        error = "ValueError: planned"
    record = {"seed": config.seed, "gpu": os.environ["CUDA_VISIBLE_DEVICES"], "threads": os.environ["OMP_NUM_THREADS"],
              "start": started, "end": time.time(), "error": error}
    (log / f"{key}-{attempt}.json").write_text(json.dumps(record))
    if error is not None:
        return RunOutcome(key, run_label(config), ok=False, error=error)
    record_finished(config, options)
    return RunOutcome(key, run_label(config), ok=True, auroc={"knn": 0.9})


def record_finished(config: RunConfig, options: SweepOptions) -> None:
    """Append the run's CSV row, which makes it a finished run for the sweep's plan."""
    append_rows(options.results_csv, [{
        "run_key": config.key(), "mlflow_run_id": "fake", "objective": config.objective, "scorer": "knn",
        "auroc": 0.9, **config_columns(config), "schema_version": SCHEMA_VERSION,
    }])
