"""Composes each training batch: inliers drawn epoch-wise from the normal images plus synthetic
outliers, all as uint8 tensors on the training device, with no per-image Python work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from anobench.objectives import OUTLIER_LABEL, BatchRecipe

OutlierFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``fn(images, generator, choice=None) -> (outlier_images, generator_ids)``."""


@dataclass
class Batch:
    """One composed batch of uint8 images, inliers first.

    Attributes:
        images: (B, C, H, W) uint8.
        labels: (B,) int64; the inlier's class id (0 in the one-class protocol), or
            ``OUTLIER_LABEL`` for outliers.
        generator_ids: (B,) int64; 0 for inliers, the generator id for outliers.
        source_index: (B,) int64; for outliers made from the batch's own inliers, the index of
            that inlier; inliers hold their own index; other outliers hold -1.
    """

    images: torch.Tensor
    labels: torch.Tensor
    generator_ids: torch.Tensor
    source_index: torch.Tensor


class BatchComposer:
    """Draws batches of ``n_inliers`` normal images and ``n_outliers`` synthetic outliers.

    Inliers are drawn without replacement from a fresh permutation each epoch, so every normal
    image is seen once per epoch. Outliers are made by ``outlier_fn`` before augmentation, from
    normal images drawn uniformly at random, or (if ``recipe.outliers_from_inliers``) from the
    batch's own inliers, each inlier getting consecutive generator choices.

    Args:
        normal_images: (N, C, H, W) uint8 normal training images, on the training device.
        n_inliers: Inliers per batch (>= 1).
        n_outliers: Outliers per batch (>= 0).
        outlier_fn: The outlier generator.
        n_generator_choices: How many generators ``outlier_fn`` chooses among (for the
            ``outliers_from_inliers`` recipe, which cycles through them).
        recipe: The objective's batch recipe.
        normal_labels: (N,) ID class of each normal image; zeros if None.
    """

    def __init__(
        self,
        normal_images: torch.Tensor,
        n_inliers: int,
        n_outliers: int,
        outlier_fn: OutlierFn,
        n_generator_choices: int,
        recipe: BatchRecipe,
        normal_labels: torch.Tensor | None = None,
    ) -> None:
        if normal_images.dtype != torch.uint8 or normal_images.ndim != 4:
            raise ValueError(
                f"normal_images must be a (N, C, H, W) uint8 tensor, got {normal_images.dtype} "
                f"of shape {tuple(normal_images.shape)}"
            )
        if len(normal_images) == 0:
            raise ValueError("there are no normal training images")
        if n_inliers < 1 or n_outliers < 0:
            raise ValueError(f"need n_inliers >= 1 and n_outliers >= 0, got {n_inliers}, {n_outliers}")
        self.images = normal_images
        self.device = normal_images.device
        self.labels = (
            torch.zeros(len(normal_images), dtype=torch.long, device=self.device)
            if normal_labels is None
            else normal_labels.to(self.device, torch.long)
        )
        self.n_inliers, self.n_outliers = n_inliers, n_outliers
        self.outlier_fn, self.n_choices, self.recipe = outlier_fn, n_generator_choices, recipe
        self._order = torch.empty(0, dtype=torch.long, device=self.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The position in the current epoch, for checkpoints."""
        return {"order": self._order.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue the epoch a checkpoint stopped in."""
        self._order = state["order"].to(self.device)

    def _next_inliers(self, generator: torch.Generator) -> torch.Tensor:
        parts, needed = [], self.n_inliers
        while needed > 0:
            if len(self._order) == 0:
                self._order = torch.randperm(len(self.images), generator=generator, device=self.device)
            take = self._order[:needed]
            self._order = self._order[needed:]
            parts.append(take)
            needed -= len(take)
        return torch.cat(parts)

    def __call__(self, generator: torch.Generator) -> Batch:
        """Compose the next batch, drawing all randomness from ``generator``."""
        dev = self.device
        inlier_idx = self._next_inliers(generator)
        own_index = torch.arange(self.n_inliers, device=dev)
        if self.n_outliers == 0:
            source = torch.empty(0, dtype=torch.long, device=dev)
            out_images, gen_ids = self.images[:0], source
        elif self.recipe.outliers_from_inliers:
            slot = torch.arange(self.n_outliers, device=dev)
            source = slot % self.n_inliers
            choice = (slot // self.n_inliers) % self.n_choices
            out_images, gen_ids = self.outlier_fn(self.images[inlier_idx[source]], generator, choice=choice)
        else:
            drawn = torch.randint(len(self.images), (self.n_outliers,), generator=generator, device=dev)
            source = torch.full((self.n_outliers,), -1, dtype=torch.long, device=dev)
            out_images, gen_ids = self.outlier_fn(self.images[drawn], generator)
        return Batch(
            images=torch.cat([self.images[inlier_idx], out_images]),
            labels=torch.cat(
                [self.labels[inlier_idx], torch.full((self.n_outliers,), OUTLIER_LABEL, device=dev)]
            ),
            generator_ids=torch.cat([torch.zeros(self.n_inliers, dtype=torch.long, device=dev), gen_ids.to(dev)]),
            source_index=torch.cat([own_index, source]),
        )
