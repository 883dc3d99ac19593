"""The Outlier Exposure image set: real images used as training outliers (docs/method.md §3-§4).

A source is either a registered dataset name (its training split is used, read from the run's
data root) or a folder searched recursively for image files.

Example:
    >>> images = load_exposure_images("digits", None, image_size=16)
    >>> images.dtype, images.shape[1:]
    (torch.uint8, torch.Size([3, 16, 16]))
"""

from __future__ import annotations

from pathlib import Path

import torch

from anobench.data.imagefolder import IMAGE_SUFFIXES, decode_image
from anobench.data.images import to_image_tensor
from anobench.data.registry import list_datasets, load_dataset
from anobench.errors import DataError


def load_exposure_images(source: str, data_root: str | Path | None, image_size: int) -> torch.Tensor:
    """Load the Outlier Exposure images as an (N, 3, S, S) uint8 tensor.

    Args:
        source: A dataset name (``list_datasets()``) or a folder of image files.
        data_root: Data root for a dataset-name source (else ``$ANOBENCH_DATA_ROOT``).
        image_size: Side S the images are resized to.

    Raises:
        DataError: If the folder does not exist or holds no image file.
    """
    if source in list_datasets():
        return load_dataset(source, data_root, image_size).train.images
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(
            f"Outlier Exposure source {source!r} is neither a dataset ({', '.join(list_datasets())}) "
            "nor an existing folder"
        )
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"Outlier Exposure folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    return torch.cat([to_image_tensor(decode_image(path)[None], image_size) for path in files])
