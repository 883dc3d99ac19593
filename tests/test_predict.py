"""Model URIs, image files and folders, and unreadable images for ``anobench predict``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from anobench.errors import DataError
from anobench.predict import ModelNotFoundError, as_images, best_run, collect_paths, read_images, resolve_model_uri


def test_model_uris():
    assert resolve_model_uri("a" * 32) == f"runs:/{'a' * 32}/model"
    assert resolve_model_uri(f"runs:/{'a' * 32}") == f"runs:/{'a' * 32}/model"
    assert resolve_model_uri("models:/det/2") == "models:/det/2"
    with pytest.raises(ModelNotFoundError, match="'nope'"):
        resolve_model_uri("nope")


def test_best_run_says_how_it_chose():
    rows = pd.DataFrame({"scorer": ["knn", "knn"], "mlflow_run_id": ["a", "b"], "auroc": [0.9, 0.8],
                         "val_auroc": [np.nan, np.nan]})
    assert best_run(rows, "knn")[0] == "a" and "test labels" in best_run(rows, "knn")[1]
    with pytest.raises(ModelNotFoundError, match="'kde'"):
        best_run(rows, "kde")


def test_folders_corrupt_files_and_bad_paths(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.png", "a/b/2.jpg"):
        Image.fromarray(np.full((10, 12, 3), 7, np.uint8)).save(tmp_path / name)
    (tmp_path / "a" / "bad.png").write_bytes(b"not an image")
    (tmp_path / "a" / "notes.txt").write_text("x")
    files = collect_paths([tmp_path / "a"])
    assert sorted(p.name for p in files) == ["1.png", "2.jpg", "bad.png"]
    read = read_images(files, 16)
    assert read.images.shape == (2, 3, 16, 16) and [p.name for p, _ in read.failures] == ["bad.png"]
    with pytest.raises(DataError, match="no such file"):
        collect_paths([tmp_path / "missing"])
    with pytest.raises(DataError, match="bad.png"):
        as_images([str(p) for p in files], 16)


def test_array_inputs():
    images, paths = as_images(np.zeros((2, 8, 8, 3), np.uint8), 16)
    assert images.shape == (2, 3, 16, 16) and paths is None
    with pytest.raises(DataError, match="float32"):
        as_images(np.zeros((2, 8, 8, 3), np.float32), 16)
    with pytest.raises(DataError, match="'path' column"):
        as_images(pd.DataFrame({"file": ["x"]}), 16)
