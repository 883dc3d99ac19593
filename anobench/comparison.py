"""One objective against the others: paired tests and convergence speed-ups.

Both compare runs of the same dataset, outliers, preset, scorer, normal class and seed, so every
number is a paired difference. ``anobench leaderboard --reference firm`` writes them next to the
leaderboard (``paired_vs_firm.csv``, ``convergence_vs_firm.csv``, ``comparison_vs_firm.md``).

Convergence (the FIRM paper's "12x faster than NT-Xent"): for each pair, the target is the other
objective's final AUROC; both runs' steps to first reach it are read off their AUROC curves (first
crossing, linear between checkpoints), and the speed-up is the other run's steps over the
reference's. The other run's own steps can be fewer than its budget when its curve peaked early.
When both runs start at or above the target (step 0: the other objective ended no better than
the untrained encoder, which objectives of one seed share), neither is faster: the speed-up is 1.
A reference that starts there while the other run needs training has an infinite speed-up, and one
that never reaches the target has none at all; all of these are counted, not hidden.

Example:
    >>> rows, curves = load_runs(experiment="cifar10-cpu")  # doctest: +SKIP
    >>> paired_table(rows, "firm")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anobench.errors import AnobenchError
from anobench.markdown import number_cell, pipe_table

ARENA = ["dataset", "outliers", "preset", "scorer"]
PAIR = ["normal_class_name", "seed"]


def _check_reference(rows: pd.DataFrame, reference: str) -> None:
    objectives = sorted(rows["objective"].unique())
    if reference not in objectives:
        raise AnobenchError(f"reference objective {reference!r} has no finished run; objectives: {', '.join(objectives)}")


def paired_table(rows: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per arena (dataset, outliers, preset, scorer) and other objective: the reference's AUROC
    minus the other's over their common (class, seed) pairs, with a paired t-test.

    Columns: the arena, ``objective``, ``n_pairs``, ``mean_diff``, ``std_diff``, ``ci_low`` and
    ``ci_high`` (95% t-interval of the mean difference), ``wins`` (pairs where the reference is
    higher), ``losses``, ``p_value`` (two-sided). Interval and p are empty below 2 pairs.

    Raises:
        AnobenchError: If ``reference`` has no runs.
    """
    from scipy.stats import t as student_t
    from scipy.stats import ttest_rel

    _check_reference(rows, reference)
    auroc = rows.set_index(ARENA + ["objective"] + PAIR)["auroc"].sort_index()
    out = []
    for arena, part in rows.groupby(ARENA):
        if reference not in set(part["objective"]):
            continue
        mine = auroc.loc[(*arena, reference)]
        for other in sorted(set(part["objective"]) - {reference}):
            theirs = auroc.loc[(*arena, other)]
            common = mine.index.intersection(theirs.index)
            diff = mine[common].to_numpy() - theirs[common].to_numpy()
            if len(common) < 2:
                p = np.nan
            elif np.allclose(diff, diff[0]):
                p = 1.0 if np.allclose(diff, 0) else 0.0
            else:
                p = float(ttest_rel(mine[common], theirs[common]).pvalue)
            mean = diff.mean() if len(diff) else np.nan
            std = diff.std(ddof=1) if len(diff) > 1 else np.nan
            half = student_t.ppf(0.975, len(diff) - 1) * std / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
            out.append({**dict(zip(ARENA, arena)), "reference": reference, "objective": other, "n_pairs": len(common),
                        "mean_diff": mean, "std_diff": std, "ci_low": mean - half, "ci_high": mean + half,
                        "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "p_value": p})
    return pd.DataFrame(out, columns=[*ARENA, "reference", "objective", "n_pairs", "mean_diff", "std_diff",
                                      "ci_low", "ci_high", "wins", "losses", "p_value"])


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
    """The other run's steps over the reference's to reach the same target: 1 when both start
    there (0 / 0: neither had to train), inf when only the reference does, NaN when the reference
    never reaches it.

    Example:
        >>> pair_speedup(600.0, 150.0), pair_speedup(0.0, 0.0), pair_speedup(300.0, 0.0)
        (4.0, 1.0, inf)
    """
    if np.isnan(reference_steps):
        return float("nan")
    if reference_steps == 0:
        return 1.0 if own_steps == 0 else float("inf")
    return own_steps / reference_steps


def convergence_table(curves: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per pair (arena, other objective, class, seed): the other's final AUROC (the target), the
    steps at which the other's curve and the reference's curve first reach it, and the speed-up
    (other's steps over the reference's; 1 when both start at the target, inf when only the
    reference does, NaN when it never reaches it).

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
        speedup = pair_speedup(own, needed)
        out.append({**dict(zip(keys, key)), "reference": reference, "objective": objective,
                    "target_auroc": target, "objective_steps": own,
                    "reference_steps": needed, "speedup": speedup})
    return pd.DataFrame(out, columns=[*keys, "reference", "objective", "target_auroc", "objective_steps",
                                      "reference_steps", "speedup"])


def convergence_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per arena and other objective: median speed-up and its quartiles over the pairs where it
    is finite (ties at step 0 count as 1x), plus how many pairs the reference reached at step 0
    (ties and infinite speed-ups) and how many it never reached."""
    out = []
    for key, part in table.groupby(ARENA + ["objective"]):
        finite = part["speedup"][np.isfinite(part["speedup"])]
        q = finite.quantile([0.25, 0.5, 0.75]) if len(finite) else pd.Series([np.nan] * 3, index=[0.25, 0.5, 0.75])
        out.append({**dict(zip(ARENA + ["objective"], key)), "n_pairs": len(part),
                    "median_speedup": q[0.5], "q25_speedup": q[0.25], "q75_speedup": q[0.75],
                    "reached_at_init": int((part["reference_steps"] == 0).sum()),
                    "never_reached": int(part["speedup"].isna().sum())})
    return pd.DataFrame(out, columns=[*ARENA, "objective", "n_pairs", "median_speedup", "q25_speedup",
                                      "q75_speedup", "reached_at_init", "never_reached"])


def comparison_markdown(paired: pd.DataFrame, summary: pd.DataFrame, reference: str) -> str:
    """Both tables as Markdown."""
    arena = ["dataset", "preset", "scorer", "objective", "pairs"]
    paired_columns = arena + ["mean diff", "95% CI", "std diff", "wins/losses", "p (paired t)"]
    paired_rows = [[r["dataset"], r["preset"], r["scorer"], r["objective"], r["n_pairs"], f"{r['mean_diff']:+.4f}",
                    "" if np.isnan(r["ci_low"]) else f"{r['ci_low']:+.4f} to {r['ci_high']:+.4f}",
                    number_cell(r["std_diff"], ".4f"), f"{r['wins']}/{r['losses']}", number_cell(r["p_value"], ".3g")]
                   for _, r in paired.iterrows()]
    speed_columns = arena + ["median speed-up", "quartiles", "reached at step 0", "never reached"]
    speed_rows = [[r["dataset"], r["preset"], r["scorer"], r["objective"], r["n_pairs"],
                   number_cell(r["median_speedup"], ".2f") + ("" if np.isnan(r["median_speedup"]) else "x"),
                   "" if np.isnan(r["q25_speedup"]) else f"{r['q25_speedup']:.2f}-{r['q75_speedup']:.2f}",
                   r["reached_at_init"], r["never_reached"]] for _, r in summary.iterrows()]
    lines = [f"# {reference} against each objective\n",
             f"Paired over (class, seed): {reference} AUROC minus the objective's.\n",
             *pipe_table(paired_columns, paired_rows, right=paired_columns[4:]),
             "",
             (f"Convergence: the steps the objective needs to first reach its own final AUROC over the steps "
              f"{reference} needs to reach it (median and quartiles over the finite pairs; 1x when both start "
              f"at the target).\n"),
             *pipe_table(speed_columns, speed_rows, right=speed_columns[4:])]
    return "\n".join(lines) + "\n"
