"""The containers every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """One split of a dataset, decoded once and kept in memory.

    Attributes:
        images: (N, 3, S, S) uint8 RGB images; grey sources are replicated to 3 channels.
        labels: (N,) int64 class ids, indices into the owning ``Dataset.class_names``.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        shape = tuple(self.images.shape)
        if self.images.dtype != torch.uint8 or len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"images must be (N, 3, S, S) uint8, got {shape} {self.images.dtype}")
        if self.labels.dtype != torch.int64 or tuple(self.labels.shape) != shape[:1]:
            raise ValueError(
                f"labels must be ({shape[0]},) int64, got {tuple(self.labels.shape)} "
                f"{self.labels.dtype}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """A labelled dataset with a fixed train/test split.

    Attributes:
        name: Registry name of the dataset ("cifar10", ...).
        train: The training split.
        test: The test split.
        class_names: Name of each class id, in id order.
        split: One human-readable line defining the split, recorded with each run.
    """

    name: str
    train: ImageSet
    test: ImageSet
    class_names: list[str]
    split: str

    def class_counts(self) -> dict[str, list[int]]:
        """Images per class id in each split, ``{"train": [...], "test": [...]}``.

        Example:
            >>> from anobench.data import load_dataset
            >>> counts = load_dataset("digits").class_counts()
            >>> sum(counts["train"]) + sum(counts["test"])
            1797
        """
        n = len(self.class_names)
        return {
            split: torch.bincount(images.labels, minlength=n).tolist()
            for split, images in (("train", self.train), ("test", self.test))
        }
