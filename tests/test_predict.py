"""Model URIs, image files and folders, and unreadable images for ``anobench predict``; the
command on a logged run's detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from anobench.cli import app
from anobench.errors import DataError
from anobench.predict import ModelNotFoundError, as_images, best_run, collect_paths, read_images, resolve_model_uri

runner = CliRunner()


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


@pytest.fixture
def digit_folder(tmp_path):
    """A folder of four PNG test digits, one in a subfolder."""
    from anobench.data import load_dataset

    (tmp_path / "digits" / "more").mkdir(parents=True)
    images = load_dataset("digits", None, 32).test.images[:4].permute(0, 2, 3, 1).numpy()
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "digits" / ("more" if index == 3 else "") / f"{index}.png")
    return tmp_path / "digits"


def test_cli_scores_a_folder_as_the_python_api_does(logged_run, digit_folder, tmp_path):
    import mlflow

    uri, result = logged_run
    outcome = runner.invoke(app, ["predict", result.run_id, str(digit_folder), "--output", "scores.csv",
                                  "--tracking-uri", uri])
    assert outcome.exit_code == 0, outcome.output
    assert "4 images scored, 0 skipped: scores.csv" in outcome.stderr
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    model.predict([str(p) for p in collect_paths([digit_folder])]).to_csv(tmp_path / "api.csv", index=False)
    assert (tmp_path / "scores.csv").read_text() == (tmp_path / "api.csv").read_text()


def test_cli_best_run_says_which_criterion_picked_it(logged_run, digit_folder):
    uri, result = logged_run
    outcome = runner.invoke(app, ["predict", "--best", "--experiment", "detector", "--scorer", "knn",
                                  str(digit_folder), "--output", "scores.csv", "--tracking-uri", uri])
    assert outcome.exit_code == 0, outcome.output
    assert f"run {result.run_id}: highest test AUROC (chosen on test labels: no label-free val_auroc" in outcome.stderr
    assert len(pd.read_csv("scores.csv")) == 4
