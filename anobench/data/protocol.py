"""The one-class protocol: train on one normal class, test on the whole test split.

Example:
    >>> from anobench.data import load_dataset, one_class_task
    >>> task = one_class_task(load_dataset("digits", image_size=8), "3")
    >>> task.normal_class, int(task.test_is_anomaly.sum()) < len(task.test_is_anomaly)
    (3, True)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from anobench.data.types import Dataset
from anobench.errors import ConfigError


@dataclass
class OneClassTask:
    """Images and anomaly labels of one one-class anomaly-detection task.

    Attributes:
        train_images: (N, 3, S, S) uint8 training images of the normal class only.
        test_images: (M, 3, S, S) uint8 images of the whole test split.
        test_is_anomaly: (M,) bool, True for every test image not of the normal class.
        normal_class: Class id of the normal class.
        normal_class_name: Its name.
    """

    train_images: torch.Tensor
    test_images: torch.Tensor
    test_is_anomaly: torch.Tensor
    normal_class: int
    normal_class_name: str


def resolve_class(dataset: Dataset, normal_class: str | int) -> int:
    """The class id that ``normal_class`` names in ``dataset``.

    Args:
        dataset: The dataset.
        normal_class: A class id (any integral type), a class name, or a class id written as
            a string (as a CLI passes it); a string that is a class name is read as the name.

    Raises:
        ConfigError: If the id is out of range or the name unknown; the message lists the
            valid ids or names.
    """
    names = dataset.class_names
    if isinstance(normal_class, str):
        if normal_class in names:
            return names.index(normal_class)
        if not normal_class.isdecimal():
            raise ConfigError(
                f"unknown class {normal_class!r} in dataset {dataset.name!r}; valid names: "
                f"{', '.join(names)} (or ids 0..{len(names) - 1})"
            )
    elif isinstance(normal_class, bool) or not isinstance(normal_class, numbers.Integral):
        raise ConfigError(f"normal class must be a class id or name, got {normal_class!r}")
    index = int(normal_class)
    if not 0 <= index < len(names):
        raise ConfigError(
            f"class id {normal_class!r} out of range for dataset {dataset.name!r}; "
            f"valid ids: 0..{len(names) - 1}"
        )
    return index


def one_class_task(dataset: Dataset, normal_class: str | int) -> OneClassTask:
    """Build the one-class task whose normal class is ``normal_class``.

    Raises:
        ConfigError: If ``normal_class`` does not resolve (see ``resolve_class``), has no
            training images (e.g. a defect class of an MVTec-like image folder), or the test
            split holds no image of it or no other image (nothing to tell apart).
    """
    index = check_task_class(dataset, normal_class)
    return OneClassTask(
        train_images=dataset.train.images[dataset.train.labels == index],
        test_images=dataset.test.images,
        test_is_anomaly=dataset.test.labels != index,
        normal_class=index,
        normal_class_name=dataset.class_names[index],
    )


def check_task_class(dataset: Dataset, normal_class: str | int) -> int:
    """The class id of ``normal_class``, checked to make a one-class task (see ``one_class_task``).

    Raises:
        ConfigError: As ``one_class_task``.
    """
    index = resolve_class(dataset, normal_class)
    name = dataset.class_names[index]
    if not (dataset.train.labels == index).any():
        with_train = sorted({dataset.class_names[i] for i in dataset.train.labels.tolist()})
        raise ConfigError(
            f"class {name!r} has no training images in dataset {dataset.name!r}; "
            f"classes with training images: {', '.join(with_train)}"
        )
    is_normal = dataset.test.labels == index
    if not is_normal.any():
        raise ConfigError(
            f"the test split of dataset {dataset.name!r} has no image of normal class {name!r}; "
            "a one-class test needs normal and anomalous images"
        )
    if is_normal.all():
        raise ConfigError(
            f"the test split of dataset {dataset.name!r} holds only normal class {name!r}, no "
            "anomalies; a one-class test needs images of other classes too"
        )
    return index
