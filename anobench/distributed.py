"""Rank helpers and a gradient-carrying all-gather for losses computed across processes.

Contrastive losses compare every local anchor against the candidates of *all* processes. With
:func:`gather`, each process computes the mean loss over its own anchors; averaging the gradients
over processes (what ``DistributedDataParallel`` does) then gives exactly the gradient of the
single-process loss over the whole batch, provided every process holds the same number of samples.

Without an initialised process group (or with one process) every helper is a no-op.

Example:
    >>> import torch
    >>> gather(torch.ones(2, 3)).shape  # single process: returned unchanged
    torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


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
