"""Local outlier factor ``lof`` on L2-normalised features (scikit-learn, docs/method.md §6).

Self-match rule: a training point's neighbourhood excludes the point itself (scikit-learn
computes the training LOF that way); :meth:`~anobench.scorers.Scorer.score_train` returns that
training LOF. Test points are scored with ``novelty=True`` against the training neighbourhoods.

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> scorer = get_scorer("lof", n_neighbors=10).fit(torch.randn(100, 8))
    >>> scorer.decision_function(torch.randn(2, 8)).shape
    (2,)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from anobench.scorers.base import Scorer
from anobench.scorers.registry import register_scorer
from sklearn.neighbors import LocalOutlierFactor


@register_scorer("lof")
class LofScorer(Scorer):
    """Anomaly score = the local outlier factor (≈ 1 for inliers, larger for outliers).

    Euclidean distance between normalised features (a monotone function of cosine distance).
    Self-match rule: the point itself is excluded from its own neighbourhood.

    Args:
        n_neighbors: Neighbourhood size k (scikit-learn's default 20).

    Attributes:
        lof_: The fitted ``sklearn.neighbors.LocalOutlierFactor`` (``novelty=True``).
    """

    def __init__(self, n_neighbors: int = 20) -> None:
        if n_neighbors < 1:
            raise ValueError(f"lof: n_neighbors must be >= 1, got {n_neighbors}")
        self.n_neighbors = n_neighbors

    def _fit(self, bank: torch.Tensor) -> None:
        if bank.shape[0] <= self.n_neighbors:
            raise ValueError(
                f"lof: n_neighbors={self.n_neighbors} needs more than {self.n_neighbors}"
                f" training rows, got {bank.shape[0]}"
            )
        x = F.normalize(bank, dim=1).double().cpu().numpy()
        self.lof_ = LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True).fit(x)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features, dim=1).double().cpu().numpy()
        return torch.from_numpy(-self.lof_.score_samples(x))

    def _score_train(self) -> torch.Tensor:
        return torch.from_numpy(-self.lof_.negative_outlier_factor_)
