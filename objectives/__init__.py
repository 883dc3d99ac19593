"""Training objectives (installed as ``anobench.objectives``).

Example:
    >>> from anobench.objectives import list_objectives, get_objective
    >>> "firm" in list_objectives()
    True
"""

from anobench.objectives.base import OUTLIER_LABEL, BatchRecipe, Objective, StepOutputs
from anobench.objectives.registry import get_objective, list_objectives, register_objective

__all__ = [
    "OUTLIER_LABEL",
    "BatchRecipe",
    "Objective",
    "StepOutputs",
    "get_objective",
    "list_objectives",
    "register_objective",
]
