"""Anomaly scorers over encoder features (installed as ``anobench.scorers``).

Example:
    >>> from anobench.scorers import list_scorers
    >>> "knn" in list_scorers()
    True
"""

# Importing the scorer modules registers their entries.
from anobench.scorers import center, ensemble, gaussian, kernel, knn, lof, pyod  # noqa: F401
from anobench.scorers.base import NotFittedError, Scorer
from anobench.scorers.csi import CsiFeatures, csi_score
from anobench.scorers.registry import get_scorer, list_scorers, register_scorer

__all__ = [
    "CsiFeatures",
    "NotFittedError",
    "Scorer",
    "csi_score",
    "get_scorer",
    "list_scorers",
    "register_scorer",
]
