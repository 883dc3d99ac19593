"""Training checkpoints written atomically, so an interrupted run resumes where it stopped.

A checkpoint holds everything the training loop needs to continue bit for bit: model, objective,
optimiser, schedule, grad scaler, the sampling generator, the batch composer's epoch order and
the loop's counters. It is written to a temporary file in the same folder, flushed to disk and
moved over the old one with ``os.replace``, so a kill at any moment leaves either the previous
checkpoint or the new one, never a torn file.

Example:
    >>> ckpt = Checkpoint(Path("ckpt/abc.pt"), every=10)  # doctest: +SKIP
    >>> run_experiment(config, checkpoint=ckpt)  # resumes if ckpt/abc.pt exists  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anobench.errors import ConfigError


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often one run saves its training state.

    Attributes:
        path: The checkpoint file (its folder is created on the first save).
        every: Steps between saves; None saves ten times per run (at least every step).
    """

    path: Path
    every: int | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise ConfigError(f"checkpoint interval must be >= 1 step, got {self.every}")

    def interval(self, total_steps: int) -> int:
        """Steps between saves for a run of ``total_steps`` steps."""
        return self.every if self.every is not None else max(1, total_steps // 10)

    def due(self, step: int, total_steps: int) -> bool:
        """Whether to save after ``step`` (never after the last step: the run is then done)."""
        return step < total_steps and step % self.interval(total_steps) == 0

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically (temporary file, fsync, ``os.replace``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is no checkpoint yet."""
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def clear(self) -> None:
        """Delete the checkpoint (after the run finished)."""
        self.path.unlink(missing_ok=True)
