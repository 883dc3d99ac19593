"""A finished run's detector as an MLflow pyfunc model: save, load, predict (docs/detector.md).

What a model holds (``detector.pt``, loaded with ``torch.load(weights_only=True)``, no pickle):

- the encoder's state dict; the projection head's only when a scorer reads projections
  (``csi``); the objective's state dict (its heads: the OE head, CSI's shift head);
- the training-side features every scorer is fitted on, exactly as the run computed them
  (``train``, ``train_rotations``, CSI's training views), float32. Fitting is deterministic, so
  the loaded detector refits each scorer on them once, at its first prediction: no fitted
  estimator is pickled, and one bank serves every scorer on the same view;
- per scorer the calibrated threshold and the calibration scores (float64) it was set on, for
  conformal p-values (:func:`anobench.thresholds.conformal_p_values`);
- as JSON: the run's config, the test transform's settings, the crop ensemble's recipe and
  seed, run key, objective, dataset, normal class, anobench version and :data:`DETECTOR_FORMAT`.

The model's code is ``anobench/detector_entry.py`` (MLflow "models from code"), so loading runs
anobench's code, never a pickled object.

Example:
    >>> import mlflow  # doctest: +SKIP
    >>> model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")  # doctest: +SKIP
    >>> model.predict(uint8_images)  # (N, H, W, C); or a list of paths  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

import anobench
from anobench.augment import AugmentRecipe, BatchAugmenter, test_transform
from anobench.config import RunConfig
from anobench.device import memory_format, resolve_device
from anobench.errors import AnobenchError
from anobench.evaluation import FeatureViews, build_scorers
from anobench.models import ContrastiveModel
from anobench.objectives import Objective, get_objective
from anobench.scorers import Scorer
from anobench.specs import parse_spec
from anobench.thresholds import conformal_p_values
from anobench.training import embed

DETECTOR_FORMAT = 1
"""Version of the layout of ``detector.pt``; a model of another format does not load."""
STATE_FILE = "detector.pt"
MODEL_PATH = "model"
"""Artifact path of the model in its run: ``runs:/<run id>/model``."""
_ENTRY = Path(__file__).with_name("detector_entry.py")


class IncompatibleModelError(AnobenchError):
    """A model saved in a detector format this anobench cannot read."""


def _to_json(value: Any) -> Any:
    """Tuples to lists, so a recipe round-trips through JSON."""
    return json.loads(json.dumps(value))


def detector_state(
    config: RunConfig, normal_class_name: str, model: ContrastiveModel, objective: Objective,
    scorers: Mapping[str, Scorer], views: FeatureViews, held_out_scores: Mapping[str, np.ndarray],
    thresholds: Mapping[str, Mapping[str, float | str]],
) -> dict[str, Any]:
    """Everything :class:`Detector` needs, as a ``torch.save``-able dict of tensors and JSON.

    Args:
        config: The run.
        normal_class_name: Name of the normal class.
        model: The trained model.
        objective: The trained objective.
        scorers: The run's scorers by spec, fitted on ``views``.
        views: The final evaluation's features.
        held_out_scores: The held-out normals' scores by spec (empty without held-out normals).
        thresholds: The run's calibrated thresholds by spec (``RunResult.thresholds``).
    """
    calibration = {}
    for spec, scorer in scorers.items():
        if not math.isfinite(float(thresholds[spec]["threshold"])):
            continue  # too few calibration scores: no threshold, no p-values
        held_out = thresholds[spec]["threshold_source"] == "held-out"
        calibration[spec] = torch.from_numpy(held_out_scores[spec] if held_out else views.train_scores(scorer))
    crop = views.crop_transform
    assert isinstance(crop, functools.partial) and isinstance(crop.func, BatchAugmenter)
    assert isinstance(views.test_transform, functools.partial)
    meta = {
        "format": DETECTOR_FORMAT, "anobench_version": anobench.__version__, "run_key": config.key(),
        "objective": config.objective, "dataset": config.dataset, "normal_class": normal_class_name,
        "config": config.to_dict(), "test_transform": _to_json(views.test_transform.keywords),
        "crop_recipe": _to_json(dataclasses.asdict(crop.func.recipe)),
        "crop_seed": crop.keywords["generator"].initial_seed(),
        "thresholds": {spec: dict(values) for spec, values in thresholds.items()},
    }
    uses_head = any(scorer.views == "csi" for scorer in scorers.values())
    return {
        "meta": json.dumps(meta),
        "encoder": {k: v.cpu() for k, v in model.encoder.state_dict().items()},
        "head": {k: v.cpu() for k, v in model.head.state_dict().items()} if uses_head else {},
        "objective": {k: v.cpu() for k, v in objective.state_dict().items()},
        "banks": views.train_banks(),
        "calibration": calibration,
    }


def log_detector(run_id: str, tracking_uri: str, state: dict[str, Any]) -> None:
    """Save ``state`` as a pyfunc model and log it to the run under :data:`MODEL_PATH`."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    meta = json.loads(state["meta"])
    size = meta["test_transform"]["size"]
    specs = meta["config"]["scorers"]
    # PyOD scorers need the extra; faiss is optional (the kNN scorers fall back to torch)
    extras = "[pyod]" if any(parse_spec(spec)[0] == "pyod" for spec in specs) else ""
    outputs = Schema([ColSpec("double", f"score:{s}") for s in specs] + [ColSpec("double", "p_value"),
                                                                        ColSpec("boolean", "is_anomaly")])
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, Path(folder) / STATE_FILE)
        model_dir = Path(folder) / MODEL_PATH
        mlflow.pyfunc.save_model(
            model_dir, python_model=str(_ENTRY), artifacts={"state": str(Path(folder) / STATE_FILE)},
            # No input schema: the model takes uint8 arrays, path lists and path frames alike.
            signature=ModelSignature(inputs=None, outputs=outputs),
            input_example=np.zeros((1, size, size, 3), dtype=np.uint8),
            # Stated, not inferred: inference would run the model in a subprocess at every run.
            pip_requirements=[f"anobench{extras}=={anobench.__version__}"],
            metadata={k: meta[k] for k in ("run_key", "objective", "dataset", "normal_class",
                                            "anobench_version", "format")},
        )
        mlflow.MlflowClient(tracking_uri).log_artifacts(run_id, str(model_dir), MODEL_PATH)


class Detector:
    """The run's encoder and scorers behind ``predict`` (the pyfunc model wraps one,
    ``anobench/detector_entry.py``).

    ``predict`` returns one row per image: ``score:<spec>``, ``p_value:<spec>`` and
    ``is_anomaly:<spec>`` for every scorer, and ``p_value`` / ``is_anomaly`` of the primary
    scorer (the run's first; ``model_config={"scorer": spec}`` picks another). ``is_anomaly``
    means score > the calibrated threshold (p-value <= the run's target FPR); both are NaN / NA
    for a scorer without a threshold. Random test-time views (``knn-ens``, ``csi``) are drawn
    per call, as in the run: predicting the run's test set in one call reproduces its scores.
    """

    def load(self, path: Path, options: Mapping[str, Any] | None = None) -> Detector:
        """Read ``detector.pt``; returns self. ``options`` (the pyfunc's ``model_config``):
        ``device`` (default ``cpu``) and ``scorer`` (the primary scorer).

        Raises:
            IncompatibleModelError: If the file's format is not :data:`DETECTOR_FORMAT`.
            ConfigError: For an unknown ``scorer`` or ``device`` option.
        """
        options = dict(options or {})
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.meta = json.loads(state["meta"])
        if self.meta.get("format") != DETECTOR_FORMAT:
            raise IncompatibleModelError(
                f"model saved by anobench {self.meta.get('anobench_version')} in detector format "
                f"{self.meta.get('format')}; anobench {anobench.__version__} reads format {DETECTOR_FORMAT}"
            )
        self.config = RunConfig.from_dict(self.meta["config"])
        self.primary = options.get("scorer", self.config.scorers[0])
        if self.primary not in self.config.scorers:
            raise IncompatibleModelError(f"scorer {self.primary!r} is not in this model; it has {self.config.scorers}")
        self.device = resolve_device(options.get("device", "cpu"))
        cfg = self.config.train
        model = ContrastiveModel(cfg.width, cfg.head_hidden, cfg.head_layers, cfg.head_out)
        model.encoder.load_state_dict(state["encoder"])
        if state["head"]:
            model.head.load_state_dict(state["head"])
        self.model = model.to(self.device, memory_format=memory_format(cfg.channels_last)).eval()
        self.objective = get_objective(self.config.objective, **self.config.objective_params)
        self.objective.build(model.feature_dim)
        self.objective.load_state_dict(state["objective"])
        self.objective.to(self.device)
        self.banks: dict[str, torch.Tensor] = state["banks"]
        self.calibration: dict[str, torch.Tensor] = state["calibration"]
        self.scorers = build_scorers(self.config.scorers)
        return self

    def views(self, images: torch.Tensor) -> FeatureViews:
        """The run's feature views of (N, 3, S, S) uint8 ``images``, its training side stored."""
        kw = self.meta["test_transform"]
        recipe = AugmentRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.meta["crop_recipe"].items()})
        crop = BatchAugmenter(recipe, kw["size"], tuple(kw["mean"]), tuple(kw["std"]))
        views = FeatureViews(
            embed=functools.partial(embed, self.model, cfg=self.config.train, device=self.device),
            test_transform=functools.partial(test_transform, size=kw["size"], resize=kw["resize"],
                                             mean=tuple(kw["mean"]), std=tuple(kw["std"])),
            crop_transform=functools.partial(
                crop, generator=torch.Generator(device=self.device).manual_seed(self.meta["crop_seed"])),
            train_images=images[:0], test_images=images, objective=self.objective,
        )
        views.restore_train_banks(self.banks)
        return views

    def score(self, images: torch.Tensor) -> pd.DataFrame:
        """Scores, p-values and decisions of (N, 3, S, S) uint8 images (class docstring)."""
        views = self.views(images)
        out: dict[str, Any] = {}
        for spec, scorer in self.scorers.items():
            bank, queries = views.inputs(scorer)
            if not getattr(scorer, "is_fitted_", False):
                scorer.fit(bank)
            scores = scorer.decision_function(queries)
            threshold = float(self.meta["thresholds"][spec]["threshold"])
            out[f"score:{spec}"] = scores
            if spec in self.calibration:
                out[f"p_value:{spec}"] = conformal_p_values(self.calibration[spec].numpy(), scores)
                out[f"is_anomaly:{spec}"] = pd.array(scores > threshold, dtype="boolean")
            else:
                out[f"p_value:{spec}"] = np.full(len(scores), math.nan)
                out[f"is_anomaly:{spec}"] = pd.array([pd.NA] * len(scores), dtype="boolean")
        frame = pd.DataFrame(out)
        frame.insert(0, "p_value", frame[f"p_value:{self.primary}"])
        frame.insert(0, "is_anomaly", frame[f"is_anomaly:{self.primary}"])
        return frame

    def predict(self, model_input: Any) -> pd.DataFrame:
        """Score ``model_input``: a a uint8 (N, H, W, C) or (N, H, W) array, a list of
        image paths, or a DataFrame with a ``path`` column; paths come back in a ``path`` column.

        Raises:
            DataError: For input of another kind, or a path that is not a readable image.
        """
        from anobench.predict import as_images

        images, paths = as_images(model_input, self.config.image_size)
        frame = self.score(images)
        if paths is not None:
            frame.insert(0, "path", [str(p) for p in paths])
        return frame
