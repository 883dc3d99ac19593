"""Appends one row per run x scorer to a results CSV, never losing earlier rows."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

RESULT_COLUMNS: tuple[str, ...] = (
    "run_key", "mlflow_run_id", "finished_at", "objective", "outliers", "dataset",
    "normal_class", "normal_class_name", "seed", "preset", "scorer", "auroc", "aupr", "fpr95",
    "steps", "train_wall_s", "images_per_s", "total_wall_s", "config_json",
)


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
    lines: list[str] = []

    class _Sink:
        def write(self, text: str) -> None:
            lines.append(text)

    writer = csv.DictWriter(_Sink(), fieldnames=RESULT_COLUMNS, lineterminator="\n")
    if new:
        writer.writeheader()
    writer.writerows(rows)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)
