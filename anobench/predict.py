"""Scoring new images with a logged detector: model URIs, image files and folders, the
``anobench predict`` logic (docs/detector.md).

Example:
    >>> resolve_model_uri("0123456789abcdef0123456789abcdef")
    'runs:/0123456789abcdef0123456789abcdef/model'
    >>> resolve_model_uri("models:/my-detector/1")
    'models:/my-detector/1'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from PIL import Image

from anobench.data.imagefolder import decode_image
from anobench.data.images import to_image_tensor
from anobench.detector import MODEL_PATH
from anobench.errors import AnobenchError, ConfigError, DataError

_RUN_ID = re.compile(r"[0-9a-f]{32}")
CHUNK = 256
"""Images scored per model call (and per progress-bar step)."""


class ModelNotFoundError(AnobenchError):
    """The run or URI has no logged anobench model."""


def resolve_model_uri(run: str) -> str:
    """The model URI of a run id, a ``runs:/`` URI or a ``models:/`` URI.

    Raises:
        ModelNotFoundError: For anything else, naming it.
    """
    if _RUN_ID.fullmatch(run):
        return f"runs:/{run}/{MODEL_PATH}"
    if run.startswith("runs:/"):
        return run if run.count("/") > 1 and not run.endswith("/") else f"{run.rstrip('/')}/{MODEL_PATH}"
    if run.startswith("models:/"):
        return run
    raise ModelNotFoundError(f"{run!r} is not a run id (32 hex digits), a runs:/ URI or a models:/ URI")


def best_run(rows: pd.DataFrame, scorer: str) -> tuple[str, str]:
    """The run to use from an experiment's runs (``leaderboard.load_runs``) and how it was picked:
    the highest ``val_auroc`` (label-free, held-out normals) when the scorer has it, else the
    highest test AUROC, which uses the test labels.

    Raises:
        ModelNotFoundError: If no run used ``scorer``.

    Example:
        >>> rows = pd.DataFrame({"scorer": ["knn", "knn"], "mlflow_run_id": ["a", "b"],
        ...                      "auroc": [0.9, 0.8], "val_auroc": [0.6, 0.7]})
        >>> best_run(rows, "knn")
        ('b', 'highest val_auroc (label-free: held-out normals vs synthetic anomalies)')
    """
    mine = rows[rows["scorer"] == scorer]
    if mine.empty:
        used = sorted(rows["scorer"].unique()) if len(rows) else []
        raise ModelNotFoundError(f"no finished run used scorer {scorer!r}; runs used: {used or 'none'}")
    if "val_auroc" in mine and mine["val_auroc"].notna().any():
        return str(mine.loc[mine["val_auroc"].idxmax(), "mlflow_run_id"]), \
            "highest val_auroc (label-free: held-out normals vs synthetic anomalies)"
    return str(mine.loc[mine["auroc"].idxmax(), "mlflow_run_id"]), \
        "highest test AUROC (chosen on test labels: no label-free val_auroc in this experiment)"


def choose_run(
    run: str | None, best: bool, scorer: str | None, experiment: str, tracking_uri: str | None = None,
) -> tuple[str, str | None]:
    """The run a command uses: RUN as given, or with ``best`` the experiment's best run for
    ``scorer`` (:func:`best_run`); and how that run was picked (None for a given RUN).

    Raises:
        ConfigError: If neither or both of RUN and ``best`` are given, or ``best`` without a scorer.
        ModelNotFoundError: If no finished run of the experiment used ``scorer``.

    Example:
        >>> choose_run("models:/my-detector/1", best=False, scorer=None, experiment="default")
        ('models:/my-detector/1', None)
    """
    if best == (run is not None):
        raise ConfigError("give either RUN or --best --experiment E --scorer S")
    if run is not None:
        return run, None
    if scorer is None:
        raise ConfigError("--best needs --scorer")
    from anobench.report.leaderboard import load_runs

    return best_run(load_runs(tracking_uri, experiment)[0], scorer)


def image_suffixes() -> set[str]:
    """The file suffixes Pillow can open (``.png``, ``.jpg``, ...)."""
    return {suffix.lower() for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN}


def collect_paths(paths: Iterable[Path]) -> list[Path]:
    """Image files among ``paths``: files as given, folders searched recursively for files with a
    Pillow suffix (hidden files and folders skipped), sorted per folder.

    Raises:
        DataError: For a path that does not exist, or a folder without images.
    """
    suffixes, found = image_suffixes(), []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not inside:
                raise DataError(f"{path}: no image files in this folder (suffixes Pillow opens)")
            found += inside
        else:
            raise DataError(f"{path}: no such file or folder")
    return found


@dataclass
class ReadImages:
    """Decoded images and the files that could not be read.

    Attributes:
        images: (N, 3, S, S) uint8.
        paths: The N files read, in order.
        failures: (file, reason) of every file skipped.
    """

    images: torch.Tensor
    paths: list[Path]
    failures: list[tuple[Path, str]] = field(default_factory=list)


def read_images(paths: list[Path], image_size: int) -> ReadImages:
    """Decode image files to the model's (N, 3, S, S) uint8 input, as the datasets do (RGB,
    antialiased resize to ``image_size``); unreadable files are listed, not raised."""
    images, kept, failures = [], [], []
    for path in paths:
        try:
            images.append(to_image_tensor(decode_image(path)[None], image_size))
            kept.append(path)
        except DataError as error:
            failures.append((path, str(error).removeprefix(f"{path}: ")))
    empty = torch.empty(0, 3, image_size, image_size, dtype=torch.uint8)
    return ReadImages(torch.cat(images) if images else empty, kept, failures)


def as_images(model_input: Any, image_size: int) -> tuple[torch.Tensor, list[Path] | None]:
    """The pyfunc input as (N, 3, S, S) uint8 images, and its paths when it named files.

    Args:
        model_input: A uint8 (N, H, W, C) (C = 1 or 3) or (N, H, W) array, a list of paths, or a
            DataFrame with a ``path`` column.
        image_size: The model's image side S.

    Raises:
        DataError: For another kind of input, or an unreadable file (all of them named).
    """
    if isinstance(model_input, pd.DataFrame):
        if "path" not in model_input.columns:
            raise DataError(f"a DataFrame input needs a 'path' column, got columns {list(model_input.columns)}")
        model_input = model_input["path"].tolist()
    if isinstance(model_input, (list, tuple)) and all(isinstance(p, (str, Path)) for p in model_input):
        read = read_images([Path(p) for p in model_input], image_size)
        if read.failures:
            raise DataError("cannot read " + "; ".join(f"{p}: {why}" for p, why in read.failures))
        return read.images, read.paths
    array = np.asarray(model_input)
    if array.dtype.kind in "iu" and array.size and 0 <= array.min() and array.max() <= 255:
        array = array.astype(np.uint8)  # an input example read back from JSON is int64
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
        raise DataError(
            f"expected uint8 images (N, H, W, C) with C = 1 or 3 or (N, H, W), a list of paths, or a "
            f"DataFrame with a 'path' column; got {type(model_input).__name__} {array.dtype} {array.shape}"
        )
    pixels = array if array.ndim == 3 else np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    return to_image_tensor(pixels, image_size), None


def predict_files(
    detector: Any, paths: list[Path], image_size: int, on_chunk: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """Score image files :data:`CHUNK` at a time with a loaded model (``predict(array)``).

    Args:
        detector: A pyfunc model of :mod:`anobench.detector` (or its :class:`Detector`).
        paths: Image files.
        image_size: The model's image side.
        on_chunk: Called with the number of files handled after each chunk.

    Returns:
        One row per readable file (a ``path`` column first), and the skipped files with reasons.
    """
    frames, failures = [], []
    for start in range(0, len(paths), CHUNK):
        read = read_images(paths[start : start + CHUNK], image_size)
        failures += read.failures
        if read.paths:
            frame = detector.predict(read.images.permute(0, 2, 3, 1).numpy())
            frame.insert(0, "path", [str(p) for p in read.paths])
            frames.append(frame)
        if on_chunk is not None:
            on_chunk(len(paths[start : start + CHUNK]))
    if not frames:
        raise DataError("none of the images could be read: " + "; ".join(f"{p}: {why}" for p, why in failures))
    return pd.concat(frames, ignore_index=True), failures


def load_detector(uri: str) -> Any:
    """Load a model URI with MLflow, as one-line errors.

    Raises:
        ModelNotFoundError: If the URI has no model (a run logged with ``--no-log-model``).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelNotFoundError(
            f"{uri}: no anobench model there (was the run made with --no-log-model?): {first}"
        ) from None
