"""Appends one row per run x scorer to a results CSV, never losing earlier rows.

The columns (:data:`RESULT_COLUMNS`, documented in the README) are one schema shared by
``anobench run`` and ``anobench leaderboard``; every row carries :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import fcntl
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from anobench.config import RunConfig, TrainConfig
from anobench.errors import DataError
from anobench.label_free import PROXIES, THRESHOLD_COLUMNS
from anobench.provenance import ENVIRONMENT_TAGS

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
"""2: adds ``aulc``, every config setting as a column and ``schema_version`` to version 1;
3 adds the environment a result depends on (``torch_threads``, ``hardware``, ``versions``);
4 adds the label-free proxies and the calibrated threshold (:data:`LABEL_FREE_COLUMNS`) and the
settings ``val_fraction``, ``val_outliers`` and ``target_fpr``; 5 adds ``plugins``."""

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
LABEL_FREE_COLUMNS: tuple[str, ...] = PROXIES + THRESHOLD_COLUMNS
"""The final model's label-free proxies and the scorer's calibrated threshold
(:mod:`anobench.label_free`); empty where not computed and for runs before schema version 4."""
PLUGINS_COLUMN = "plugins"
"""The distributions of the plugin entries behind a row, ``"name version, ..."``
(:func:`anobench.plugins.row_plugins`); empty for built-ins only and for runs before schema 5."""
RESULT_COLUMNS: tuple[str, ...] = (
    _BASE_COLUMNS + ("aulc",) + LABEL_FREE_COLUMNS + _CONFIG_COLUMNS + ENVIRONMENT_COLUMNS + (PLUGINS_COLUMN,)
    + ("schema_version",)
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


class ResultsWriteError(DataError):
    """Rows could not be appended to a results CSV (a full disk, a lost mount); the file is left
    as it was before."""


def _check_header(path: Path, header: list[str]) -> None:
    if tuple(header) != RESULT_COLUMNS:
        raise DataError(
            f"results CSV {path} has other columns than schema version {SCHEMA_VERSION}; "
            "move it away (anobench leaderboard regenerates it from MLflow)"
        )


def check_writable(path: Path) -> None:
    """Check, before any training, that rows can be appended to the results CSV at ``path``:
    its folder can be created and written, and an existing file has this schema's columns.

    Raises:
        DataError: Naming the path and what is wrong with it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise DataError(f"results CSV {path} is a folder")
        if path.exists():
            with path.open("r+", newline="") as handle:
                if path.stat().st_size:
                    _check_header(path, next(csv.reader(handle), []))
        else:
            with tempfile.TemporaryFile(dir=path.parent):
                pass
    except OSError as error:
        raise DataError(f"cannot write the results CSV {path}: {error.strerror or error}") from None


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data``; a write that makes no progress raises ENOSPC."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _cut_torn_tail(fd: int, path: Path) -> int:
    """Cut a last line without its newline (a write that an older version, a kill or a crash
    left half done) off the file open at ``fd``, so the next row does not glue onto it; the size
    after."""
    size = os.fstat(fd).st_size
    if not size or os.pread(fd, 1, size - 1) == b"\n":
        return size
    head = os.pread(fd, size, 0)
    keep = head.rfind(b"\n") + 1
    os.ftruncate(fd, keep)
    _log.warning("warning: cut a torn last line (%d bytes) off %s; its run is in MLflow, and "
                 "anobench leaderboard rebuilds the file from there", size - keep, path)
    return keep


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (keys: :data:`RESULT_COLUMNS`) to the CSV at ``path``, writing the header
    when the file is new. The rows are written whole or not at all: under an exclusive lock on
    the file (so writers of other processes queue), every byte is written and synced, and a
    failed write is cut off again (``ftruncate`` to the size before).

    Example:
        >>> append_rows(Path("runs.csv"), [{"run_key": "k", "scorer": "knn", "auroc": 0.9}])
        >>> Path("runs.csv").read_text().splitlines()[1][:16]
        'k,,,,,,,,,,knn,0'

    Raises:
        ValueError: If a row has a key outside :data:`RESULT_COLUMNS`.
        DataError: If the file has other columns than :data:`RESULT_COLUMNS`.
        ResultsWriteError: If the rows could not be written; it names them (run key, scorer).
    """
    for row in rows:
        extra = set(row) - set(RESULT_COLUMNS)
        if extra:
            raise ValueError(f"unknown result columns {sorted(extra)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = _cut_torn_tail(fd, path)
        if size:
            with open(path, newline="") as handle:
                _check_header(path, next(csv.reader(handle), []))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        if not size:
            writer.writeheader()
        writer.writerows(rows)
        try:
            _write_all(fd, buffer.getvalue().encode())
            os.fsync(fd)
        except OSError as error:
            os.ftruncate(fd, size)
            named = ", ".join(f"{row.get('run_key', '?')}/{row.get('scorer', '?')}" for row in rows)
            raise ResultsWriteError(
                f"results CSV {path}: rows not recorded (run key/scorer: {named}): "
                f"{error.strerror or error}; the file is as it was before"
            ) from None
    finally:
        os.close(fd)


def torn_last_row(path: Path) -> str | None:
    """What is wrong with the last row of the CSV at ``path``, if a write was cut off there (no
    final newline, or another number of fields than the header); None for a whole file or no
    file.

    Example:
        >>> _ = Path("torn.csv").write_text("a,b\\n1,2\\n3")
        >>> torn_last_row(Path("torn.csv"))
        'the last line has no newline and 1 of 2 fields'
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    text = path.read_text(errors="replace")
    records = list(csv.reader(io.StringIO(text)))
    fields, header = len(records[-1]), len(records[0])
    if not text.endswith("\n"):
        return f"the last line has no newline and {fields} of {header} fields"
    if fields != header:
        return f"the last row has {fields} of {header} fields"
    return None
