"""Gaussian scorers on L2-normalised features: ``mahalanobis`` and ``gde`` (docs/method.md §6).

Both fit one Gaussian (mean m, covariance Σ) to the normalised training bank; they differ in Σ
and in the score:

- ``mahalanobis``: Σ = Ledoit–Wolf shrinkage of the empirical covariance S,
  (1 − α) S + α (tr S / d) I; score = sqrt((x − m)ᵀ Σ⁻¹ (x − m)).
- ``gde``: Σ = S + reg · I (maximum likelihood plus a ridge); score = the negative
  log-density − log N(x; m, Σ).

S is the maximum-likelihood covariance (divided by N). Computations run in float64 on the CPU.

Self-match rule: exact leave-one-out. :meth:`~anobench.scorers.Scorer.score_train` scores
training point i under the mean and covariance of the *other* N − 1 points (closed form: an
eigendecomposition of S and a Sherman–Morrison update per point, O(N·d²) in all). For
``mahalanobis`` the shrinkage intensity α stays at its full-bank value; the shrunk target
(tr S / d) is recomputed without point i.

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> scorer = get_scorer("mahalanobis").fit(torch.randn(300, 8))
    >>> scorer.decision_function(torch.randn(2, 8)).shape
    (2,)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from anobench.scorers.base import Scorer
from anobench.scorers.registry import register_scorer
from sklearn.covariance import ledoit_wolf_shrinkage

_EIG_FLOOR = 1e-12
"""Eigenvalues of Σ below this fraction of the largest are raised to it (singular Σ)."""


class _GaussianScorer(Scorer):
    """Shared fit of Σ = a·S + (b·tr(S)/d + r)·I and its leave-one-out scores.

    Subclasses set ``_coefficients(x) -> (a, b, r)`` and turn (D², log det Σ) into a score.
    """

    def _coefficients(self, x: np.ndarray) -> tuple[float, float, float]:  # pragma: no cover
        raise NotImplementedError

    def _from_distance(self, d2: np.ndarray, logdet: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _fit(self, bank: torch.Tensor) -> None:
        n = bank.shape[0]
        if n < 3:
            raise ValueError(f"{type(self).__name__} needs at least 3 training rows, got {n}")
        x = F.normalize(bank.double(), dim=1).cpu().numpy()
        self.a_, self.b_, self.r_ = self._coefficients(x)
        self.mean_ = x.mean(axis=0)
        centred = x - self.mean_
        cov = centred.T @ centred / n
        eigval, self.eigvec_ = np.linalg.eigh(cov)
        self.eigval_ = np.clip(eigval, 0.0, None)
        self.trace_ = float(self.eigval_.sum())
        self.sigma_eigvals_ = self._sigma_eigenvalues(self.a_, self.trace_)
        self.projected_train_ = centred @ self.eigvec_

    def _sigma_eigenvalues(self, a: float, trace: float | np.ndarray) -> np.ndarray:
        d = self.eigval_.shape[0]
        target = self.b_ * np.asarray(trace, dtype=np.float64)[..., None] / d + self.r_
        eig = a * self.eigval_ + target
        floor = _EIG_FLOOR * eig.max(axis=-1, keepdims=True)
        return np.maximum(eig, floor)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features.double(), dim=1).cpu().numpy()
        p = (x - self.mean_) @ self.eigvec_
        d2 = (p**2 / self.sigma_eigvals_).sum(axis=1)
        logdet = np.full_like(d2, np.log(self.sigma_eigvals_).sum())
        return torch.from_numpy(self._from_distance(d2, logdet))

    def _score_train(self) -> torch.Tensor:
        n = self.projected_train_.shape[0]
        p = self.projected_train_  # u_i = x_i - m in the eigenbasis of S
        u2 = (p**2).sum(axis=1)
        # S_{-i} = n/(n-1) S - n/(n-1)^2 u_i u_iᵀ, so Σ_{-i} = A_i - c u_i u_iᵀ with A_i
        # diagonal in the eigenbasis of S; x_i - m_{-i} = n/(n-1) u_i.
        trace_loo = n / (n - 1) * self.trace_ - n / (n - 1) ** 2 * u2
        eig_a = self._sigma_eigenvalues(self.a_ * n / (n - 1), trace_loo)
        c = self.a_ * n / (n - 1) ** 2
        q = (p**2 / eig_a).sum(axis=1)
        denom = 1.0 - c * q
        d2 = (n / (n - 1)) ** 2 * q / denom
        logdet = np.log(eig_a).sum(axis=1) + np.log(denom)
        return torch.from_numpy(self._from_distance(d2, logdet))


@register_scorer("mahalanobis")
class MahalanobisScorer(_GaussianScorer):
    """Mahalanobis distance to the training mean under Ledoit–Wolf shrinkage covariance.

    Features are L2-normalised. Self-match rule: exact leave-one-out mean and covariance, the
    shrinkage intensity held at its full-bank value (see the module docstring).

    Attributes:
        mean_: (d,) mean of the normalised bank.
        shrinkage_: Ledoit–Wolf shrinkage intensity α (``sklearn.covariance``).
        eigvec_, sigma_eigvals_: Eigenvectors and eigenvalues of the shrunk covariance Σ.
    """

    def __init__(self) -> None:
        pass

    def _coefficients(self, x: np.ndarray) -> tuple[float, float, float]:
        self.shrinkage_ = float(ledoit_wolf_shrinkage(x, assume_centered=False))
        return 1.0 - self.shrinkage_, self.shrinkage_, 0.0

    def _from_distance(self, d2: np.ndarray, logdet: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(d2, 0.0))


@register_scorer("gde")
class GdeScorer(_GaussianScorer):
    """Gaussian density estimator: anomaly score = − log N(x; m, S + reg·I).

    Features are L2-normalised; S is the maximum-likelihood covariance. The ridge ``reg`` keeps
    Σ invertible when the bank is rank-deficient (contrastive features often are). With the
    same Σ it ranks test points as Mahalanobis distance does; it differs from ``mahalanobis``
    by using no shrinkage. Self-match rule: exact leave-one-out mean and covariance.

    Args:
        reg: Ridge added to the covariance's diagonal (> 0).

    Attributes:
        mean_: (d,) mean of the normalised bank.
        eigvec_, sigma_eigvals_: Eigenvectors and eigenvalues of Σ.
    """

    def __init__(self, reg: float = 1e-6) -> None:
        if not reg > 0:
            raise ValueError(f"gde: reg must be > 0, got {reg}")
        self.reg = reg

    def _coefficients(self, x: np.ndarray) -> tuple[float, float, float]:
        return 1.0, 0.0, float(self.reg)

    def _from_distance(self, d2: np.ndarray, logdet: np.ndarray) -> np.ndarray:
        d = self.eigval_.shape[0]
        return 0.5 * (d2 + logdet + d * np.log(2.0 * np.pi))
