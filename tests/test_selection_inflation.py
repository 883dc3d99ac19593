"""The AUROC that choosing each run's checkpoint on test labels would add."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anobench.report.selection_inflation import COLUMNS, SELECTION, selection_inflation

STUDY = Path(__file__).resolve().parent.parent / "results" / "cifar10-cpu" / "curves.csv"
ARENA = {"dataset": "d", "outliers": "o", "preset": "p"}


def random_curves(rng: np.random.Generator) -> pd.DataFrame:
    """Two scorers x two objectives x 3 classes x up to 3 seeds, 2 to 6 checkpoints per run, in
    shuffled order."""
    rows = []
    for scorer in ("knn", "kde"):
        for objective in ("firm", "simclr"):
            for normal_class in ("a", "b", "c"):
                for seed in range(int(rng.integers(1, 4))):
                    steps = np.sort(rng.choice(np.arange(0, 1300, 100), int(rng.integers(2, 7)), replace=False))
                    rows += [{**ARENA, "scorer": scorer, "objective": objective, "normal_class_name": normal_class,
                              "seed": seed, "step": int(step), "auroc": float(rng.uniform(0.5, 1.0))}
                             for step in steps]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)


def reference(curves: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float, int, int]]:
    """Per (scorer, objective), with loops: mean over classes of the seed means of each run's
    last-step and best AUROC, the runs and the most checkpoints of a run."""
    runs: dict[tuple, list[tuple[int, float]]] = {}
    for r in curves.itertuples():
        runs.setdefault((r.scorer, r.objective, r.normal_class_name, r.seed), []).append((r.step, r.auroc))
    out = {}
    for scorer, objective in {k[:2] for k in runs}:
        mine = {k: v for k, v in runs.items() if k[:2] == (scorer, objective)}
        classes = sorted({k[2] for k in mine})
        last = best = 0.0
        for c in classes:
            seeds = [v for k, v in mine.items() if k[2] == c]
            last += sum(max(v)[1] for v in seeds) / len(seeds) / len(classes)  # max of (step, auroc): the last step
            best += sum(max(a for _, a in v) for v in seeds) / len(seeds) / len(classes)
        out[(scorer, objective)] = (last, best, len(mine), max(len(v) for v in mine.values()))
    return out


def test_matches_the_loop_reference_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(10):
        curves = random_curves(rng)
        table = selection_inflation(curves)
        assert list(table.columns) == COLUMNS and (table["selection"] == SELECTION).all()
        want = reference(curves)
        assert len(table) == len(want)
        for row in table.itertuples():
            last, best, n_runs, checkpoints = want[(row.scorer, row.objective)]
            assert row.auroc_last == pytest.approx(last) and row.auroc_best_on_test == pytest.approx(best)
            assert row.inflation_points == pytest.approx(100 * (best - last)) and row.inflation_points >= 0
            assert (row.n_runs, row.n_checkpoints, row.n_classes) == (n_runs, checkpoints, 3)


def test_the_last_step_is_the_latest_not_the_last_row():
    curves = pd.DataFrame({**ARENA, "scorer": "knn", "objective": "firm", "normal_class_name": "cat", "seed": 0,
                           "step": [200, 0, 100], "auroc": [0.7, 0.6, 0.9]})
    row = selection_inflation(curves).iloc[0]
    assert (row["auroc_last"], row["auroc_best_on_test"]) == (0.7, 0.9)
    assert row["inflation_points"] == pytest.approx(20.0) and row["selection"] == "selected on test labels (oracle)"


def test_classes_weigh_equally_whatever_their_seeds():
    # cat has two seeds, dog one: the mean is over classes of the seed means, as the leaderboard's
    curves = pd.DataFrame([{**ARENA, "scorer": "knn", "objective": "firm", "normal_class_name": c, "seed": s,
                            "step": step, "auroc": a}
                           for c, s, points in [("cat", 0, [0.6, 0.8]), ("cat", 1, [0.8, 0.6]), ("dog", 0, [0.9, 0.9])]
                           for step, a in zip((0, 100), points)])
    row = selection_inflation(curves).iloc[0]
    assert row["auroc_last"] == pytest.approx((0.7 + 0.9) / 2) and row["auroc_best_on_test"] == pytest.approx(0.85)
    assert (row["n_classes"], row["n_runs"]) == (2, 3)


def test_reproduces_the_cifar10_study():
    """The figures issue 16 quotes: best of 6 checkpoints (step 0 included) on kNN k=5."""
    table = selection_inflation(pd.read_csv(STUDY)).set_index(["scorer", "objective"])
    knn = table.loc["knn"]
    assert (knn["n_checkpoints"] == 6).all()
    assert knn.loc[["firm", "simclr", "rot-supcon", "supcon"], "inflation_points"].round(2).tolist() == [
        0.23, 0.46, 0.85, 1.05]
