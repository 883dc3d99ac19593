"""Runs the runs of a sweep: skips finished ones, resumes interrupted ones, survives failed ones.

:func:`run_one` is the one run function every executor calls (a local worker process, a Ray
task): it records the run in MLflow and the results CSV, saving checkpoints as it trains, and
turns any error into a failed :class:`RunOutcome` instead of raising. :func:`plan` drops the runs
whose key is already finished in the tracking store or in exported results CSVs.
:class:`LocalExecutor` runs one worker process per GPU (pinned with ``CUDA_VISIBLE_DEVICES``) or
N CPU workers with the CPU threads split between them; a queue hands out the runs.

Example:
    >>> configs = expand(SweepSpec(objectives=("firm", "simclr"), presets=("smoke",)))  # doctest: +SKIP
    >>> report = run_sweep(configs, SweepOptions.resolve("demo"), LocalExecutor(workers=2))  # doctest: +SKIP
    >>> report.failed  # doctest: +SKIP
    []
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from anobench.config import RunConfig
from anobench.store_lock import LockedMlflowTracker, store_lock

PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class SweepOptions:
    """Where a sweep records its runs; all paths absolute, so remote workers find them.

    Attributes:
        experiment: MLflow experiment; results go to ``output_dir/experiment/runs.csv``.
        tracking_uri: The MLflow store.
        output_dir: Folder of the results CSVs.
        checkpoint_dir: Folder of the training checkpoints (``<experiment>/<run key>.pt``).
        checkpoint_every: Steps between checkpoints; None: ten per run.
        done_csvs: More results CSVs whose ``run_key`` rows count as finished runs.
    """

    experiment: str
    tracking_uri: str
    output_dir: Path
    checkpoint_dir: Path
    checkpoint_every: int | None = None
    done_csvs: tuple[Path, ...] = ()

    @staticmethod
    def resolve(
        experiment: str, tracking_uri: str | None = None, output_dir: Path = Path("results"),
        checkpoint_dir: Path = Path(".anobench/checkpoints"), checkpoint_every: int | None = None,
        done_csvs: tuple[Path, ...] = (),
    ) -> SweepOptions:
        """Options with relative paths (and the default store) made absolute."""
        from anobench.tracking import default_tracking_uri

        uri = tracking_uri or default_tracking_uri()
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
        return SweepOptions(experiment, uri, output_dir.resolve(), checkpoint_dir.resolve(),
                            checkpoint_every, tuple(p.resolve() for p in done_csvs))

    @property
    def results_csv(self) -> Path:
        """The CSV every run of the sweep appends its rows to."""
        return self.output_dir / self.experiment / "runs.csv"


@dataclass
class RunOutcome:
    """How one run ended.

    Attributes:
        key: The run key.
        label: Short human-readable name of the run.
        ok: True if the run finished and was recorded.
        error: ``"Type: message"`` of a failed run.
        wall_s: Wall time of the run.
        run_id: The MLflow run id (None if the run failed before it was created).
        resumed_from_step: Step a checkpoint resumed it from (0: fresh).
        auroc: Final AUROC by scorer spec.
    """

    key: str
    label: str
    ok: bool
    error: str | None = None
    wall_s: float = 0.0
    run_id: str | None = None
    resumed_from_step: int = 0
    auroc: dict[str, float] = field(default_factory=dict)


def run_label(config: RunConfig) -> str:
    """``objective/outliers dataset:class seed preset``, the name shown while the run works."""
    return (f"{config.objective}/{config.outliers} {config.dataset}:{config.normal_class} "
            f"s{config.seed} {config.preset}")


Progress = Callable[[int, int], None]
"""``progress(step, total_steps)``."""


def run_one(config: RunConfig, options: SweepOptions, progress: Progress | None = None) -> RunOutcome:
    """Run one config of a sweep and record it; never raises for a failed run.

    Resumes from ``checkpoint_dir/<experiment>/<key>.pt`` if an earlier attempt left one.
    """
    from anobench.checkpoint import Checkpoint
    from anobench.runner import run_experiment

    started = time.perf_counter()
    key, label = config.key(), run_label(config)
    checkpoint = Checkpoint(options.checkpoint_dir / options.experiment / f"{key}.pt", options.checkpoint_every)
    on_step = None if progress is None else (lambda info: progress(info.step, info.total_steps))
    try:
        result = run_experiment(
            config, tracker=LockedMlflowTracker(options.tracking_uri, options.experiment),
            results_csv=options.results_csv, on_step=on_step, checkpoint=checkpoint,
        )
    except Exception as error:  # recorded (MLflow run FAILED + tag), and the sweep goes on
        return RunOutcome(key, label, ok=False, error=f"{type(error).__name__}: {error}",
                          wall_s=time.perf_counter() - started)
    with contextlib.suppress(OSError):
        checkpoint.path.parent.rmdir()  # only if empty
    return RunOutcome(
        key, label, ok=True, wall_s=time.perf_counter() - started, run_id=result.run_id,
        resumed_from_step=result.train.resumed_from_step,
        auroc={r.spec: r.metrics["auroc"] for r in result.scorer_results},
    )


def _search_runs(client: Any, experiment_id: str, status: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs([experiment_id], f"attributes.status = '{status}'",
                                  max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def csv_run_keys(path: Path) -> set[str]:
    """The ``run_key`` values of a results CSV (empty if the file does not exist)."""
    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {row["run_key"] for row in csv.DictReader(handle) if row.get("run_key")}


@dataclass
class Plan:
    """The runs of a sweep split into those to run and those already finished."""

    pending: list[RunConfig]
    skipped: list[RunConfig]


def plan(configs: list[RunConfig], options: SweepOptions) -> Plan:
    """Split ``configs`` into pending and finished runs, by key.

    A run is finished if the experiment holds a FINISHED MLflow run with its ``run_key`` tag, or
    a results CSV (the sweep's own or one of ``done_csvs``) holds its key. MLflow runs of pending
    keys still marked RUNNING were left by a killed sweep: they are marked KILLED, so the store
    keeps one finished run per key; checkpoints of finished runs are deleted. The experiment is
    created here, once, before any worker.

    A run is recorded in MLflow before its CSV rows are appended, so a kill between the two
    leaves a finished run without rows; ``anobench leaderboard`` regenerates them from MLflow.
    """
    done = csv_run_keys(options.results_csv)
    for path in options.done_csvs:
        done |= csv_run_keys(path)
    tracker = LockedMlflowTracker(options.tracking_uri, options.experiment)
    client = tracker._client()
    experiment_id = tracker.experiment_id(client)
    done |= {r.data.tags.get("run_key") for r in _search_runs(client, experiment_id, "FINISHED")}
    pending = [c for c in configs if c.key() not in done]
    pending_keys = {c.key() for c in pending}
    for config in configs:  # a run killed after it was recorded left its checkpoint behind
        if config.key() not in pending_keys:
            (options.checkpoint_dir / options.experiment / f"{config.key()}.pt").unlink(missing_ok=True)
    for run in _search_runs(client, experiment_id, "RUNNING"):
        if run.data.tags.get("run_key") in pending_keys:
            client.set_terminated(run.info.run_id, status="KILLED")
    return Plan(pending, [c for c in configs if c.key() in done])


class Events(Protocol):
    """What an executor reports while it works (the live display implements it)."""

    def started(self, key: str, label: str, worker: str) -> None: ...
    def progress(self, key: str, step: int, total: int) -> None: ...
    def finished(self, outcome: RunOutcome) -> None: ...


class Executor(Protocol):
    """Runs configs with :func:`run_one` somewhere and returns every outcome."""

    workers: int

    def run(self, configs: list[RunConfig], options: SweepOptions, events: Events) -> list[RunOutcome]: ...


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_count() -> int:
    """Visible CUDA devices (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class WorkerSlot:
    """One local worker: its name, its environment and its torch thread count."""

    name: str
    env: dict[str, str]
    threads: int


def worker_slots(workers: int | None, gpus: int, cpus: int) -> list[WorkerSlot]:
    """One worker per GPU (or ``workers`` of them, round-robin over the GPUs), each seeing only
    its GPU; without GPUs ``workers`` (default 1) CPU workers sharing the cores evenly."""
    if workers is not None and workers < 1:
        from anobench.errors import ConfigError

        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if gpus > 0:
        n = workers or gpus
        threads = max(1, cpus // n)
        return [WorkerSlot(f"gpu{i % gpus}", {"CUDA_VISIBLE_DEVICES": str(i % gpus), "OMP_NUM_THREADS": str(threads)},
                           threads) for i in range(n)]
    n = workers or 1
    threads = max(1, cpus // n)
    return [WorkerSlot(f"cpu{i}", {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads)}, threads)
            for i in range(n)]


def _die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this worker when the sweep process dies (even by kill -9), so a
    rerun never races an orphan over the same run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


RunFn = Callable[[RunConfig, SweepOptions, Progress | None], RunOutcome]


def _worker_main(slot: WorkerSlot, parent_pid: int, tasks: Any, events: Any, options: SweepOptions,
                 run_fn: RunFn) -> None:
    import torch

    _die_with_parent(parent_pid)
    torch.set_num_threads(slot.threads)  # explicit: a result depends on it (docs/reproducibility.md)
    while (config := tasks.get()) is not None:
        key, last = config.key(), 0.0
        events.put(("started", key, run_label(config), slot.name))

        def progress(step: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S or step == total:
                last = now
                events.put(("progress", key, step, total))

        events.put(("finished", run_fn(config, options, progress)))


@dataclass
class LocalExecutor:
    """Worker processes on this machine, fed from one queue.

    Args:
        workers: Number of workers; None: one per GPU, or 1 without GPUs.
        run_fn: The run function (a picklable module-level callable); tests swap it.
    """

    workers: int | None = None
    run_fn: RunFn = run_one

    def __post_init__(self) -> None:
        self.slots = worker_slots(self.workers, gpu_count(), cpu_count())
        self.workers = len(self.slots)

    def run(self, configs: list[RunConfig], options: SweepOptions, events: Events) -> list[RunOutcome]:
        """Run ``configs`` on the workers; a worker that dies fails its run and is replaced."""
        ctx = multiprocessing.get_context("spawn")
        # A SimpleQueue writes each event before put() returns, so a worker that dies right
        # after taking a run has still told which run it took.
        tasks, inbox = ctx.Queue(), ctx.SimpleQueue()
        for config in configs:
            tasks.put(config)
        for _ in self.slots:
            tasks.put(None)
        labels = {c.key(): run_label(c) for c in configs}

        def start(slot: WorkerSlot) -> Any:
            process = ctx.Process(target=_worker_main, args=(slot, os.getpid(), tasks, inbox, options, self.run_fn),
                                  name=f"anobench-{slot.name}", daemon=True)
            saved = {k: os.environ.get(k) for k in slot.env}
            # The worker starts with this environment, so torch takes its GPU and its thread
            # count (OMP_NUM_THREADS) from it when it loads.
            os.environ.update(slot.env)
            try:
                process.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            return process

        processes = {slot.name: (slot, start(slot)) for slot in self.slots}
        current: dict[str, str] = {}  # worker -> key of the run it works on
        outcomes: dict[str, RunOutcome] = {}
        try:
            while len(outcomes) < len(configs):
                if inbox.empty():
                    time.sleep(0.2)
                    dead = [name for name, (_, process) in processes.items()
                            if not process.is_alive() and process.exitcode != 0]
                    if not inbox.empty():  # a dead worker's last events come first
                        continue
                    for name in dead:
                        slot, process = processes[name]
                        key = current.pop(name, None)
                        if key is not None:
                            outcome = RunOutcome(key, labels[key], ok=False,
                                                 error=f"worker process died (exit code {process.exitcode})")
                            outcomes[key] = outcome
                            events.finished(outcome)
                        processes[name] = (slot, start(slot))
                    if all(p.exitcode == 0 for _, p in processes.values()) and inbox.empty():
                        break
                    continue
                event = inbox.get()
                if event[0] == "started":
                    _, key, label, worker = event
                    current[worker] = key
                    events.started(key, label, worker)
                elif event[0] == "progress":
                    events.progress(*event[1:])
                else:
                    outcome = event[1]
                    current = {w: k for w, k in current.items() if k != outcome.key}
                    outcomes[outcome.key] = outcome
                    events.finished(outcome)
        finally:
            for _, process in processes.values():
                if process.is_alive():
                    process.join(timeout=5 if len(outcomes) == len(configs) else 0)
                if process.is_alive():
                    process.kill()
                    process.join()
        return [outcomes[c.key()] if c.key() in outcomes else
                RunOutcome(c.key(), labels[c.key()], ok=False, error="never ran: every worker exited")
                for c in configs]


class NoEvents:
    """Events that go nowhere (the Python API's default)."""

    def started(self, key: str, label: str, worker: str) -> None:
        """Ignore."""

    def progress(self, key: str, step: int, total: int) -> None:
        """Ignore."""

    def finished(self, outcome: RunOutcome) -> None:
        """Ignore."""


@dataclass
class SweepReport:
    """What a sweep did.

    Attributes:
        outcomes: One per run it ran (finished or failed), in grid order.
        skipped: Keys of the runs that were already finished.
        wall_s: Wall time of the sweep.
    """

    outcomes: list[RunOutcome]
    skipped: list[str]
    wall_s: float

    @property
    def failed(self) -> list[RunOutcome]:
        """The runs that failed."""
        return [o for o in self.outcomes if not o.ok]


def run_sweep(configs: list[RunConfig], options: SweepOptions, executor: Executor,
              events: Events | None = None, on_plan: Callable[[Plan], None] | None = None) -> SweepReport:
    """Run every config whose key is not finished yet, on ``executor``.

    Args:
        configs: The grid, from :func:`anobench.sweep.expand`.
        options: Where the runs are recorded.
        executor: Local workers or Ray.
        events: Live progress receiver.
        on_plan: Called with the plan before anything runs (the display sizes itself from it).
    """
    started = time.perf_counter()
    with store_lock(options.tracking_uri):
        pass  # creates the lock file's folder before workers race for it
    the_plan = plan(configs, options)
    if on_plan is not None:
        on_plan(the_plan)
    outcomes = executor.run(the_plan.pending, options, events or NoEvents()) if the_plan.pending else []
    return SweepReport(outcomes, [c.key() for c in the_plan.skipped], time.perf_counter() - started)
