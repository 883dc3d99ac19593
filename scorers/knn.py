"""Nearest-neighbour scorers: ``knn`` and ``knn-norm`` (docs/method.md §6).

Both search the L2-normalised training bank with the exact index of :mod:`anobench.knn` (faiss
when installed and the features are on the CPU, chunked torch otherwise).

Self-match rule: leave-one-out. :meth:`~anobench.scorers.Scorer.score_train` scores training
point i against the k nearest of the *other* N - 1 bank rows (index i is excluded; an exact
duplicate of point i elsewhere in the bank still counts).

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> bank = torch.randn(200, 16)
    >>> scorer = get_scorer("knn", k=5).fit(bank)
    >>> scorer.decision_function(torch.randn(3, 16)).shape
    (3,)
    >>> scorer.score_train().shape
    (200,)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from anobench.scorers.base import Scorer
from anobench.scorers.registry import register_scorer

from anobench.knn import DEFAULT_MAX_CHUNK_ELEMENTS, Backend, ExactIndex


def check_k(k: int, n_bank: int, name: str) -> None:
    """Raise ``ValueError`` unless 1 <= k <= n_bank - 1 (room for leave-one-out)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"{name}: k must be a positive integer, got {k!r}")
    if k > n_bank - 1:
        raise ValueError(
            f"{name}: k={k} needs a bank of at least k + 1 = {k + 1} rows, got {n_bank}"
        )


@register_scorer("knn")
class KnnScorer(Scorer):
    """Anomaly score = − mean of the k largest cosine similarities to the training bank.

    Self-match rule: leave-one-out (see the module docstring).

    Args:
        k: Neighbours averaged (5 in the paper's main results, 1 in its ablation).
        backend: kNN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        index_: The exact index over the normalised bank.
    """

    def __init__(
        self,
        k: int = 5,
        backend: Backend = "auto",
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    ) -> None:
        self.k = k
        self.backend = backend
        self.max_chunk_elements = max_chunk_elements

    def _fit(self, bank: torch.Tensor) -> None:
        check_k(self.k, bank.shape[0], type(self).__name__)
        self.index_ = ExactIndex(F.normalize(bank, dim=1), self.backend, self.max_chunk_elements)

    def _similarity(self, features: torch.Tensor) -> torch.Tensor:
        sims, _ = self.index_.search(F.normalize(features, dim=1), self.k)
        return sims.mean(dim=1).to(features.device)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        return -self._similarity(features)

    def _score_train(self) -> torch.Tensor:
        sims, _ = self.index_.search_self(self.k)
        return -sims.mean(dim=1)


@register_scorer("knn-norm")
class KnnNormScorer(KnnScorer):
    """CSI-style kNN × norm: anomaly score = − ‖f(x)‖ · mean of the k largest cosine similarities.

    ‖f(x)‖ is the norm of the raw (unnormalised) encoder feature. With the default k = 1 this is
    CSI's "max similarity × norm".

    Self-match rule: leave-one-out, each training point weighted by its own raw norm.

    Args:
        k: Neighbours averaged (default 1, as in CSI).
        backend: kNN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        index_: The exact index over the normalised bank.
        bank_norms_: (N,) raw norms of the training features.
    """

    def __init__(
        self,
        k: int = 1,
        backend: Backend = "auto",
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    ) -> None:
        super().__init__(k=k, backend=backend, max_chunk_elements=max_chunk_elements)

    def _fit(self, bank: torch.Tensor) -> None:
        super()._fit(bank)
        self.bank_norms_ = bank.norm(dim=1)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        return -self._similarity(features) * features.norm(dim=1)

    def _score_train(self) -> torch.Tensor:
        return super()._score_train() * self.bank_norms_.to(self.index_.bank.device)
