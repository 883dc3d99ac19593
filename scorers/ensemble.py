"""Image-level ensembles over several views of each image, and the objective's own head.

The harness reads a scorer's class attribute ``views`` to know what to pass:

``"rotations"`` (``knn-shift``)
    ``fit`` takes a (4, N, F) tensor: the raw encoder features of the N training images rotated
    by 0°, 90°, 180°, 270° (view v = rotation by v·90°). ``decision_function`` takes (4, M, F)
    for the M test images, same view order.
``"rotations-crops"`` (``knn-ens``)
    ``fit`` takes the same (4, N, F) bank (the rotations of the *centre-cropped* training
    images); ``decision_function`` takes (40, M, F): 4 angles × 10 crops, angle-major, so view
    v is angle v // 10 and crop v % 10 (docs/method.md §6: resize 36, centre crop 32, then
    RandomResizedCrop(32, scale 0.55–1)). Each view is scored against its own angle's bank.
``"own-head"`` (``oe-head``)
    ``fit`` ignores its argument; ``decision_function`` takes the objective's own (M,) anomaly
    scores (``objective.own_scores(features)``) and returns them as float64.

CSI's detector, which reads projections and shift logits instead, is ``anobench.scorers.csi``.

Self-match rule (the rotation scorers): leave-one-out per view. ``score_train(views=None)``
scores training image n's views against each angle's bank with bank row n (image n's own
feature at that angle) excluded; ``views=None`` uses the bank's own views, otherwise pass
(V, N, F) views of the training images in bank order (e.g. the 40 crops for ``knn-ens``).

Example:
    >>> import torch
    >>> from anobench.scorers import get_scorer
    >>> scorer = get_scorer("knn-shift", k=1).fit(torch.randn(4, 50, 8))
    >>> scorer.views, scorer.decision_function(torch.randn(4, 3, 8)).shape
    ('rotations', (3,))
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from anobench.scorers.base import ArrayLike, Scorer
from anobench.scorers.knn import check_k
from anobench.scorers.registry import register_scorer

from anobench.knn import DEFAULT_MAX_CHUNK_ELEMENTS, Backend, ExactIndex

N_ANGLES = 4
"""Rotations by 0°, 90°, 180°, 270°."""


def as_views(x: ArrayLike, name: str, n_views: int | None = None) -> torch.Tensor:
    """Convert a (V, N, F) per-view stack to float32 torch, validating shape and values.

    Raises:
        ValueError: If ``x`` is not a non-empty 3-D array, has the wrong number of views, or
            holds non-finite values.
    """
    t = torch.as_tensor(x).detach()
    if t.ndim != 3 or 0 in t.shape:
        raise ValueError(
            f"{name} must be a non-empty 3-D (views, rows, features) array, got {tuple(t.shape)}"
        )
    if n_views is not None and t.shape[0] != n_views:
        raise ValueError(f"{name} must hold {n_views} views, got {t.shape[0]}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds non-finite values")
    return t


@register_scorer("knn-shift")
class KnnShiftScorer(Scorer):
    """Shift ensemble s_shift: kNN score of each rotation against its own bank, averaged.

    Anomaly score = − (1/4) Σ_a mean of the k largest cosine similarities of the test image
    rotated by a·90° to the training images rotated by a·90°. ``views = "rotations"``: fit on
    (4, N, F), score (4, M, F). Self-match rule: leave-one-out per angle (module docstring).
    ``knn-ens`` reuses it with ``n_views`` = 40 test views per image (angle-major).

    Args:
        k: Neighbours averaged per angle.
        backend: kNN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        indexes_: One exact index per angle over the normalised rotated bank.
    """

    views: ClassVar[str] = "rotations"
    n_views: ClassVar[int] = N_ANGLES

    def __init__(
        self,
        k: int = 5,
        backend: Backend = "auto",
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    ) -> None:
        self.k = k
        self.backend = backend
        self.max_chunk_elements = max_chunk_elements

    def fit(self, train_features: ArrayLike) -> KnnShiftScorer:
        """Fit on (4, N, F) raw features of the training images, one rotation per view."""
        bank = as_views(train_features, "train_features", N_ANGLES)
        check_k(self.k, bank.shape[1], type(self).__name__)
        self.indexes_ = [
            ExactIndex(F.normalize(view, dim=1), self.backend, self.max_chunk_elements)
            for view in bank
        ]
        self.is_fitted_ = True
        return self

    def decision_function(self, features: ArrayLike) -> np.ndarray:  # type: ignore[override]
        """(M,) float64 anomaly scores of (n_views, M, F) raw features, angle-major."""
        self._check_fitted()
        views = as_views(features, "features", self.n_views)
        return -self._per_view_similarity(views, False).mean(dim=0).double().numpy()

    def score_train(self, views: ArrayLike | None = None) -> np.ndarray:  # type: ignore[override]
        """(N,) leave-one-out scores of the training images (``views``: see module docstring)."""
        self._check_fitted()
        if views is None:
            t = torch.stack([index.bank for index in self.indexes_])
        else:
            t = as_views(views, "views", self.n_views)
            n_bank = self.indexes_[0].size
            if t.shape[1] != n_bank:
                raise ValueError(
                    f"views must hold one row per bank image ({n_bank}), got {t.shape[1]}"
                )
        return -self._per_view_similarity(t, True).mean(dim=0).double().numpy()

    def _per_view_similarity(self, views: torch.Tensor, exclude_self: bool) -> torch.Tensor:
        """(V, M) mean top-k cosine similarity of every view to its angle's bank."""
        per_angle = views.shape[0] // N_ANGLES
        out = []
        for v, feats in enumerate(views):
            index = self.indexes_[v // per_angle]
            q = F.normalize(feats, dim=1)
            if exclude_self:
                sims, _ = index.search_self(self.k, q)
            else:
                sims, _ = index.search(q, self.k)
            out.append(sims.mean(dim=1).cpu())
        return torch.stack(out)


@register_scorer("knn-ens")
class KnnEnsembleScorer(KnnShiftScorer):
    """Crop ensemble s_ens: 4 angles × 10 crops, each scored against its angle's bank, averaged.

    ``views = "rotations-crops"``: fit on the (4, N, F) rotations of the centre-cropped
    training images; score (40, M, F), angle-major (view v = angle v // 10, crop v % 10).
    Self-match rule: leave-one-out per view; ``score_train()`` without views scores the bank's
    own 4 centre-crop views, ``score_train(views)`` takes (40, N, F) training views.

    Args:
        k: Neighbours averaged per view.
        backend: kNN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        indexes_: One exact index per angle over the normalised rotated centre-crop bank.
    """

    views: ClassVar[str] = "rotations-crops"
    n_views: ClassVar[int] = N_ANGLES * 10


@register_scorer("oe-head")
class OwnHeadScorer(Scorer):
    """The objective's own score (e.g. the OE head's outlier logit), passed through.

    ``views = "own-head"``: the harness calls ``fit(anything)`` (ignored; there is no bank) and
    ``decision_function(objective.own_scores(features))`` with the (M,) own scores, already
    oriented higher = more anomalous; they come back as float64. Self-match rule: none applies
    (no bank); ``score_train(own_scores)`` returns the head's scores of the training images.
    """

    views: ClassVar[str] = "own-head"

    def __init__(self) -> None:
        pass

    def fit(self, train_features: object = None) -> OwnHeadScorer:
        """No-op (there is no bank); returns self."""
        self.is_fitted_ = True
        return self

    @staticmethod
    def _own(scores: ArrayLike) -> np.ndarray:
        s = torch.as_tensor(scores).detach().to(torch.float64).cpu().numpy()
        if s.ndim != 1 or s.shape[0] == 0:
            raise ValueError(f"own scores must be a non-empty 1-D array, got shape {s.shape}")
        if not np.isfinite(s).all():
            raise ValueError("own scores hold non-finite values")
        return s.copy()

    def decision_function(self, features: ArrayLike) -> np.ndarray:
        """The (M,) own scores of the objective's head, validated, as float64."""
        self._check_fitted()
        return self._own(features)

    def score_train(self, own_scores: ArrayLike) -> np.ndarray:  # type: ignore[override]
        """The head's (N,) own scores of the training images, as float64."""
        self._check_fitted()
        return self._own(own_scores)
