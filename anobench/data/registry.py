"""The dataset registry: each format module registers its loaders here.

A loader is ``loader(data_root: Path | None, image_size: int) -> Dataset``; ``load_dataset``
resolves the data root and validates ``image_size`` before calling it.
"""

from __future__ import annotations

import os
from pathlib import Path
from anobench.data.types import Dataset
from anobench.errors import ConfigError
from anobench.registry import Registry

DATA_ROOT_ENV = "ANOBENCH_DATA_ROOT"

DATASETS: Registry[Dataset] = Registry("dataset")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    return DATASETS.names()


def resolve_data_root(data_root: str | Path | None) -> Path | None:
    """The data root to use: ``data_root`` if given, else ``$ANOBENCH_DATA_ROOT``, else None.

    An empty string counts as not given, so an empty CLI option or environment variable
    falls through to the next source.
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    from_env = os.environ.get(DATA_ROOT_ENV, "")
    return Path(from_env).expanduser() if from_env else None


def load_dataset(name: str, data_root: str | Path | None = None, image_size: int = 32) -> Dataset:
    """Load and decode a whole dataset once.

    Args:
        name: A name from ``list_datasets()``.
        data_root: Where the dataset lies (see each loader for the layout); defaults to
            ``$ANOBENCH_DATA_ROOT``. Ignored by datasets that need no files ("digits").
        image_size: Side of the square (N, 3, S, S) uint8 images returned.

    Raises:
        UnknownNameError: If ``name`` is not registered.
        ConfigError: If ``image_size`` is not a positive int.
        DataError: If the data is missing, incomplete or unreadable.

    Example:
        >>> ds = load_dataset("digits", image_size=16)
        >>> tuple(ds.train.images.shape[1:]), len(ds.class_names)
        ((3, 16, 16), 10)
    """
    loader = DATASETS.factory(name)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive int, got {image_size!r}")
    return loader(resolve_data_root(data_root), image_size)
