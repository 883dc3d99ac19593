"""Image-level ensembles over several views of each image, and the objective's own head.

The harness reads a scorer's class attribute ``views`` to know what to pass:

``"rotations"`` (``knn-shift``, ``csi``)
    ``fit`` takes a (4, N, F) tensor: the raw encoder features of the N training images rotated
    by 0°, 90°, 180°, 270° (view v = rotation by v·90°). ``decision_function`` takes (4, M, F)
    for the M test images, same view order.
``"rotations-crops"`` (``knn-ens``)
    ``fit`` takes the same (4, N, F) bank (the rotations of the *centre-cropped* training
    images); ``decision_function`` takes (40, M, F): 4 angles × 10 crops, angle-major, so view
    v is angle v // 10 and crop v % 10 (method.md §6: resize 36, centre crop 32, then
    RandomResizedCrop(32, scale 0.55–1)). Each view is scored against its own angle's bank.
``"own-head"`` (``oe-head``)
    ``fit`` ignores its argument; ``decision_function`` takes the objective's own (M,) anomaly
    scores (``objective.own_scores(features)``) and returns them as float64.

``csi`` also needs the shift head: ``decision_function(views, shift_probs=...)`` with
``shift_probs`` of shape (4, M, 4): ``shift_probs[s, m]`` is the shift head's softmax over the 4
rotation classes for test image m rotated by s·90°.

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


class RotationKnnScorer(Scorer):
    """Shared machinery: one exact kNN index per rotation of the bank.

    Subclasses set ``views`` and ``n_views`` (views per image at test time, angle-major).
    """

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

    def fit(self, train_features: ArrayLike) -> RotationKnnScorer:
        """Fit on (4, N, F) raw features of the training images, one rotation per view."""
        bank = as_views(train_features, "train_features", N_ANGLES)
        check_k(self.k, bank.shape[1], type(self).__name__)
        self.indexes_ = [
            ExactIndex(F.normalize(view, dim=1), self.backend, self.max_chunk_elements)
            for view in bank
        ]
        self.bank_norms_ = bank.norm(dim=2)
        self.is_fitted_ = True
        return self

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

    def _views_for_train(self, views: ArrayLike | None) -> torch.Tensor:
        if views is None:
            return torch.stack([index.bank for index in self.indexes_])
        t = as_views(views, "views", self.n_views)
        n_bank = self.indexes_[0].size
        if t.shape[1] != n_bank:
            raise ValueError(f"views must hold one row per bank image ({n_bank}), got {t.shape[1]}")
        return t


@register_scorer("knn-shift")
class KnnShiftScorer(RotationKnnScorer):
    """Shift ensemble s_shift: kNN score of each rotation against its own bank, averaged.

    Anomaly score = − (1/4) Σ_a mean of the k largest cosine similarities of the test image
    rotated by a·90° to the training images rotated by a·90°. ``views = "rotations"``: fit on
    (4, N, F), score (4, M, F). Self-match rule: leave-one-out per angle (module docstring).

    Args:
        k: Neighbours averaged per angle.
        backend: kNN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        indexes_: One exact index per angle over the normalised rotated bank.
    """

    views: ClassVar[str] = "rotations"
    n_views: ClassVar[int] = N_ANGLES

    def decision_function(self, features: ArrayLike) -> np.ndarray:  # type: ignore[override]
        """(M,) float64 anomaly scores of (4, M, F) raw features, one rotation per view."""
        self._check_fitted()
        views = as_views(features, "features", self.n_views)
        return -self._per_view_similarity(views, False).mean(dim=0).double().numpy()

    def score_train(self, views: ArrayLike | None = None) -> np.ndarray:  # type: ignore[override]
        """(N,) leave-one-out scores of the training images (``views``: see module docstring)."""
        self._check_fitted()
        t = self._views_for_train(views)
        return -self._per_view_similarity(t, True).mean(dim=0).double().numpy()


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


@register_scorer("csi")
class CsiScorer(RotationKnnScorer):
    """CSI's detection score with the shift head, as an anomaly score.

    Anomaly score = − (1/4) Σ_s [ max_j cos(f(x_s), f(b_{s,j})) · ‖f(x_s)‖ + p_s(s | x_s) ], with
    x_s the image rotated by s·90°, b_{s,j} the training images rotated likewise, and p_s(s | x_s)
    the shift head's softmax probability of the true shift s.

    ``views = "rotations"``: fit on (4, N, F) raw training features; ``decision_function(
    features, shift_probs)`` with features (4, M, F) and ``shift_probs`` (4, M, 4), the shift
    head's softmax for every rotated test image. Self-match rule: leave-one-out per angle;
    ``score_train(shift_probs, views=None)`` needs the training images' (4, N, 4) shift
    probabilities.

    Args:
        backend: kNN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        indexes_: One exact index per angle over the normalised rotated bank.
        bank_norms_: (4, N) raw norms of the training features.
    """

    views: ClassVar[str] = "rotations"
    n_views: ClassVar[int] = N_ANGLES

    needs_shift_probs: ClassVar[bool] = True
    k: ClassVar[int] = 1  # CSI uses the maximum similarity; not a parameter

    def __init__(
        self, backend: Backend = "auto", max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS
    ) -> None:
        self.backend = backend
        self.max_chunk_elements = max_chunk_elements

    def _combine(
        self, views: torch.Tensor, norms: torch.Tensor, shift_probs: ArrayLike, exclude_self: bool
    ) -> np.ndarray:
        probs = as_views(shift_probs, "shift_probs", N_ANGLES)
        if probs.shape[1:] != (views.shape[1], N_ANGLES):
            raise ValueError(
                f"shift_probs must have shape (4, {views.shape[1]}, 4), got {tuple(probs.shape)}"
            )
        if (probs < 0).any() or (probs.sum(dim=2) - 1).abs().max() > 1e-3:
            raise ValueError("shift_probs must be softmax probabilities (>= 0, rows summing to 1)")
        sims = self._per_view_similarity(views, exclude_self)
        confidence = torch.stack([probs[s, :, s] for s in range(N_ANGLES)]).cpu()
        per_shift = sims * norms.cpu() + confidence
        return -per_shift.mean(dim=0).double().numpy()

    def decision_function(  # type: ignore[override]
        self, features: ArrayLike, shift_probs: ArrayLike
    ) -> np.ndarray:
        """(M,) anomaly scores of (4, M, F) raw features with (4, M, 4) shift probabilities."""
        self._check_fitted()
        views = as_views(features, "features", N_ANGLES)
        return self._combine(views, views.norm(dim=2), shift_probs, exclude_self=False)

    def score_train(  # type: ignore[override]
        self, shift_probs: ArrayLike, views: ArrayLike | None = None
    ) -> np.ndarray:
        """(N,) leave-one-out scores of the training images; shift_probs (4, N, 4)."""
        self._check_fitted()
        if views is None:
            t = torch.stack([index.bank for index in self.indexes_])
            norms = self.bank_norms_
        else:
            t = self._views_for_train(views)
            norms = t.norm(dim=2)
        return self._combine(t, norms, shift_probs, exclude_self=True)


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
