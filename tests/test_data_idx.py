"""Fashion-MNIST loader on tiny idx files written in the official format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_fashion_mnist, write_idx

from anobench.data import load_dataset
from anobench.data.idx import FASHION_MNIST_CLASSES, read_idx
from anobench.errors import DataError


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("folder", [".", "fashion-mnist", "FashionMNIST/raw"])
def test_fashion_mnist_layouts(tmp_path: Path, gzipped: bool, folder: str):
    out = write_fashion_mnist(tmp_path, 2, 1, gzipped=gzipped, folder=folder)
    ds = load_dataset("fashion-mnist", tmp_path, image_size=28)
    suffix = ".gz" if gzipped else ""
    raw_images = read_idx(out / f"t10k-images-idx3-ubyte{suffix}", 3)
    raw_labels = read_idx(out / f"t10k-labels-idx1-ubyte{suffix}", 1)
    assert ds.class_names == FASHION_MNIST_CLASSES
    assert ds.train.images.shape == (20, 3, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.labels.dtype == torch.int64 and ds.test.labels.tolist() == raw_labels.tolist()
    for channel in range(3):  # grey replicated to every channel
        assert np.array_equal(ds.test.images[:, channel].numpy(), raw_images)


def test_fashion_mnist_upsamples(tmp_path: Path):
    write_fashion_mnist(tmp_path, n_train_per_class=1, n_test_per_class=1)
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.test.images.shape == (10, 3, 32, 32)


def test_read_idx_round_trip(tmp_path: Path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(read_idx(tmp_path / "a.gz", 3), array)


def test_missing_files_named(tmp_path: Path):
    out = write_fashion_mnist(tmp_path, 1, 1, folder="fashion-mnist")
    (out / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"folder .*fashion-mnist, missing t10k-labels-idx1-ubyte;"):
        load_dataset("fashion-mnist", tmp_path)


def test_empty_root_names_layout(tmp_path: Path):
    with pytest.raises(DataError, match=r"no data found .*train-images-idx3.*FashionMNIST/raw"):
        load_dataset("fashion-mnist", tmp_path)


def test_bad_magic(tmp_path: Path):
    write_fashion_mnist(tmp_path, n_train_per_class=1, n_test_per_class=1)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10, np.uint8), magic=0x0803)
    message = r"train-labels-idx1-ubyte: wrong idx magic number 0x00000803; expected 0x00000801"
    with pytest.raises(DataError, match=message):
        load_dataset("fashion-mnist", tmp_path)


@pytest.mark.parametrize("keep", [10, 16 + 28 * 28 * 3])
def test_truncated_idx(tmp_path: Path, keep: int):
    write_fashion_mnist(tmp_path, n_train_per_class=1, n_test_per_class=1)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: .*(header|truncated)"):
        load_dataset("fashion-mnist", tmp_path)


def test_corrupt_gzip(tmp_path: Path):
    write_fashion_mnist(tmp_path, n_train_per_class=1, n_test_per_class=1, gzipped=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot read or decompress"):
        load_dataset("fashion-mnist", tmp_path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot read or decompress"):
        load_dataset("fashion-mnist", tmp_path)


def test_label_count_mismatch(tmp_path: Path):
    write_fashion_mnist(tmp_path, n_train_per_class=1, n_test_per_class=1)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 9 labels for the 10 images"):
        load_dataset("fashion-mnist", tmp_path)


def test_label_out_of_range(tmp_path: Path):
    write_fashion_mnist(tmp_path, n_train_per_class=1, n_test_per_class=1)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(10, 12, np.uint8))
    with pytest.raises(DataError, match=r"label 12 outside 0\.\.9"):
        load_dataset("fashion-mnist", tmp_path)
