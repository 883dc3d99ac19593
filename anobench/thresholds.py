"""Calibrated thresholds from the anomaly scores of held-out normals, no labelled anomaly needed
(docs/selection.md).

Given n calibration scores V₁..Vₙ of normal images and a test score s (higher = more anomalous):

- the conformal p-value p(s) = (1 + #{j : Vⱼ >= s}) / (n + 1) (Bates et al., Annals of
  Statistics 2023, marginal p-values);
- the threshold at a target false-positive rate α is t = the k-th largest Vⱼ, k = ⌊α(n + 1)⌋,
  i.e. the ⌈(1 − α)(n + 1)⌉-th smallest: the conformal (1 − α) quantile. An image is flagged
  anomalous when s > t, which is the same as p(s) <= α.

Guarantee: when the calibration scores and the score of a new normal image are exchangeable
(i.i.d. normals, scorer fixed before calibration), P(p(S) <= u) <= u for every u in [0, 1], so
the false-positive rate P(S > t) <= k / (n + 1) <= α, over the draw of calibration and test
image; without ties it equals k / (n + 1) >= α − 1 / (n + 1). A rate conditional on one
calibration set varies around it: see :func:`realised_fpr_interval`.

Example:
    >>> val = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    >>> conformal_threshold(val, alpha=0.2)   # k = floor(0.2 * 10) = 2: the 2nd largest
    0.8
    >>> conformal_p_values(val, [0.85, 0.05]).tolist()
    [0.2, 1.0]
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.stats import betabinom

from anobench.metrics import validate_labelled
from anobench.scores import Scores, as_scores

DEFAULT_TARGET_FPR = 0.05
"""The target false-positive rate α of ``--target-fpr`` (issue 17)."""

# alpha * (n + 1) in floating point can fall a hair below the integer it means (0.29 * 100).
_ROUNDING = 1e-9


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"target false-positive rate alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


def _rank_from_top(alpha: float, n: int) -> int:
    """k = ⌊α(n + 1)⌋: the threshold is the k-th largest of n calibration scores."""
    return math.floor(alpha * (n + 1) + _ROUNDING)


def min_calibration_scores(alpha: float) -> int:
    """The fewest calibration scores that give a threshold at false-positive rate ``alpha``:
    the smallest n with ⌊α(n + 1)⌋ >= 1, i.e. ⌈1/α⌉ − 1.

    Raises:
        ValueError: If ``alpha`` is not in (0, 1).

    Example:
        >>> min_calibration_scores(0.05), min_calibration_scores(0.1), min_calibration_scores(0.3)
        (19, 9, 3)
    """
    alpha = _check_alpha(alpha)
    return math.ceil(1 / alpha - _ROUNDING) - 1


def conformal_p_values(val_scores: Scores, test_scores: Scores) -> np.ndarray:
    """Conformal p-values p(s) = (1 + #{j : Vⱼ >= s}) / (n + 1) of the test scores.

    Small p-values mark anomalies; each lies in [1/(n + 1), 1]. Under exchangeability a normal
    image's p-value is super-uniform: P(p <= u) <= u (module docstring).

    Args:
        val_scores: The n calibration scores Vⱼ of held-out normals.
        test_scores: The scores to test.

    Returns:
        (M,) float64 p-values, one per test score.

    Raises:
        ValueError: If either argument is empty, not 1-D or not finite.

    Example:
        >>> conformal_p_values([1.0, 2.0, 3.0], [0.0, 2.0, 9.0]).tolist()
        [1.0, 0.75, 0.25]
    """
    v = np.sort(as_scores(val_scores, "val_scores"))
    s = as_scores(test_scores, "test_scores")
    at_least = v.shape[0] - np.searchsorted(v, s, side="left")
    return (1.0 + at_least) / (v.shape[0] + 1.0)


def conformal_threshold(val_scores: Scores, alpha: float = DEFAULT_TARGET_FPR) -> float:
    """The threshold t at target false-positive rate α: flag a score s as anomalous when s > t.

    t is the k-th largest calibration score, k = ⌊α(n + 1)⌋; s > t exactly when its conformal
    p-value is <= α, so the false-positive rate is at most α (module docstring).

    Args:
        val_scores: The n calibration scores of held-out normals.
        alpha: Target false-positive rate in (0, 1).

    Raises:
        ValueError: If ``alpha`` is not in (0, 1), the scores are empty, not 1-D or not finite,
            or there are fewer than :func:`min_calibration_scores` (``alpha``) of them.

    Example:
        >>> conformal_threshold(list(range(1, 20)), alpha=0.05)   # n = 19, k = 1: the maximum
        19.0
    """
    alpha = _check_alpha(alpha)
    v = np.sort(as_scores(val_scores, "val_scores"))
    k = _rank_from_top(alpha, v.shape[0])
    if k < 1:
        raise ValueError(
            f"a threshold at false-positive rate {alpha} needs at least "
            f"{min_calibration_scores(alpha)} calibration scores, got {v.shape[0]}"
        )
    return float(v[v.shape[0] - k])


def rates_at_threshold(
    test_scores: Scores, is_anomaly: np.ndarray | list[int], threshold: float
) -> dict[str, float]:
    """Realised test rates of the rule "anomalous when score > threshold".

    Returns:
        ``{"fpr_at_threshold": ..., "tpr_at_threshold": ...}``: the fractions of normal and of
        anomalous test images flagged.

    Raises:
        ValueError: As ``anobench.metrics.detection_metrics`` (both classes needed), or if
            ``threshold`` is not finite.

    Example:
        >>> rates_at_threshold([0.1, 0.5, 0.7, 0.9], [0, 0, 1, 1], threshold=0.6)
        {'fpr_at_threshold': 0.0, 'tpr_at_threshold': 1.0}
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    s, y = validate_labelled(test_scores, is_anomaly)
    flagged = s > threshold
    return {
        "fpr_at_threshold": float(flagged[~y].mean()),
        "tpr_at_threshold": float(flagged[y].mean()),
    }


def realised_fpr_interval(
    alpha: float, n_val: int, n_test_normal: int, level: float = 0.95
) -> tuple[float, float]:
    """Central ``level`` interval of the test FPR that :func:`conformal_threshold` realises.

    With n continuous exchangeable calibration scores the threshold's false-positive rate,
    given the calibration set, is Beta(k, n + 1 − k) distributed (k = ⌊α(n + 1)⌋, an order
    statistic of uniforms); the number of the m normal test images flagged is then
    Beta-binomial(m, k, n + 1 − k). The interval holds both sources of variation, so a
    realised FPR outside it is evidence against exchangeability (e.g. held-out and test normals
    that differ, or leave-one-out scores of training images).

    Args:
        alpha: Target false-positive rate in (0, 1).
        n_val: Number of calibration scores, at least :func:`min_calibration_scores` (alpha).
        n_test_normal: Number m >= 1 of normal test images.
        level: Coverage in (0, 1).

    Returns:
        (low, high), fractions of the m normal test images.

    Raises:
        ValueError: If a count or ``alpha`` or ``level`` is out of range.

    Example:
        >>> low, high = realised_fpr_interval(0.05, n_val=500, n_test_normal=1000)
        >>> round(low, 3), round(high, 3)
        (0.029, 0.075)
    """
    alpha = _check_alpha(alpha)
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    for name, count in (("n_val", n_val), ("n_test_normal", n_test_normal)):
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise ValueError(f"{name} must be an int >= 1, got {count!r}")
    k = _rank_from_top(alpha, int(n_val))
    if k < 1:
        raise ValueError(
            f"a threshold at false-positive rate {alpha} needs at least "
            f"{min_calibration_scores(alpha)} calibration scores, got n_val={n_val}"
        )
    flagged = betabinom(int(n_test_normal), k, int(n_val) + 1 - k)
    tail = (1 - level) / 2
    return float(flagged.ppf(tail)) / n_test_normal, float(flagged.ppf(1 - tail)) / n_test_normal
