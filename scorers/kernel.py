"""Kernel scorers on L2-normalised features: ``kde`` and ``ocsvm`` (docs/method.md §6).

Both set their kernel width from the bank as the authors' code does, with Var(bank) the
variance of all entries of the (N, d) normalised bank (``numpy.var``, ddof 0):

- ``kde``: anomaly score = −(1/γ)·logsumexp_j(γ·cos(x, b_j)), γ = 20 / (Var(bank)·d).
- ``ocsvm``: scikit-learn ``OneClassSVM`` with an RBF kernel, γ = 10 / (Var(bank)·d);
  anomaly score = − its decision function.

Self-match rules:
    - ``kde``: exact leave-one-out; training point i's sum omits its own term (γ is kept at its
      full-bank value).
    - ``ocsvm``: K-fold cross-fitting (refitting the SVM N times is impractical): the bank is
      split into ``n_folds`` interleaved folds (row i is in fold i mod n_folds) and each
      training point is scored by an SVM fitted on the other folds, with the same γ.

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> scorer = get_scorer("kde").fit(torch.randn(100, 8))
    >>> scorer.decision_function(torch.randn(2, 8)).shape
    (2,)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from anobench.scorers.base import Scorer
from anobench.scorers.registry import register_scorer
from sklearn.svm import OneClassSVM

from anobench.knn import DEFAULT_MAX_CHUNK_ELEMENTS


def bank_gamma(bank: torch.Tensor, scale: float) -> float:
    """scale / (Var(bank)·d) for an (N, d) bank; raises ``ValueError`` if the bank is constant."""
    var = float(bank.double().var(unbiased=False))
    if var <= 0.0:
        raise ValueError("the normalised training bank is constant; its variance is 0")
    return scale / (var * bank.shape[1])


@register_scorer("kde")
class KdeScorer(Scorer):
    """Kernel density on the unit sphere: −(1/γ)·logsumexp(γ·cos(x, bank)).

    Self-match rule: leave-one-out (see the module docstring).

    Args:
        gamma_scale: The numerator of γ = gamma_scale / (Var(bank)·d); 20 in the authors' code.
        max_chunk_elements: Cap on the entries of one similarity block.

    Attributes:
        gamma_: The fitted γ.
        bank_: (N, d) normalised bank.
    """

    def __init__(
        self, gamma_scale: float = 20.0, max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS
    ) -> None:
        if not gamma_scale > 0:
            raise ValueError(f"kde: gamma_scale must be > 0, got {gamma_scale}")
        self.gamma_scale = gamma_scale
        self.max_chunk_elements = max_chunk_elements

    def _fit(self, bank: torch.Tensor) -> None:
        if bank.shape[0] < 2:
            raise ValueError(f"kde needs at least 2 training rows, got {bank.shape[0]}")
        self.bank_ = F.normalize(bank, dim=1)
        self.gamma_ = bank_gamma(self.bank_, self.gamma_scale)

    def _lse(self, x: torch.Tensor, exclude_self: bool) -> torch.Tensor:
        n = self.bank_.shape[0]
        rows = max(1, self.max_chunk_elements // n)
        out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
        for r0 in range(0, x.shape[0], rows):
            r1 = min(r0 + rows, x.shape[0])
            logits = (x[r0:r1] @ self.bank_.T).double() * self.gamma_
            if exclude_self:
                diag = torch.arange(r0, r1, device=x.device)
                logits[diag - r0, diag] = float("-inf")
            out[r0:r1] = torch.logsumexp(logits, dim=1)
        return out

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features, dim=1).to(self.bank_.device)
        return -self._lse(x, exclude_self=False) / self.gamma_

    def _score_train(self) -> torch.Tensor:
        return -self._lse(self.bank_, exclude_self=True) / self.gamma_


@register_scorer("ocsvm")
class OcsvmScorer(Scorer):
    """One-class SVM (RBF kernel) on normalised features; anomaly score = − decision function.

    Self-match rule: ``n_folds``-fold cross-fitting (see the module docstring).

    Args:
        nu: The SVM's ν (upper bound on the fraction of training outliers), in (0, 1].
        gamma_scale: The numerator of γ = gamma_scale / (Var(bank)·d); 10 in the authors' code.
        n_folds: Folds used by :meth:`score_train` (>= 2).

    Attributes:
        gamma_: The fitted γ.
        svm_: The fitted ``sklearn.svm.OneClassSVM``.
    """

    def __init__(self, nu: float = 0.1, gamma_scale: float = 10.0, n_folds: int = 5) -> None:
        if not 0 < nu <= 1:
            raise ValueError(f"ocsvm: nu must be in (0, 1], got {nu}")
        if not gamma_scale > 0:
            raise ValueError(f"ocsvm: gamma_scale must be > 0, got {gamma_scale}")
        if n_folds < 2:
            raise ValueError(f"ocsvm: n_folds must be >= 2, got {n_folds}")
        self.nu = nu
        self.gamma_scale = gamma_scale
        self.n_folds = n_folds

    def _make_svm(self, x: np.ndarray) -> OneClassSVM:
        return OneClassSVM(kernel="rbf", gamma=self.gamma_, nu=self.nu).fit(x)

    def _fit(self, bank: torch.Tensor) -> None:
        if bank.shape[0] < 2 * self.n_folds:
            raise ValueError(
                f"ocsvm needs at least 2 * n_folds = {2 * self.n_folds} training rows,"
                f" got {bank.shape[0]}"
            )
        normed = F.normalize(bank, dim=1)
        self.gamma_ = bank_gamma(normed, self.gamma_scale)
        self.train_ = normed.double().cpu().numpy()
        self.svm_ = self._make_svm(self.train_)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features, dim=1).double().cpu().numpy()
        return torch.from_numpy(-self.svm_.decision_function(x))

    def _score_train(self) -> torch.Tensor:
        fold = np.arange(self.train_.shape[0]) % self.n_folds
        scores = np.empty(self.train_.shape[0])
        for f in range(self.n_folds):
            held = fold == f
            svm = self._make_svm(self.train_[~held])
            scores[held] = -svm.decision_function(self.train_[held])
        return torch.from_numpy(scores)
