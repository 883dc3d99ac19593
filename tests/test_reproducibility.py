"""What a run key promises (docs/reproducibility.md): the same key on the same thread count and
device gives the same result bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from anobench.config import RunConfig, preset
from anobench.runner import run_experiment


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def scores_at(threads: int, config: RunConfig) -> tuple[np.ndarray, list[float]]:
    """Test scores and per-step losses of one run at ``threads`` torch threads."""
    torch.set_num_threads(threads)
    losses: list[float] = []
    result = run_experiment(config, on_step=lambda info: losses.append(info.loss))
    return result.scorer_results[0].scores, losses


@pytest.mark.parametrize("threads", [1, 2])
def test_same_key_and_thread_count_give_identical_results(threads: int, restore_threads) -> None:
    config = RunConfig(objective="firm", scorers=["knn"], device="cpu",
                       train=dataclasses.replace(preset("smoke"), steps=8))
    first_scores, first_losses = scores_at(threads, config)
    again_scores, again_losses = scores_at(threads, config)
    assert first_losses == again_losses
    np.testing.assert_array_equal(first_scores, again_scores)


def test_run_key_does_not_depend_on_the_thread_count(restore_threads) -> None:
    """The thread count is recorded beside the key (tags, CSV), not in it."""
    config = RunConfig(objective="firm", scorers=["knn"], train=preset("smoke"))
    torch.set_num_threads(1)
    one = config.key()
    torch.set_num_threads(2)
    assert RunConfig(objective="firm", scorers=["knn"], train=preset("smoke")).key() == one
