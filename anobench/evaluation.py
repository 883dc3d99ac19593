"""Scoring of a trained encoder's embeddings with every requested scorer.

Scorers declare the views they need (``Scorer.views``): plain features of the test transform
("single"), the four rotations of each image ("rotations"), four rotations x ten random crops
("rotations-crops"), the objective's own head ("own-head"), or CSI's projections and shift
logits of four rotations x T test-time augmentations ("csi"). :class:`FeatureViews` embeds each
view at most once, only when a scorer asks for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Literal, Protocol, overload

import numpy as np
import torch

from anobench.augment import AugmentRecipe, BatchAugmenter
from anobench.errors import ConfigError
from anobench.metrics import detection_metrics
from anobench.objectives import CSIObjective, Objective
from anobench.scorers import CsiFeatures, Scorer, get_scorer
from anobench.specs import parse_spec

Transform = Callable[[torch.Tensor], torch.Tensor]


class Embed(Protocol):
    """``embed(uint8_images, transform)`` -> (M, F) raw encoder features on the CPU; with
    ``projections=True`` also the (M, D) raw projection-head outputs
    (``anobench.training.embed`` bound to a model)."""

    @overload
    def __call__(self, images: torch.Tensor, transform: Transform) -> torch.Tensor: ...

    @overload
    def __call__(
        self, images: torch.Tensor, transform: Transform, *, projections: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


N_ANGLES = 4
N_CROPS = 10

CSI_VIEW_RECIPE = AugmentRecipe(
    crop_scale=(0.54, 0.54),
    crop_ratio=(3 / 4, 4 / 3),
    jitter=(0.4, 0.4, 0.4, 0.1),
    jitter_p=0.8,
    grayscale_p=0.2,
    blur_p=0.0,
)
"""CSI's test-time augmentation ``simclr_aug`` (alinlab/CSI ``models/classifier.py``
``get_simclr_augmentation``) with the evaluation flags of CSI's README, ``--resize_factor 0.54
--resize_fix``: RandomResizedCrop of area fixed at 0.54 and ratio 3/4-4/3, colour jitter
(0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale with p = 0.2, no blur. Its random horizontal flip
comes before the rotation, so :func:`csi_view` makes it."""

CSI_SEED = 0
"""Seed of the CSI views' augmentations (CSI seeds sample t with t, whatever the run's seed)."""
CSI_BANK_PREFIX = "csi:train:"
"""Names of CSI's training views in :meth:`FeatureViews.train_banks`."""


@dataclass
class ScorerResult:
    """One scorer's anomaly scores on the test set and their metrics.

    Attributes:
        spec: The scorer spec as given ("knn", "knn:k=1", ...).
        scores: (M,) float64 anomaly scores, higher = more anomalous.
        metrics: "auroc", "aupr" and "fpr95".
    """

    spec: str
    scores: np.ndarray
    metrics: dict[str, float]


def build_scorers(specs: list[str]) -> dict[str, Scorer]:
    """Build every scorer from its spec, so bad names fail before any training.

    Raises:
        UnknownNameError: For a scorer name that is not registered.
        ConfigError: For a malformed spec or a duplicate.
    """
    built: dict[str, Scorer] = {}
    for spec in specs:
        if spec in built:
            raise ConfigError(f"scorer {spec!r} is given twice")
        name, params = parse_spec(spec)
        built[spec] = get_scorer(name, **params)
    return built


def check_compatible(scorers: dict[str, Scorer], objective: Objective, feature_dim: int) -> None:
    """Check that the objective provides the heads its scorers read (after ``objective.build``,
    before the objective moves to the training device).

    Raises:
        ConfigError: If a scorer needs an own score or a shift head the objective lacks.
    """
    with torch.no_grad():
        has_own = objective.own_scores(torch.zeros(2, feature_dim)) is not None
    for spec, scorer in scorers.items():
        if scorer.views == "own-head" and not has_own:
            raise ConfigError(f"scorer {spec!r} needs an objective with its own score head (oe)")
        if scorer.views == "csi":
            if not isinstance(objective, CSIObjective):
                raise ConfigError(f"scorer {spec!r} needs an objective with a shift head (csi)")
            if objective.num_shifts != N_ANGLES:
                raise ConfigError(
                    f"scorer {spec!r} scores the {N_ANGLES} rotations, so the csi objective needs "
                    f"num_shifts={N_ANGLES} (shift s = rotation by s x 90 degrees), got "
                    f"{objective.num_shifts}"
                )


def rotate(images: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Rotate (N, C, H, W) images counter-clockwise by ``quarter_turns`` x 90 degrees."""
    return torch.rot90(images, quarter_turns, dims=(2, 3))


def csi_view(
    images: torch.Tensor, quarter_turns: int, augmenter: BatchAugmenter, generator: torch.Generator
) -> torch.Tensor:
    """One of CSI's test-time views of uint8 images (alinlab/CSI ``evals/ood_pre.py``
    ``_get_features``): a random horizontal flip (p = 0.5), the rotation by ``quarter_turns``
    x 90 degrees, then ``augmenter`` (CSI's ``simclr_aug``, :data:`CSI_VIEW_RECIPE`).

    The flip comes first, as in CSI: for 90 and 270 degrees, flipping after the rotation would
    give the other rotation of the mirrored image. Every draw comes from ``generator``.

    Example:
        >>> images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
        >>> augmenter = BatchAugmenter(CSI_VIEW_RECIPE, size=32)
        >>> csi_view(images, 1, augmenter, torch.Generator().manual_seed(0)).shape
        torch.Size([3, 3, 32, 32])
    """
    flip = torch.rand(len(images), generator=generator, device=generator.device) < 0.5
    flipped = torch.where(flip.to(images.device)[:, None, None, None], images.flip(3), images)
    return augmenter(rotate(flipped, quarter_turns), generator)


class FeatureViews:
    """Features of the training and test images in every view, each computed once on demand.

    Args:
        embed: Embeds uint8 images under a transform.
        test_transform: The deterministic test transform (resize, centre crop, normalise).
        crop_transform: A random-crop transform for the crop ensemble.
        train_images: (N, C, H, W) uint8 normal training images (the bank).
        test_images: (M, C, H, W) uint8 test images.
        objective: The trained objective (for own scores and shift logits).
    """

    def __init__(
        self, embed: Embed, test_transform: Transform, crop_transform: Transform,
        train_images: torch.Tensor, test_images: torch.Tensor, objective: Objective,
    ) -> None:
        self.embed, self.test_transform, self.crop_transform = embed, test_transform, crop_transform
        self.train_images, self.test_images, self.objective = train_images, test_images, objective
        self._csi: dict[tuple[str, int], CsiFeatures] = {}

    @cached_property
    def train(self) -> torch.Tensor:
        """(N, F) training features."""
        return self.embed(self.train_images, self.test_transform)

    @cached_property
    def test(self) -> torch.Tensor:
        """(M, F) test features."""
        return self.embed(self.test_images, self.test_transform)

    def _rotations(self, images: torch.Tensor, unrotated: torch.Tensor) -> torch.Tensor:
        rest = [self.embed(rotate(images, k), self.test_transform) for k in range(1, N_ANGLES)]
        return torch.stack([unrotated, *rest])

    @cached_property
    def train_rotations(self) -> torch.Tensor:
        """(4, N, F) training features at 0/90/180/270 degrees."""
        return self._rotations(self.train_images, self.train)

    @cached_property
    def test_rotations(self) -> torch.Tensor:
        """(4, M, F) test features at 0/90/180/270 degrees."""
        return self._rotations(self.test_images, self.test)

    @cached_property
    def test_rotation_crops(self) -> torch.Tensor:
        """(40, M, F) test features, angle-major: view v is angle v // 10, random crop v % 10."""
        return torch.stack([
            self.embed(rotate(self.test_images, k), self.crop_transform)
            for k in range(N_ANGLES) for _ in range(N_CROPS)
        ])

    def csi(self, images: Literal["train", "test"], samples: int) -> CsiFeatures:
        """CSI's (N, 4, T, D) raw projections and (N, 4, T, 4) shift logits of the training or
        test images, rotation s x 90 degrees and augmented sample t (:func:`csi_view`)."""
        key = (images, samples)
        if key not in self._csi:
            source = self.train_images if images == "train" else self.test_images
            self._csi[key] = self._csi_features(source, samples)
        return self._csi[key]

    def train_banks(self) -> dict[str, torch.Tensor]:
        """The training-side features computed so far (what the scorers were fitted on), by name:
        ``train``, ``train_rotations``, and ``csi:train:<samples>:projections`` /
        ``...:shift_logits``; float32, on the CPU. :meth:`restore_train_banks` puts them back."""
        computed = self.__dict__  # cached_property values
        banks: dict[str, Any] = {name: computed[name] for name in ("train", "train_rotations") if name in computed}
        for (images, samples), features in self._csi.items():
            if images == "train":
                banks[f"{CSI_BANK_PREFIX}{samples}:projections"] = torch.as_tensor(features.projections)
                banks[f"{CSI_BANK_PREFIX}{samples}:shift_logits"] = torch.as_tensor(features.shift_logits)
        return {name: tensor.detach().float().cpu().contiguous() for name, tensor in banks.items()}

    def restore_train_banks(self, banks: dict[str, torch.Tensor]) -> None:
        """Use stored :meth:`train_banks` instead of embedding the training images again."""
        for name, bank in banks.items():
            if name.startswith(CSI_BANK_PREFIX):
                samples = int(name[len(CSI_BANK_PREFIX):].split(":")[0])
                self._csi[("train", samples)] = CsiFeatures(
                    banks[f"{CSI_BANK_PREFIX}{samples}:projections"], banks[f"{CSI_BANK_PREFIX}{samples}:shift_logits"])
            else:
                setattr(self, name, bank)  # a cached_property: the stored value replaces the computation

    def _csi_features(self, images: torch.Tensor, samples: int) -> CsiFeatures:
        objective = self.objective
        assert isinstance(objective, CSIObjective)  # check_compatible ran before training
        augmenter = BatchAugmenter(CSI_VIEW_RECIPE, size=images.shape[-1])
        generator = torch.Generator().manual_seed(CSI_SEED)
        projections = logits = torch.empty(0)
        for t in range(samples):
            for s in range(N_ANGLES):
                view = functools.partial(
                    csi_view, quarter_turns=s, augmenter=augmenter, generator=generator
                )
                features, heads = self.embed(images, view, projections=True)
                shift = self._head(objective.shift_logits, features)
                if t == s == 0:  # allocate once the widths are known
                    projections = torch.empty(len(images), N_ANGLES, samples, heads.shape[1])
                    logits = torch.empty(len(images), N_ANGLES, samples, shift.shape[1])
                projections[:, s, t] = heads
                logits[:, s, t] = shift
        return CsiFeatures(projections, logits)

    def _head(self, fn: Callable[[torch.Tensor], torch.Tensor | None], features: torch.Tensor) -> torch.Tensor:
        device = next(self.objective.parameters()).device
        self.objective.eval()
        with torch.no_grad():
            out = fn(features.to(device))
        assert out is not None  # check_compatible ran before training
        return out.float().cpu()

    def inputs(self, scorer: Scorer) -> tuple[Any, Any]:
        """What ``scorer`` is fitted on and what it scores."""
        if scorer.views == "single":
            return self.train, self.test
        if scorer.views == "own-head":
            return self.train, self._head(self.objective.own_scores, self.test)
        if scorer.views == "rotations":
            return self.train_rotations, self.test_rotations
        if scorer.views == "rotations-crops":
            return self.train_rotations, self.test_rotation_crops
        if scorer.views == "csi":
            samples = scorer.get_params()["samples"]
            return self.csi("train", samples), self.csi("test", samples)
        raise ValueError(f"scorer {type(scorer).__name__} asks for unknown views {scorer.views!r}")

    def train_scores(self, scorer: Scorer) -> np.ndarray:
        """``scorer``'s leave-one-out scores of the training images (its self-match rule), given
        what it needs: an own-head scorer scores the head's outputs on the training features;
        every other scorer scores the bank it was fitted on."""
        if scorer.views == "own-head":
            return scorer.score_train(self._head(self.objective.own_scores, self.train))
        return scorer.score_train()


def score_all(
    scorers: dict[str, Scorer], views: FeatureViews, test_is_anomaly: torch.Tensor
) -> list[ScorerResult]:
    """Fit each scorer on the features it needs and score the test images.

    Args:
        scorers: Scorers by spec, from :func:`build_scorers`.
        views: The encoder's features in every view.
        test_is_anomaly: (M,) bool, True for anomalies.
    """
    labels = test_is_anomaly.cpu().numpy()
    results = []
    for spec, scorer in scorers.items():
        bank, queries = views.inputs(scorer)
        scores = scorer.fit(bank).decision_function(queries)
        results.append(ScorerResult(spec, scores, detection_metrics(scores, labels)))
    return results
