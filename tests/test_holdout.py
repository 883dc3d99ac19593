"""The seeded held-out normal split (anobench.data.holdout)."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from anobench.data.holdout import holdout_size, holdout_split
from anobench.errors import ConfigError


def reference_size(n: int, fraction: float) -> int:
    """round(F·N), halves up, in exact decimal arithmetic (F as written, e.g. 0.29)."""
    return int(Fraction(repr(fraction)) * n + Fraction(1, 2))


@pytest.mark.parametrize("n,fraction", [
    (10, 0.3), (100, 0.29), (5000, 0.1), (7, 0.5), (3, 0.5), (1000, 0.001), (20, 0.05),
    (13, 0.77), (2, 0.25), (50000, 0.123),
])
def test_size_and_partition(n, fraction):
    split = holdout_split(n, fraction, seed=3)
    assert len(split.validation) == holdout_size(n, fraction) == reference_size(n, fraction)
    for part in split:
        assert part.dtype == torch.int64
        assert bool((part[1:] > part[:-1]).all()), "indices sorted and distinct"
    assert sorted(split.train.tolist() + split.validation.tolist()) == list(range(n))


@pytest.mark.parametrize("n", [1, 6])
def test_zero_fraction_holds_out_nothing(n):
    split = holdout_split(n, 0.0, seed=0)
    assert split.train.tolist() == list(range(n)) and split.validation.numel() == 0
    assert split.validation.dtype == torch.int64


def test_reproducible_and_seeded():
    first, again = holdout_split(100, 0.5, seed=7), holdout_split(100, 0.5, seed=7)
    assert first.validation.equal(again.validation) and first.train.equal(again.train)
    assert not first.validation.equal(holdout_split(100, 0.5, seed=8).validation)


def test_every_image_equally_likely_held_out():
    # 2000 seeds, each index held out with probability 3/10; the binomial sd of a frequency is
    # sqrt(0.3 * 0.7 / 2000) = 0.010, so a 0.05 bound is five sds.
    counts = torch.zeros(10)
    for seed in range(2000):
        counts[holdout_split(10, 0.3, seed).validation] += 1
    assert ((counts / 2000 - 0.3).abs() < 0.05).all(), counts


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), True, "0.1", None])
def test_bad_fraction_names_it(fraction):
    with pytest.raises(ConfigError, match="val_fraction must be a number in \\[0, 1\\)"):
        holdout_split(10, fraction, seed=0)


@pytest.mark.parametrize("n", [0, -3, 2.0, True])
def test_bad_image_count(n):
    with pytest.raises(ConfigError, match="n_images must be an int >= 1"):
        holdout_split(n, 0.1, seed=0)


def test_fraction_holding_out_none_is_an_error():
    with pytest.raises(ConfigError, match="val_fraction 0.01 of 10 training images holds out none"):
        holdout_split(10, 0.01, seed=0)


@pytest.mark.parametrize("n,fraction", [(1, 0.5), (3, 0.9)])
def test_fraction_leaving_no_training_image_is_an_error(n, fraction):
    message = f"val_fraction {fraction} of {n} training images leaves none"
    with pytest.raises(ConfigError, match=message):
        holdout_split(n, fraction, seed=0)


@pytest.mark.parametrize("seed", [1.5, "0", None, False])
def test_bad_seed(seed):
    with pytest.raises(ConfigError, match="seed must be an int"):
        holdout_split(10, 0.1, seed=seed)
