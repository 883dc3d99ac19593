"""Checkpoints: atomic writes, and a resumed run that ends exactly where an uninterrupted one does."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from anobench.checkpoint import Checkpoint
from anobench.config import RunConfig, preset
from anobench.errors import ConfigError
from anobench.runner import aulc, eval_steps, run_experiment


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, two threads per run are much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Interrupt(Exception):
    """Stands in for a kill in the middle of training."""


def config(**changes) -> RunConfig:
    return RunConfig(
        objective="firm", scorers=["knn", "mahalanobis"], device="cpu", eval_checkpoints=3,
        train=dataclasses.replace(preset("smoke"), steps=6), **changes,
    )


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    ckpt = Checkpoint(tmp_path / "c" / "run.pt", every=1)
    ckpt.save({"step": 1, "w": torch.ones(3)})

    def torn_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_write)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save({"step": 2, "w": torch.zeros(3)})
    assert ckpt.load()["step"] == 1
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["run.pt"]
    ckpt.clear()
    assert ckpt.load() is None


def test_interval_and_bad_interval():
    assert Checkpoint(Path("x")).interval(100) == 10
    assert [s for s in range(1, 8) if Checkpoint(Path("x"), every=3).due(s, 6)] == [3]
    with pytest.raises(ConfigError, match="checkpoint interval must be >= 1 step, got 0"):
        Checkpoint(Path("x"), every=0)


def test_eval_steps_and_aulc():
    assert eval_steps(4, 100) == {0, 25, 50, 75}
    assert eval_steps(0, 100) == set()
    assert aulc([(0, 0.5), (50, 1.0), (100, 1.0)], 100) == pytest.approx(0.5 * 0.75 + 0.5)


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    reference = run_experiment(config())
    ckpt = Checkpoint(tmp_path / "ckpt.pt", every=2)

    def kill_at_step_5(info):
        if info.step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_experiment(config(), checkpoint=ckpt, on_step=kill_at_step_5)
    assert ckpt.load()["result"]["steps"] == 4
    resumed = run_experiment(config(), checkpoint=ckpt)

    assert resumed.train.resumed_from_step == 4
    assert resumed.train.steps == reference.train.steps == 6
    assert [r.metrics for r in resumed.scorer_results] == [r.metrics for r in reference.scorer_results]
    assert resumed.train.epoch_losses == reference.train.epoch_losses
    assert [s for s, _ in resumed.train.eval_history] == [0, 2, 4]
    assert _nan_as_none(resumed.train.eval_history) == _nan_as_none(reference.train.eval_history)
    assert not ckpt.path.exists()


def _nan_as_none(history):
    """``history`` with NaN metrics (the step-0 training loss) as None, so that == compares them."""
    return [(step, {k: None if math.isnan(v) else v for k, v in metrics.items()}) for step, metrics in history]
