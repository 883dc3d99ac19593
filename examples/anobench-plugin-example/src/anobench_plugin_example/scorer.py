"""``mean-sim``: anomaly score = 1 − the mean cosine similarity to every normal training feature.

A bank-wide counterpart of kNN (k = N): cheap, parameter-free, and a useful floor for a new
objective, since it only rewards embeddings where the normal class forms one tight cluster.

Self-match rule: exact leave-one-out. Training point i is scored against the other N − 1 points.

Example:
    >>> import torch
    >>> scorer = MeanSimilarityScorer().fit(torch.randn(50, 4) + 3)
    >>> bool(scorer.decision_function(-torch.ones(1, 4))[0] > 1.5)
    True
    >>> scorer.score_train().shape
    (50,)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anobench.scorers import Scorer


class MeanSimilarityScorer(Scorer):
    """1 − mean cosine similarity to the L2-normalised training features.

    Self-match rule: leave-one-out (see the module docstring).

    Attributes:
        sum_: (F,) sum of the normalised training features.
        n_: Number of training features.
    """

    def _fit(self, bank: torch.Tensor) -> None:
        if bank.shape[0] < 2:
            raise ValueError(f"mean-sim needs at least 2 training rows, got {bank.shape[0]}")
        self.train_ = F.normalize(bank.double(), dim=1)
        self.sum_ = self.train_.sum(dim=0)
        self.n_ = bank.shape[0]

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features.double(), dim=1).to(self.sum_.device)
        return 1.0 - x @ self.sum_ / self.n_

    def _score_train(self) -> torch.Tensor:
        others = self.sum_[None, :] - self.train_
        return 1.0 - (self.train_ * others).sum(dim=1) / (self.n_ - 1)
