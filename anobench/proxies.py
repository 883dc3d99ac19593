"""Label-free selection proxies: numbers computed without a single labelled anomaly that may
predict test AUROC (docs/selection.md). Whether one does is measured by ``anobench.report.selection``.

- :func:`rankme`: effective rank of the encoder features (Garrido et al., ICML 2023).
- :func:`alignment` and :func:`uniformity`: of the L2-normalised projections (Wang and Isola,
  ICML 2020).
- :func:`val_mean_score`: the mean anomaly score of the held-out normals (SSD's criterion).
- :func:`val_auroc`: AUROC of the held-out normals against synthetic anomalies made from them by
  generators disjoint from the training outliers (:func:`resolve_val_outliers`).

All return Python floats computed in float64.

Example:
    >>> import torch
    >>> round(rankme(torch.eye(4)), 3)
    4.0
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> alignment(z, z), round(uniformity(z), 3)
    (0.0, -4.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from anobench.errors import ConfigError
from anobench.metrics import auroc
from anobench.outliers import DEFAULT_SPEC, get_generator, spec_names
from anobench.scores import Scores, as_scores

RANKME_EPSILON = 1e-7
"""The ε RankMe adds to each normalised singular value (Garrido et al. 2023, for float32)."""

VAL_OUTLIERS = "cutpaste+cutpaste-scar+scramble"
"""Default synthetic anomalies of ``val_auroc`` when training uses none of them (e.g. rotations)."""


def _matrix(x: torch.Tensor, name: str, min_rows: int = 1) -> torch.Tensor:
    """``x`` as a finite float64 (N, F) tensor with N >= ``min_rows``, F >= 1."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an (N, F) tensor, got {got}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(
            f"{name} needs at least {min_rows} row(s) and 1 column, got {tuple(x.shape)}"
        )
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds {int((~torch.isfinite(x)).sum())} non-finite value(s)")
    return x


def _normalise(x: torch.Tensor, name: str) -> torch.Tensor:
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        zero = int((norms == 0).sum())
        raise ValueError(f"{name} has {zero} all-zero row(s); cannot L2-normalise")
    return x / norms


def rankme(features: torch.Tensor, epsilon: float = RANKME_EPSILON) -> float:
    """RankMe: exp(−Σₖ pₖ log pₖ), pₖ = σₖ / ‖σ‖₁ + ε over the min(N, F) singular values σ.

    Higher means the features span more directions (Garrido et al. 2023, eqs. 1-2; features are
    not centred). Between 1 and min(N, F), up to the ε terms; a rank-r matrix with r equal
    singular values gives about r.

    Args:
        features: (N, F) raw encoder features.
        epsilon: ε >= 0 added to every normalised singular value.

    Raises:
        ValueError: If ``features`` is not a finite (N, F) tensor, is all zero, or ``epsilon``
            is negative.

    Example:
        >>> import torch
        >>> z = torch.randn(100, 3) @ torch.randn(3, 16)   # rank 3
        >>> 1 < rankme(z) < 3.001
        True
    """
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    sigma = torch.linalg.svdvals(_matrix(features, "features"))
    total = sigma.sum()
    if total == 0:
        raise ValueError("features are all zero; RankMe is undefined")
    p = sigma / total + epsilon
    # The clamp makes 0 · log 0 = 0 when epsilon is 0 and a singular value vanishes.
    return math.exp(-float((p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum()))


def alignment(view1: torch.Tensor, view2: torch.Tensor, alpha: float = 2.0) -> float:
    """Alignment: mean over i of ‖z₁ᵢ − z₂ᵢ‖₂^α, zᵥᵢ the L2-normalised projection of view v of
    image i (Wang and Isola 2020, α = 2). Lower means two views of an image land closer.

    Args:
        view1, view2: (N, D) projections of two augmented views of the same N images, row i of
            each from the same image; normalised here.
        alpha: Exponent α > 0.

    Raises:
        ValueError: If the views are not finite (N, D) tensors of one shape with no zero row,
            or ``alpha`` <= 0.

    Example:
        >>> import torch
        >>> view1, view2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
        >>> round(alignment(view1, view2), 6)   # ‖(1, 0) − (0, 1)‖² = 2
        2.0
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    z1 = _normalise(_matrix(view1, "view1"), "view1")
    z2 = _normalise(_matrix(view2, "view2"), "view2")
    if z1.shape != z2.shape:
        raise ValueError(
            f"view1 and view2 differ in shape: {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    return float((z1 - z2).norm(dim=1).pow(alpha).mean())


def uniformity(projections: torch.Tensor, t: float = 2.0) -> float:
    """Uniformity: log of the mean over pairs i < j of exp(−t‖zᵢ − zⱼ‖₂²), z the L2-normalised
    projections (Wang and Isola 2020, t = 2). Lower (more negative) means more uniform on the
    sphere; it lies in [−4t, 0], 0 when all projections coincide. It holds all N(N − 1)/2
    distances in memory: pass a subset of a large set.

    Args:
        projections: (N, D) projections, N >= 2; normalised here.
        t: Temperature t > 0 of the Gaussian potential.

    Raises:
        ValueError: If ``projections`` is not a finite (N, D) tensor with N >= 2 and no zero
            row, or ``t`` <= 0.

    Example:
        >>> import torch
        >>> round(uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), 6)   # log exp(−2·4)
        -8.0
    """
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t!r}")
    z = _normalise(_matrix(projections, "projections", min_rows=2), "projections")
    potentials = -t * torch.pdist(z).pow(2)
    return float(torch.logsumexp(potentials, dim=0) - math.log(potentials.numel()))


def val_mean_score(val_scores: Scores) -> float:
    """The mean anomaly score of the held-out normals (SSD's criterion); lower is better.

    Scores of different scorers or feature spaces are on different scales: compare this proxy
    only between runs scored by the same scorer.

    Raises:
        ValueError: If ``val_scores`` is empty, not 1-D or not finite.

    Example:
        >>> val_mean_score([0.0, 0.5, 1.0])
        0.5
    """
    return float(as_scores(val_scores, "val_scores").mean())


def resolve_val_outliers(train_spec: str, val_spec: str | None = None) -> str:
    """The synthetic-anomaly spec of ``val_auroc``, checked disjoint from the training outliers.

    Without ``val_spec``: :data:`VAL_OUTLIERS` if no training generator is among them, else the
    rotations (``rot90+rot180+rot270``) if none of those is.

    Raises:
        ConfigError: If ``val_spec`` shares a generator with ``train_spec`` or neither default
            is disjoint from it (the message names the shared generators).
        UnknownNameError: If a spec names an unregistered generator.

    Example:
        >>> resolve_val_outliers("rot90+rot180+rot270")
        'cutpaste+cutpaste-scar+scramble'
        >>> resolve_val_outliers("cutpaste")
        'rot90+rot180+rot270'
    """
    train = set(spec_names(train_spec))
    if val_spec is not None:
        shared = train & set(spec_names(val_spec))
        if shared:
            raise ConfigError(
                f"val_outliers {val_spec!r} shares {sorted(shared)} with the training outliers "
                f"{train_spec!r}; validation anomalies must come from other generators"
            )
        return val_spec
    for default in (VAL_OUTLIERS, DEFAULT_SPEC):
        if not train & set(default.split("+")):
            return default
    raise ConfigError(
        f"training outliers {train_spec!r} overlap both {VAL_OUTLIERS!r} and {DEFAULT_SPEC!r}; "
        "set val_outliers to generators disjoint from them"
    )


def val_auroc(
    images: torch.Tensor,
    outliers: str,
    score: Callable[[torch.Tensor], Scores],
    seed: int = 0,
) -> float:
    """AUROC of the held-out normals against one synthetic anomaly made from each of them.

    The anomalies come from ``get_generator(outliers)`` on a CPU generator seeded with ``seed``,
    so every checkpoint of a run is validated on the same anomalies. ``score`` is called once,
    on the normals followed by the anomalies.

    Args:
        images: (N, C, H, W) uint8 held-out normal images, N >= 1.
        outliers: Generator spec, e.g. from :func:`resolve_val_outliers`.
        score: Maps (M, C, H, W) uint8 images to M anomaly scores, higher = more anomalous.
        seed: Seed of the synthetic anomalies.

    Raises:
        ValueError: If ``images`` is not a non-empty uint8 batch or ``score`` returns other than
            one finite score per image.
        UnknownNameError: If ``outliers`` names an unregistered generator.

    Example:
        >>> import torch
        >>> images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
        >>> def changed(x):   # score: distance to the nearest held-out normal
        ...     return torch.cdist(x.flatten(1).double(), images.flatten(1).double()).min(1).values
        >>> val_auroc(images, "rot90", changed)
        1.0
    """
    batch, is_anomaly = validation_batch(images, outliers, seed)
    scores = as_scores(score(batch), "score(images)")
    if scores.shape[0] != batch.shape[0]:
        raise ValueError(f"score returned {scores.shape[0]} scores for {batch.shape[0]} images")
    return auroc(scores, is_anomaly)


def validation_batch(images: torch.Tensor, outliers: str, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """The held-out normals followed by one synthetic anomaly made from each (``val_auroc``'s
    images), and their labels (True = synthetic anomaly).

    Raises:
        ValueError: If ``images`` is not a non-empty (N, C, H, W) uint8 batch.
        UnknownNameError: If ``outliers`` names an unregistered generator.

    Example:
        >>> images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
        >>> batch, is_anomaly = validation_batch(images, "rot90")
        >>> batch.shape, is_anomaly.tolist()
        (torch.Size([6, 3, 8, 8]), [False, False, False, True, True, True])
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError("images must be an (N, C, H, W) uint8 tensor")
    if images.shape[0] == 0:
        raise ValueError("val_auroc needs at least one held-out image, got 0")
    anomalies, _ = get_generator(outliers)(images, torch.Generator().manual_seed(seed))
    return torch.cat([images, anomalies]), np.repeat([False, True], images.shape[0])
