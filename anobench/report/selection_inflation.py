"""What picking each run's checkpoint on test AUROC would add to its AUROC.

anobench reports the last step's AUROC of every run. A protocol that keeps, per run, the
checkpoint with the best test AUROC selects on the test labels (an oracle): its figure is higher
by construction. :func:`selection_inflation` measures how much, from the AUROC curves of the
leaderboard (``curves.csv``: every evaluated checkpoint of a run, step 0 and the last step
included). ``anobench leaderboard`` writes it as ``selection_inflation.csv`` when runs have curves.

Example:
    >>> curves = pd.DataFrame({"dataset": "d", "outliers": "o", "preset": "p", "scorer": "knn",
    ...                        "objective": "firm", "normal_class_name": "cat", "seed": 0,
    ...                        "step": [0, 100, 200], "auroc": [0.6, 0.8, 0.75]})
    >>> table = selection_inflation(curves)
    >>> table[["auroc_last", "auroc_best_on_test", "inflation_points"]].round(2).to_numpy().tolist()
    [[0.75, 0.8, 5.0]]
"""

from __future__ import annotations

import pandas as pd

GROUP = ["dataset", "outliers", "preset", "scorer", "objective"]
RUN = ["normal_class_name", "seed"]
SELECTION = "selected on test labels (oracle)"
"""The ``selection`` column: how ``auroc_best_on_test`` was chosen."""
COLUMNS = [*GROUP, "n_classes", "n_runs", "n_checkpoints", "auroc_last", "auroc_best_on_test", "selection",
           "inflation_points"]


def selection_inflation(curves: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, outliers, preset, scorer and objective: the last-step AUROC against the best
    checkpoint's, chosen per run on test AUROC.

    Both are means over classes of each class's mean over seeds (as the leaderboard's
    ``auroc_mean``).

    Args:
        curves: One row per run x scorer x evaluated step: :data:`GROUP`, ``normal_class_name``,
            ``seed``, ``step``, ``auroc``.

    Returns:
        :data:`COLUMNS`: ``n_classes``, ``n_runs``, ``n_checkpoints`` (the most checkpoints of a
        run, step 0 and the last step included), ``auroc_last`` (the honest figure),
        ``auroc_best_on_test`` (the best checkpoint per run, ``selection`` = "selected on test
        labels (oracle)") and ``inflation_points``, their difference in AUROC points (x100).
    """
    runs = curves.sort_values("step").groupby(GROUP + RUN)["auroc"].agg(last="last", best="max", checkpoints="size")
    classes = runs.groupby(GROUP + RUN[:1])[["last", "best"]].mean()
    table = classes.groupby(GROUP).mean().rename(columns={"last": "auroc_last", "best": "auroc_best_on_test"})
    table["n_classes"] = classes.groupby(GROUP).size()
    table["n_runs"] = runs.groupby(GROUP).size()
    table["n_checkpoints"] = runs.groupby(GROUP)["checkpoints"].max()
    table["selection"] = SELECTION
    table["inflation_points"] = 100 * (table["auroc_best_on_test"] - table["auroc_last"])
    return table.reset_index()[COLUMNS]
