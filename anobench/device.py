"""Device, precision and memory-format choices shared by training and embedding."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from anobench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a device, checking it exists.

    Raises:
        ConfigError: If the name is malformed or asks for a GPU that is not there.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def autocast(device: torch.device, precision: str) -> ContextManager[object]:
    """The autocast context for ``precision`` ("fp32" gives a no-op context).

    Raises:
        ConfigError: For fp16 on a CPU (only bf16 autocast is useful there).
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision 'fp16' needs a CUDA device; use bf16 on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def memory_format(channels_last: bool) -> torch.memory_format:
    """The memory format for model inputs and weights."""
    return torch.channels_last if channels_last else torch.contiguous_format
