"""Dataset loading: every dataset decoded once into (N, 3, S, S) uint8 tensors.

Datasets (``list_datasets()``): "cifar10", "cifar100", "digits", "fashion-mnist",
"imagefolder", "mnist", and those of installed plugins; each format module documents the on-disk
layout it reads, and :mod:`anobench.data.download` fetches the public ones into it. The data root
comes from the ``data_root`` argument, else ``$ANOBENCH_DATA_ROOT``.

Example:
    >>> from anobench.data import load_dataset, one_class_task
    >>> ds = load_dataset("digits", image_size=16)
    >>> task = one_class_task(ds, 0)
    >>> task.train_images.shape[1:], task.train_images.dtype
    (torch.Size([3, 16, 16]), torch.uint8)
"""

# The format modules register their loaders on import.
from anobench.data import cifar, digits, idx, imagefolder  # noqa: F401
from anobench.data.exposure import load_exposure_images
from anobench.data.protocol import OneClassTask, one_class_task, resolve_class
from anobench.data.registry import (
    DATA_ROOT_ENV,
    list_datasets,
    load_dataset,
    register_dataset,
    resolve_data_root,
)
from anobench.data.types import Dataset, ImageSet

__all__ = [
    "DATA_ROOT_ENV",
    "Dataset",
    "ImageSet",
    "OneClassTask",
    "list_datasets",
    "load_exposure_images",
    "load_dataset",
    "one_class_task",
    "register_dataset",
    "resolve_class",
    "resolve_data_root",
]
