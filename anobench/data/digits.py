"""scikit-learn's bundled handwritten digits: real 8x8 images that need no download.

The 1,797 images (values 0..16) are scaled to 0..255 and upsampled to ``image_size``. The split
is fixed and stratified: ``train_test_split(test_size=0.3, stratify=y, random_state=0)``.

Example:
    >>> from anobench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> len(ds.train), len(ds.test)
    (1257, 540)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from anobench.data.images import to_image_tensor
from anobench.data.registry import register_dataset
from anobench.data.types import Dataset, ImageSet

TEST_SIZE = 0.3
SPLIT_SEED = 0


@register_dataset("digits")
def load_digits_dataset(data_root: Path | None, image_size: int) -> Dataset:
    """Load the digits dataset; ``data_root`` is ignored (the data ships with scikit-learn)."""
    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, labels, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED
    )
    train = ImageSet(to_image_tensor(x_train, image_size), torch.from_numpy(y_train))
    test = ImageSet(to_image_tensor(x_test, image_size), torch.from_numpy(y_test))
    split = (
        f"sklearn load_digits, train_test_split(test_size={TEST_SIZE}, stratify=y, "
        f"random_state={SPLIT_SEED}): {len(train)} train / {len(test)} test"
    )
    return Dataset("digits", train, test, [str(c) for c in range(10)], split)
