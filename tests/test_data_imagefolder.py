"""Image-folder loader on tiny MVTec-like trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_imagefolder
from PIL import Image

from anobench.data import load_dataset, one_class_task
from anobench.errors import DataError


@pytest.mark.parametrize(("grey", "suffix"), [(False, ".png"), (True, ".png"), (False, ".bmp")])
def test_mvtec_like_tree(tmp_path: Path, grey: bool, suffix: str):
    write_imagefolder(tmp_path, 5, 2, 3, size=24, grey=grey, suffix=suffix)
    ds = load_dataset("imagefolder", tmp_path, image_size=24)
    assert ds.class_names == ["defect", "good"]
    assert ds.train.images.shape == (5, 3, 24, 24) and ds.train.images.dtype == torch.uint8
    assert ds.train.labels.tolist() == [1] * 5
    assert ds.test.labels.tolist() == [0, 0, 0, 1, 1]
    first = np.asarray(Image.open(tmp_path / "test" / "defect" / f"000{suffix}").convert("RGB"))
    assert np.array_equal(ds.test.images[0].permute(1, 2, 0).numpy(), first)
    if grey:
        assert ds.test.images[:, 0].equal(ds.test.images[:, 2])
    task = one_class_task(ds, "good")
    assert task.test_is_anomaly.tolist() == [True, True, True, False, False]


def test_mixed_sizes_and_jpeg_are_resized(tmp_path: Path):
    write_imagefolder(tmp_path, n_train=2, n_test_good=1, n_test_defect=1, size=40)
    Image.new("RGB", (20, 10), (9, 8, 7)).save(tmp_path / "train" / "good" / "wide.JPG")
    (tmp_path / "train" / "good" / "notes.txt").write_text("ignored")
    ds = load_dataset("imagefolder", tmp_path, image_size=16)
    assert ds.train.images.shape == (3, 3, 16, 16)
    assert ds.test.images.shape == (2, 3, 16, 16)


def test_corrupt_image_is_named(tmp_path: Path):
    write_imagefolder(tmp_path, n_train=2, n_test_good=1, n_test_defect=1)
    bad = tmp_path / "test" / "defect" / "001.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"001.png: cannot decode image"):
        load_dataset("imagefolder", tmp_path)


def test_missing_split_folder(tmp_path: Path):
    (tmp_path / "test" / "good").mkdir(parents=True)
    with pytest.raises(DataError, match=r"missing .*train; expected .*\{train,test\}/<class>/"):
        load_dataset("imagefolder", tmp_path)


def test_split_without_images(tmp_path: Path):
    write_imagefolder(tmp_path, n_train=2, n_test_good=1, n_test_defect=1)
    for path in (tmp_path / "train" / "good").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"no images in .*train"):
        load_dataset("imagefolder", tmp_path)
