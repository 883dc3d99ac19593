"""Checking 1-D arrays of anomaly scores (higher = more anomalous) given to proxies and thresholds.

Example:
    >>> import torch
    >>> as_scores(torch.tensor([0.5, 1.5]), "val_scores")
    array([0.5, 1.5])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Scores = np.ndarray | torch.Tensor | Sequence[float]
"""Anything :func:`as_scores` accepts: a 1-D array, tensor (any device) or sequence of floats."""


def as_scores(values: Scores, name: str) -> np.ndarray:
    """``values`` as a float64 1-D numpy array.

    Args:
        values: The scores.
        name: The argument's name, for error messages.

    Raises:
        ValueError: If ``values`` is empty, not 1-D or holds NaN or infinity; the message
            names ``name``.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    s = np.asarray(values, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of scores, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(s)).sum())} non-finite value(s)")
    return s
