"""Training objectives (installed as ``anobench.objectives``).

Importing this package registers every objective. The loss modules (:class:`FIRMLoss`,
:class:`NTXentLoss`, :class:`SupConLoss`) work on their own, without the harness.

Example:
    >>> from anobench.objectives import list_objectives, get_objective
    >>> "firm" in list_objectives()
    True
"""

from anobench.objectives.base import OUTLIER_LABEL, BatchRecipe, Objective, StepOutputs
from anobench.objectives.contrastive import (
    FIRMObjective,
    RotSupConObjective,
    SimCLRObjective,
    SupConObjective,
)
from anobench.objectives.csi import CSIObjective
from anobench.objectives.losses import FIRMLoss, NTXentLoss, SupConLoss, contrastive_loss
from anobench.objectives.oe import OEObjective
from anobench.objectives.registry import get_objective, list_objectives, register_objective

__all__ = [
    "OUTLIER_LABEL",
    "BatchRecipe",
    "CSIObjective",
    "FIRMLoss",
    "FIRMObjective",
    "NTXentLoss",
    "OEObjective",
    "Objective",
    "RotSupConObjective",
    "SimCLRObjective",
    "StepOutputs",
    "SupConLoss",
    "SupConObjective",
    "contrastive_loss",
    "get_objective",
    "list_objectives",
    "register_objective",
]
