"""CSI-style objective: NT-Xent over shifted instances plus a shift-classification head.

Every shifted copy of an inlier (one per outlier, made from the batch's own inliers, see
``recipe``) is its own instance for NT-Xent, so the shifted copies are negatives of their
original. A linear head on the raw encoder features f(x) predicts the shift index (the outlier
generator id, 0 = unshifted) with cross-entropy, weighted by ``shift_weight`` (λ = 1).

CSI's detection score needs shifted test images and a feature bank, so it belongs to the
scorers; :meth:`CSIObjective.own_scores` returns None.

Example:
    >>> import torch
    >>> from anobench.objectives import get_objective
    >>> csi = get_objective("csi")
    >>> csi.build(feature_dim=16)
    >>> csi.shift_head
    Linear(in_features=16, out_features=4, bias=True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anobench.objectives.base import OUTLIER_LABEL, BatchRecipe, Objective, StepOutputs
from anobench.objectives.losses import NTXentLoss
from anobench.objectives.registry import register_objective


@register_objective("csi")
class CSIObjective(Objective):
    """NT-Xent with shifted copies as instances + λ × cross-entropy of a linear shift head.

    Args:
        tau: Temperature τ > 0 of NT-Xent.
        mode: ``"concat"`` or ``"pairwise"``.
        num_shifts: Number of shift classes including "unshifted" (4 for rotations 0/90/180/270,
            i.e. generator ids 0..3 of the spec ``rot90+rot180+rot270``).
        shift_weight: λ, the weight of the shift-classification loss.
    """

    recipe = BatchRecipe(outliers_from_inliers=True)

    def __init__(
        self, tau: float = 0.2, mode: str = "concat", num_shifts: int = 4, shift_weight: float = 1.0
    ) -> None:
        super().__init__()
        if isinstance(num_shifts, bool) or not isinstance(num_shifts, int) or num_shifts < 2:
            raise ValueError(f"num_shifts must be an int >= 2, got {num_shifts!r}")
        if not shift_weight >= 0:
            raise ValueError(f"shift_weight must be >= 0, got {shift_weight!r}")
        self.loss = NTXentLoss(tau=tau, mode=mode)
        self.num_shifts = num_shifts
        self.shift_weight = float(shift_weight)
        self.shift_head: nn.Linear | None = None

    def build(self, feature_dim: int) -> None:
        """Create the linear shift head ``feature_dim -> num_shifts``."""
        self.shift_head = nn.Linear(feature_dim, self.num_shifts)

    def shift_loss(self, outputs: StepOutputs) -> torch.Tensor:
        """Cross-entropy of the shift head on both views' raw features, averaged."""
        target = outputs.generator_ids
        if bool(((target < 0) | (target >= self.num_shifts)).any()):
            raise ValueError(
                f"generator ids must lie in 0..{self.num_shifts - 1} (set num_shifts), got "
                f"{sorted(set(target.tolist()))}"
            )
        is_outlier = outputs.labels == OUTLIER_LABEL
        if bool((outputs.source_index[is_outlier] < 0).any()):
            raise ValueError(
                "CSI needs outliers made from the batch's own inliers (recipe "
                "outliers_from_inliers=True), but some outliers have source_index -1"
            )
        features = torch.cat([outputs.features1, outputs.features2])
        return F.cross_entropy(self.shift_logits(features), target.repeat(2))

    def shift_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(M, num_shifts) raw logits of the shift head on (M, F) raw encoder features.

        CSI's detector (the ``csi`` scorer) reads the logit of the true shift, not its softmax.
        """
        if self.shift_head is None:
            raise RuntimeError("CSIObjective.build(feature_dim) must be called before use")
        return self.shift_head(features.to(self.shift_head.weight.dtype))

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """NT-Xent of the projections + ``shift_weight`` × shift cross-entropy."""
        contrastive = self.loss(outputs.z1, outputs.z2)
        return contrastive + self.shift_weight * self.shift_loss(outputs)
