"""Figures logged with each run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: runs write PNGs, never open windows

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


def roc_figure(scores_by_scorer: dict[str, np.ndarray], is_anomaly: np.ndarray, title: str) -> Figure:
    """ROC curves (anomaly = positive) of every scorer on one test set, in one figure."""
    figure = Figure(figsize=(5, 5))
    ax = figure.subplots()
    for name, scores in scores_by_scorer.items():
        fpr, tpr, _ = roc_curve(is_anomaly, scores)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    figure.tight_layout()
    return figure
