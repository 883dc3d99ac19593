"""The live display of a sweep: runs done / running / failed / left, an ETA, and a bar per run.

It implements :class:`anobench.scheduler.Events`; the overall bar advances by fractions of runs
(each running run counts by its step progress), so Rich's time-remaining estimate is smooth.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)

from anobench.scheduler import Plan, RunOutcome


class SweepDisplay:
    """Rich progress for a sweep; use as a context manager around :func:`run_sweep`."""

    def __init__(self, console: Console, executor: Any) -> None:
        self.console, self.executor = console, executor
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )
        self.overall: TaskID | None = None
        self.running: dict[str, TaskID] = {}
        self.fraction: dict[str, float] = {}
        self.done = self.failed = self.total = 0

    def __enter__(self) -> SweepDisplay:
        self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.stop()

    def plan(self, plan: Plan) -> None:
        """Size the overall bar: the pending runs; say how many were skipped."""
        self.total = len(plan.pending)
        if plan.skipped:
            self.console.print(f"{len(plan.skipped)} runs already finished: skipped", highlight=False)
        if self.total:
            self.overall = self.bars.add_task("[bold]sweep", total=self.total, info=self._info())

    def _info(self) -> str:
        left = self.total - self.done - self.failed - len(self.running)
        return (f"done {self.done}  running {len(self.running)}  failed {self.failed}  left {left}"
                f"  ({self.executor.workers} workers)")

    def _refresh(self) -> None:
        if self.overall is not None:
            completed = self.done + self.failed + sum(self.fraction.values())
            self.bars.update(self.overall, total=self.total, completed=completed, info=self._info())

    def started(self, key: str, label: str, worker: str) -> None:
        """A worker took a run (again, when it is retried alone after running out of memory)."""
        if key in self.running:
            self.bars.remove_task(self.running[key])
        self.running[key] = self.bars.add_task(f"  {worker} {label}", total=None, info="")
        self.fraction[key] = 0.0
        self._refresh()

    def progress(self, key: str, step: int, total: int) -> None:
        """A running run reached ``step`` of ``total``."""
        if key in self.running:
            self.bars.update(self.running[key], completed=step, total=total, info=f"step {step}/{total}")
            self.fraction[key] = step / max(total, 1)
            self._refresh()

    def finished(self, outcome: RunOutcome) -> None:
        """A run ended; print one line about it."""
        task = self.running.pop(outcome.key, None)
        self.fraction.pop(outcome.key, None)
        if task is not None:
            self.bars.remove_task(task)
        if outcome.elsewhere is not None:
            self.total -= 1  # another process runs it: neither done nor failed here
            self.console.print(f"other  {outcome.label} [{outcome.key}]: {outcome.elsewhere}",
                               highlight=False, markup=False)
        elif outcome.ok:
            self.done += 1
            scores = " ".join(f"{spec}={value:.4f}" for spec, value in outcome.auroc.items())
            resumed = f", resumed from step {outcome.resumed_from_step}" if outcome.resumed_from_step else ""
            self.console.print(f"done   {outcome.label} [{outcome.key}] {outcome.wall_s:.1f} s{resumed}; "
                               f"AUROC {scores}", highlight=False, markup=False)
        else:
            self.failed += 1
            self.console.print(f"FAILED {outcome.label} [{outcome.key}]: {outcome.error}",
                               highlight=False, markup=False)
        self._refresh()

