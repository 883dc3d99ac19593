"""Prototype scorer ``center``: cosine distance to the mean training feature (docs/method.md §6).

Self-match rule: exact leave-one-out. :meth:`~anobench.scorers.Scorer.score_train` scores
training point i against the normalised mean of the *other* N − 1 normalised features.

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> scorer = get_scorer("center").fit(torch.randn(50, 4) + 3)
    >>> bool(scorer.decision_function(-torch.ones(1, 4))[0] > 1.5)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from anobench.scorers.base import Scorer
from anobench.scorers.registry import register_scorer


@register_scorer("center")
class CenterScorer(Scorer):
    """Anomaly score = 1 − cos(x, c), c = the normalised mean of the normalised training features.

    Self-match rule: leave-one-out centre (see the module docstring).

    Attributes:
        center_: (F,) unit-norm centre c.
    """

    def __init__(self) -> None:
        pass

    def _fit(self, bank: torch.Tensor) -> None:
        if bank.shape[0] < 2:
            raise ValueError(f"center needs at least 2 training rows, got {bank.shape[0]}")
        self.train_ = F.normalize(bank.double(), dim=1)
        self.sum_ = self.train_.sum(dim=0)
        self.center_ = F.normalize(self.sum_, dim=0)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features.double(), dim=1).to(self.center_.device)
        return 1.0 - x @ self.center_

    def _score_train(self) -> torch.Tensor:
        centres = F.normalize(self.sum_[None, :] - self.train_, dim=1)
        return 1.0 - (self.train_ * centres).sum(dim=1)
