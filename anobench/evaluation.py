"""Scoring of a trained encoder's embeddings with every requested scorer.

Scorers declare the views they need (``Scorer.views``): plain features of the test transform
("single"), the four rotations of each image ("rotations"), four rotations x ten random crops
("rotations-crops"), or the objective's own head ("own-head"). :class:`FeatureViews` embeds
each view at most once, only when a scorer asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
import torch

from anobench.errors import ConfigError
from anobench.metrics import detection_metrics
from anobench.objectives import Objective
from anobench.scorers import Scorer, get_scorer
from anobench.specs import parse_spec

Transform = Callable[[torch.Tensor], torch.Tensor]
Embed = Callable[[torch.Tensor, Transform], torch.Tensor]
"""``embed(uint8_images, transform) -> (M, F)`` raw encoder features on the CPU."""

N_ANGLES = 4
N_CROPS = 10


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
        ConfigError: For a malformed spec or a duplicate.
    """
    built: dict[str, Scorer] = {}
    for spec in specs:
        if spec in built:
            raise ConfigError(f"scorer {spec!r} is given twice")
        name, params = parse_spec(spec)
        built[spec] = get_scorer(name, **params)
    return built


def check_compatible(scorers: dict[str, Scorer], objective: Objective, feature_dim: int) -> None:
    """Check that the objective provides the heads its scorers read (after ``objective.build``,
    before the objective moves to the training device).

    Raises:
        ConfigError: If a scorer needs an own score or a shift head the objective lacks.
    """
    probe = torch.zeros(2, feature_dim)
    with torch.no_grad():
        has_own = objective.own_scores(probe) is not None
        has_shift = objective.shift_probabilities(probe) is not None
    for spec, scorer in scorers.items():
        if scorer.views == "own-head" and not has_own:
            raise ConfigError(f"scorer {spec!r} needs an objective with its own score head (oe)")
        if scorer.needs_shift_probs and not has_shift:
            raise ConfigError(f"scorer {spec!r} needs an objective with a shift head (csi)")


def rotate(images: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Rotate (N, C, H, W) images counter-clockwise by ``quarter_turns`` x 90 degrees."""
    return torch.rot90(images, quarter_turns, dims=(2, 3))


class FeatureViews:
    """Features of the training and test images in every view, each computed once on demand.

    Args:
        embed: Embeds uint8 images under a transform.
        test_transform: The deterministic test transform (resize, centre crop, normalise).
        crop_transform: A random-crop transform for the crop ensemble.
        train_images: (N, C, H, W) uint8 normal training images (the bank).
        test_images: (M, C, H, W) uint8 test images.
        objective: The trained objective (for own scores and shift probabilities).
    """

    def __init__(
        self, embed: Embed, test_transform: Transform, crop_transform: Transform,
        train_images: torch.Tensor, test_images: torch.Tensor, objective: Objective,
    ) -> None:
        self.embed, self.test_transform, self.crop_transform = embed, test_transform, crop_transform
        self.train_images, self.test_images, self.objective = train_images, test_images, objective

    @cached_property
    def train(self) -> torch.Tensor:
        """(N, F) training features."""
        return self.embed(self.train_images, self.test_transform)

    @cached_property
    def test(self) -> torch.Tensor:
        """(M, F) test features."""
        return self.embed(self.test_images, self.test_transform)

    def _rotations(self, images: torch.Tensor, unrotated: torch.Tensor) -> torch.Tensor:
        rest = [self.embed(rotate(images, k), self.test_transform) for k in range(1, N_ANGLES)]
        return torch.stack([unrotated, *rest])

    @cached_property
    def train_rotations(self) -> torch.Tensor:
        """(4, N, F) training features at 0/90/180/270 degrees."""
        return self._rotations(self.train_images, self.train)

    @cached_property
    def test_rotations(self) -> torch.Tensor:
        """(4, M, F) test features at 0/90/180/270 degrees."""
        return self._rotations(self.test_images, self.test)

    @cached_property
    def test_rotation_crops(self) -> torch.Tensor:
        """(40, M, F) test features, angle-major: view v is angle v // 10, random crop v % 10."""
        return torch.stack([
            self.embed(rotate(self.test_images, k), self.crop_transform)
            for k in range(N_ANGLES) for _ in range(N_CROPS)
        ])

    def _head(self, fn: Callable[[torch.Tensor], torch.Tensor | None], features: torch.Tensor) -> torch.Tensor:
        device = next(self.objective.parameters()).device
        self.objective.eval()
        with torch.no_grad():
            out = fn(features.to(device))
        assert out is not None  # check_compatible ran before training
        return out.float().cpu()

    def inputs(self, scorer: Scorer) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """What ``scorer`` is fitted on, what it scores, and extra keyword arguments."""
        if scorer.views == "single":
            return self.train, self.test, {}
        if scorer.views == "own-head":
            return self.train, self._head(self.objective.own_scores, self.test), {}
        if scorer.views == "rotations-crops":
            return self.train_rotations, self.test_rotation_crops, {}
        if scorer.views == "rotations":
            extra = {}
            if scorer.needs_shift_probs:
                extra["shift_probs"] = torch.stack([
                    self._head(self.objective.shift_probabilities, view) for view in self.test_rotations
                ])
            return self.train_rotations, self.test_rotations, extra
        raise ValueError(f"scorer {type(scorer).__name__} asks for unknown views {scorer.views!r}")


def score_all(
    scorers: dict[str, Scorer], views: FeatureViews, test_is_anomaly: torch.Tensor
) -> list[ScorerResult]:
    """Fit each scorer on the features it needs and score the test images.

    Args:
        scorers: Scorers by spec, from :func:`build_scorers`.
        views: The encoder's features in every view.
        test_is_anomaly: (M,) bool, True for anomalies.
    """
    labels = test_is_anomaly.cpu().numpy()
    results = []
    for spec, scorer in scorers.items():
        bank, queries, extra = views.inputs(scorer)
        scores = scorer.fit(bank).decision_function(queries, **extra)
        results.append(ScorerResult(spec, scores, detection_metrics(scores, labels)))
    return results
