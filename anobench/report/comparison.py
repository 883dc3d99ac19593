"""One objective against the others: paired tests over classes and convergence speed-ups.

Both compare runs of the same dataset, outliers, preset, scorer, normal class and seed.
``anobench leaderboard --reference firm`` writes them next to the leaderboard
(``paired_vs_firm.csv``, ``paired_vs_firm_class_seed.csv``, ``convergence_vs_firm.csv``,
``comparison_vs_firm.md``).

Paired tests (:func:`paired_table`). The unit is the class: the seeds of one class share its
training and test images, so their differences are correlated, not independent samples. Per arena
(dataset, outliers, preset, scorer) and other objective, each objective's AUROC is averaged over
the seeds of the (class, seed) pairs both objectives have, class by class; the differences of these
class means are the sample of the mean difference, its 95% t-interval, the paired t-test
(``p_value``), the Wilcoxon signed-rank test (``p_wilcoxon``) and the wins and losses.
``paired_vs_<ref>_class_seed.csv`` is the secondary view with the same columns and ``unit``
"class × seed": every pair counts as one observation, which overstates the sample size.

Multiple comparisons. The family of claims is every row of one table: each arena (every scorer)
and other objective against the reference, e.g. 4 scorers x 5 objectives = 20 rows. ``p_holm`` is
the Holm-adjusted t-test p, ``p_wilcoxon_holm`` the Holm-adjusted Wilcoxon p, each over the rows
where that p exists (:func:`holm`).

Convergence (the FIRM paper's "12x faster than NT-Xent"): for each pair, the target is the other
objective's final AUROC; both runs' steps to first reach it are read off their AUROC curves (first
crossing, linear between checkpoints), and the speed-up is the other run's steps over the
reference's (:func:`pair_speedup`). One definition serves every table (:func:`speedup_summary`):
a pair where a run never reaches the target is censored, never dropped. It counts as the slowest
possible outcome for that run: speed-up 0 when the reference never gets there, ``inf`` when only
the other run does not. When both runs start at or above the target (step 0), neither is faster:
the speed-up is 1. Median and quartiles are taken over all pairs as order statistics (the lower of
two middle values, never interpolated: a censored value has no magnitude to interpolate with).

Example:
    >>> rows, curves = load_runs(experiment="cifar10-cpu")  # doctest: +SKIP
    >>> paired_table(rows, "firm")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from anobench.errors import AnobenchError
from anobench.report.markdown import number_cell, pipe_table

ARENA = ["dataset", "outliers", "preset", "scorer"]
PAIR = ["normal_class_name", "seed"]
UNITS = {"class": "class (seeds averaged)", "class_seed": "class × seed"}
"""The unit of a paired table: its ``unit`` argument and the text of its ``unit`` column."""
PAIRED_COLUMNS = [*ARENA, "reference", "objective", "unit", "n_classes", "n_pairs", "mean_diff", "std_diff",
                  "ci_low", "ci_high", "wins", "losses", "p_value", "p_wilcoxon", "p_holm", "p_wilcoxon_holm"]
SUMMARY_COLUMNS = [*ARENA, "objective", "n_pairs", "n_classes", "median_speedup", "q25_speedup", "q75_speedup",
                   "reached_at_init", "never_reached", "faster_pairs", "slower_pairs", "faster_classes",
                   "slower_classes", "p_sign", "p_sign_holm"]


def _check_reference(rows: pd.DataFrame, reference: str) -> None:
    objectives = sorted(rows["objective"].unique())
    if reference not in objectives:
        raise AnobenchError(f"reference objective {reference!r} has no finished run; objectives: {', '.join(objectives)}")


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values; NaN entries are not in the family and
    stay NaN.

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)).

    Example:
        >>> holm([0.01, 0.04, 0.03, float("nan")]).round(4).tolist()
        [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    order = np.flatnonzero(~np.isnan(p))
    order = order[np.argsort(p[order], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def _t_test_p(mine: np.ndarray, theirs: np.ndarray) -> float:
    """Two-sided paired t-test; 1 for identical samples and 0 for a constant non-zero difference
    (scipy divides by a zero spread there), NaN below 2 pairs."""
    from scipy.stats import ttest_rel

    diff = mine - theirs
    if len(diff) < 2:
        return math.nan
    if np.allclose(diff, diff[0]):
        return 1.0 if np.allclose(diff, 0) else 0.0
    return float(ttest_rel(mine, theirs).pvalue)


def _wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p (zero differences dropped, scipy's default); NaN below 2
    pairs or when every difference is zero (scipy would divide by zero)."""
    from scipy.stats import wilcoxon

    if len(diff) < 2 or not np.any(diff != 0):
        return math.nan
    return float(wilcoxon(diff).pvalue)


def paired_stats(mine: Sequence[float], theirs: Sequence[float]) -> dict[str, float]:
    """Statistics of the paired differences ``mine - theirs`` (one value per unit).

    Returns:
        ``mean_diff``, ``std_diff`` (sample std), ``ci_low`` and ``ci_high`` (95% t-interval of the
        mean), ``wins`` and ``losses`` (units where ``mine`` is higher, lower), ``p_value`` (paired
        t-test) and ``p_wilcoxon`` (Wilcoxon signed-rank), both two-sided. The spread, interval and
        p-values are NaN below 2 units.

    Example:
        >>> stats = paired_stats([0.9, 0.8, 0.7], [0.85, 0.82, 0.6])
        >>> round(stats["mean_diff"], 4), stats["wins"], stats["losses"], stats["p_wilcoxon"]
        (0.0433, 2, 1, 0.5)
    """
    from scipy.stats import t as student_t

    a, b = np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float)
    diff, n = a - b, len(a)
    mean = float(diff.mean()) if n else math.nan
    std = float(diff.std(ddof=1)) if n > 1 else math.nan
    half = float(student_t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    return {"mean_diff": mean, "std_diff": std, "ci_low": mean - half, "ci_high": mean + half,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
            "p_value": _t_test_p(a, b), "p_wilcoxon": _wilcoxon_p(diff)}


def paired_units(mine: pd.Series, theirs: pd.Series, unit: str) -> tuple[pd.Series, pd.Series]:
    """Two objectives' AUROCs (indexed by ``normal_class_name``, ``seed``) per unit, over the
    pairs both have: the pairs themselves (``"class_seed"``), or per class the mean over those
    seeds (``"class"``).

    Example:
        >>> index = pd.MultiIndex.from_tuples([("cat", 0), ("cat", 1), ("dog", 0)], names=PAIR)
        >>> mine = pd.Series([0.8, 0.7, 0.9], index=index)
        >>> a, b = paired_units(mine, mine.iloc[[0, 2]] - 0.1, "class")
        >>> a.round(2).to_dict(), b.round(2).to_dict()
        ({'cat': 0.8, 'dog': 0.9}, {'cat': 0.7, 'dog': 0.8})
    """
    common = mine.index.intersection(theirs.index)
    mine, theirs = mine[common].sort_index(), theirs[common].sort_index()
    if unit == "class":
        return mine.groupby(level=PAIR[0]).mean(), theirs.groupby(level=PAIR[0]).mean()
    return mine, theirs


def paired_table(rows: pd.DataFrame, reference: str, unit: str = "class") -> pd.DataFrame:
    """Per arena (dataset, outliers, preset, scorer) and other objective: the reference's AUROC
    minus the other's, over their common (class, seed) pairs.

    Args:
        rows: Runs with the arena columns, ``objective``, ``normal_class_name``, ``seed``, ``auroc``.
        reference: The objective every other one is compared with.
        unit: ``"class"`` (each class's seeds averaged first; the primary analysis) or
            ``"class_seed"`` (every pair one observation; the secondary view).

    Returns:
        :data:`PAIRED_COLUMNS`: the arena, ``reference``, ``objective``, ``unit`` (text),
        ``n_classes``, ``n_pairs`` (common class x seed pairs), the :func:`paired_stats` of the
        units, and ``p_holm``, ``p_wilcoxon_holm``: Holm over every row of this table.

    Raises:
        AnobenchError: If ``reference`` has no runs or ``unit`` is not a key of :data:`UNITS`.
    """
    if unit not in UNITS:
        raise AnobenchError(f"unknown paired unit {unit!r}; valid units: {', '.join(UNITS)}")
    _check_reference(rows, reference)
    auroc = rows.set_index(ARENA + ["objective"] + PAIR)["auroc"].sort_index()
    out = []
    for arena, part in rows.groupby(ARENA):
        if reference not in set(part["objective"]):
            continue
        for other in sorted(set(part["objective"]) - {reference}):
            mine, theirs = auroc.loc[(*arena, reference)], auroc.loc[(*arena, other)]
            pairs = mine.index.intersection(theirs.index)
            a, b = paired_units(mine, theirs, unit)
            out.append({**dict(zip(ARENA, arena)), "reference": reference, "objective": other, "unit": UNITS[unit],
                        "n_classes": pairs.get_level_values(PAIR[0]).nunique(), "n_pairs": len(pairs),
                        **paired_stats(a.to_numpy(), b.to_numpy())})
    table = pd.DataFrame(out, columns=PAIRED_COLUMNS)
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=float))
    table["p_wilcoxon_holm"] = holm(table["p_wilcoxon"].to_numpy(dtype=float))
    return table


def steps_to_reach(steps: np.ndarray, aurocs: np.ndarray, target: float) -> float:
    """First training step at which a curve reaches ``target`` (linear between checkpoints);
    0 if it starts there, NaN if it never does.

    Example:
        >>> steps_to_reach(np.array([0, 100, 200]), np.array([0.5, 0.75, 1.0]), 0.875)
        150.0
    """
    order = np.argsort(steps)
    steps, aurocs = np.asarray(steps, float)[order], np.asarray(aurocs, float)[order]
    above = np.nonzero(aurocs >= target)[0]
    if not len(above):
        return float("nan")
    j = int(above[0])
    if j == 0:
        return 0.0
    s0, s1, a0, a1 = steps[j - 1], steps[j], aurocs[j - 1], aurocs[j]
    return float(s0 + (target - a0) / (a1 - a0) * (s1 - s0))


def pair_speedup(own_steps: float, reference_steps: float) -> float:
    """The other run's steps over the reference's to reach the same target (NaN steps: never
    reached). Censored pairs count as the slowest outcome for the run that never gets there: 0
    when the reference never does, inf when only the other run never does. 1 when both start
    there (0 / 0: neither had to train), inf when only the reference does.

    Example:
        >>> pair_speedup(600.0, 150.0), pair_speedup(0.0, 0.0), pair_speedup(300.0, 0.0)
        (4.0, 1.0, inf)
        >>> pair_speedup(300.0, float("nan")), pair_speedup(float("nan"), 150.0)
        (0.0, inf)
    """
    if math.isnan(reference_steps):
        return 0.0
    if math.isnan(own_steps) or (reference_steps == 0 and own_steps > 0):
        return math.inf
    return 1.0 if reference_steps == 0 else own_steps / reference_steps


def convergence_table(curves: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per pair (arena, other objective, class, seed): the other's final AUROC (the target), the
    steps at which the other's curve and the reference's curve first reach it (NaN: never), and
    the :func:`pair_speedup` (0 when the reference never reaches it: censored, not dropped).

    Raises:
        AnobenchError: If ``reference`` has no curve (runs without ``eval_checkpoints``).
    """
    if curves.empty or reference not in set(curves["objective"]):
        raise AnobenchError(f"reference objective {reference!r} has no AUROC curve; "
                            "run it with eval_checkpoints > 0")
    keys = ARENA + PAIR
    ref = {key: part for key, part in curves[curves["objective"] == reference].groupby(keys)}
    out = []
    for (*key, objective), part in curves[curves["objective"] != reference].groupby(keys + ["objective"]):
        mine = ref.get(tuple(key))
        if mine is None:
            continue
        target = float(part.sort_values("step")["auroc"].iloc[-1])
        own = steps_to_reach(part["step"].to_numpy(), part["auroc"].to_numpy(), target)
        needed = steps_to_reach(mine["step"].to_numpy(), mine["auroc"].to_numpy(), target)
        out.append({**dict(zip(keys, key)), "reference": reference, "objective": objective,
                    "target_auroc": target, "objective_steps": own,
                    "reference_steps": needed, "speedup": pair_speedup(own, needed)})
    return pd.DataFrame(out, columns=[*keys, "reference", "objective", "target_auroc", "objective_steps",
                                      "reference_steps", "speedup"])


def speedup_summary(pairs: pd.DataFrame) -> dict[str, float]:
    """The one convergence summary of a set of pairs (rows of :func:`convergence_table`).

    Median and quartiles of ``speedup`` over all pairs, censored ones included, as order
    statistics (numpy's "lower": never interpolated). A two-sided sign test over classes: a class
    counts as faster when more of its pairs have the reference faster (speed-up above 1) than
    slower, as slower in the opposite case, and is dropped on a tie; ``p_sign`` is NaN when no
    class is left. Also the pair counts: faster, slower, reached by the reference at step 0, never
    reached by it.

    Example:
        >>> pairs = pd.DataFrame({"normal_class_name": ["a", "a", "b", "b", "c"],
        ...                       "speedup": [2.0, 3.0, 0.0, 0.5, 4.0],
        ...                       "reference_steps": [50.0, 40.0, float("nan"), 400.0, 30.0]})
        >>> summary = speedup_summary(pairs)
        >>> summary["median_speedup"], summary["q25_speedup"], summary["never_reached"], summary["p_sign"]
        (2.0, 0.5, 1, 1.0)
    """
    from scipy.stats import binomtest

    speedup = pairs["speedup"].to_numpy(dtype=float)
    if np.isnan(speedup).any():
        raise AnobenchError("a convergence pair has a NaN speed-up; regenerate it with anobench leaderboard, "
                            "which counts a target the reference never reaches as speed-up 0")
    q25, median, q75 = (np.quantile(speedup, [0.25, 0.5, 0.75], method="lower") if len(speedup)
                        else [math.nan] * 3)
    net = pd.Series(np.sign(speedup - 1), index=pairs["normal_class_name"]).groupby(level=0).sum()
    faster, slower = int((net > 0).sum()), int((net < 0).sum())
    return {"n_pairs": len(speedup), "n_classes": len(net), "median_speedup": float(median),
            "q25_speedup": float(q25), "q75_speedup": float(q75),
            "reached_at_init": int((pairs["reference_steps"] == 0).sum()),
            "never_reached": int(pairs["reference_steps"].isna().sum()),
            "faster_pairs": int((speedup > 1).sum()), "slower_pairs": int((speedup < 1).sum()),
            "faster_classes": faster, "slower_classes": slower,
            "p_sign": float(binomtest(faster, faster + slower).pvalue) if faster + slower else math.nan}


def convergence_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per arena and other objective: the :func:`speedup_summary` of its pairs, and
    ``p_sign_holm``, the sign-test p Holm-adjusted over every row (the family)."""
    out = [{**dict(zip(ARENA + ["objective"], key)), **speedup_summary(part)}
           for key, part in table.groupby(ARENA + ["objective"])]
    summary = pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    summary["p_sign_holm"] = holm(summary["p_sign"].to_numpy(dtype=float))
    return summary


def _paired_rows(paired: pd.DataFrame) -> list[list[object]]:
    return [[r["dataset"], r["preset"], r["scorer"], r["objective"], r["n_classes"], r["n_pairs"],
             f"{r['mean_diff']:+.4f}", "" if np.isnan(r["ci_low"]) else f"{r['ci_low']:+.4f} to {r['ci_high']:+.4f}",
             number_cell(r["std_diff"], ".4f"), f"{r['wins']}/{r['losses']}", number_cell(r["p_value"], ".3g"),
             number_cell(r["p_holm"], ".3g"), number_cell(r["p_wilcoxon"], ".3g"),
             number_cell(r["p_wilcoxon_holm"], ".3g")] for _, r in paired.iterrows()]


def comparison_markdown(paired: pd.DataFrame, paired_class_seed: pd.DataFrame, summary: pd.DataFrame,
                        reference: str) -> str:
    """The paired tables (by class, then by class x seed) and the convergence summary as Markdown."""
    arena = ["dataset", "preset", "scorer", "objective"]
    paired_columns = arena + ["classes", "pairs", "mean diff", "95% CI", "std diff", "wins/losses", "p (t)",
                              "p Holm (t)", "p (Wilcoxon)", "p Holm (Wilcoxon)"]
    speed_columns = arena + ["pairs", "median speed-up", "quartiles", "reached at step 0", "never reached",
                             "faster/slower classes", "p (sign, classes)", "p Holm (sign)"]
    speed_rows = [[r["dataset"], r["preset"], r["scorer"], r["objective"], r["n_pairs"],
                   number_cell(r["median_speedup"], ".2f") + "x", f"{r['q25_speedup']:.2f}-{r['q75_speedup']:.2f}",
                   r["reached_at_init"], r["never_reached"], f"{r['faster_classes']}/{r['slower_classes']}",
                   number_cell(r["p_sign"], ".3g"), number_cell(r["p_sign_holm"], ".3g")]
                  for _, r in summary.iterrows()]
    lines = [f"# {reference} against each objective\n",
             (f"Unit: the class. {reference} AUROC minus the objective's, each averaged over the seeds of their "
              f"common (class, seed) pairs; wins and losses count classes. Holm: over every row of this table.\n"),
             *pipe_table(paired_columns, _paired_rows(paired), right=paired_columns[4:]),
             "",
             ("Secondary view, unit class × seed: every pair counted as one observation (the seeds of a class "
              "are correlated, so these p-values are too small).\n"),
             *pipe_table(paired_columns, _paired_rows(paired_class_seed), right=paired_columns[4:]),
             "",
             (f"Convergence: the steps the objective needs to first reach its own final AUROC over the steps "
              f"{reference} needs to reach it. Median and quartiles over all pairs (order statistics); a pair "
              f"where {reference} never reaches it counts as 0x, one where both start at the target as 1x. Sign "
              f"test over classes (a class is faster when more of its seeds are), Holm over every row.\n"),
             *pipe_table(speed_columns, speed_rows, right=speed_columns[4:])]
    return "\n".join(lines) + "\n"
