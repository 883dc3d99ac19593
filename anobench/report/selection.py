"""Does a label-free proxy pick what test AUROC would pick? (docs/selection.md)

A proxy (``anobench.proxies``) selects at two levels:

- ``"objective"``: for each normal class and seed, the objective whose run has the best proxy
  at its last checkpoint;
- ``"checkpoint"``: for each run, the evaluated checkpoint (step) with the best proxy.

Each such choice among *candidates* (objectives or steps) is a *context*. Per context the proxy
is scored by the Spearman correlation of the oriented proxy (see :data:`PROXY_DIRECTIONS`) with
test AUROC over the candidates, and by the *regret*: 100 × (best test AUROC among the candidates
− test AUROC of the candidate the proxy picked), in AUROC points. :func:`selection_table`
averages both over contexts, with a bootstrap 95% interval that resamples normal classes;
:func:`versus_random` tests, with the class as the unit, whether a proxy's regret is lower than
a random pick's.

Test labels enter only through the ``auroc`` column, which :func:`select` never reads: shuffling
the test labels changes no selection.

Input: one row per run x scorer x evaluated step (``curves.csv`` with proxy columns):
:data:`GROUP` (by default), ``normal_class_name``, ``seed``, ``objective``, ``step``, ``auroc``
(test AUROC in [0, 1]) and one float column per proxy, NaN where it was not computed.

Example:
    >>> rows = pd.DataFrame({"dataset": "d", "outliers": "o", "preset": "p", "scorer": "knn",
    ...     "normal_class_name": "cat", "seed": 0, "objective": ["a", "a", "b", "b"],
    ...     "step": [100, 200, 100, 200], "auroc": [0.7, 0.8, 0.6, 0.9],
    ...     "val_auroc": [0.6, 0.7, 0.9, 0.8]})
    >>> select(rows, "val_auroc", "checkpoint")[["objective", "step"]].to_numpy().tolist()
    [['a', 200], ['b', 100]]
    >>> proxy_contexts(rows, "val_auroc", "checkpoint")["regret_points"].round(6).tolist()
    [0.0, 30.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from anobench.errors import UnknownNameError
from anobench.report.comparison import holm, paired_stats

PROXY_DIRECTIONS: dict[str, int] = {
    "val_auroc": 1,
    "val_mean_score": -1,
    "rankme": 1,
    "alignment": -1,
    "uniformity": -1,
    "train_loss": -1,
}
"""+1 where a higher proxy should mean a better encoder, −1 where a lower one should.

``val_auroc`` (held-out normals against synthetic anomalies) and ``rankme`` (Garrido et al.
2023: higher rank, better downstream accuracy) are better high; ``val_mean_score`` (SSD: normals
should score low), ``alignment`` and ``uniformity`` (Wang and Isola 2020: both are minimised)
and the training loss are better low.
"""

GROUP = ["dataset", "outliers", "preset", "scorer"]
"""Default columns of one comparison: proxies are evaluated separately for each combination."""

LEVELS = {"objective": "objective", "checkpoint": "step"}
"""Each selection level and the column that names its candidates."""

COLUMNS = [
    "proxy", "direction", "level", "n_contexts", "n_classes", "spearman", "spearman_low",
    "spearman_high", "regret_points", "regret_low", "regret_high", "regret_random_points",
]
"""Columns of :func:`selection_table` after the ``by`` columns."""

VERSUS_RANDOM_COLUMNS = [
    "proxy", "level", "n_classes", "regret_points", "regret_random_points", "gain_points",
    "gain_low", "gain_high", "wins", "losses", "p_value", "p_wilcoxon", "p_holm", "p_wilcoxon_holm",
]
"""Columns of :func:`versus_random` after the ``by`` columns."""


def _direction(proxy: str) -> int:
    if proxy not in PROXY_DIRECTIONS:
        raise UnknownNameError("selection proxy", proxy, sorted(PROXY_DIRECTIONS))
    return PROXY_DIRECTIONS[proxy]


def _proxies(frame: pd.DataFrame, proxies: Sequence[str] | None) -> list[str]:
    """``proxies``, or by default every key of :data:`PROXY_DIRECTIONS` that is a column of ``frame``."""
    return list(proxies) if proxies is not None else [p for p in PROXY_DIRECTIONS if p in frame.columns]


def _context_keys(level: str, by: Sequence[str]) -> list[str]:
    """The columns that identify one context of ``level``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}, got {level!r}")
    run = ["normal_class_name", "seed"]
    return [*by, *run] if level == "objective" else [*by, *run, "objective"]


def _candidates(
    frame: pd.DataFrame, proxy: str, level: str, by: Sequence[str], with_auroc: bool
) -> pd.DataFrame:
    """The rows ``level`` chooses among, sorted by context and candidate.

    Only the key columns, ``proxy`` and (when ``with_auroc``) ``auroc`` are kept. At the
    objective level only each run's last step is kept. Rows with a missing proxy cannot be
    chosen and are dropped, then contexts left with fewer than two candidates.
    """
    _direction(proxy)
    context = _context_keys(level, by)
    keys = list(dict.fromkeys([*context, "objective", "step"]))
    needed = [*keys, proxy, *(["auroc"] if with_auroc else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; it has {list(frame.columns)}")
    rows = frame[needed]
    duplicated = rows.duplicated(keys)
    if duplicated.any():
        raise ValueError(
            f"frame holds {int(duplicated.sum())} duplicate row(s) of one run, scorer and step, "
            f"first {rows.loc[duplicated, keys].iloc[0].to_dict()}"
        )
    if with_auroc:
        auroc = rows["auroc"].to_numpy(dtype=np.float64)
        bad = ~((auroc >= 0) & (auroc <= 1))
        if bad.any():
            raise ValueError(f"auroc must lie in [0, 1], got {int(bad.sum())} value(s) outside "
                             f"(NaN included), first {auroc[bad][0]}")
    if level == "objective":
        last = rows.groupby(_context_keys("checkpoint", by), dropna=False)["step"].transform("max")
        rows = rows[rows["step"] == last]
    rows = rows[rows[proxy].notna()].sort_values([*context, LEVELS[level]], kind="mergesort")
    size = rows.groupby(context, dropna=False)[proxy].transform("size")
    return rows[size >= 2].reset_index(drop=True)


def select(
    frame: pd.DataFrame, proxy: str, level: str, by: Sequence[str] = GROUP
) -> pd.DataFrame:
    """The candidate ``proxy`` picks in each context, without reading test AUROC.

    The pick maximises the oriented proxy ``PROXY_DIRECTIONS[proxy] * frame[proxy]``; ties go to
    the first candidate in sort order (objective name, or earliest step).

    Args:
        frame: Rows as the module docstring says; ``auroc`` is not needed.
        proxy: A key of :data:`PROXY_DIRECTIONS`, also a column of ``frame``.
        level: ``"objective"`` or ``"checkpoint"``.
        by: Columns of one comparison (default :data:`GROUP`).

    Returns:
        One row per context with at least two candidates: the context columns, ``objective``,
        ``step`` and ``proxy`` of the picked row.

    Raises:
        UnknownNameError: If ``proxy`` has no direction.
        ValueError: On an unknown ``level``, missing columns or duplicate rows.

    Example:
        >>> rows = pd.DataFrame({"dataset": "d", "outliers": "o", "preset": "p", "scorer": "knn",
        ...     "normal_class_name": "cat", "seed": 0, "objective": ["a", "b", "c"], "step": 300,
        ...     "rankme": [40.0, 95.5, 12.0]})
        >>> select(rows, "rankme", "objective")["objective"].tolist()
        ['b']
    """
    rows = _candidates(frame, proxy, level, by, with_auroc=False)
    context = _context_keys(level, by)
    oriented = rows[proxy] * _direction(proxy)
    picked = oriented.groupby([rows[c] for c in context], dropna=False, sort=False).idxmax()
    return rows.loc[picked.to_numpy(), list(dict.fromkeys([*context, "objective", "step", proxy]))
                    ].reset_index(drop=True)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with mid-ranks for ties; NaN if either input is constant.

    Example:
        >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.4, 0.1]))
        -1.0
    """
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def proxy_contexts(
    frame: pd.DataFrame, proxy: str, level: str, by: Sequence[str] = GROUP
) -> pd.DataFrame:
    """Per context: how well ``proxy`` ranks the candidates and what picking by it costs.

    Args:
        frame: Rows as the module docstring says, ``auroc`` included.
        proxy, level, by: As :func:`select`.

    Returns:
        One row per context with at least two candidates: the context columns,
        ``n_candidates``, the picked ``objective`` and ``step``, ``auroc_selected``,
        ``auroc_oracle`` (the best test AUROC among the candidates), ``spearman`` (of the
        oriented proxy with test AUROC; NaN when either is constant), ``regret_points``
        = 100 × (``auroc_oracle`` − ``auroc_selected``) and ``regret_random_points``, the
        expected regret of a uniformly random pick = 100 × (oracle − mean candidate AUROC).

    Raises:
        As :func:`select`.
    """
    rows = _candidates(frame, proxy, level, by, with_auroc=True)
    context = _context_keys(level, by)
    rows["oriented"] = _direction(proxy) * rows[proxy]
    grouped = rows.groupby(context, dropna=False, sort=False)
    table = grouped["auroc"].agg(n_candidates="size", auroc_oracle="max", auroc_mean="mean")
    # Iterating a groupby visits the groups in the order agg lists them.
    table["spearman"] = [
        spearman(g["oriented"].to_numpy(), g["auroc"].to_numpy()) for _, g in grouped
    ]
    picked = select(frame, proxy, level, by).drop(columns=[proxy]).merge(
        rows[list(dict.fromkeys([*context, "objective", "step", "auroc"]))], how="left"
    )
    picked = picked.rename(columns={"auroc": "auroc_selected"})
    table = table.reset_index().merge(picked, how="left")
    table["regret_points"] = 100 * (table["auroc_oracle"] - table["auroc_selected"])
    table["regret_random_points"] = 100 * (table["auroc_oracle"] - table["auroc_mean"])
    return table[list(dict.fromkeys([
        *context, "n_candidates", "objective", "step", "auroc_selected", "auroc_oracle", "spearman",
        "regret_points", "regret_random_points",
    ]))]


def cluster_bootstrap_interval(
    values: np.ndarray, clusters: np.ndarray, n_boot: int = 2000, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``, resampling whole clusters.

    Each replicate draws as many clusters as there are, with replacement, and takes the mean
    of all finite values of the drawn clusters (a cluster drawn twice counts twice). Resampling
    clusters, not values, keeps the dependence inside a cluster: the contexts of one normal
    class share its test set.

    Args:
        values: (K,) per-context statistics; NaN values are left out of every mean.
        clusters: (K,) cluster label of each value.
        n_boot: Number of bootstrap replicates >= 1.
        seed: Seed of ``numpy.random.default_rng``.
        confidence: Coverage in (0, 1).

    Returns:
        (low, high); NaN, NaN when fewer than two clusters hold a finite value.

    Raises:
        ValueError: On inputs of different lengths, ``n_boot`` < 1 or ``confidence`` outside
            (0, 1).

    Example:
        >>> values = np.array([0.1, 0.3, 0.5, 0.7])
        >>> low, high = cluster_bootstrap_interval(values, np.array(["a", "a", "b", "b"]))
        >>> round(low, 6), round(high, 6)
        (0.2, 0.6)
    """
    values = np.asarray(values, dtype=np.float64)
    clusters = np.asarray(clusters)
    if values.ndim != 1 or values.shape != clusters.shape:
        raise ValueError(
            "values and clusters must be 1-D of one length, got shapes "
            f"{values.shape} and {clusters.shape}"
        )
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    finite = np.isfinite(values)
    labels, members = np.unique(clusters[finite], return_inverse=True)
    if labels.shape[0] < 2:
        return float("nan"), float("nan")
    sums = np.bincount(members, weights=values[finite], minlength=labels.shape[0])
    counts = np.bincount(members, minlength=labels.shape[0])
    draws = np.random.default_rng(seed).integers(0, labels.shape[0], (n_boot, labels.shape[0]))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def selection_table(
    frame: pd.DataFrame, proxies: Sequence[str] | None = None, by: Sequence[str] = GROUP,
    n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
) -> pd.DataFrame:
    """For each comparison (``by``), proxy and level: mean Spearman and regret over contexts.

    Args:
        frame: Rows as the module docstring says.
        proxies: Proxies to evaluate; default every key of :data:`PROXY_DIRECTIONS` that is a
            column of ``frame``.
        by: Columns of one comparison.
        n_boot, seed, confidence: Of :func:`cluster_bootstrap_interval`; the cluster is the
            normal class within the comparison.

    Returns:
        ``by`` then :data:`COLUMNS`: ``direction`` ("higher" or "lower" is better),
        ``n_contexts`` (contexts with two or more candidates), ``n_classes``, ``spearman``
        (mean over contexts where it is defined) and ``regret_points`` (mean over contexts), each
        with its ``_low``/``_high`` interval, and ``regret_random_points`` (the mean regret of
        a random pick). A proxy without any context has a row of NaN statistics.

    Raises:
        As :func:`select`.

    Example:
        >>> rows = pd.DataFrame({"dataset": "d", "outliers": "o", "preset": "p", "scorer": "knn",
        ...     "normal_class_name": "cat", "seed": 0, "objective": ["a", "b", "c"], "step": 300,
        ...     "auroc": [0.7, 0.9, 0.8], "rankme": [40.0, 95.5, 12.0]})
        >>> table = selection_table(rows)
        >>> table[["proxy", "level", "n_contexts", "spearman", "regret_points"]].to_numpy().tolist()
        [['rankme', 'objective', 1, 0.5, 0.0], ['rankme', 'checkpoint', 0, nan, nan]]
    """
    chosen = _proxies(frame, proxies)
    out = []
    for key, comparison in frame.groupby(list(by), dropna=False, sort=True):
        for proxy in chosen:
            for level in LEVELS:
                contexts = proxy_contexts(comparison, proxy, level, by)
                out.append({**dict(zip(by, key)), **_summary(contexts, proxy, level, n_boot, seed,
                                                             confidence)})
    return pd.DataFrame(out, columns=[*by, *COLUMNS])


def _summary(
    contexts: pd.DataFrame, proxy: str, level: str, n_boot: int, seed: int, confidence: float
) -> dict[str, object]:
    """One row of :func:`selection_table` from the :func:`proxy_contexts` of one comparison."""
    row: dict[str, object] = {
        "proxy": proxy, "direction": "higher" if _direction(proxy) > 0 else "lower",
        "level": level, "n_contexts": len(contexts),
        "n_classes": int(contexts["normal_class_name"].nunique()),
    }
    clusters = contexts["normal_class_name"].astype(str).to_numpy()
    for stat, column in (("spearman", "spearman"), ("regret", "regret_points")):
        values = contexts[column].to_numpy(dtype=np.float64)
        row[column] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        row[f"{stat}_low"], row[f"{stat}_high"] = cluster_bootstrap_interval(
            values, clusters, n_boot, seed, confidence
        )
    random = contexts["regret_random_points"]
    row["regret_random_points"] = float(random.mean()) if len(random) else float("nan")
    return row


def versus_random(
    frame: pd.DataFrame, proxies: Sequence[str] | None = None, by: Sequence[str] = GROUP
) -> pd.DataFrame:
    """Does picking by each proxy beat a uniformly random pick? A paired test over normal classes.

    For each comparison (``by``), proxy and level, :func:`proxy_contexts` gives each context's
    regret and a random pick's expected regret. Both are averaged per normal class first (over
    its seeds and, at the checkpoint level, its runs): the class is the unit, as the contexts of
    one class share its test set. The gain is random regret − proxy regret (> 0: the proxy beats
    chance), tested by the paired t-test and, beside it, the Wilcoxon signed-rank test over
    classes (:func:`anobench.report.comparison.paired_stats`); both are Holm-adjusted over the
    family of every proxy and level of one comparison.

    Args:
        frame: Rows as the module docstring says, ``auroc`` included.
        proxies: As :func:`selection_table`.
        by: Columns of one comparison.

    Returns:
        ``by`` then :data:`VERSUS_RANDOM_COLUMNS`: ``n_classes``, the class-mean
        ``regret_points`` and ``regret_random_points``, ``gain_points`` with its 95% t-interval
        (``gain_low``, ``gain_high``), ``wins``/``losses`` (classes where the proxy's regret is
        lower/higher than random's), the two-sided ``p_value`` (t) and ``p_wilcoxon`` and their
        Holm adjustments. Statistics are NaN below two classes.

    Raises:
        As :func:`select`.

    Example:
        >>> rows = pd.DataFrame({"dataset": "d", "outliers": "o", "preset": "p", "scorer": "knn",
        ...     "normal_class_name": ["cat"] * 2 + ["dog"] * 2 + ["owl"] * 2, "seed": 0,
        ...     "objective": ["a", "b"] * 3, "step": 300, "auroc": [0.7, 0.9, 0.8, 0.6, 0.5, 0.7],
        ...     "rankme": [1.0, 2.0, 2.0, 1.0, 1.0, 2.0]})
        >>> table = versus_random(rows).round(6)
        >>> table[["level", "n_classes", "regret_points", "gain_points", "wins"]].to_numpy().tolist()
        [['objective', 3, 0.0, 10.0, 3], ['checkpoint', 0, nan, nan, 0]]
    """
    chosen = _proxies(frame, proxies)
    out = []
    for key, comparison in frame.groupby(list(by), dropna=False, sort=True):
        family = []
        for proxy in chosen:
            for level in LEVELS:
                contexts = proxy_contexts(comparison, proxy, level, by)
                per_class = contexts.groupby("normal_class_name")[
                    ["regret_points", "regret_random_points"]].mean()
                stats = paired_stats(per_class["regret_random_points"], per_class["regret_points"])
                family.append({
                    **dict(zip(by, key)), "proxy": proxy, "level": level,
                    "n_classes": len(per_class),
                    "regret_points": float(per_class["regret_points"].mean()),
                    "regret_random_points": float(per_class["regret_random_points"].mean()),
                    "gain_points": stats["mean_diff"], "gain_low": stats["ci_low"],
                    "gain_high": stats["ci_high"], "wins": stats["wins"], "losses": stats["losses"],
                    "p_value": stats["p_value"], "p_wilcoxon": stats["p_wilcoxon"],
                })
        for p_column in ("p_value", "p_wilcoxon"):
            adjusted = holm([row[p_column] for row in family])
            for row, value in zip(family, adjusted):
                row[p_column.replace("p_value", "p") + "_holm"] = float(value)
        out.extend(family)
    return pd.DataFrame(out, columns=[*by, *VERSUS_RANDOM_COLUMNS])
