"""The held-out normal split: a fixed, seeded fraction of a class's training images kept for
validation and calibration only (docs/selection.md).

The split depends on the number of images, the fraction and the seed alone, so every objective
trained on the same class with the same seed holds out the same images. ``fraction = 0`` holds
out nothing and leaves the training images as they are.

Example:
    >>> split = holdout_split(10, 0.3, seed=0)
    >>> len(split.train), len(split.validation)
    (7, 3)
    >>> sorted(split.train.tolist() + split.validation.tolist()) == list(range(10))
    True
    >>> holdout_split(10, 0.3, seed=0).validation.equal(split.validation)
    True
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch

from anobench.errors import ConfigError


class HoldoutSplit(NamedTuple):
    """Disjoint, sorted int64 index tensors into the normal training images.

    Attributes:
        train: Indices of the images the encoder (and the outlier generator) may see.
        validation: Indices of the held-out normals, for validation and calibration only.
    """

    train: torch.Tensor
    validation: torch.Tensor


def holdout_size(n_images: int, fraction: float) -> int:
    """How many of ``n_images`` a held-out ``fraction`` withholds: round(F·N), halves up.

    Raises:
        ConfigError: If ``n_images`` is not an int >= 1, ``fraction`` is not a number in
            [0, 1), or the split would leave no training image or, for F > 0, no held-out one.

    Example:
        >>> holdout_size(5000, 0.1), holdout_size(100, 0.29), holdout_size(7, 0.0)
        (500, 29, 0)
    """
    if isinstance(n_images, bool) or not isinstance(n_images, numbers.Integral) or n_images < 1:
        raise ConfigError(f"n_images must be an int >= 1, got {n_images!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
        0 <= fraction < 1
    ):
        raise ConfigError(f"val_fraction must be a number in [0, 1), got {fraction!r}")
    # Half up, not floor: 0.29 * 100 is 28.999... in floating point and must hold out 29.
    held = math.floor(fraction * n_images + 0.5)
    if fraction > 0 and held == 0:
        raise ConfigError(
            f"val_fraction {fraction} of {n_images} training images holds out none; "
            f"use a fraction >= {0.5 / n_images:.3g} or 0"
        )
    if held >= n_images:
        raise ConfigError(
            f"val_fraction {fraction} of {n_images} training images leaves none to train on"
        )
    return held


def holdout_split(n_images: int, fraction: float, seed: int) -> HoldoutSplit:
    """Split ``range(n_images)`` into training and held-out indices, at random but reproducibly.

    A uniformly random subset of :func:`holdout_size` indices, drawn by ``torch.randperm`` on a
    CPU generator seeded with ``seed`` (the same split on every device), is held out.

    Args:
        n_images: Number of normal training images.
        fraction: Fraction F in [0, 1) to hold out; 0 gives an empty validation set.
        seed: Seed of the split.

    Returns:
        The split; both index tensors are sorted, disjoint and together cover every image.

    Raises:
        ConfigError: As :func:`holdout_size`, or if ``seed`` is not an int.

    Example:
        >>> split = holdout_split(4, 0.0, seed=1)
        >>> split.train.tolist(), split.validation.tolist()
        ([0, 1, 2, 3], [])
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    held = holdout_size(n_images, fraction)
    order = torch.randperm(int(n_images), generator=torch.Generator().manual_seed(int(seed)))
    return HoldoutSplit(train=order[held:].sort().values, validation=order[:held].sort().values)
