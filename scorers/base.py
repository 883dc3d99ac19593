"""The scorer API (PyOD / scikit-learn convention).

A scorer is fitted on the encoder features of the normal training images (the *bank*) and
returns one anomaly score per row of test features, higher = more anomalous. Scorers receive the
*raw* encoder features f(x) and L2-normalise them themselves where the method says so (kNN x norm
needs the raw norm). Parameters are plain constructor arguments stored unchanged; fitted
attributes end in ``_``; scoring before ``fit`` raises :class:`NotFittedError`.

Every scorer states its *self-match rule* and implements it in :meth:`Scorer.score_train`: the
anomaly scores of the training points themselves, each scored as if it were not in the bank.

The class attribute ``views`` tells the harness what to pass: ``"single"`` (one (N, F) / (M, F)
feature matrix), ``"rotations"`` or ``"rotations-crops"`` (per-view stacks, see
``anobench.scorers.ensemble``) or ``"own-head"`` (the objective's own scores).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from anobench.errors import AnobenchError

ArrayLike = np.ndarray | torch.Tensor


class NotFittedError(AnobenchError, RuntimeError):
    """A scorer was used before ``fit``."""


class Scorer:
    """Base class of embedding scorers.

    Subclasses implement ``_fit(bank)`` and ``_score(features)`` on float32 torch tensors and
    document their self-match rule (how a training point scores against a bank holding it)
    by implementing ``_score_train()``.
    """

    views: ClassVar[str] = "single"
    at_checkpoints: ClassVar[bool] = True
    """False for a scorer too costly to run at every ``--eval-checkpoints`` point: it scores the
    final model only and has no AUROC curve (``csi``, whose views cost 2 x 4 x T embeddings of
    every image)."""

    def fit(self, train_features: ArrayLike) -> "Scorer":
        """Fit on the (N, F) raw features of the normal training images; returns self."""
        self._fit(as_features(train_features, "train_features"))
        self.is_fitted_ = True
        return self

    def decision_function(self, features: ArrayLike) -> np.ndarray:
        """(M,) float64 anomaly scores of (M, F) raw features; higher = more anomalous."""
        self._check_fitted()
        scores = self._score(as_features(features, "features"))
        return scores.detach().to(torch.float64).cpu().numpy()

    def score_train(self) -> np.ndarray:
        """(N,) float64 anomaly scores of the training points, self-match excluded.

        Each scorer's docstring states how (e.g. leave-one-out for kNN).
        """
        self._check_fitted()
        return self._score_train().detach().to(torch.float64).cpu().numpy()

    def _check_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as stored."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def _fit(self, bank: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_train(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def as_features(x: ArrayLike, name: str) -> torch.Tensor:
    """Convert an (N, F) array or tensor to a float32 torch tensor, validating its shape.

    Raises:
        ValueError: If ``x`` is not two-dimensional, is empty, or holds non-finite values.
    """
    t = torch.as_tensor(x).detach()
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (rows, features) array, got shape {tuple(t.shape)}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds non-finite values")
    return t
