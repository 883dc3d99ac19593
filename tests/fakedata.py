"""Tiny datasets written in the real on-disk formats, shared by the tests.

Every class has a distinctive, learnable look: a class-specific colour (or grey level) and stripe
pattern plus mild noise, so a small encoder trained on one class separates it from the others.

Example:
    >>> from fakedata import write_cifar10
    >>> folder = write_cifar10(tmp_path)  # writes tmp_path/cifar-10-batches-py  # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR100_COARSE = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
]  # fmt: skip


def class_images(
    labels: np.ndarray, n_classes: int, size: int, channels: int = 3, seed: int = 0
) -> np.ndarray:
    """(N, size, size, channels) uint8 images whose look depends on the class label.

    Class c gets hue c / n_classes (grey: level 30..230), stripes whose orientation and period
    depend on c, and Gaussian noise of std 6.
    """
    rng = np.random.default_rng(seed)
    images = np.empty((len(labels), size, size, channels), dtype=np.float64)
    grid = np.arange(size)
    for c in range(n_classes):
        if channels == 3:
            base = 255 * np.array(colorsys.hsv_to_rgb(c / n_classes, 0.85, 0.95))
        else:
            base = np.array([30 + 200 * c / max(n_classes - 1, 1)])
        period = 2 + c % 4
        stripes = (grid // period) % 2
        pattern = stripes[:, None] if c % 2 == 0 else stripes[None, :]
        look = base * (0.75 + 0.25 * np.broadcast_to(pattern, (size, size)))[..., None]
        images[labels == c] = look
    images += rng.normal(0.0, 6.0, images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 images -> (N, 3072) channel-planar rows, the official CIFAR order."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def write_cifar_pickle(path: Path, obj: dict[str, Any], bytes_keys: bool = False) -> None:
    """Pickle a CIFAR dict; ``bytes_keys`` gives bytes keys and names, like the Python 2 files."""
    if bytes_keys:
        obj = {key.encode(): _to_bytes(value) for key, value in obj.items()}
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2 if bytes_keys else 4)


def write_cifar10(
    root: Path,
    n_train_per_class: int = 20,
    n_test_per_class: int = 10,
    seed: int = 0,
    bytes_keys: bool = False,
) -> Path:
    """Write ``root/cifar-10-batches-py`` in the official layout; returns that folder."""
    out = Path(root) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y = _labelled_images(10, n_train_per_class, 32, 3, seed)
    test_x, test_y = _labelled_images(10, n_test_per_class, 32, 3, seed + 1)
    parts = np.array_split(np.arange(len(train_y)), 5)
    for b, idx in enumerate(parts, start=1):
        batch = _cifar_batch(train_x[idx], {"labels": train_y[idx]}, f"training batch {b} of 5")
        write_cifar_pickle(out / f"data_batch_{b}", batch, bytes_keys)
    write_cifar_pickle(
        out / "test_batch", _cifar_batch(test_x, {"labels": test_y}, "testing batch 1 of 1"),
        bytes_keys,
    )
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": 10000, "num_vis": 3072}
    write_cifar_pickle(out / "batches.meta", meta, bytes_keys)
    return out


def write_cifar100(
    root: Path,
    n_train_per_class: int = 5,
    n_test_per_class: int = 3,
    seed: int = 0,
    bytes_keys: bool = False,
) -> Path:
    """Write ``root/cifar-100-python/{train,test,meta}``; ``n_*`` count per coarse class."""
    out = Path(root) / "cifar-100-python"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = (("train", n_train_per_class, seed), ("test", n_test_per_class, seed + 1))
    for split, n, split_seed in splits:
        x, coarse = _labelled_images(20, n, 32, 3, split_seed)
        fine = coarse * 5 + rng.integers(0, 5, len(coarse))
        labels = {"fine_labels": fine, "coarse_labels": coarse}
        write_cifar_pickle(out / split, _cifar_batch(x, labels, split), bytes_keys)
    meta = {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": list(CIFAR100_COARSE),
    }
    write_cifar_pickle(out / "meta", meta, bytes_keys)
    return out


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    """Write a uint8 array as an idx file, gzipped if ``path`` ends in ``.gz``.

    ``magic`` overrides the header's magic number (to write corrupt files).
    """
    magic = (0x08 << 8) | array.ndim if magic is None else magic
    data = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(data)


def write_fashion_mnist(
    root: Path,
    n_train_per_class: int = 10,
    n_test_per_class: int = 5,
    seed: int = 0,
    gzipped: bool = False,
    folder: str = ".",
) -> Path:
    """Write the four Fashion-MNIST idx files into ``root/folder``; returns that folder."""
    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gzipped else ""
    splits = (("train", n_train_per_class, seed), ("t10k", n_test_per_class, seed + 1))
    for prefix, n, split_seed in splits:
        x, y = _labelled_images(10, n, 28, 1, split_seed)
        write_idx(out / f"{prefix}-images-idx3-ubyte{suffix}", x[..., 0])
        write_idx(out / f"{prefix}-labels-idx1-ubyte{suffix}", y.astype(np.uint8))
    return out


def write_imagefolder(
    root: Path,
    n_train: int = 8,
    n_test_good: int = 4,
    n_test_defect: int = 4,
    size: int = 24,
    seed: int = 0,
    grey: bool = False,
    suffix: str = ".png",
) -> Path:
    """Write an MVTec-like tree: ``train/good``, ``test/good``, ``test/defect``; returns root."""
    root = Path(root)
    channels = 1 if grey else 3
    folders = (
        ("train/good", n_train, 0),
        ("test/good", n_test_good, 0),
        ("test/defect", n_test_defect, 1),
    )
    for i, (folder, n, label) in enumerate(folders):
        out = root / folder
        out.mkdir(parents=True, exist_ok=True)
        images = class_images(np.full(n, label), 2, size, channels, seed + i)
        for j, image in enumerate(images):
            Image.fromarray(image[..., 0] if grey else image).save(out / f"{j:03d}{suffix}")
    return root


def _labelled_images(
    n_classes: int, per_class: int, size: int, channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled images, ``per_class`` of each class, and their int64 labels."""
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(n_classes), per_class))
    return class_images(labels, n_classes, size, channels, seed), labels.astype(np.int64)


def _cifar_batch(images: np.ndarray, labels: dict[str, np.ndarray], batch_label: str) -> dict:
    batch: dict[str, Any] = {"batch_label": batch_label, "data": cifar_rows(images)}
    batch.update({key: [int(v) for v in value] for key, value in labels.items()})
    batch["filenames"] = [f"img_{i:05d}.png" for i in range(len(images))]
    return batch


def _to_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [_to_bytes(v) for v in value]
    return value
