"""CIFAR-10 / CIFAR-100 loaders on tiny datasets written in the official pickle layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import (
    CIFAR10_CLASSES,
    CIFAR100_COARSE,
    cifar_rows,
    write_cifar10,
    write_cifar100,
    write_cifar_pickle,
)

from anobench.data import load_dataset
from anobench.errors import DataError


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        obj = pickle.load(fh, encoding="bytes")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


@pytest.mark.parametrize("bytes_keys", [False, True])
@pytest.mark.parametrize("root_is_folder", [False, True])
def test_cifar10_loads_official_layout(tmp_path: Path, bytes_keys: bool, root_is_folder: bool):
    folder = write_cifar10(tmp_path, 3, 2, bytes_keys=bytes_keys)
    ds = load_dataset("cifar10", folder if root_is_folder else tmp_path)
    assert ds.name == "cifar10" and ds.class_names == CIFAR10_CLASSES
    assert ds.train.images.shape == (30, 3, 32, 32) and ds.test.images.shape == (20, 3, 32, 32)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    train_labels = np.concatenate(
        [_unpickle(folder / f"data_batch_{i}")["labels"] for i in range(1, 6)]
    )
    assert ds.train.labels.tolist() == train_labels.tolist()
    test = _unpickle(folder / "test_batch")
    assert ds.test.labels.tolist() == list(test["labels"])
    assert np.array_equal(ds.test.images.numpy().reshape(20, -1), test["data"])
    assert "30 train" in ds.split and "20 test" in ds.split


def test_cifar_rows_are_channel_planar(tmp_path: Path):
    write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    folder = tmp_path / "cifar-10-batches-py"
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 0, 1] = (10, 20, 30)  # pixel (row 0, column 1): R, G, B
    image[0, 31, 0, 2] = 99  # blue at (row 31, column 0)
    batch = {"batch_label": "x", "labels": [4], "data": cifar_rows(image), "filenames": ["a"]}
    write_cifar_pickle(folder / "test_batch", batch)
    got = load_dataset("cifar10", tmp_path).test.images[0]
    assert got[:, 0, 1].tolist() == [10, 20, 30]
    assert got[2, 31, 0] == 99 and int(got.sum()) == 10 + 20 + 30 + 99


def test_cifar10_resizes_and_keeps_flat_colours(tmp_path: Path):
    write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    folder = tmp_path / "cifar-10-batches-py"
    flat = np.empty((2, 32, 32, 3), dtype=np.uint8)
    flat[0], flat[1] = (200, 100, 0), (1, 2, 3)
    batch = {"labels": [0, 1], "data": cifar_rows(flat)}
    write_cifar_pickle(folder / "test_batch", batch)
    for size in (16, 48):
        images = load_dataset("cifar10", tmp_path, image_size=size).test.images
        assert images.shape == (2, 3, size, size)
        assert images[0].flatten(1).unique(dim=1).tolist() == [[200], [100], [0]]
        assert images[1].flatten(1).unique(dim=1).tolist() == [[1], [2], [3]]


def test_fake_cifar10_classes_are_separable(tmp_path: Path):
    """Nearest mean colour, fitted on train, classifies every test image correctly."""
    ds = load_dataset("cifar10", write_cifar10(tmp_path))
    train_colours = ds.train.images.float().mean(dim=(2, 3))
    centroids = torch.stack([train_colours[ds.train.labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(ds.test.images.float().mean(dim=(2, 3)), centroids).argmin(1)
    assert (predicted == ds.test.labels).all()


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar100_uses_coarse_labels(tmp_path: Path, bytes_keys: bool):
    folder = write_cifar100(tmp_path, 2, 1, bytes_keys=bytes_keys)
    ds = load_dataset("cifar100", tmp_path, image_size=8)
    assert ds.class_names == CIFAR100_COARSE
    assert ds.train.images.shape == (40, 3, 8, 8) and ds.test.images.shape == (20, 3, 8, 8)
    assert ds.train.labels.tolist() == list(_unpickle(folder / "train")["coarse_labels"])
    assert sorted(ds.test.labels.tolist()) == list(range(20))
    assert load_dataset("cifar100", folder, image_size=8).test.labels.equal(ds.test.labels)


def test_cifar10_missing_folder_names_layout(tmp_path: Path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py/\{data_batch_1\.\.5,test_batch"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_missing_file_is_named(tmp_path: Path):
    folder = write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=r"incomplete folder .*batches-py, missing test_batch;"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_missing_file_is_named(tmp_path: Path):
    folder = write_cifar100(tmp_path, n_train_per_class=1, n_test_per_class=1)
    (folder / "meta").unlink()
    with pytest.raises(DataError, match=r"missing meta; expected .*-python/\{train,test,meta\}"):
        load_dataset("cifar100", tmp_path)


def test_truncated_pickle_is_reported(tmp_path: Path):
    folder = write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"data_batch_3: cannot unpickle .*truncated or corrupt"):
        load_dataset("cifar10", tmp_path)


def test_pickle_with_foreign_global_is_refused(tmp_path: Path):
    folder = write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": Path("x")}, fh)
    with pytest.raises(DataError, match=r"test_batch: cannot unpickle .*forbidden global"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"labels": [0], "data": np.zeros((1, 3000), np.uint8)}, r"expected \(N, 3072\) uint8"),
        ({"labels": [0], "data": np.zeros((1, 3072), np.float32)}, r"expected \(N, 3072\) uint8"),
        ({"labels": [0, 1], "data": np.zeros((1, 3072), np.uint8)}, r"expected 1 integer labels"),
        ({"labels": [10], "data": np.zeros((1, 3072), np.uint8)}, r"outside 0\.\.9"),
        ({"labels": [0]}, r"missing key 'data'"),
    ],
)
def test_bad_batch_contents(tmp_path: Path, batch: dict, message: str):
    folder = write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    write_cifar_pickle(folder / "test_batch", batch)
    with pytest.raises(DataError, match=rf"test_batch: .*{message}"):
        load_dataset("cifar10", tmp_path)


def test_pickle_that_is_not_a_dict(tmp_path: Path):
    folder = write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(DataError, match=r"batches.meta: expected a pickled dict, got list"):
        load_dataset("cifar10", tmp_path)
