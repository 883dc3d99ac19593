"""MLflow tracking of runs: params, metrics, tags and artifacts.

The default store is a local sqlite file, ``mlflow.db`` in the working directory; a
``--tracking-uri`` or the ``MLFLOW_TRACKING_URI`` variable selects any other store or server.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from anobench.run_ownership import process_tags, reap_orphans

DEFAULT_EXPERIMENT = "default"


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite file ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def quiet_store_setup() -> None:
    """Hide the INFO lines MLflow prints when it creates or migrates a sqlite store's tables."""
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def metric_key(*parts: str) -> str:
    """Join parts with ``/`` and replace characters MLflow rejects in metric names with ``_``."""
    return "/".join(re.sub(r"[^\w.\- ]", "_", p) for p in parts)


def git_commit() -> str | None:
    """The commit of the anobench source tree, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class MlflowRun:
    """An active MLflow run; a thin typed layer over the MLflow client."""

    def __init__(self, client: Any, run_id: str) -> None:
        self._client, self.run_id = client, run_id

    def log_params(self, params: dict[str, str]) -> None:
        """Log every param (values are strings)."""
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Log metrics at training ``step``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags (strings) used to filter runs in the UI."""
        for key, value in tags.items():
            self._client.set_tag(self.run_id, key, value)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as the artifact ``artifact_file``."""
        self._client.log_text(self.run_id, text, artifact_file)

    def log_frame(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """Store a data frame as a CSV artifact."""
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        self.log_text(buffer.getvalue(), artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Store a matplotlib figure as an image artifact."""
        self._client.log_figure(self.run_id, figure, artifact_file)


class MlflowTracker:
    """Creates MLflow runs in one experiment of one tracking store.

    Args:
        tracking_uri: Store or server URI; None uses :func:`default_tracking_uri`.
        experiment: Experiment name, created if missing.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.experiment = experiment
        self._ready = False

    def prepare(self) -> None:
        """Check the store and create it if missing (:func:`anobench.store.ensure_store`); the
        first client does this anyway, a caller does it early to fail before any work.

        Raises:
            anobench.store.StoreError: If the store cannot be used.
        """
        from anobench.store import ensure_store

        if not self._ready:
            ensure_store(self.tracking_uri)
            self._ready = True

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        self.prepare()
        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self, client: Any) -> str:
        """The id of the experiment, creating it on first use (another process may create it
        at the same moment: then its id)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(self.experiment))
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        return str(client.get_experiment_by_name(self.experiment).experiment_id)

    def _claim(self, client: Any, experiment_id: str, tags: dict[str, str]) -> None:
        """Make way for a new run with ``tags``: mark the experiment's orphaned runs KILLED
        (a sweep's tracker also claims the run key here)."""
        reap_orphans(client, [experiment_id])

    def _create_run(self, client: Any, run_name: str, tags: dict[str, str]) -> str:
        experiment_id = self.experiment_id(client)
        self._claim(client, experiment_id, tags)
        return str(client.create_run(experiment_id, run_name=run_name, tags={**tags, **process_tags()}).info.run_id)

    def mark_failed(self, run_id: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on a run that has ended and mark it FAILED (its results were not all
        recorded)."""
        client = self._client()
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, status="FAILED")

    @contextlib.contextmanager
    def start_run(self, run_name: str, tags: dict[str, str]) -> Iterator[MlflowRun]:
        """Open a run, tagged with its process (:mod:`anobench.run_ownership`); it ends FINISHED,
        KILLED if interrupted (SIGINT, or SIGTERM under :func:`anobench.interrupts.sigterm_as_interrupt`),
        or FAILED if the body raises; the error is kept in the tag ``anobench.error``."""
        client = self._client()
        run_id = self._create_run(client, run_name, tags)
        active = MlflowRun(client, run_id)
        try:
            yield active
        except BaseException as error:
            active.set_tags({"anobench.error": f"{type(error).__name__}: {error}"[:5000]})
            client.set_terminated(run_id, status="KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
