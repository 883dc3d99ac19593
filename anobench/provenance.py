"""What a run's numbers depend on besides its config: thread count, hardware, library versions.

A run key promises the same result bit for bit only on the same torch thread count, the same
device model and the same library versions (docs/reproducibility.md), so every run records them
as MLflow tags and results-CSV columns.

Example:
    >>> record = environment_record(torch.device("cpu"))
    >>> record["torch_threads"] == torch.get_num_threads()
    True
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

import anobench

LIBRARIES: tuple[str, ...] = ("torch", "torchvision", "numpy", "scikit-learn", "scipy", "mlflow")
"""The distributions whose versions a run records, besides anobench and Python."""
ENVIRONMENT_TAGS: dict[str, str] = {"torch_threads": "torch.num_threads", "hardware": "hardware", "versions": "versions"}
"""The MLflow tag of each :func:`environment_record` field (a results-CSV column of that name)."""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`, else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> str:
    """The model of the device a run trains on: the GPU's name for CUDA, else the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def library_versions() -> dict[str, str]:
    """Versions of anobench, Python and :data:`LIBRARIES` (``"missing"`` for one not installed)."""
    found = {"anobench": anobench.__version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def environment_record(device: torch.device) -> dict[str, str | int]:
    """The run's ``torch_threads``, ``hardware`` and ``versions`` (canonical JSON), as the
    results CSV stores them."""
    return {
        "torch_threads": torch.get_num_threads(),
        "hardware": hardware(device),
        "versions": json.dumps(library_versions(), sort_keys=True),
    }
