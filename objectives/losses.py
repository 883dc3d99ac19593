"""The contrastive loss family of docs/method.md §3 as plain torch modules, usable without the harness.

Every loss here is

    ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} log( exp(s(i,p)/τ) / Σ_{a∈A(i)} exp(s(i,a)/τ) ),  L = mean_i ℓ_i

and the losses differ only in the positive set P(i), given to :func:`contrastive_loss` as a
*sample-level* boolean mask ``positives[i, j]`` = "sample j is a positive of anchor i", where
``positives[i, i]`` means "i's own other view". The layout expands it:

- ``pairwise`` (N×N): anchors are view-1 embeddings, candidates all N view-2 embeddings; the
  positives of anchor i are the view-2 embeddings of the samples j with ``positives[i, j]``.
- ``concat`` (2N×2N): anchors and candidates are all 2N embeddings, A(i) excludes i itself;
  the positives of either view of i are both views of every j with ``positives[i, j]``, except
  the anchor itself.

Under ``torch.distributed`` the candidates are gathered from every process (with gradients), the
mask's rows are this process's samples and its columns all samples in rank order (see
:mod:`anobench.distributed`).

Example:
    >>> import torch
    >>> z1 = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    >>> z2 = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    >>> labels = torch.tensor([0, 0, 0, -1, -1, -1])
    >>> FIRMLoss(tau=0.2)(z1, z2, labels).shape
    torch.Size([])
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import torch
from torch import nn

from anobench import distributed

MODES = ("concat", "pairwise")
"""The two loss layouts."""


def check_tau(tau: float) -> float:
    """Return ``tau`` as a float.

    Raises:
        ValueError: If ``tau`` is not a finite number > 0.
    """
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise ValueError(f"tau must be a number > 0, got {tau!r}")
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    return float(tau)


def check_mode(mode: str) -> str:
    """Return ``mode``.

    Raises:
        ValueError: If ``mode`` is not one of :data:`MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def _check_views(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must be (N, D) tensors of the same shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if not z1.is_floating_point() or z1.dtype != z2.dtype:
        raise ValueError(f"z1 and z2 must share one floating dtype, got {z1.dtype}, {z2.dtype}")


def _check_labels(labels: torch.Tensor, n: int) -> None:
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be an (N,) tensor with N = {n}, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


def label_counts(labels: torch.Tensor) -> dict[int, int]:
    """Count of every label value, sorted by label (for error messages)."""
    return dict(sorted(Counter(labels.tolist()).items()))


def contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    positives: torch.Tensor,
    tau: float = 0.2,
    mode: str = "concat",
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The shared contrastive loss of docs/method.md §3 for a sample-level positive mask.

    Computed in at least float32 (float64 inputs stay float64); masked entries are -inf and the
    normaliser a logsumexp, so half-precision inputs neither overflow nor produce NaNs.

    Args:
        z1: (n, D) L2-normalised view-1 embeddings of this process's samples.
        z2: (n, D) L2-normalised view-2 embeddings, same samples and order.
        positives: (n, N) bool; ``positives[i, j]`` = sample j is a positive of anchor i,
            ``positives[i, i]`` = i's other view (see the module docstring). N = n on one
            process, else the total over processes, columns in rank order.
        tau: Temperature τ > 0.
        mode: ``"concat"`` or ``"pairwise"``.
        labels: Optional (N,) labels of all samples, only used to name the label counts in
            the error for a row without positives.

    Returns:
        Scalar loss (mean over this process's anchors) in the computation dtype: float32 for
        half-precision (and float32) inputs, float64 for float64 inputs, as autocast does for
        losses; backward casts the gradients back to the inputs' dtype.

    Raises:
        ValueError: On bad shapes, τ or mode, or if a row of ``positives`` is empty (the message
            names the row and the label counts).
    """
    tau = check_tau(tau)
    check_mode(mode)
    _check_views(z1, z2)
    n = z1.shape[0]
    k1, k2 = distributed.gather(z1), distributed.gather(z2)
    big_n = k1.shape[0]
    offset = distributed.rank() * n
    if positives.shape != (n, big_n):
        raise ValueError(f"positives must be ({n}, {big_n}), got {tuple(positives.shape)}")
    positives = positives.to(device=z1.device, dtype=torch.bool)
    empty = ~positives.any(dim=1)
    if bool(empty.any()):
        row = offset + int(empty.nonzero()[0, 0])
        counts = f"; label counts: {label_counts(labels)}" if labels is not None else ""
        label = f" (label {int(labels[row])})" if labels is not None else ""
        raise ValueError(f"row {row}{label} has no positive{counts}")

    dtype = torch.promote_types(z1.dtype, torch.float32)
    q1, q2, k1, k2 = (t.to(dtype) for t in (z1, z2, k1, k2))
    if mode == "pairwise":
        logits = q1 @ k2.T / tau
        pos = positives
    else:
        logits = torch.cat([q1, q2]) @ torch.cat([k1, k2]).T / tau
        rows = torch.arange(2 * n, device=z1.device)
        own = rows % n + offset + (rows // n) * big_n
        is_self = torch.zeros(2 * n, 2 * big_n, dtype=torch.bool, device=z1.device)
        is_self[rows, own] = True
        logits = logits.masked_fill(is_self, float("-inf"))
        pos = positives.repeat(2, 2) & ~is_self
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos_log_prob = torch.where(pos, log_prob, torch.zeros((), dtype=dtype, device=z1.device))
    per_anchor = -pos_log_prob.sum(dim=1) / pos.sum(dim=1)
    return per_anchor.mean()


def _local_and_global(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """This process's labels, everyone's labels, and the global index of our first sample."""
    everyone = distributed.gather(labels)
    return labels, everyone, distributed.rank() * labels.shape[0]


def _own_view(n: int, big_n: int, offset: int, device: torch.device) -> torch.Tensor:
    """(n, N) mask of each local sample's own column."""
    cols = torch.arange(big_n, device=device)
    return cols[None, :] == (torch.arange(n, device=device) + offset)[:, None]


class _ContrastiveLoss(nn.Module):
    def __init__(self, tau: float = 0.2, mode: str = "concat") -> None:
        super().__init__()
        self.tau = check_tau(tau)
        self.mode = check_mode(mode)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, mode={self.mode!r}"


class NTXentLoss(_ContrastiveLoss):
    """NT-Xent (SimCLR): P(i) = {i⁺}, every sample (inlier or outlier) is its own instance.

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` (2N×2N, default) or ``"pairwise"`` (N×N).

    Example:
        >>> import torch
        >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> float(NTXentLoss(0.2)(z, z)) > 0
        True
    """

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Loss of (N, D) L2-normalised views ``z1``, ``z2``."""
        _check_views(z1, z2)
        n = z1.shape[0]
        big_n = n * distributed.world_size()
        positives = _own_view(n, big_n, distributed.rank() * n, z1.device)
        return contrastive_loss(z1, z2, positives, self.tau, self.mode)


class SupConLoss(_ContrastiveLoss):
    """Supervised contrastive loss: P(i) = every sample with the same label as i.

    With the harness's labels (ID class ≥ 0, outliers -1) an inlier's positives are the
    inliers of its class and an outlier's positives are all outliers (docs/method.md §3, "SupCon").

    Args:
        tau: Temperature τ > 0.
        mode: ``"concat"`` (default) or ``"pairwise"``.
    """

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of (N, D) L2-normalised views and (N,) integer labels."""
        _check_views(z1, z2)
        _check_labels(labels, z1.shape[0])
        mine, everyone, _ = _local_and_global(labels.to(z1.device))
        positives = mine[:, None] == everyone[None, :]
        return contrastive_loss(z1, z2, positives, self.tau, self.mode, labels=everyone)


class FIRMLoss(_ContrastiveLoss):
    """FIRM: inlier positives = all inliers of the same ID class, outlier positive = {i⁺} only.

    Several ID classes are supported (positives are formed within each class). A batch without
    outliers gives inlier anchors no negatives, so the first such batch triggers a warning.

    Args:
        tau: Temperature τ > 0.
        outlier_label: Label of outliers; must be negative (ID classes are ≥ 0).
        mode: ``"concat"`` (default, as the authors' package) or ``"pairwise"`` (the paper).

    Example:
        >>> import torch
        >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> loss = FIRMLoss(tau=0.2, outlier_label=-1, mode="pairwise")
        >>> float(loss(z, z, torch.tensor([0, 0, -1, -1]))) > 0
        True
    """

    def __init__(self, tau: float = 0.2, outlier_label: int = -1, mode: str = "concat") -> None:
        super().__init__(tau, mode)
        if isinstance(outlier_label, bool) or not isinstance(outlier_label, int):
            raise ValueError(f"outlier_label must be a negative int, got {outlier_label!r}")
        if outlier_label >= 0:
            raise ValueError(
                f"outlier_label must be negative (ID classes are >= 0), got {outlier_label}"
            )
        self.outlier_label = outlier_label
        self._warned_no_outlier = False

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, outlier_label={self.outlier_label}"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of (N, D) L2-normalised views and (N,) labels (ID class ≥ 0 or outlier_label)."""
        _check_views(z1, z2)
        _check_labels(labels, z1.shape[0])
        mine, everyone, offset = _local_and_global(labels.to(z1.device))
        is_outlier = everyone == self.outlier_label
        if bool(((everyone < 0) & ~is_outlier).any()):
            raise ValueError(
                f"labels must be ID classes >= 0 or outlier_label={self.outlier_label}; "
                f"label counts: {label_counts(everyone)}"
            )
        if not bool(is_outlier.any()) and not self._warned_no_outlier:
            self._warned_no_outlier = True
            warnings.warn(
                "FIRM batch without outliers: inlier anchors have no negatives, so the loss "
                "has no repulsion term",
                stacklevel=2,
            )
        n = z1.shape[0]
        same_class = (mine[:, None] == everyone[None, :]) & (mine != self.outlier_label)[:, None]
        positives = same_class | _own_view(n, everyone.shape[0], offset, z1.device)
        return contrastive_loss(z1, z2, positives, self.tau, self.mode, labels=everyone)
