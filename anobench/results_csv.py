"""Appends one row per run x scorer to a results CSV, never losing earlier rows.

The columns (:data:`RESULT_COLUMNS`, documented in the README) are one schema shared by
``anobench run`` and ``anobench leaderboard``; every row carries :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import csv
import io
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from anobench.config import RunConfig, TrainConfig
from anobench.errors import DataError
from anobench.provenance import ENVIRONMENT_TAGS

SCHEMA_VERSION = 3
"""2: adds ``aulc``, every config setting as a column and ``schema_version`` to version 1;
3 adds the environment a result depends on (``torch_threads``, ``hardware``, ``versions``)."""

_BASE_COLUMNS: tuple[str, ...] = (
    "run_key", "mlflow_run_id", "finished_at", "objective", "outliers", "dataset",
    "normal_class", "normal_class_name", "seed", "preset", "scorer", "auroc", "aupr", "fpr95",
    "steps", "train_wall_s", "images_per_s", "total_wall_s", "config_json",
)
_CONFIG_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(RunConfig) if f.name not in _BASE_COLUMNS and f.name != "train"
) + tuple(f"train.{f.name}" for f in dataclasses.fields(TrainConfig))
ENVIRONMENT_COLUMNS: tuple[str, ...] = tuple(ENVIRONMENT_TAGS)
"""Filled from :func:`anobench.provenance.environment_record`; empty for runs recorded before
schema version 3."""
RESULT_COLUMNS: tuple[str, ...] = (
    _BASE_COLUMNS + ("aulc",) + _CONFIG_COLUMNS + ENVIRONMENT_COLUMNS + ("schema_version",)
)


def config_columns(config: RunConfig) -> dict[str, Any]:
    """The config settings that :data:`RESULT_COLUMNS` holds besides the base columns; lists
    and dicts as JSON, None as an empty cell."""
    flat = {k: v for k, v in config.to_dict().items() if k != "train"}
    flat.update({f"train.{k}": v for k, v in dataclasses.asdict(config.train).items()})
    return {
        k: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else ("" if v is None else v)
        for k, v in flat.items() if k in _CONFIG_COLUMNS
    }


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (keys: :data:`RESULT_COLUMNS`) to the CSV at ``path``, writing the header
    when the file is new. Each call writes with one ``write`` on an O_APPEND file, so rows of
    concurrent writers do not interleave.

    Raises:
        ValueError: If a row has a key outside :data:`RESULT_COLUMNS`.
    """
    for row in rows:
        extra = set(row) - set(RESULT_COLUMNS)
        if extra:
            raise ValueError(f"unknown result columns {sorted(extra)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        if tuple(header) != RESULT_COLUMNS:
            raise DataError(
                f"results CSV {path} has other columns than schema version {SCHEMA_VERSION}; "
                "move it away (anobench leaderboard regenerates it from MLflow)"
            )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    if new:
        writer.writeheader()
    writer.writerows(rows)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, buffer.getvalue().encode())
    finally:
        os.close(fd)
