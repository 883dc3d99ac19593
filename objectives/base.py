"""What every objective gives the trainer: a loss over one step's outputs and its batch recipe.

The trainer knows no objective by name. Each step it builds a batch as the objective's
``recipe`` asks (inliers plus synthetic outliers), runs the encoder and projection head on two
augmented views, and hands the result to :meth:`Objective.forward` as a :class:`StepOutputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

OUTLIER_LABEL = -1
"""Label of an outlier sample; ID (inlier) samples carry their class id, >= 0."""


@dataclass(frozen=True)
class BatchRecipe:
    """How the trainer must compose a batch for an objective.

    Attributes:
        outliers_from_inliers: If True, each outlier is made from one of the same batch's
            inliers (every inlier gets ``outlier_ratio`` shifted copies, CSI-style); if False,
            outliers are made from normal images drawn independently of the batch's inliers.
    """

    outliers_from_inliers: bool = False


@dataclass
class StepOutputs:
    """The model's outputs for one training step of N samples and two views.

    Attributes:
        features1: (N, F) raw encoder features f(x) of view 1.
        features2: (N, F) raw encoder features of view 2.
        z1: (N, D) L2-normalised projections g(f(x)) of view 1.
        z2: (N, D) L2-normalised projections of view 2.
        labels: (N,) int64; ID class id (>= 0) for inliers, ``OUTLIER_LABEL`` for outliers.
        generator_ids: (N,) int64; 0 for inliers, else the 1-based id of the outlier generator
            that made the sample (for rotations 1, 2, 3 = 90, 180, 270 degrees).
        source_index: (N,) int64; index within the batch of the inlier an outlier was made
            from when the recipe sets ``outliers_from_inliers``, else -1; inliers hold their own
            index.
    """

    features1: torch.Tensor
    features2: torch.Tensor
    z1: torch.Tensor
    z2: torch.Tensor
    labels: torch.Tensor
    generator_ids: torch.Tensor
    source_index: torch.Tensor


class Objective(nn.Module):
    """Base class of a training objective: a loss plus the batch recipe it needs.

    Subclasses set ``recipe`` if they need a non-default batch, override :meth:`build` to create
    extra heads once the encoder's feature width is known, and implement :meth:`forward`.
    Extra heads are submodules of the objective, so the trainer optimises them with the model.
    """

    recipe: BatchRecipe = BatchRecipe()

    def build(self, feature_dim: int) -> None:
        """Create parameters that depend on the encoder's feature width (default: none).

        Args:
            feature_dim: Width F of the encoder features.
        """

    def forward(self, outputs: StepOutputs) -> torch.Tensor:  # pragma: no cover - abstract
        """Return the scalar loss of one step."""
        raise NotImplementedError

    def own_scores(self, features: torch.Tensor) -> torch.Tensor | None:
        """Anomaly scores from the objective's own head (higher = more anomalous), if it has one.

        Args:
            features: (M, F) raw encoder features of the images to score.

        Returns:
            (M,) scores, or None for objectives without a scoring head (the default).
        """
        return None

    def shift_probabilities(self, features: torch.Tensor) -> torch.Tensor | None:
        """Softmax of a shift-classification head over the shift index, if the objective has one.

        Args:
            features: (M, F) raw encoder features.

        Returns:
            (M, num_shifts) probabilities, or None without a shift head (the default).
        """
        return None
