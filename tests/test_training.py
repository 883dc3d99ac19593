"""Tests of the training schedule and the batch composer."""

from __future__ import annotations

import math

import pytest
import torch

from anobench.batches import BatchComposer
from anobench.objectives import OUTLIER_LABEL, BatchRecipe
from anobench.outliers import get_generator
from anobench.training import one_cycle_factor


@pytest.mark.parametrize("total", [1, 2, 3, 7, 100, 1000])
def test_one_cycle_matches_torch_shape_for_any_length(total):
    factors = [one_cycle_factor(s, total, 0.01) for s in range(total + 1)]
    assert all(math.isfinite(f) and 0 < f <= 1 for f in factors)
    if total >= 100:  # the peak falls on a whole step
        assert max(factors) == pytest.approx(1.0, rel=1e-3)
    assert factors[-1] == pytest.approx(1 / 25e4)


def test_one_cycle_agrees_with_torch_onecycle():
    total, frac = 200, 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, pct_start=frac,
                                                cycle_momentum=False)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [one_cycle_factor(s, total, frac) for s in range(total)]
    # torch counts phases from step 0 to pct*total-1 and then to total-1; ours on [0, total]
    assert max(abs(a - b) for a, b in zip(lrs, ours)) < 0.05
    assert int(torch.tensor(lrs).argmax()) == pytest.approx(int(torch.tensor(ours).argmax()), abs=1)


def test_composer_epochs_cover_every_normal_image_once():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 4, 4).contiguous()
    composer = BatchComposer(images, 5, 15, get_generator(), 3, BatchRecipe())
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([composer(g).images[:5, 0, 0, 0] for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))


def test_composer_labels_and_outliers_from_inliers():
    images = torch.randint(0, 255, (12, 3, 8, 8), dtype=torch.uint8)
    composer = BatchComposer(images, 4, 12, get_generator(), 3, BatchRecipe(outliers_from_inliers=True))
    batch = composer(torch.Generator().manual_seed(1))
    assert batch.images.shape == (16, 3, 8, 8)
    assert batch.labels[:4].eq(0).all() and batch.labels[4:].eq(OUTLIER_LABEL).all()
    assert batch.generator_ids[:4].eq(0).all()
    # each inlier gets every rotation once, and each outlier is the rotation of its source inlier
    assert batch.source_index[4:].tolist() == [0, 1, 2, 3] * 3
    assert batch.generator_ids[4:].tolist() == [1] * 4 + [2] * 4 + [3] * 4
    for j in range(4, 16):
        src = batch.images[int(batch.source_index[j])]
        k = int(batch.generator_ids[j])
        assert torch.equal(batch.images[j], torch.rot90(src, k, dims=(1, 2))) or torch.equal(
            batch.images[j], torch.rot90(src, -k, dims=(1, 2))
        )


def test_evaluation_time_is_not_training_time(monkeypatch):
    """The wall time of the step-0 evaluation (0.5 s here, slower than the two smoke steps) is left
    out of the training wall time, never subtracted from it."""
    import dataclasses
    import time

    from anobench.config import RunConfig, preset
    from anobench.runner import run_experiment

    slow = {"calls": 0}
    original = time.sleep

    def slow_evaluation(*args, **kwargs):
        slow["calls"] += 1
        original(0.5)
        return real_measure(*args, **kwargs)

    import anobench.label_free as label_free

    real_measure = label_free.evaluation_proxies
    monkeypatch.setattr("anobench.runner.evaluation_proxies", slow_evaluation)
    result = run_experiment(RunConfig(objective="firm", scorers=["knn"], device="cpu", eval_checkpoints=1,
                                      train=dataclasses.replace(preset("smoke"), steps=2)))
    assert slow["calls"] == 2  # step 0 and the end
    assert 0 < result.train.wall_s < result.total_wall_s
