"""A template anobench plugin: the ``firm-rot`` objective and the ``mean-sim`` scorer.

anobench finds both through the entry points in this distribution's ``pyproject.toml``; nothing
here registers itself, so importing the package has no side effects.

Example:
    >>> from anobench_plugin_example import FIRMRotObjective, MeanSimilarityScorer
    >>> FIRMRotObjective(tau=0.5).tau, MeanSimilarityScorer().get_params()
    (0.5, {})
"""

from anobench_plugin_example.objective import FIRMRotObjective
from anobench_plugin_example.scorer import MeanSimilarityScorer

__all__ = ["FIRMRotObjective", "MeanSimilarityScorer"]
