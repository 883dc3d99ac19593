"""bf16 mixed precision must train as well as float32: same AUROC within the seed-to-seed noise."""

from __future__ import annotations

import dataclasses
import statistics

from anobench.config import RunConfig, preset
from anobench.runner import run_experiment

SEEDS = (0, 1, 2, 3)
STEPS = 40


def aurocs(precision: str) -> list[float]:
    """kNN AUROC of a short FIRM run on the built-in digits (normal class 0), one per seed."""
    train = dataclasses.replace(preset("smoke"), precision=precision, steps=STEPS)
    return [
        run_experiment(
            RunConfig(objective="firm", scorers=["knn"], seed=seed, device="cpu", train=train)
        ).scorer_results[0].metrics["auroc"]
        for seed in SEEDS
    ]


def test_bf16_auroc_matches_fp32_within_seed_noise():
    fp32, bf16 = aurocs("fp32"), aurocs("bf16")
    assert bf16 != fp32  # autocast really changed the arithmetic
    assert min(statistics.mean(fp32), statistics.mean(bf16)) > 0.7  # both learned the class
    # One run's seed-to-seed standard deviation, pooled over both precisions; 0.01 is a floor
    # for seeds that all saturate near AUROC 1. Runs are deterministic per seed, so the check is
    # not flaky; a precision bug that costs more than two seeds' worth of noise fails it.
    noise = max(0.01, ((statistics.variance(fp32) + statistics.variance(bf16)) / 2) ** 0.5)
    assert abs(statistics.mean(bf16) - statistics.mean(fp32)) <= 2 * noise, (fp32, bf16)
