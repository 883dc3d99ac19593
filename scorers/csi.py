"""CSI's detection score (Tack et al., NeurIPS 2020), ported from the authors' code.

Source: alinlab/CSI, ``evals/ood_pre.py``: ``eval_ood_detection`` (the training-set statistics
``P.axis``, ``P.weight_sim``, ``P.weight_shi`` for ``--ood_score CSI``), ``get_scores`` (the
score) and ``_get_features`` (the K shifts x T augmented samples of every image). With
``f`` the projection head's raw output (CSI's ``simclr`` layer, not normalised), ``l`` the shift
head's raw logits, K shifts and T augmented samples per image and shift:

    z̄_s(x)  = mean_T f(aug_t(shift_s(x)))                      (CSI: f_sim[shi])
    l̄_s(x)  = mean_T l(aug_t(shift_s(x)))[s]                   (CSI: f_shi[shi][:, shi])
    axis_s  = { z̄_s(x_m) / (‖z̄_s(x_m)‖ + 1e-8) : m training images }     (CSI: P.axis)
    w_sim,s = 1 / mean_m ‖z̄_s(x_m)‖,  w_shi,s = 1 / mean_m l̄_s(x_m)      (CSI: weight_sim, weight_shi)
    CSI(x)  = (1/K) Σ_s [ max_m ⟨z̄_s(x), axis_s[m]⟩ · w_sim,s + l̄_s(x) · w_shi,s ]

The test projection z̄_s(x) is *not* normalised, so the first term is CSI's cosine similarity to
the nearest training image times the test image's norm. The anomaly score is −CSI(x) (higher =
more anomalous). :func:`csi_score` is the formula on arrays; :class:`CsiScorer` (``csi``) is the
same fitted once on the training images. The harness (``anobench.evaluation.FeatureViews``)
embeds the K = 4 rotations x T test-time augmentations of every image (``views = "csi"``).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train_sim, test_sim = rng.normal(size=(20, 4, 2, 8)), rng.normal(size=(5, 4, 2, 8))
    >>> train_shift = rng.normal(loc=3.0, size=(20, 4, 2, 4))
    >>> test_shift = rng.normal(loc=3.0, size=(5, 4, 2, 4))
    >>> csi_score(train_sim, train_shift, test_sim, test_shift).shape
    (5,)
"""

from __future__ import annotations

import warnings
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from anobench.scorers.base import ArrayLike, Scorer
from anobench.scorers.registry import register_scorer

from anobench.knn import DEFAULT_MAX_CHUNK_ELEMENTS, Backend, ExactIndex

DEFAULT_SAMPLES = 10
"""Test-time augmented samples per image and shift (CSI's script uses 10; docs/scorers.md has the
cost on CPU)."""

NORMALIZE_EPS = 1e-8
"""CSI's ``utils.normalize``: x / (‖x‖ + eps)."""


class CsiFeatures(NamedTuple):
    """What CSI's detector reads of N images under K shifts and T augmented samples each.

    Attributes:
        projections: (N, K, T, D) raw projection-head outputs (CSI's ``simclr`` layer).
        shift_logits: (N, K, T, K) raw shift-head logits; ``shift_logits[n, s, t, s]`` is the
            logit of the true shift s.
    """

    projections: ArrayLike
    shift_logits: ArrayLike


def _as_csi_features(x: CsiFeatures, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and average over the T samples: (N, K, D) projections, (N, K) true-shift logits.

    Raises:
        ValueError: On a shape that is not (N, K, T, D) / (N, K, T, K) with matching N, K, T, an
            empty axis, or non-finite values.
    """
    sim, shift = (
        t if t.is_floating_point() else t.double()
        for t in (torch.as_tensor(a).detach() for a in (x.projections, x.shift_logits))
    )
    if sim.ndim != 4 or 0 in sim.shape:
        raise ValueError(
            f"{name} projections must be a non-empty (images, shifts, samples, dim) array, "
            f"got {tuple(sim.shape)}"
        )
    n, k, t, _ = sim.shape
    if tuple(shift.shape) != (n, k, t, k):
        raise ValueError(
            f"{name} shift_logits must have shape (images, shifts, samples, shifts) = "
            f"{(n, k, t, k)}, got {tuple(shift.shape)}"
        )
    if not (torch.isfinite(sim).all() and torch.isfinite(shift).all()):
        raise ValueError(f"{name} holds non-finite values")
    # Average in the input's precision (float32 from the harness: no float64 copy of the
    # (N, K, T, D) stack), then continue in float64.
    true_shift = shift.mean(dim=2).diagonal(dim1=1, dim2=2)
    return sim.mean(dim=2).double(), true_shift.double()


@register_scorer("csi")
class CsiScorer(Scorer):
    """CSI's detector: cosine to the nearest training image per shift, times the norm, plus the
    shift head's true-shift logit, both scaled by training-set means (module docstring).

    ``views = "csi"``: ``fit`` and ``decision_function`` take :class:`CsiFeatures` (or a
    ``(projections, shift_logits)`` pair) of the training and the test images, with the same K
    and D; the harness passes the 4 rotations x ``samples`` augmented samples of each image.
    Anomaly score = −CSI(x). It scores the final model only, not the ``--eval-checkpoints``
    points (``at_checkpoints``): 2 x 4 x T embeddings of every image would multiply a run's
    scoring time by the number of checkpoints. Self-match rule: ``score_train()`` scores each training image
    against the other M − 1 training axes (leave-one-out in the max); the weights keep their
    full-training-set values.

    Args:
        samples: T, the test-time augmented samples per image and shift the harness embeds
            (CSI's ``--ood_samples``); the scorer itself averages whatever T its inputs hold.
        backend: kNN backend of the nearest-axis search: ``"auto"``, ``"torch"``, ``"faiss"``.
        max_chunk_elements: Memory cap of the torch backend's similarity blocks.

    Attributes:
        indexes_: One exact inner-product index per shift over the normalised axes (M, D).
        weight_sim_: (K,) 1 / mean training norm of the averaged projections.
        weight_shi_: (K,) 1 / mean training true-shift logit.
        train_projections_: (M, K, D) averaged training projections (for ``score_train``).
        train_logits_: (M, K) averaged training true-shift logits (for ``score_train``).
    """

    views: ClassVar[str] = "csi"
    at_checkpoints: ClassVar[bool] = False

    def __init__(
        self,
        samples: int = DEFAULT_SAMPLES,
        backend: Backend = "auto",
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    ) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        self.samples = samples
        self.backend = backend
        self.max_chunk_elements = max_chunk_elements

    def fit(self, train: CsiFeatures | tuple[ArrayLike, ArrayLike]) -> CsiScorer:  # type: ignore[override]
        """Compute CSI's training-set statistics (axes and weights) of M training images.

        Raises:
            ValueError: On bad shapes or values, or a zero mean norm or mean logit (CSI's weight
                1 / mean is undefined).
        """
        sim, logits = _as_csi_features(CsiFeatures(*train), "train")
        norms = sim.norm(dim=2)
        mean_norm, mean_logit = norms.mean(dim=0), logits.mean(dim=0)
        if bool((mean_norm == 0).any()):
            raise ValueError("the training projections average to zero norm; CSI's weight_sim is undefined")
        if bool((mean_logit == 0).any()):
            raise ValueError("a shift's mean training logit is 0; CSI's weight_shi = 1 / mean is undefined")
        if bool((mean_logit < 0).any()):
            warnings.warn(
                f"mean training true-shift logits {mean_logit.tolist()} include negative values: "
                "CSI's weight_shi = 1 / mean turns that shift's confidence term around",
                stacklevel=2,
            )
        axes = sim / (norms[..., None] + NORMALIZE_EPS)
        self.indexes_ = [
            ExactIndex(axes[:, s], self.backend, self.max_chunk_elements) for s in range(sim.shape[1])
        ]
        self.weight_sim_ = 1.0 / mean_norm
        self.weight_shi_ = 1.0 / mean_logit
        self.train_projections_, self.train_logits_ = sim, logits
        self.is_fitted_ = True
        return self

    def decision_function(  # type: ignore[override]
        self, test: CsiFeatures | tuple[ArrayLike, ArrayLike]
    ) -> np.ndarray:
        """(N,) float64 anomaly scores −CSI(x) of the N test images' :class:`CsiFeatures`."""
        self._check_fitted()
        sim, logits = _as_csi_features(CsiFeatures(*test), "test")
        return self._scores(sim, logits, exclude_self=False)

    def score_train(self) -> np.ndarray:
        """(M,) anomaly scores of the training images, each against the other M − 1 axes.

        Raises:
            ValueError: With a single training image (no other axis to compare to).
        """
        self._check_fitted()
        if self.indexes_[0].size < 2:
            raise ValueError("score_train needs at least 2 training images (leave-one-out)")
        return self._scores(self.train_projections_, self.train_logits_, exclude_self=True)

    def _scores(self, sim: torch.Tensor, logits: torch.Tensor, exclude_self: bool) -> np.ndarray:
        n_shifts = len(self.indexes_)
        if sim.shape[1:] != (n_shifts, self.indexes_[0].bank.shape[1]):
            raise ValueError(
                f"test projections must hold {n_shifts} shifts of dimension "
                f"{self.indexes_[0].bank.shape[1]} like the training ones, got {tuple(sim.shape[1:])}"
            )
        total = torch.zeros(sim.shape[0], dtype=torch.float64)
        for s, index in enumerate(self.indexes_):
            queries = sim[:, s].to(torch.float32)
            if exclude_self:
                nearest, _ = index.search_self(1, queries)
            else:
                nearest, _ = index.search(queries, 1)
            total += nearest[:, 0].cpu().double() * self.weight_sim_[s] + logits[:, s] * self.weight_shi_[s]
        return -(total / n_shifts).numpy()


def csi_score(
    train_sim: ArrayLike, train_shift: ArrayLike, test_sim: ArrayLike, test_shift: ArrayLike
) -> np.ndarray:
    """CSI's anomaly score −CSI(x) of N test images against M training images.

    Args:
        train_sim: (M, K, T, D) raw projections of the training images, K shifts x T samples.
        train_shift: (M, K, T, K) raw shift logits of the training images.
        test_sim: (N, K, T', D) raw projections of the test images (T' may differ from T).
        test_shift: (N, K, T', K) raw shift logits of the test images.

    Returns:
        (N,) float64, higher = more anomalous (minus CSI's score; module docstring).

    Raises:
        ValueError: On mismatched shapes, non-finite values or undefined weights.

    Example:
        >>> import numpy as np
        >>> train_sim = np.array([[[[3.0, 4.0]]]])          # M = K = T = 1, D = 2: norm 5
        >>> train_shift = np.array([[[[2.0]]]])
        >>> csi_score(train_sim, train_shift, train_sim, train_shift)  # -(5 * 1/5 + 2 * 1/2)
        array([-2.])
    """
    scorer = CsiScorer().fit(CsiFeatures(train_sim, train_shift))
    return scorer.decision_function(CsiFeatures(test_sim, test_shift))
