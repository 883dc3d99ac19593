"""Several runs on one GPU: how many (``--runs-per-device``), and which failures to retry alone.

A quick-preset run uses a small fraction of a modern GPU, so a sweep packs N concurrent runs on
each visible device. ``auto`` picks N from a short measured probe of one run (the sweep's
heaviest settings) on the device: its step time and its peak memory
(``torch.cuda.max_memory_allocated`` plus a CUDA context per process), N capped so that
:data:`FREE_FRACTION` of the device memory stays free, by the CPU cores per GPU (each run drives
its GPU from one core at least) and by :data:`MAX_RUNS_PER_DEVICE`. A run that runs out of device
memory while packed is retried alone (see :func:`is_out_of_memory`).

The device inventory is a plain value, so the scheduling logic is tested on a CPU with fake GPUs.

Example:
    >>> probe = Probe(peak_bytes=2 << 30, step_s=0.05, total_bytes=80 << 30, device_name="GPU")
    >>> choose_runs_per_device(probe, cpus_per_gpu=16).runs
    8
    >>> choose_runs_per_device(probe, cpus_per_gpu=3).runs
    3
    >>> parse_runs_per_device("auto"), parse_runs_per_device("3")
    ('auto', 3)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Union

from anobench.config import RunConfig
from anobench.errors import ConfigError

RunsPerDevice = Union[int, Literal["auto"]]
"""Concurrent runs per GPU, or ``"auto"`` (measured)."""

MAX_RUNS_PER_DEVICE = 8
"""The most runs ``auto`` packs on one GPU (the largest packing ``gpu_check.sh`` measures)."""

FREE_FRACTION = 0.1
"""Share of the device memory ``auto`` leaves free."""

CUDA_CONTEXT_BYTES = 512 << 20
"""Device memory of one process's CUDA context and kernels, which the allocator does not count."""

PROBE_STEPS = 5
"""Timed steps of the probe (after two warm-up steps)."""


@dataclass(frozen=True)
class DeviceInventory:
    """The devices a sweep schedules on.

    Attributes:
        gpus: Visible CUDA devices (0: CPU only).
        cpus: CPU cores this process may use.
    """

    gpus: int
    cpus: int

    @staticmethod
    def detect() -> DeviceInventory:
        """This machine's visible GPUs and usable CPU cores."""
        from anobench.scheduler import cpu_count, gpu_count

        return DeviceInventory(gpu_count(), cpu_count())


@dataclass(frozen=True)
class Probe:
    """One run measured alone on a GPU.

    Attributes:
        peak_bytes: Peak memory the run's tensors took (``torch.cuda.max_memory_allocated``).
        step_s: Seconds of one training step.
        total_bytes: Memory of the device.
        device_name: The device's name.
    """

    peak_bytes: int
    step_s: float
    total_bytes: int
    device_name: str


@dataclass(frozen=True)
class PackingChoice:
    """How many runs share each GPU, and why (one line)."""

    runs: int
    reason: str


def parse_runs_per_device(value: object) -> RunsPerDevice:
    """``"auto"``, or a count >= 1 given as an int or a string.

    Raises:
        ConfigError: Naming the bad value.
    """
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"runs_per_device must be 'auto' or an integer >= 1, got {value!r}")
    return value


def choose_runs_per_device(probe: Probe, cpus_per_gpu: int) -> PackingChoice:
    """The largest N whose N runs fit in the device with :data:`FREE_FRACTION` free, at most
    ``cpus_per_gpu`` and :data:`MAX_RUNS_PER_DEVICE` (and at least 1)."""
    per_run = probe.peak_bytes + CUDA_CONTEXT_BYTES
    by_memory = int((1 - FREE_FRACTION) * probe.total_bytes // per_run)
    runs = max(1, min(by_memory, cpus_per_gpu, MAX_RUNS_PER_DEVICE))
    limits = {"memory": by_memory, "CPU cores per GPU": cpus_per_gpu, "the maximum": MAX_RUNS_PER_DEVICE}
    binding = min(limits, key=lambda name: limits[name])
    gib = 1 << 30
    reason = (
        f"{runs} runs per GPU: one run peaked at {per_run / gib:.2f} GiB (with its CUDA context) and "
        f"{probe.step_s * 1000:.0f} ms/step on {probe.device_name} ({probe.total_bytes / gib:.0f} GiB); "
        f"memory with {FREE_FRACTION:.0%} free allows {by_memory}, {cpus_per_gpu} CPU cores per GPU "
        f"allow {cpus_per_gpu}, at most {MAX_RUNS_PER_DEVICE}; bound by {binding}"
    )
    return PackingChoice(runs, reason)


def heaviest(configs: list[RunConfig]) -> RunConfig:
    """The config whose step needs the most memory: largest batch x width² x image area."""
    return max(configs, key=lambda c: c.train.batch_size * c.train.width ** 2 * c.image_size ** 2)


def probe_run(config: RunConfig, device: str = "cuda") -> Probe:
    """Measure a few training steps of ``config``'s settings on ``device`` (a GPU), with
    :func:`anobench.bench.run_bench` (random CIFAR-10-shaped images, the model alone interleaved,
    so the peak is an upper bound of one run's)."""
    import torch

    from anobench.bench import BenchConfig, run_bench

    torch.cuda.reset_peak_memory_stats()
    bench = BenchConfig(train=config.train, preset=config.preset, objective=config.objective,
                        image_size=config.image_size, device=device, steps=PROBE_STEPS,
                        augment=False, baseline=False, seed=config.seed)
    result = run_bench(bench)
    index = torch.cuda.current_device()
    return Probe(peak_bytes=torch.cuda.max_memory_allocated(), step_s=2 * config.train.batch_size / result.pipeline_img_s,
                 total_bytes=torch.cuda.get_device_properties(index).total_memory,
                 device_name=torch.cuda.get_device_name(index))


def _probe_on_first_gpu(config: RunConfig) -> Probe:
    os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    return probe_run(config)


def probe_in_subprocess(config: RunConfig) -> Probe:
    """:func:`probe_run` on the first visible GPU in a child process, so that the sweep process
    holds no CUDA context (and no device memory) while its workers run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_probe_on_first_gpu, config).result()


def is_out_of_memory(error: str | None) -> bool:
    """Whether a run's error (``"Type: message"``) says the device ran out of memory.

    Example:
        >>> is_out_of_memory("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
        True
        >>> is_out_of_memory("ValueError: bad tau")
        False
    """
    return error is not None and (error.startswith("OutOfMemoryError") or "CUDA out of memory" in error)
