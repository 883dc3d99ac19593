"""The code MLflow runs to load an anobench detector ("models from code": no pickled object).

``anobench.detector.log_detector`` saves this file as the model's code. Loading it builds an
empty :class:`DetectorModel`, which ``load_context`` fills from ``detector.pt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from anobench.detector import Detector


class DetectorModel(PythonModel):
    """MLflow's view of a :class:`~anobench.detector.Detector`."""

    def load_context(self, context: Any) -> None:
        """Read the detector (``model_config``: ``device``, ``scorer``)."""
        self.detector = Detector().load(Path(context.artifacts["state"]), context.model_config)

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """:meth:`Detector.predict <anobench.detector.Detector.predict>`."""
        return self.detector.predict(model_input)


set_model(DetectorModel())
