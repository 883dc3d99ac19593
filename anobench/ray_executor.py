"""Runs a sweep's runs as Ray tasks on an existing Ray cluster (or a local Ray instance).

Each run is one task calling :func:`anobench.scheduler.run_one`, the same run function as the
local workers, with ``1/N`` GPU (when the cluster has GPUs; N runs per device, ``auto``: measured
by a probe task on one GPU, see :mod:`anobench.packing`) or ``cpus_per_run`` CPUs. A run that
runs out of GPU memory beside others is resubmitted with a whole GPU, so it runs alone. Workers report
start and step progress through a Ray queue. Every path in :class:`SweepOptions` is absolute, and
the store and folders must be reachable from every node (a shared file system or a tracking
server). Needs the optional dependency ``ray``.

Example:
    >>> report = run_sweep(configs, options, RayExecutor(address="ray://head:10001"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable

from anobench.config import RunConfig
from anobench.errors import AnobenchError, ConfigError
from anobench.packing import RunsPerDevice, choose_runs_per_device, heaviest, is_out_of_memory, probe_run
from anobench.scheduler import Events, RunOutcome, SweepOptions, run_label, run_one


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AnobenchError("--executor ray needs the ray package: pip install 'anobench[ray]'") from None
    return ray


def _task(config: RunConfig, options: SweepOptions, events: Any, threads: int) -> RunOutcome:
    import torch

    torch.set_num_threads(threads)
    key = config.key()
    node = os.uname().nodename
    events.put(("started", key, run_label(config), f"ray:{node}"))

    def progress(step: int, total: int) -> None:
        if step == total or step % max(1, total // 20) == 0:
            events.put(("progress", key, step, total))

    return run_one(config, options, progress)


@dataclass
class RayExecutor:
    """Ray tasks, one per run.

    Args:
        address: Cluster address (``auto``, ``ray://host:10001``, ...); None starts a local
            Ray instance with this machine's CPUs.
        cpus_per_run: CPUs each run asks for (and its torch threads) when it asks for no GPU.
        runs_per_device: Runs sharing one GPU (each asks for ``1/N`` GPU), or ``"auto"``: a probe
            task measures one run on one GPU. On a cluster without GPUs only ``"auto"`` is
            allowed, and it means nothing.
        say: Receives one-line notes: the packing chosen and why, out-of-memory retries.

    Raises:
        ConfigError: For ``cpus_per_run`` < 1; from :meth:`run`, for a number of runs per
            device on a cluster without GPUs.
    """

    address: str | None = None
    cpus_per_run: int = 1
    runs_per_device: RunsPerDevice = "auto"
    say: Callable[[str], None] = lambda _line: None

    def __post_init__(self) -> None:
        if self.cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run must be >= 1, got {self.cpus_per_run}")
        self.workers = 0

    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
                else:
                    ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            except ConnectionError as error:
                raise AnobenchError(f"cannot connect to the Ray cluster at {self.address}: {error}") from None
        return ray

    def gpus_per_run(self, ray: Any, configs: list[RunConfig], resources: dict[str, float]) -> float:
        """The GPU share each run asks for: 0 without GPUs, else ``1/N`` (``auto``: N from a
        probe task with one GPU; :attr:`say` tells N and why)."""
        gpus = resources.get("GPU", 0)
        if gpus < 1:
            if self.runs_per_device != "auto":
                raise ConfigError(f"--runs-per-device {self.runs_per_device} needs GPUs, and the Ray "
                                  "cluster has none; --cpus-per-run sizes CPU runs")
            return 0
        runs = self.runs_per_device
        if runs == "auto":
            probe = ray.get(ray.remote(probe_run).options(num_cpus=1, num_gpus=1, max_retries=0)
                            .remote(heaviest(configs)))
            choice = choose_runs_per_device(probe, int(resources.get("CPU", 1) // gpus))
            self.say(choice.reason)
            runs = choice.runs
        return 1 / runs

    def run(self, configs: list[RunConfig], options: SweepOptions, events: Events) -> list[RunOutcome]:
        """Submit every run, report events as they come, and return the outcomes; a run that ran
        out of GPU memory while sharing its GPU is resubmitted once with a whole GPU."""
        ray = self._connect()
        from ray.util.queue import Empty, Queue

        resources = ray.cluster_resources()
        gpus = self.gpus_per_run(ray, configs, resources)
        cpus = 1 if gpus else self.cpus_per_run
        self.workers = int(resources.get("GPU", 0) / gpus) if gpus else int(resources.get("CPU", 1) // cpus)
        inbox = Queue()
        remote = ray.remote(_task)

        def submit(config: RunConfig, share: float) -> Any:
            return remote.options(num_cpus=cpus, num_gpus=share, max_retries=0).remote(config, options, inbox, cpus)

        pending = {submit(c, gpus): c for c in configs}
        outcomes: dict[str, RunOutcome] = {}
        out_of_memory: dict[str, str] = {}  # key -> error of its shared attempt

        def drain() -> None:
            while True:
                try:
                    kind, *rest = inbox.get_nowait()
                except Empty:
                    return
                if kind == "started":
                    events.started(*rest)
                elif kind == "progress":
                    events.progress(*rest)

        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                drain()
                for ref in ready:
                    config = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as error:  # the task itself died (worker crash, node lost)
                        outcome = RunOutcome(config.key(), run_label(config), ok=False,
                                             error=f"{type(error).__name__}: {str(error).splitlines()[0]}")
                    if 0 < gpus < 1 and outcome.key not in out_of_memory and is_out_of_memory(outcome.error):
                        assert outcome.error is not None
                        out_of_memory[outcome.key] = outcome.error
                        self.say(f"{outcome.label} [{outcome.key}] ran out of GPU memory beside other runs "
                                 f"({outcome.error}); retrying it alone")
                        pending[submit(config, 1)] = config
                        continue
                    if outcome.key in out_of_memory:
                        outcome = dataclasses.replace(outcome, retried_alone=out_of_memory[outcome.key])
                    outcomes[outcome.key] = outcome
                    events.finished(outcome)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.kill(inbox.actor)
        return [outcomes[c.key()] for c in configs]
