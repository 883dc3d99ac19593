"""Outlier Exposure: a classifier head on the raw encoder features f(x), not a contrastive loss.

- One-class (``num_classes=1``): one logit per sample, binary cross-entropy (with logits) of
  "is an outlier"; the objective's own anomaly score is that outlier logit.
- Labelled multi-class (``num_classes=K > 1``): K logits, cross-entropy on the ID labels of the
  inliers plus ``uniform_weight`` (0.5) × the cross-entropy of the outliers towards the uniform
  distribution, mean_k(−log softmax_k); the own score is the negative maximum softmax probability.

Both views' features are used, each as a separate sample.

Example:
    >>> from anobench.objectives import get_objective
    >>> oe = get_objective("oe")
    >>> oe.build(feature_dim=8)
    >>> oe.head
    Linear(in_features=8, out_features=1, bias=True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anobench.objectives.base import OUTLIER_LABEL, Objective, StepOutputs
from anobench.objectives.losses import label_counts
from anobench.objectives.registry import register_objective


@register_objective("oe")
class OEObjective(Objective):
    """Outlier Exposure classifier objective (binary, or K-class with a uniform term).

    Args:
        num_classes: Number of ID classes; 1 = one-class (binary inlier/outlier head).
        uniform_weight: Weight of the outliers' cross-entropy to uniform (multi-class only).
    """

    def __init__(self, num_classes: int = 1, uniform_weight: float = 0.5) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if not uniform_weight >= 0:
            raise ValueError(f"uniform_weight must be >= 0, got {uniform_weight!r}")
        self.num_classes = num_classes
        self.uniform_weight = float(uniform_weight)
        self.head: nn.Linear | None = None

    def build(self, feature_dim: int) -> None:
        """Create the linear head ``feature_dim -> 1`` (one-class) or ``-> num_classes``."""
        self.head = nn.Linear(feature_dim, 1 if self.num_classes == 1 else self.num_classes)

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("OEObjective.build(feature_dim) must be called before use")
        return self.head(features)

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """Classifier loss on both views' raw encoder features."""
        features = torch.cat([outputs.features1, outputs.features2])
        labels = outputs.labels.repeat(2)
        is_outlier = labels == OUTLIER_LABEL
        id_labels = labels[~is_outlier]
        logits = self._logits(features)
        if self.num_classes == 1:
            if id_labels.unique().numel() > 1:
                raise ValueError(
                    "OE with num_classes=1 got several ID classes; set num_classes. Label "
                    f"counts: {label_counts(outputs.labels)}"
                )
            return F.binary_cross_entropy_with_logits(logits[:, 0], is_outlier.to(logits.dtype))
        if bool(((id_labels < 0) | (id_labels >= self.num_classes)).any()):
            raise ValueError(
                f"ID labels must lie in 0..{self.num_classes - 1}; label counts: "
                f"{label_counts(outputs.labels)}"
            )
        loss = logits.new_zeros(())
        if id_labels.numel():
            loss = loss + F.cross_entropy(logits[~is_outlier], id_labels)
        if bool(is_outlier.any()):
            to_uniform = -F.log_softmax(logits[is_outlier], dim=1).mean(dim=1).mean()
            loss = loss + self.uniform_weight * to_uniform
        return loss

    def own_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Outlier logit (one-class) or negative max softmax probability (multi-class)."""
        logits = self._logits(features)
        if self.num_classes == 1:
            return logits[:, 0]
        return -F.softmax(logits, dim=1).max(dim=1).values
