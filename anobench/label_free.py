"""The label-free numbers of a run: proxies at every evaluation and the calibrated threshold at
the end, all computed without a labelled anomaly (docs/selection.md).

At each evaluation checkpoint and at the end, :func:`evaluation_proxies` gives

- per run: ``rankme`` (of the normal training images' encoder features), ``alignment`` and
  ``uniformity`` (of the normalised projections of two augmented views of up to
  :data:`PAIR_SAMPLE` training images) and ``train_loss`` (the mean loss since the previous
  evaluation; empty at step 0);
- per scorer on plain features (``views = "single"``), with held-out normals only
  (``val_fraction`` > 0): ``val_auroc`` (held-out normals against synthetic anomalies made from
  them, :func:`anobench.proxies.validation_batch`) and ``val_mean_score``. Other scorers, and
  every scorer without held-out normals, leave them empty: :func:`skipped_proxies` says why.

At the end, :func:`calibrated_threshold` sets each scorer's threshold at the target
false-positive rate on the held-out normals' scores, or, without them, on the leave-one-out
scores of the training normals (``Scorer.score_train``), and records which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from anobench.evaluation import FeatureViews
from anobench.models import ContrastiveModel
from anobench.proxies import alignment, rankme, uniformity, val_mean_score, validation_batch
from anobench.scorers import Scorer
from anobench.thresholds import conformal_threshold, min_calibration_scores, rates_at_threshold
from anobench.metrics import auroc

RUN_PROXIES: tuple[str, ...] = ("rankme", "alignment", "uniformity", "train_loss")
SCORER_PROXIES: tuple[str, ...] = ("val_auroc", "val_mean_score")
PROXIES: tuple[str, ...] = SCORER_PROXIES + RUN_PROXIES
"""Every proxy, as named in MLflow metrics (``val_auroc/<scorer>``, ``rankme``), the results CSV
and ``curves.csv``."""
THRESHOLD_COLUMNS: tuple[str, ...] = ("threshold", "threshold_source", "fpr_at_threshold", "tpr_at_threshold")
PAIR_SAMPLE = 512
"""Training images whose two augmented views give alignment and uniformity."""
PAIR_SEED = 0
"""Seed of those views' augmentation: every evaluation of every run sees the same draws."""


def is_proxy_key(key: str) -> bool:
    """Whether a key of an evaluation's metrics is a proxy (``rankme``, ``val_auroc/knn``), not a
    scorer's test AUROC.

    Example:
        >>> is_proxy_key("rankme"), is_proxy_key("val_auroc/knn:k=1"), is_proxy_key("knn:k=1")
        (True, True, False)
    """
    return key in RUN_PROXIES or key.split("/", 1)[0] in SCORER_PROXIES and "/" in key


def proxy_columns(proxies: dict[str, float], spec: str) -> dict[str, float]:
    """The :data:`PROXIES` of one scorer's row (results CSV, ``curves.csv``): the run's proxies
    and the scorer's own; NaN where not computed.

    Example:
        >>> proxy_columns({"rankme": 3.0, "val_auroc/knn": 0.9, "val_auroc/kde": 0.7}, "knn")["val_auroc"]
        0.9
    """
    return {name: proxies.get(name if name in RUN_PROXIES else f"{name}/{spec}", math.nan) for name in PROXIES}


@dataclass
class HeldOut:
    """The held-out normals of a run and the synthetic anomalies made from them.

    Attributes:
        batch: (2N, C, H, W) uint8: the N held-out normals, then one anomaly made from each.
        is_anomaly: (2N,) bool labels of ``batch``.
    """

    batch: torch.Tensor
    is_anomaly: np.ndarray

    @classmethod
    def build(cls, images: torch.Tensor, outliers: str, seed: int) -> HeldOut | None:
        """The held-out set of ``images`` (None when there are none: ``val_fraction`` = 0)."""
        if len(images) == 0:
            return None
        return cls(*validation_batch(images, outliers, seed))


def skipped_proxies(held_out: HeldOut | None, scorer: Scorer) -> str | None:
    """Why a scorer's held-out proxies are empty, or None when they are computed."""
    if held_out is None:
        return "no held-out normals (val_fraction 0)"
    if scorer.views != "single":
        return f"scorer views {scorer.views!r} (held-out proxies use plain features)"
    return None


def evaluation_proxies(
    model: ContrastiveModel,
    views: FeatureViews,
    scorers: dict[str, Scorer],
    held_out: HeldOut | None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    train_loss: float,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every proxy of the model as it is now, the scorers already fitted on ``views.train``.

    Args:
        model: The model, in eval mode.
        views: The evaluation's features (its bank is the normal training images).
        scorers: Fitted scorers by spec.
        held_out: The held-out normals and their synthetic anomalies, or None.
        augment: The training augmentation, ``augment(uint8_images, generator)``.
        train_loss: Mean training loss since the previous evaluation (NaN at step 0).

    Returns:
        The proxies, ``{"rankme": ..., "alignment": ..., "uniformity": ..., "train_loss": ...}``
        plus ``val_auroc/<spec>`` and ``val_mean_score/<spec>`` for the scorers that have them;
        and those scorers' scores of the held-out normals (for :func:`calibrated_threshold`).
    """
    out = {"rankme": rankme(views.train), **_pair_proxies(model, views.train_images, augment),
           "train_loss": train_loss}
    held_out_scores: dict[str, np.ndarray] = {}
    if held_out is not None:
        features = None
        for spec, scorer in scorers.items():
            if skipped_proxies(held_out, scorer) is not None:
                continue
            if features is None:
                features = views.embed(held_out.batch, views.test_transform)
            scores = scorer.decision_function(features)
            held_out_scores[spec] = scores[~held_out.is_anomaly]
            out[f"val_auroc/{spec}"] = auroc(scores, held_out.is_anomaly)
            out[f"val_mean_score/{spec}"] = val_mean_score(held_out_scores[spec])
    return out, held_out_scores


@torch.no_grad()
def _pair_proxies(
    model: ContrastiveModel, images: torch.Tensor, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
) -> dict[str, float]:
    """Alignment and uniformity of two augmented views of the first :data:`PAIR_SAMPLE` images."""
    model.eval()
    device = next(model.parameters()).device
    sample = images[:PAIR_SAMPLE].to(device)
    generator = torch.Generator(device=device).manual_seed(PAIR_SEED)
    z1, z2 = (F.normalize(model.head(model.encoder(augment(sample, generator))).float(), dim=1).cpu()
              for _ in range(2))
    return {"alignment": alignment(z1, z2), "uniformity": uniformity(torch.cat([z1, z2]))}


def calibrated_threshold(
    scorer: Scorer,
    views: FeatureViews,
    held_out_scores: np.ndarray | None,
    test_scores: np.ndarray,
    test_is_anomaly: np.ndarray,
    target_fpr: float,
) -> dict[str, float | str]:
    """The scorer's threshold at ``target_fpr`` and the test rates it gives.

    Calibrated on ``held_out_scores`` (the held-out normals) when given, else on the training
    normals' leave-one-out scores (:meth:`FeatureViews.train_scores`); the test labels only measure the
    realised rates. Empty (NaN) when the calibration set is smaller than
    :func:`~anobench.thresholds.min_calibration_scores` needs.

    Returns:
        :data:`THRESHOLD_COLUMNS`: ``threshold``, ``threshold_source`` (``held-out`` or
        ``train-leave-one-out``), ``fpr_at_threshold`` and ``tpr_at_threshold``.
    """
    source = "held-out" if held_out_scores is not None else "train-leave-one-out"
    calibration = held_out_scores if held_out_scores is not None else views.train_scores(scorer)
    if len(calibration) < min_calibration_scores(target_fpr):
        return {"threshold": math.nan, "threshold_source": source, "fpr_at_threshold": math.nan,
                "tpr_at_threshold": math.nan}
    threshold = conformal_threshold(calibration, target_fpr)
    rates = rates_at_threshold(test_scores, test_is_anomaly, threshold)
    return {"threshold": threshold, "threshold_source": source, **rates}
