"""Anomaly scorers over encoder features (installed as ``anobench.scorers``).

Example:
    >>> from anobench.scorers import list_scorers
    >>> "knn" in list_scorers()
    True
"""

from anobench.scorers.base import NotFittedError, Scorer
from anobench.scorers.registry import get_scorer, list_scorers, register_scorer

__all__ = ["NotFittedError", "Scorer", "get_scorer", "list_scorers", "register_scorer"]
