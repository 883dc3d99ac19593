"""Training on one process and on two (gloo, CPU), each with half the batch, gives equal models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from anobench import distributed
from anobench.objectives import FIRMLoss, NTXentLoss, SupConLoss

BATCH = 8
STEPS = 3
LABELS = torch.tensor([0, 1, -1, 0, -1, 1, -1, -1])  # multi-class ID, outliers on both halves
CASES = [("firm", "concat"), ("firm", "pairwise"), ("supcon", "concat"), ("ntxent", "pairwise")]


def _loss(
    kind: str, mode: str, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    if kind == "firm":
        return FIRMLoss(0.3, mode=mode)(z1, z2, labels)
    if kind == "supcon":
        return SupConLoss(0.3, mode=mode)(z1, z2, labels)
    return NTXentLoss(0.3, mode=mode)(z1, z2)


def _train(kind: str, mode: str, rows: slice) -> tuple[list[torch.Tensor], list[float]]:
    """A few SGD steps on the rows ``rows`` of a fixed batch; gradients averaged over processes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    data = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(STEPS):
        x1 = torch.randn(BATCH, 5, generator=data)[rows]
        x2 = torch.randn(BATCH, 5, generator=data)[rows]
        z1, z2 = F.normalize(model(x1), dim=1), F.normalize(model(x2), dim=1)
        loss = _loss(kind, mode, z1, z2, LABELS[rows])
        optimiser.zero_grad()
        loss.backward()
        for p in model.parameters():  # what DistributedDataParallel does
            if distributed.is_distributed():
                dist.all_reduce(p.grad)
                p.grad /= distributed.world_size()
        losses.append(float(loss.detach()))
        optimiser.step()
    return [p.detach().clone() for p in model.parameters()], losses


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        half = BATCH // world
        results = {case: _train(*case, slice(rank * half, (rank + 1) * half)) for case in CASES}
        try:
            distributed.gather(torch.zeros(2 + rank, 3))
            uneven = "no error"
        except ValueError as error:
            uneven = str(error)
        torch.save({"results": results, "uneven": uneven}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        # As in production: wait for the peer before tearing gloo down, so neither rank closes
        # its connections while the other still uses them.
        distributed.leave(created=True)


def test_single_process_helpers_are_no_ops() -> None:
    x = torch.randn(3, 2)
    assert distributed.gather(x) is x
    assert distributed.world_size() == 1 and distributed.rank() == 0


def test_one_and_two_processes_train_the_same_model(tmp_path: Path) -> None:
    single = {case: _train(*case, slice(None)) for case in CASES}
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for case, (params, losses) in single.items():
        for r in range(2):
            trained = ranks[r]["results"][case][0]
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(params, trained)), (case, r)
        # Each process's loss is the mean over its own anchors; their mean is the full loss.
        halves = zip(ranks[0]["results"][case][1], ranks[1]["results"][case][1])
        assert [(a + b) / 2 for a, b in halves] == pytest.approx(losses, abs=1e-5), case
        # The steps really moved the model, so equality is not trivial.
        assert not torch.allclose(params[0], _initial_first_layer(), atol=1e-3)
    for r in range(2):
        assert "same batch size" in ranks[r]["uneven"]


def _initial_first_layer() -> torch.Tensor:
    torch.manual_seed(0)
    return nn.Linear(5, 6).weight.detach()
