"""Rank helpers and a gradient-carrying all-gather for losses computed across processes.

Contrastive losses compare every local anchor against the candidates of *all* processes. With
:func:`gather`, each process computes the mean loss over its own anchors; averaging the gradients
over processes (what ``DistributedDataParallel`` does) then gives exactly the gradient of the
single-process loss over the whole batch, provided every process holds the same number of samples.

Without an initialised process group (or with one process) every helper is a no-op.

Under ``torchrun`` (WORLD_SIZE > 1) :func:`join` starts the process group of a single run trained
with ``DistributedDataParallel`` (see ``run_experiment``) and :func:`leave` ends it.

Example:
    >>> import torch
    >>> gather(torch.ones(2, 3)).shape  # single process: returned unchanged
    torch.Size([2, 3])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from anobench.device import resolve_device


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def launched_world_size() -> int:
    """Processes torchrun started for this run (its WORLD_SIZE; 1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank as torchrun set it (RANK; 0 when not under torchrun)."""
    return int(os.environ.get("RANK", "0"))


def join(device: torch.device) -> tuple[torch.device, bool]:
    """Join torchrun's process group: nccl on GPU ``cuda:LOCAL_RANK``, gloo on the CPU.

    Returns:
        The device this process trains on, and whether this call created the group (a group
        initialised by the caller is used as it is).

    Raises:
        ConfigError: If this process's GPU does not exist.
    """
    if device.type == "cuda":
        device = resolve_device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def leave(created: bool) -> None:
    """Wait for every process, then destroy the group if :func:`join` created it."""
    dist.barrier()
    if created:
        dist.destroy_process_group()


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of parameters that DistributedDataParallel does not own."""
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size()


def average(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over processes (``x`` itself when not distributed)."""
    if not is_distributed():
        return x
    total = x.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients of every process's copy and keeps ours."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return tuple(parts)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([g.contiguous() for g in grads])
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, in rank order, keeping gradients.

    Args:
        x: (n, ...) tensor; every process must pass the same shape.

    Returns:
        (world_size * n, ...) tensor; rows ``rank() * n`` to ``(rank() + 1) * n`` are this
        process's ``x``. Returns ``x`` itself when not distributed.

    Raises:
        ValueError: If the processes' batch sizes differ.
    """
    if not is_distributed():
        return x
    x = x.contiguous()
    sizes = [torch.zeros(1, dtype=torch.int64, device=x.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device))
    counts = [int(s) for s in sizes]
    if len(set(counts)) != 1:
        raise ValueError(f"gather needs the same batch size on every process, got {counts}")
    if x.requires_grad:
        return torch.cat(_GatherWithGrad.apply(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts, dim=0)
