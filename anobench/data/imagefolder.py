"""Image folders split into train and test: ``ROOT/{train,test}/<class>/*.{png,jpg,jpeg,bmp}``.

DATA_ROOT is ROOT itself. The class names are the sorted union of the class folders of both
splits, so the training split may hold only some of them: an MVTec AD category
(``train/good``; ``test/good``, ``test/<defect>``...) loads as is, with normal class "good";
its ``ground_truth/`` mask folder is not needed (image-level labels only). Files with other
suffixes and hidden folders are ignored; images of any size or mode are decoded with Pillow,
converted to RGB and resized to ``image_size``.

Example:
    >>> from anobench.data import load_dataset, one_class_task
    >>> ds = load_dataset("imagefolder", "/data/mvtec_anomaly_detection/screw")  # doctest: +SKIP
    >>> task = one_class_task(ds, "good")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anobench.data.images import to_image_tensor
from anobench.data.layout import expand, require_root
from anobench.data.registry import register_dataset
from anobench.data.types import Dataset, ImageSet
from anobench.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("train", "test")
LAYOUT = "DATA_ROOT/{train,test}/<class>/*.{png,jpg,jpeg,bmp}"


@register_dataset("imagefolder")
def load_imagefolder(data_root: Path | None, image_size: int) -> Dataset:
    """Load an image-folder dataset with fixed ``train`` and ``test`` folders."""
    root = require_root("imagefolder", data_root, LAYOUT)
    expected = expand(LAYOUT, root)
    missing = [str(root / split) for split in SPLITS if not (root / split).is_dir()]
    if missing:
        raise DataError(
            f"dataset 'imagefolder': missing {', '.join(missing)}; expected {expected}"
        )
    listings = {split: _list_images(root / split, expected) for split in SPLITS}
    class_names = sorted(set(listings["train"]) | set(listings["test"]))
    train, test = (_image_set(listings[split], class_names, image_size) for split in SPLITS)
    split = (
        f"image folders: {root}/train ({len(train)} images) / {root}/test ({len(test)} images)"
    )
    return Dataset("imagefolder", train, test, class_names, split)


def _list_images(split_dir: Path, expected: str) -> dict[str, list[Path]]:
    """Map each class folder of ``split_dir`` that holds images to its sorted image files."""
    listing = {}
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if class_dir.name.startswith("."):
            continue
        files = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            listing[class_dir.name] = files
    if not listing:
        raise DataError(f"dataset 'imagefolder': no images in {split_dir}; expected {expected}")
    return listing


def _image_set(listing: dict[str, list[Path]], class_names: list[str], image_size: int) -> ImageSet:
    paths = [(class_names.index(name), path) for name, files in listing.items() for path in files]
    images = torch.cat([to_image_tensor(decode_image(path)[None], image_size) for _, path in paths])
    labels = torch.tensor([label for label, _ in paths], dtype=torch.int64)
    return ImageSet(images, labels)


def decode_image(path: Path) -> np.ndarray:
    """Decode one image file to a (3, H, W) uint8 RGB array."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB")).transpose(2, 0, 1)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
