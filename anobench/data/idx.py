"""Fashion-MNIST and MNIST in the official idx format.

The four files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz``; a raw
file wins when both exist), are looked for in this order, the first folder holding all four
being used: ``DATA_ROOT``, ``DATA_ROOT/fashion-mnist``, ``DATA_ROOT/FashionMNIST/raw``
(torchvision's layout); for MNIST ``DATA_ROOT``, ``DATA_ROOT/mnist``, ``DATA_ROOT/MNIST/raw``.
``anobench data download fashion-mnist --root DATA_ROOT`` writes the second of these. The 28x28
grey images are replicated to 3 channels.

Example:
    >>> from anobench.data import load_dataset
    >>> ds = load_dataset("fashion-mnist", "/data", image_size=32)  # doctest: +SKIP
    >>> ds.class_names[0]  # doctest: +SKIP
    'T-shirt/top'
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from anobench.data.images import to_image_tensor
from anobench.data.layout import find_files, require_root
from anobench.data.registry import register_dataset
from anobench.data.types import Dataset, ImageSet
from anobench.errors import DataError

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

MNIST_CLASSES = [str(digit) for digit in range(10)]

FILES = [
    f"{prefix}-{kind}"
    for prefix in ("train", "t10k")
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
]
_UBYTE = 0x08  # idx type code of unsigned bytes, the third byte of the magic number


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an idx file of unsigned bytes with ``ndim`` dimensions, raw or gzipped.

    Raises:
        DataError: If the file cannot be read or decompressed, its magic number is not that of
            an ``ndim``-dimensional ubyte array, or its size does not match its header.
    """
    raw = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes, shorter than the {header}-byte idx header")
    magic = int.from_bytes(raw[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise DataError(
            f"{path}: wrong idx magic number 0x{magic:08x}; expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimensions)"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise DataError(
            f"{path}: {len(raw) - header} data bytes, expected {math.prod(dims)} for shape "
            f"{dims}; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


@register_dataset("fashion-mnist")
def load_fashion_mnist(data_root: Path | None, image_size: int) -> Dataset:
    """Load Fashion-MNIST (official split: 60,000 train / 10,000 t10k test)."""
    return load_idx_dataset(
        "fashion-mnist", "Fashion-MNIST", ("fashion-mnist", "FashionMNIST/raw"),
        FASHION_MNIST_CLASSES, data_root, image_size,
    )


@register_dataset("mnist")
def load_mnist(data_root: Path | None, image_size: int) -> Dataset:
    """Load MNIST (official split: 60,000 train / 10,000 t10k test); classes "0".."9"."""
    return load_idx_dataset(
        "mnist", "MNIST", ("mnist", "MNIST/raw"), MNIST_CLASSES, data_root, image_size
    )


def load_idx_dataset(
    name: str,
    title: str,
    folders: tuple[str, ...],
    class_names: list[str],
    data_root: Path | None,
    image_size: int,
) -> Dataset:
    """Load a dataset of the four official idx files from ``data_root`` or one of ``folders``.

    Args:
        name: The registry name, for messages and the returned dataset.
        title: The dataset's usual spelling, for the split description.
        folders: Folders under ``data_root`` to look in after ``data_root`` itself, in order.
        class_names: Name of each label value.
        data_root: The resolved data root.
        image_size: Side of the square images returned.

    Raises:
        DataError: If no folder holds all four files, or one is unreadable or inconsistent.
    """
    layout = (
        f"{{{','.join(FILES)}}}[.gz] in DATA_ROOT, "
        + " or ".join(f"DATA_ROOT/{folder}" for folder in folders)
    )
    root = require_root(name, data_root, layout)
    files = find_files(root, name, (".", *folders), FILES, layout, suffixes=("", ".gz"))
    train, test = (
        _image_set(
            files[f"{s}-images-idx3-ubyte"], files[f"{s}-labels-idx1-ubyte"], len(class_names),
            image_size,
        )
        for s in ("train", "t10k")
    )
    split = f"official {title} split: train ({len(train)}) / t10k ({len(test)} test)"
    return Dataset(name, train, test, list(class_names), split)


def _image_set(images_path: Path, labels_path: Path, n_classes: int, image_size: int) -> ImageSet:
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1).astype(np.int64)
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}"
        )
    if len(labels) and labels.max() >= n_classes:
        raise DataError(f"{labels_path}: label {labels.max()} outside 0..{n_classes - 1}")
    return ImageSet(to_image_tensor(images, image_size), torch.from_numpy(labels))


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read or decompress ({exc})") from exc
