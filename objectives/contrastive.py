"""The contrastive objectives of docs/method.md §3: ``firm``, ``simclr``, ``supcon``, ``rot-supcon``.

Each wraps one loss of :mod:`anobench.objectives.losses` and reads the step's projections
``z1``, ``z2`` and ``labels`` (or ``generator_ids`` for Rot-SupCon).

Example:
    >>> from anobench.objectives import get_objective
    >>> get_objective("firm", tau=0.5, mode="pairwise")
    FIRMObjective(
      (loss): FIRMLoss(tau=0.5, mode='pairwise', outlier_label=-1)
    )
"""

from __future__ import annotations

import torch

from anobench.objectives.base import OUTLIER_LABEL, Objective, StepOutputs
from anobench.objectives.losses import FIRMLoss, NTXentLoss, SupConLoss
from anobench.objectives.registry import register_objective


@register_objective("firm")
class FIRMObjective(Objective):
    """FIRM: inliers attract their ID class, each outlier attracts only its other view.

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` or ``"pairwise"``.
    """

    def __init__(self, tau: float = 0.2, mode: str = "concat") -> None:
        super().__init__()
        self.loss = FIRMLoss(tau=tau, outlier_label=OUTLIER_LABEL, mode=mode)

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """FIRM loss of the step's projections."""
        return self.loss(outputs.z1, outputs.z2, outputs.labels)


@register_objective("simclr")
class SimCLRObjective(Objective):
    """SimCLR / NT-Xent: every sample, inlier or outlier, is its own instance (DROC-style).

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` or ``"pairwise"``.
    """

    def __init__(self, tau: float = 0.2, mode: str = "concat") -> None:
        super().__init__()
        self.loss = NTXentLoss(tau=tau, mode=mode)

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """NT-Xent loss of the step's projections."""
        return self.loss(outputs.z1, outputs.z2)


@register_objective("supcon")
class SupConObjective(Objective):
    """SupCon with inlier/outlier labels: inliers attract their ID class, outliers all outliers.

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` or ``"pairwise"``.
    """

    def __init__(self, tau: float = 0.2, mode: str = "concat") -> None:
        super().__init__()
        self.loss = SupConLoss(tau=tau, mode=mode)

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """SupCon loss over the step's labels (outliers share the label ``OUTLIER_LABEL``)."""
        return self.loss(outputs.z1, outputs.z2, outputs.labels)


@register_objective("rot-supcon")
class RotSupConObjective(Objective):
    """Rot-SupCon: SupCon whose label is the shift index, i.e. the outlier generator id.

    Inliers (generator id 0) are all positives of each other, whatever their ID class; an
    outlier's positives are all outliers made by the same generator. With the default generator
    spec ``rot90+rot180+rot270`` the ids 1, 2, 3 are the rotations by 90, 180, 270 degrees, so
    the label is exactly the shift index 0..3. With any other spec every generator of the spec
    (e.g. ``cutpaste`` in ``rot90+cutpaste``) acts as one more shift class of its own.

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` or ``"pairwise"``.
    """

    def __init__(self, tau: float = 0.2, mode: str = "concat") -> None:
        super().__init__()
        self.loss = SupConLoss(tau=tau, mode=mode)

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """SupCon loss over the shift index ``generator_ids``."""
        return self.loss(outputs.z1, outputs.z2, outputs.generator_ids)
