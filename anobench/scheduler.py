"""Runs the runs of a sweep: skips finished ones, resumes interrupted ones, survives failed ones.

:func:`run_one` is the one run function every executor calls (a local worker process, a Ray
task): it records the run in MLflow and the results CSV, saving checkpoints as it trains, and
turns any error into a failed :class:`RunOutcome` instead of raising. :func:`plan` drops the runs
whose key is already finished in the tracking store or in exported results CSVs.
:class:`LocalExecutor` runs N worker processes per GPU (pinned with ``CUDA_VISIBLE_DEVICES``;
N from ``runs_per_device``, see :mod:`anobench.packing`) or N CPU workers, with the CPU threads
split between them; a queue hands out the runs.

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
import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from anobench.config import RunConfig
from anobench.interrupts import check_interrupted
from anobench.packing import (
    DeviceInventory,
    Probe,
    RunsPerDevice,
    choose_runs_per_device,
    heaviest,
    is_out_of_memory,
    probe_in_subprocess,
)
from anobench.results_csv import check_writable
from anobench.run_ownership import RunClaimed, claim_run, reap_orphans, search_runs
from anobench.store_lock import LockedMlflowTracker

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
        log_model: Log each run's detector as its MLflow model (:mod:`anobench.detector`).
    """

    experiment: str
    tracking_uri: str
    output_dir: Path
    checkpoint_dir: Path
    checkpoint_every: int | None = None
    done_csvs: tuple[Path, ...] = ()
    log_model: bool = True

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
        elsewhere: Why the run was left to another process (another sweep runs or ran its
            key); such a run neither finished here nor failed.
        retried_alone: The out-of-memory error of an earlier attempt that shared its GPU; the
            run was then retried alone on a GPU (this outcome is the retry's).
    """

    key: str
    label: str
    ok: bool
    error: str | None = None
    wall_s: float = 0.0
    run_id: str | None = None
    resumed_from_step: int = 0
    auroc: dict[str, float] = field(default_factory=dict)
    elsewhere: str | None = None
    retried_alone: str | None = None


def run_label(config: RunConfig) -> str:
    """``objective/outliers dataset:class seed preset``, the name shown while the run works."""
    return (f"{config.objective}/{config.outliers} {config.dataset}:{config.normal_class} "
            f"s{config.seed} {config.preset}")


Progress = Callable[[int, int], None]
"""``progress(step, total_steps)``."""


class SweepTracker(LockedMlflowTracker):
    """The tracker of a sweep's runs: it creates a run only once it has claimed the run key
    (:func:`anobench.run_ownership.claim_run`), so sweeps of one experiment share the work."""

    def _claim(self, client: Any, experiment_id: str, tags: dict[str, str]) -> None:
        claim_run(client, experiment_id, tags["run_key"])


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
            config, tracker=SweepTracker(options.tracking_uri, options.experiment),
            results_csv=options.results_csv, on_step=on_step, checkpoint=checkpoint,
            log_model=options.log_model,
        )
    except RunClaimed as claimed:
        return RunOutcome(key, label, ok=False, wall_s=time.perf_counter() - started, elsewhere=str(claimed))
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


def csv_run_keys(path: Path) -> set[str]:
    """The ``run_key`` values of a results CSV's whole rows (empty if the file does not exist);
    a row torn by a full disk, with too few or too many fields, counts for nothing."""
    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {row["run_key"] for row in csv.DictReader(handle)
                if row.get("run_key") and None not in row and None not in row.values()}


@dataclass
class Plan:
    """The runs of a sweep split into those to run and those already finished."""

    pending: list[RunConfig]
    skipped: list[RunConfig]


def plan(configs: list[RunConfig], options: SweepOptions) -> Plan:
    """Split ``configs`` into pending and finished runs, by key.

    A run is finished if the experiment holds a FINISHED MLflow run with its ``run_key`` tag, or
    a results CSV (the sweep's own or one of ``done_csvs``) holds its key. RUNNING MLflow runs
    whose process is gone (a killed sweep's), and those of pending keys whose process cannot be
    checked, are marked KILLED (:func:`anobench.run_ownership.reap_orphans`), so the store keeps
    one finished run per key; runs of a live process (another sweep of this experiment) stay
    RUNNING, and the workers claim each key before running it. Checkpoints of finished runs are
    deleted. The experiment is created here, once, before any worker.

    A run is recorded in MLflow before its CSV rows are appended, so a kill between the two
    leaves a finished run without rows; ``anobench leaderboard`` regenerates them from MLflow.
    """
    done = csv_run_keys(options.results_csv)
    for path in options.done_csvs:
        done |= csv_run_keys(path)
    tracker = LockedMlflowTracker(options.tracking_uri, options.experiment)
    client = tracker._client()
    experiment_id = tracker.experiment_id(client)
    done |= {r.data.tags.get("run_key") for r in search_runs(client, [experiment_id], "attributes.status = 'FINISHED'")}
    pending = [c for c in configs if c.key() not in done]
    pending_keys = {c.key() for c in pending}
    for config in configs:  # a run killed after it was recorded left its checkpoint behind
        if config.key() not in pending_keys:
            (options.checkpoint_dir / options.experiment / f"{config.key()}.pt").unlink(missing_ok=True)
    reap_orphans(client, [experiment_id], frozenset(pending_keys))
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


def worker_slots(workers: int | None, gpus: int, cpus: int, runs_per_device: int = 1) -> list[WorkerSlot]:
    """``runs_per_device`` workers per GPU (or ``workers`` of them, round-robin over the GPUs),
    each seeing only its GPU; without GPUs ``workers`` (default 1) CPU workers. The workers share
    the CPU cores evenly. Workers of one GPU are named ``gpu<i>.<k>`` when it has several.

    Example:
        >>> [s.name for s in worker_slots(None, gpus=2, cpus=12, runs_per_device=2)]
        ['gpu0.0', 'gpu1.0', 'gpu0.1', 'gpu1.1']
    """
    if workers is not None and workers < 1:
        from anobench.errors import ConfigError

        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if gpus > 0:
        n = workers or gpus * runs_per_device
        threads = max(1, cpus // n)
        shared = n > gpus
        return [WorkerSlot(f"gpu{i % gpus}.{i // gpus}" if shared else f"gpu{i}",
                           {"CUDA_VISIBLE_DEVICES": str(i % gpus), "OMP_NUM_THREADS": str(threads)},
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
        workers: Number of workers; None: ``runs_per_device`` per GPU, or 1 without GPUs. With
            GPUs, ``workers`` spreads round-robin over them and ``runs_per_device`` must stay auto.
        run_fn: The run function (a picklable module-level callable); tests swap it.
        runs_per_device: Concurrent runs per GPU, or ``"auto"`` (a probe measures one run;
            :mod:`anobench.packing`). Without GPUs only ``"auto"`` is allowed, and it means nothing.
        inventory: The GPUs and CPU cores to schedule on; None detects this machine's.
        probe: Measures one run on a GPU for ``auto`` (tests inject a fake).
        say: Receives one-line notes: the packing chosen and why, out-of-memory retries.

    Raises:
        ConfigError: For ``workers`` < 1, or a number of runs per device without GPUs or with
            ``workers``.
    """

    workers: int | None = None
    run_fn: RunFn = run_one
    runs_per_device: RunsPerDevice = "auto"
    inventory: DeviceInventory | None = None
    probe: Callable[[RunConfig], Probe] = probe_in_subprocess
    say: Callable[[str], None] = lambda _line: None

    def __post_init__(self) -> None:
        from anobench.errors import ConfigError

        self.inventory = self.inventory or DeviceInventory.detect()
        if self.runs_per_device != "auto" and self.inventory.gpus == 0:
            raise ConfigError(f"--runs-per-device {self.runs_per_device} needs a GPU, and none is visible; "
                              "on the CPU, --workers sets the concurrent runs")
        if self.runs_per_device != "auto" and self.workers is not None:
            raise ConfigError(f"--workers {self.workers} and --runs-per-device {self.runs_per_device} both set "
                              "the workers of the GPUs; give one")
        self.measured = self.inventory.gpus > 0 and self.workers is None and self.runs_per_device == "auto"
        fixed = 1 if self.runs_per_device == "auto" else self.runs_per_device
        self.slots = worker_slots(self.workers, self.inventory.gpus, self.inventory.cpus, fixed)
        self.workers = len(self.slots)

    def packing(self, configs: list[RunConfig]) -> list[WorkerSlot]:
        """The workers for ``configs``: with GPUs, no ``workers`` given and ``auto``, N per GPU
        from a probe of the heaviest config (and :attr:`say` tells N and why); else :attr:`slots`."""
        assert self.inventory is not None
        if not self.measured or not configs:
            return self.slots
        gpus = self.inventory.gpus
        choice = choose_runs_per_device(self.probe(heaviest(configs)), self.inventory.cpus // gpus)
        self.say(choice.reason)
        return worker_slots(None, gpus, self.inventory.cpus, choice.runs)

    def run(self, configs: list[RunConfig], options: SweepOptions, events: Events) -> list[RunOutcome]:
        """Run ``configs`` on the workers (:meth:`packing`); a worker that dies fails its run and
        is replaced; a run that ran out of GPU memory beside others is retried alone afterwards,
        one worker per GPU."""
        assert self.inventory is not None
        slots = self.packing(configs)[:len(configs)]  # round-robin order: the GPUs stay evenly used
        self.workers = len(slots)
        shared = len(slots) > self.inventory.gpus > 0
        hold = is_out_of_memory if shared else (lambda _error: False)
        outcomes = {o.key: o for o in self._run_on(slots, configs, options, events, hold)}
        again = [c for c in configs if hold(outcomes[c.key()].error)]
        if not again:
            return [outcomes[c.key()] for c in configs]
        for config in again:
            self.say(f"{run_label(config)} [{config.key()}] ran out of GPU memory beside other runs "
                     f"({outcomes[config.key()].error}); retrying it alone")
        alone = worker_slots(None, self.inventory.gpus, self.inventory.cpus)
        self.workers = len(alone)
        for outcome in self._run_on(alone, again, options, events, lambda _error: True):
            outcomes[outcome.key] = dataclasses.replace(outcome, retried_alone=outcomes[outcome.key].error)
            events.finished(outcomes[outcome.key])
        return [outcomes[c.key()] for c in configs]

    def _run_on(self, slots: list[WorkerSlot], configs: list[RunConfig], options: SweepOptions, events: Events,
                hold: Callable[[str | None], bool]) -> list[RunOutcome]:
        """Run ``configs`` on ``slots``; outcomes whose error ``hold`` accepts are returned but not
        reported (the caller retries them)."""
        ctx = multiprocessing.get_context("spawn")
        # A SimpleQueue writes each event before put() returns, so a worker that dies right
        # after taking a run has still told which run it took.
        tasks, inbox = ctx.Queue(), ctx.SimpleQueue()
        for config in configs:
            tasks.put(config)
        for _ in slots:
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

        processes = {slot.name: (slot, start(slot)) for slot in slots}
        current: dict[str, str] = {}  # worker -> key of the run it works on
        outcomes: dict[str, RunOutcome] = {}
        try:
            while len(outcomes) < len(configs):
                if inbox.empty():
                    time.sleep(0.2)
                    check_interrupted()  # a SIGTERM whose exception Python dropped
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
                            if not hold(outcome.error):
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
                    if not hold(outcome.error):
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
        outcomes: One per run it took (finished, failed, or left to another process that runs
            its key), in grid order.
        skipped: Keys of the runs that were already finished.
        wall_s: Wall time of the sweep.
    """

    outcomes: list[RunOutcome]
    skipped: list[str]
    wall_s: float

    @property
    def failed(self) -> list[RunOutcome]:
        """The runs that failed."""
        return [o for o in self.outcomes if not o.ok and o.elsewhere is None]

    @property
    def elsewhere(self) -> list[RunOutcome]:
        """The runs left to another process that runs (or ran) their key."""
        return [o for o in self.outcomes if o.elsewhere is not None]


def run_sweep(configs: list[RunConfig], options: SweepOptions, executor: Executor,
              events: Events | None = None, on_plan: Callable[[Plan], None] | None = None) -> SweepReport:
    """Run every config whose key is not finished yet, on ``executor``.

    Args:
        configs: The grid, from :func:`anobench.sweep.expand`.
        options: Where the runs are recorded.
        executor: Local workers or Ray.
        events: Live progress receiver.
        on_plan: Called with the plan before anything runs (the display sizes itself from it).

    Raises:
        AnobenchError: If the store or the results CSV cannot be written (before any run).
    """
    started = time.perf_counter()
    SweepTracker(options.tracking_uri, options.experiment).prepare()
    check_writable(options.results_csv)
    the_plan = plan(configs, options)
    if on_plan is not None:
        on_plan(the_plan)
    outcomes = executor.run(the_plan.pending, options, events or NoEvents()) if the_plan.pending else []
    return SweepReport(outcomes, [c.key() for c in the_plan.skipped], time.perf_counter() - started)
