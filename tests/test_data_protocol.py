"""Registry, data root, digits, and the one-class protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_cifar10, write_imagefolder
from sklearn.datasets import load_digits

from anobench.data import (
    DATA_ROOT_ENV,
    list_datasets,
    load_dataset,
    one_class_task,
    resolve_class,
    resolve_data_root,
)
from anobench.errors import ConfigError, DataError, UnknownNameError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", image_size=8)


def test_list_datasets():
    assert list_datasets() == ["cifar10", "cifar100", "digits", "fashion-mnist", "imagefolder", "mnist"]


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'svhn'; valid names: cifar10"):
        load_dataset("svhn")


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "32"])
def test_bad_image_size(size):
    with pytest.raises(ConfigError, match=rf"image_size must be a positive int, got {size!r}"):
        load_dataset("digits", image_size=size)


def test_resolve_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert resolve_data_root(None) is None
    assert resolve_data_root(str(tmp_path)) == tmp_path
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root("") == tmp_path / "env"
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_data_root_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert len(load_dataset("cifar10").test) == 10
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data found"):
        load_dataset("cifar10", tmp_path / "empty")  # an explicit root wins over the env var


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "fashion-mnist", "imagefolder"])
def test_missing_data_root(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    needs = rf"^dataset '{name}' needs --data-root or {DATA_ROOT_ENV}$"
    with pytest.raises(DataError, match=needs):
        load_dataset(name)
    missing = tmp_path / "nope"
    not_dir = rf"data root {missing} is not a directory; expected .*{missing}/\S+"
    with pytest.raises(DataError, match=not_dir):
        load_dataset(name, missing)


def test_digits_images(digits):
    bunch = load_digits()
    assert digits.class_names == [str(c) for c in range(10)]
    assert digits.train.images.shape == (1257, 3, 8, 8)
    assert digits.test.images.shape == (540, 3, 8, 8)
    assert digits.train.images.dtype == torch.uint8 and digits.train.labels.dtype == torch.int64
    assert int(digits.train.images.max()) == 255
    # every train image is a scaled digits image with the same label
    flat = np.rint(bunch.images.reshape(len(bunch.images), -1) * 255 / 16).astype(np.uint8)
    lookup = {row.tobytes(): int(label) for row, label in zip(flat, bunch.target)}
    for image, label in zip(digits.train.images[:50, 0], digits.train.labels[:50]):
        assert lookup[image.numpy().tobytes()] == int(label)


def test_digits_split_is_stratified_and_fixed(digits):
    again = load_dataset("digits", image_size=8)
    assert again.test.labels.equal(digits.test.labels)
    assert again.test.images.equal(digits.test.images)
    total = np.bincount(load_digits().target)
    test_counts = digits.test.labels.bincount().numpy()
    assert np.all(np.abs(test_counts - 0.3 * total) <= 1)
    assert "stratify=y, random_state=0" in digits.split and "test_size=0.3" in digits.split


def test_digits_upsampled():
    assert load_dataset("digits", image_size=20).test.images.shape == (540, 3, 20, 20)


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (9, 9), ("7", 7), (np.int64(4), 4)])
def test_resolve_class_by_index(digits, value, expected):
    assert resolve_class(digits, value) == expected


def test_resolve_class_by_name(tmp_path: Path):
    ds = load_dataset("cifar10", write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1))
    assert resolve_class(ds, "cat") == 3
    assert resolve_class(ds, "9") == 9
    message = r"unknown class 'kat' .*valid names: airplane, .*truck \(or ids 0\.\.9\)"
    with pytest.raises(ConfigError, match=message):
        resolve_class(ds, "kat")


@pytest.mark.parametrize("value", [10, -1, "10"])
def test_resolve_class_out_of_range(digits, value):
    with pytest.raises(ConfigError, match=rf"class id {value!r} out of range .*valid ids: 0\.\.9"):
        resolve_class(digits, value)


@pytest.mark.parametrize("value", [True, 2.0, None])
def test_resolve_class_wrong_type(digits, value):
    with pytest.raises(ConfigError, match="must be a class id or name"):
        resolve_class(digits, value)


@pytest.mark.parametrize("normal", [0, 6])
def test_one_class_task(digits, normal: int):
    task = one_class_task(digits, str(normal))
    n_normal = int((digits.train.labels == normal).sum())
    assert task.normal_class == normal and task.normal_class_name == str(normal)
    assert task.train_images.shape == (n_normal, 3, 8, 8)
    assert task.test_images.equal(digits.test.images)
    assert task.test_is_anomaly.dtype == torch.bool
    assert task.test_is_anomaly.tolist() == [y != normal for y in digits.test.labels.tolist()]
    for image in task.train_images[:5]:  # each is a train image of the normal class
        match = (digits.train.images == image).flatten(1).all(1)
        assert (digits.train.labels[match] == normal).all()


def test_one_class_task_without_training_images(tmp_path: Path):
    ds = load_dataset("imagefolder", write_imagefolder(tmp_path, 2, 1, 1))
    with pytest.raises(ConfigError, match=r"class 'defect' has no training images .*: good"):
        one_class_task(ds, "defect")
