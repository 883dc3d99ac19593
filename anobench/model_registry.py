"""Registering a run's logged detector in the MLflow Model Registry: the ``anobench register``
logic (docs/detector.md). The model version points at the run's model and carries the run's
headline metrics and identity as tags, so the UI's registered-models page lists the detectors a
user chose, with their scores.

Example:
    >>> headline_tags({"auroc/knn": 0.93, "loss": 4.2, "val_auroc/knn": 0.7},
    ...               {"objective": "firm", "run_key": "9ff5", "split": "70/30"})
    {'auroc/knn': '0.93', 'val_auroc/knn': '0.7', 'run_key': '9ff5', 'objective': 'firm'}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from anobench.errors import ConfigError
from anobench.predict import ModelNotFoundError, resolve_model_uri
from anobench.store import require_store
from anobench.store_lock import store_lock
from anobench.tracking import default_tracking_uri

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

HEADLINE_METRICS: tuple[str, ...] = ("auroc", "aupr", "fpr95", "val_auroc")
"""Per-scorer metrics (``auroc/<spec>``, ...) copied to the model version's tags."""
RUN_TAGS: tuple[str, ...] = ("run_key", "objective", "dataset", "normal_class", "seed", "preset")
"""Run tags copied to the model version's tags: what the detector was trained on."""


def headline_tags(metrics: Mapping[str, float], tags: Mapping[str, str]) -> dict[str, str]:
    """The model version tags of a run: its :data:`HEADLINE_METRICS` of every scorer (exact
    values, as text) and its :data:`RUN_TAGS`, each under the run's own key."""
    return {
        **{key: str(value) for key, value in metrics.items()
           if "/" in key and key.split("/", 1)[0] in HEADLINE_METRICS},
        **{key: tags[key] for key in RUN_TAGS if key in tags},
    }


def register_detector(run: str, name: str, tracking_uri: str | None = None) -> ModelVersion:
    """Register the detector a run logged (:mod:`anobench.detector`) under ``name``: a new
    registered model, or a new version of an existing one. The version's source is the model's
    artifact folder, as ``mlflow.register_model`` sets it, so the run's artifact view links it.

    Args:
        run: A run id or a ``runs:/`` URI (:func:`anobench.predict.resolve_model_uri`).
        name: The registered model's name.
        tracking_uri: The store [default: :func:`anobench.tracking.default_tracking_uri`]; never
            created.

    Returns:
        The new model version, tagged with :func:`headline_tags`.

    Raises:
        ModelNotFoundError: For a ``models:/`` URI, a run the store does not hold, or a run
            without a logged model.
        ConfigError: For a name MLflow refuses (empty, or with ``/`` or ``:``).
        anobench.store.StoreError: If there is no store at the URI.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        ALREADY_EXISTS, INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode,
    )

    model_uri = resolve_model_uri(run)
    if not model_uri.startswith("runs:/"):
        raise ModelNotFoundError(f"{run!r} is a registered model already; give a run id or a runs:/ URI")
    run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
    uri = tracking_uri or default_tracking_uri()
    require_store(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        raise ModelNotFoundError(f"no run {run_id!r} in {uri}") from None
    if f"{path}/MLmodel" not in {artifact.path for artifact in client.list_artifacts(run_id, path)}:
        raise ModelNotFoundError(f"run {run_id} has no model at {path!r} (was it made with --no-log-model?)")
    with store_lock(uri):
        try:
            client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE):
                raise ConfigError(f"invalid registered model name {name!r}: {error.message}") from None
            if error.error_code not in (ErrorCode.Name(RESOURCE_ALREADY_EXISTS), ErrorCode.Name(ALREADY_EXISTS)):
                raise
        return client.create_model_version(name, f"{found.info.artifact_uri}/{path}", run_id,
                                           tags=headline_tags(found.data.metrics, found.data.tags))
