"""Scoring of embedded test images with every requested scorer, and their detection metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from anobench.metrics import detection_metrics
from anobench.scorers import Scorer, get_scorer
from anobench.specs import parse_spec


@dataclass
class ScorerResult:
    """One scorer's anomaly scores on the test set and their metrics.

    Attributes:
        spec: The scorer spec as given ("knn", "knn:k=1", ...).
        scores: (M,) float64 anomaly scores, higher = more anomalous.
        metrics: "auroc", "aupr" and "fpr95".
    """

    spec: str
    scores: np.ndarray
    metrics: dict[str, float]


def build_scorers(specs: list[str]) -> dict[str, Scorer]:
    """Build every scorer from its spec, so bad names fail before any training.

    Raises:
        UnknownNameError: For a scorer name that is not registered.
        ConfigError: For a malformed spec.
    """
    built: dict[str, Scorer] = {}
    for spec in specs:
        name, params = parse_spec(spec)
        built[spec] = get_scorer(name, **params)
    return built


def score_all(
    scorers: dict[str, Scorer],
    train_features: torch.Tensor,
    test_features: torch.Tensor,
    test_is_anomaly: torch.Tensor,
) -> list[ScorerResult]:
    """Fit each scorer on the training features and score the test features.

    Args:
        scorers: Scorers by spec, from :func:`build_scorers`.
        train_features: (N, F) raw encoder features of the normal training images.
        test_features: (M, F) raw encoder features of the test images.
        test_is_anomaly: (M,) bool, True for anomalies.
    """
    labels = test_is_anomaly.cpu().numpy()
    results = []
    for spec, scorer in scorers.items():
        scores = scorer.fit(train_features).decision_function(test_features)
        results.append(ScorerResult(spec, scores, detection_metrics(scores, labels)))
    return results
