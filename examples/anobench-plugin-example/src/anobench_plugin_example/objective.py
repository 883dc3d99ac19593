"""``firm-rot``: FIRM for inliers, Rot-SupCon for outliers.

An inlier's positives are all inliers of its ID class, as in FIRM. An outlier's positives are its
own other view *and* every outlier made by the same generator (with the default outliers
``rot90+rot180+rot270``: the same rotation), as in Rot-SupCon. FIRM keeps outliers apart from each
other; this variant lets outliers of one shift gather, so it asks whether outlier-outlier
separation is what helps. The loss is anobench's :func:`~anobench.objectives.contrastive_loss`
with this positive mask, so both layouts (``concat``, ``pairwise``) and multi-process training
work unchanged.

Example:
    >>> import torch
    >>> from anobench.objectives import StepOutputs
    >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    >>> labels, generators = torch.tensor([0, 0, -1, -1]), torch.tensor([0, 0, 1, 2])
    >>> step = StepOutputs(z, z, z, z, labels, generators, torch.arange(4))
    >>> FIRMRotObjective(tau=0.2).positives(labels, generators).int().tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    >>> float(FIRMRotObjective(tau=0.2)(step)) > 0
    True
"""

from __future__ import annotations

import torch

from anobench import distributed
from anobench.objectives import OUTLIER_LABEL, Objective, StepOutputs, contrastive_loss
from anobench.objectives.losses import check_mode, check_tau


class FIRMRotObjective(Objective):
    """FIRM's inlier positives with Rot-SupCon's outlier positives.

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` (2N×2N) or ``"pairwise"`` (N×N).

    Raises:
        ValueError: If ``tau`` is not a finite number > 0 or ``mode`` is not a layout name.
    """

    def __init__(self, tau: float = 0.2, mode: str = "concat") -> None:
        super().__init__()
        self.tau = check_tau(tau)
        self.mode = check_mode(mode)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, mode={self.mode!r}"

    def positives(self, labels: torch.Tensor, generator_ids: torch.Tensor) -> torch.Tensor:
        """(n, N) bool mask: is sample j (all processes, in rank order) a positive of local i?

        Args:
            labels: (n,) this process's labels: ID class >= 0, or ``OUTLIER_LABEL``.
            generator_ids: (n,) this process's generator ids (0 for inliers).
        """
        all_labels = distributed.gather(labels)
        all_generators = distributed.gather(generator_ids)
        n, offset = labels.shape[0], distributed.rank() * labels.shape[0]
        inlier = (labels != OUTLIER_LABEL)[:, None]
        same_class = inlier & (labels[:, None] == all_labels[None, :])
        same_shift = ~inlier & (generator_ids[:, None] == all_generators[None, :])
        own = torch.arange(all_labels.shape[0], device=labels.device)[None, :] == (
            torch.arange(n, device=labels.device) + offset
        )[:, None]
        return same_class | same_shift | own

    def forward(self, outputs: StepOutputs) -> torch.Tensor:
        """The loss of one step's projections ``z1``, ``z2``."""
        labels = outputs.labels.to(outputs.z1.device)
        positives = self.positives(labels, outputs.generator_ids.to(labels.device))
        return contrastive_loss(
            outputs.z1, outputs.z2, positives, self.tau, self.mode,
            labels=distributed.gather(labels),
        )
