"""Detection metrics with anomalies as the positive class (docs/method.md §1).

Scores follow the scorer convention: higher = more anomalous. Labels are 1 / ``True`` for an
anomaly and 0 / ``False`` for a normal sample.

Example:
    >>> from anobench.metrics import detection_metrics
    >>> m = detection_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> round(m["auroc"], 2), round(m["aupr"], 2), m["fpr95"]
    (0.75, 0.83, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

ArrayLike = np.ndarray | Sequence[float]


def validate_labelled(scores: ArrayLike, is_anomaly: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check scores and labels; returns float64 scores and boolean labels.

    Raises:
        ValueError: On non-1-D input, a length mismatch, non-finite scores, labels other than
            0/1, or labels holding a single class.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_anomaly)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and is_anomaly must be 1-D, got shapes {s.shape} and {y.shape}")
    if s.shape[0] != y.shape[0]:
        raise ValueError(
            f"scores and is_anomaly differ in length: {s.shape[0]} scores, {y.shape[0]} labels"
        )
    if not np.isfinite(s).all():
        bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"scores hold {bad} non-finite value(s) (NaN or inf)")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"is_anomaly must hold only 0/1 or booleans, got values {sorted(values)}")
    yb = y.astype(bool)
    n_pos = int(yb.sum())
    if n_pos == 0 or n_pos == yb.shape[0]:
        raise ValueError(
            f"is_anomaly holds a single class ({n_pos} anomalies, {yb.shape[0] - n_pos} normal);"
            " detection metrics need both"
        )
    return s, yb


def _roc_points(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from the highest score down, starting at (0, 0).

    Tied scores share one threshold, so a tie moves the curve diagonally.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.shape[0] - 1]
    tp = np.cumsum(y_sorted)[last_of_group]
    fp = (last_of_group + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    return fpr, tpr


def auroc(scores: ArrayLike, is_anomaly: ArrayLike) -> float:
    """Area under the ROC curve; ties count one half (Mann-Whitney U with mid-ranks).

    Raises:
        ValueError: See :func:`detection_metrics`.
    """
    s, y = validate_labelled(scores, is_anomaly)
    ranks = rankdata(s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def aupr(scores: ArrayLike, is_anomaly: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision, anomalies positive.

    AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds (step interpolation, the
    scikit-learn ``average_precision_score`` definition); tied scores form one threshold.

    Raises:
        ValueError: See :func:`detection_metrics`.
    """
    s, y = validate_labelled(scores, is_anomaly)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.shape[0] - 1]
    tp = np.cumsum(y_sorted)[last_of_group].astype(np.float64)
    precision = tp / (last_of_group + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(scores: ArrayLike, is_anomaly: ArrayLike, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold whose true-positive rate reaches ``tpr``.

    Thresholds are the distinct scores (a sample is flagged when its score is >= the threshold),
    so a block of tied scores is flagged all at once.

    Raises:
        ValueError: If ``tpr`` is not in (0, 1], or see :func:`detection_metrics`.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    s, y = validate_labelled(scores, is_anomaly)
    fpr_curve, tpr_curve = _roc_points(s, y)
    # A tiny tolerance so that e.g. 19/20 counts as reaching 0.95 despite rounding.
    reached = np.flatnonzero(tpr_curve >= tpr - 1e-12)
    return float(fpr_curve[reached[0]])


def aulc(progress: ArrayLike, aurocs: ArrayLike) -> float:
    """Area under the AUROC-versus-training-progress curve (docs/method.md §1), trapezoid rule.

    Progress (steps, epochs or fractions) is normalised to [0, 1] by
    ``(p - p[0]) / (p[-1] - p[0])``, so a constant AUROC ``a`` gives an AULC of ``a``.

    Args:
        progress: Strictly increasing training progress at each evaluated checkpoint.
        aurocs: The test AUROC at each checkpoint, in [0, 1].

    Raises:
        ValueError: On fewer than two checkpoints, a length mismatch, non-finite values,
            progress that does not strictly increase, or an AUROC outside [0, 1].
    """
    p = np.asarray(progress, dtype=np.float64)
    a = np.asarray(aurocs, dtype=np.float64)
    if p.ndim != 1 or a.ndim != 1 or p.shape != a.shape:
        raise ValueError(
            f"progress and aurocs must be 1-D of equal length, got shapes {p.shape} and {a.shape}"
        )
    if p.shape[0] < 2:
        raise ValueError(f"aulc needs at least two checkpoints, got {p.shape[0]}")
    if not (np.isfinite(p).all() and np.isfinite(a).all()):
        raise ValueError("progress and aurocs must be finite (no NaN or inf)")
    if not (np.diff(p) > 0).all():
        raise ValueError(f"progress must strictly increase, got {p.tolist()}")
    if (a < 0).any() or (a > 1).any():
        raise ValueError(f"aurocs must lie in [0, 1], got min {a.min()} and max {a.max()}")
    x = (p - p[0]) / (p[-1] - p[0])
    return float(np.sum(np.diff(x) * (a[1:] + a[:-1]) / 2.0))


def detection_metrics(scores: ArrayLike, is_anomaly: ArrayLike) -> dict[str, float]:
    """AUROC, AUPR (anomaly positive) and FPR at 95% TPR, as ``{"auroc", "aupr", "fpr95"}``.

    Raises:
        ValueError: If scores and labels are not 1-D of equal length, if a score is NaN or
            infinite, if labels are not 0/1, or if the labels hold a single class.
    """
    return {
        "auroc": auroc(scores, is_anomaly),
        "aupr": aupr(scores, is_anomaly),
        "fpr95": fpr_at_tpr(scores, is_anomaly, 0.95),
    }
