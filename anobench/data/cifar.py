"""CIFAR-10 and CIFAR-100 in the official python (pickle) layout.

Accepted layouts, where DATA_ROOT may be the parent folder or the folder itself:

- ``cifar10``: ``DATA_ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``.
- ``cifar100``: ``DATA_ROOT/cifar-100-python/{train,test,meta}``; the 20 coarse superclasses
  (``coarse_labels``, ``coarse_label_names``) are the classes.

Pickles may hold str keys (Python 3 copies, torchvision) or bytes keys (the original Python 2
files read with ``encoding="bytes"``); both are read. Only numpy arrays and plain Python
values are unpickled, so a data file cannot run code.

Example:
    >>> from anobench.data import load_dataset
    >>> ds = load_dataset("cifar10", "/data")  # doctest: +SKIP
    >>> ds.train.images.shape  # doctest: +SKIP
    torch.Size([50000, 3, 32, 32])
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anobench.data.images import to_image_tensor
from anobench.data.layout import find_files, require_root
from anobench.data.registry import register_dataset
from anobench.data.types import Dataset, ImageSet
from anobench.errors import DataError

CIFAR10_LAYOUT = (
    "DATA_ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} "
    "(or those files in DATA_ROOT itself)"
)
CIFAR100_LAYOUT = (
    "DATA_ROOT/cifar-100-python/{train,test,meta} (or those files in DATA_ROOT itself)"
)
_ROW_BYTES = 3 * 32 * 32  # one channel-planar row: the R plane, then G, then B

# The globals a pickled dict of numpy arrays and lists needs, under numpy 1 and 2 module names.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}
_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals of ``_ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        if module.startswith("numpy.core") and _NUMPY_2:
            module = "numpy._core" + module[len("numpy.core") :]  # avoids numpy 2's warning
        return getattr(importlib.import_module(module), name)


@register_dataset("cifar10")
def load_cifar10(data_root: Path | None, image_size: int) -> Dataset:
    """Load CIFAR-10 (official split: 50,000 train in five batches, 10,000 test)."""
    root = require_root("cifar10", data_root, CIFAR10_LAYOUT)
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    files = find_files(
        root,
        "cifar10",
        ("cifar-10-batches-py", "."),
        [*batches, "test_batch", "batches.meta"],
        CIFAR10_LAYOUT,
    )
    meta_path = files["batches.meta"]
    class_names = _str_list(_read_dict(meta_path), "label_names", meta_path)
    train = _image_set([files[b] for b in batches], "labels", len(class_names), image_size)
    test = _image_set([files["test_batch"]], "labels", len(class_names), image_size)
    split = (
        f"official CIFAR-10 split: data_batch_1..5 ({len(train)} train) / "
        f"test_batch ({len(test)} test)"
    )
    return Dataset("cifar10", train, test, class_names, split)


@register_dataset("cifar100")
def load_cifar100(data_root: Path | None, image_size: int) -> Dataset:
    """Load CIFAR-100 with its 20 coarse superclasses (official split: 50,000 / 10,000)."""
    root = require_root("cifar100", data_root, CIFAR100_LAYOUT)
    files = find_files(
        root, "cifar100", ("cifar-100-python", "."), ["train", "test", "meta"], CIFAR100_LAYOUT
    )
    class_names = _str_list(_read_dict(files["meta"]), "coarse_label_names", files["meta"])
    train = _image_set([files["train"]], "coarse_labels", len(class_names), image_size)
    test = _image_set([files["test"]], "coarse_labels", len(class_names), image_size)
    split = (
        f"official CIFAR-100 split, 20 coarse superclasses: train ({len(train)}) / "
        f"test ({len(test)})"
    )
    return Dataset("cifar100", train, test, class_names, split)


def _read_dict(path: Path) -> dict[str, Any]:
    """Unpickle a CIFAR dict; bytes keys are decoded to str."""
    try:
        with open(path, "rb") as fh:
            obj = _NumpyUnpickler(fh, encoding="latin1").load()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    except Exception as exc:  # unpickling corrupt bytes can raise almost any exception type
        raise DataError(
            f"{path}: cannot unpickle ({type(exc).__name__}: {exc}); "
            "the file is truncated or corrupt"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {_as_str(key): value for key, value in obj.items()}


def _image_set(paths: list[Path], label_key: str, n_classes: int, image_size: int) -> ImageSet:
    """Read and concatenate the batches in ``paths`` into one ImageSet."""
    rows, labels = zip(*(_read_batch(path, label_key, n_classes) for path in paths))
    pixels = np.concatenate(rows).reshape(-1, 3, 32, 32)
    return ImageSet(to_image_tensor(pixels, image_size), torch.from_numpy(np.concatenate(labels)))


def _read_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_dict(path)
    data = np.asarray(_get(batch, "data", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW_BYTES:
        raise DataError(
            f"{path}: 'data' is a {data.shape} {data.dtype} array; "
            f"expected (N, {_ROW_BYTES}) uint8 rows"
        )
    labels = np.asarray(_get(batch, label_key, path))
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: {label_key!r} holds {labels.shape} {labels.dtype} values; "
            f"expected {len(data)} integer labels, one per row of 'data'"
        )
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"{path}: {label_key!r} has labels {labels.min()}..{labels.max()} outside "
            f"0..{n_classes - 1}"
        )
    return data, labels


def _str_list(meta: dict[str, Any], key: str, path: Path) -> list[str]:
    names = _get(meta, key, path)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"{path}: {key!r} must be a list of names")
    return [_as_str(n) for n in names]


def _get(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise DataError(f"{path}: missing key {key!r} (keys: {', '.join(map(str, batch))})")
    return batch[key]


def _as_str(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value
