"""Runs a sweep's runs as Ray tasks on an existing Ray cluster (or a local Ray instance).

Each run is one task calling :func:`anobench.scheduler.run_one`, the same run function as the
local workers, with one GPU (when the cluster has GPUs) or ``cpus_per_run`` CPUs. Workers report
start and step progress through a Ray queue. Every path in :class:`SweepOptions` is absolute, and
the store and folders must be reachable from every node (a shared file system or a tracking
server). Needs the optional dependency ``ray``.

Example:
    >>> report = run_sweep(configs, options, RayExecutor(address="ray://head:10001"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from anobench.config import RunConfig
from anobench.errors import AnobenchError
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
        gpus_per_run: GPUs each run asks for; None: 1 if the cluster has GPUs, else 0.
    """

    address: str | None = None
    cpus_per_run: int = 1
    gpus_per_run: float | None = None

    def __post_init__(self) -> None:
        if self.cpus_per_run < 1:
            from anobench.errors import ConfigError

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

    def run(self, configs: list[RunConfig], options: SweepOptions, events: Events) -> list[RunOutcome]:
        """Submit every run, report events as they come, and return the outcomes."""
        ray = self._connect()
        from ray.util.queue import Empty, Queue

        resources = ray.cluster_resources()
        gpus = self.gpus_per_run if self.gpus_per_run is not None else (1 if resources.get("GPU", 0) >= 1 else 0)
        cpus = 1 if gpus else self.cpus_per_run
        self.workers = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1) // cpus)
        inbox = Queue()
        remote = ray.remote(_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
        pending = {remote.remote(c, options, inbox, cpus): c for c in configs}
        outcomes: dict[str, RunOutcome] = {}

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
                    outcomes[outcome.key] = outcome
                    events.finished(outcome)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.kill(inbox.actor)
        return [outcomes[c.key()] for c in configs]
