"""Paired tests and convergence speed-ups of one objective against the others.

Every statistic is checked against a slow float64 reference written here with loops and no scipy
(t-distribution by numerical integration, Wilcoxon by enumerating every sign assignment, the sign
test by summing binomial terms), on random inputs and on edge cases.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anobench.cli import app
from anobench.report.comparison import (
    PAIRED_COLUMNS,
    UNITS,
    convergence_summary,
    convergence_table,
    holm,
    pair_speedup,
    paired_stats,
    paired_table,
    speedup_summary,
    steps_to_reach,
)
from anobench.errors import AnobenchError
from test_leaderboard import AUROC, STEPS, log_runs

ARENA = {"dataset": "d", "outliers": "rot", "preset": "p", "scorer": "knn"}
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179]
"""Two-sided 95% critical values of Student's t for 1 to 12 degrees of freedom, from a printed table."""

NO_WARNINGS = pytest.mark.filterwarnings("error")
"""scipy's warnings (zero spread, an all-zero Wilcoxon sample) must not escape the statistics."""


def rows_of(aurocs: dict[tuple[str, str, int], float], scorer: str = "knn") -> pd.DataFrame:
    return pd.DataFrame([{**ARENA, "scorer": scorer, "objective": o, "normal_class_name": c, "seed": s, "auroc": a}
                         for (o, c, s), a in aurocs.items()])


def curve_rows(objective: str, normal_class: str, seed: int, points: list[tuple[int, float]]) -> list[dict]:
    return [{**ARENA, "objective": objective, "normal_class_name": normal_class, "seed": seed, "step": step,
             "auroc": auroc} for step, auroc in points]


# ---------------------------------------------------------------- slow references

def holm_reference(p_values: list[float]) -> list[float]:
    """Holm by its definition: for each p, the largest over the p-values at or below it in the
    sorted order of min(1, (m - rank + 1) * p), with loops."""
    family = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    family.sort()
    m, out, running = len(family), [math.nan] * len(p_values), 0.0
    for rank, (p, i) in enumerate(family, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p))
        out[i] = running
    return out


def t_two_sided_p(t: float, df: int) -> float:
    """2 P(T > |t|) by Simpson integration of Student's t density on [0, |t|]."""
    if math.isinf(t):
        return 0.0
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    n, h = 20000, abs(t) / 20000
    total = 0.0
    for k in range(n + 1):
        x = k * h
        weight = 1 if k in (0, n) else (4 if k % 2 else 2)
        total += weight * math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))
    return 1.0 - 2.0 * total * h / 3


def wilcoxon_reference(diff: list[float]) -> float:
    """Two-sided exact signed-rank p: zeros dropped, midranks of |d|, every sign assignment."""
    d = [x for x in diff if x != 0]
    if len(diff) < 2 or not d:
        return math.nan
    magnitudes = [abs(x) for x in d]
    ranks = [sum(1.0 for y in magnitudes if y < x) + (sum(1.0 for y in magnitudes if y == x) + 1) / 2
             for x in magnitudes]
    observed = sum(r for r, x in zip(ranks, d) if x > 0)
    below = above = 0
    for signs in itertools.product((0, 1), repeat=len(d)):
        total = sum(r for r, s in zip(ranks, signs) if s)
        below += total <= observed + 1e-9
        above += total >= observed - 1e-9
    return min(1.0, 2 * min(below, above) / 2 ** len(d))


def paired_reference(mine: list[float], theirs: list[float]) -> dict[str, float]:
    """Mean, sample std, 95% t-interval, wins/losses, t-test and Wilcoxon p with loops."""
    n = len(mine)
    diff = [a - b for a, b in zip(mine, theirs)]
    mean = sum(diff) / n
    out = {"mean_diff": mean, "wins": sum(x > 0 for x in diff), "losses": sum(x < 0 for x in diff),
           "std_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
           "p_wilcoxon": wilcoxon_reference(diff)}
    if n > 1:
        std = math.sqrt(sum((x - mean) ** 2 for x in diff) / (n - 1))
        half = T_975[n - 2] * std / math.sqrt(n)
        out.update(std_diff=std, ci_low=mean - half, ci_high=mean + half,
                   p_value=t_two_sided_p(mean / (std / math.sqrt(n)), n - 1) if std > 0 else float(mean == 0))
    return out


def assert_stats_match(got: dict | pd.Series, want: dict[str, float]) -> None:
    for key, value in want.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        elif key in ("ci_low", "ci_high"):
            assert got[key] == pytest.approx(value, rel=2e-3, abs=2e-4), key  # 3-decimal printed t table
        else:
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


# ---------------------------------------------------------------- Holm

def test_holm_hand_computed():
    # sorted 0.01, 0.02, 0.03, 0.04 times 4, 3, 2, 1 = 0.04, 0.06, 0.06, 0.04; running max 0.04, 0.06, 0.06, 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]).tolist() == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    assert holm([]).tolist() == [] and np.isnan(holm([math.nan])).all()


def test_holm_matches_the_loop_reference_and_skips_nan():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.uniform(0, 0.2, rng.integers(1, 12)) ** rng.uniform(0.5, 3)
        p[rng.random(len(p)) < 0.2] = np.nan
        p[rng.random(len(p)) < 0.1] = p[0]  # ties
        got, want = holm(p.tolist()), holm_reference(p.tolist())
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
        finite = ~np.isnan(p)
        assert (got[finite] >= p[finite]).all()


# ---------------------------------------------------------------- paired statistics

def test_reference_helpers_agree_with_printed_values():
    assert t_two_sided_p(2.262, 9) == pytest.approx(0.05, abs=1e-4)  # the references check the code,
    assert t_two_sided_p(4.303, 2) == pytest.approx(0.05, abs=1e-4)  # so they are checked themselves
    assert wilcoxon_reference([1.0, 2.0, 3.0]) == pytest.approx(0.25)  # all positive, n = 3: 2 / 8


@NO_WARNINGS
def test_paired_stats_match_the_reference_on_random_inputs():
    rng = np.random.default_rng(2)
    for _ in range(60):
        n = int(rng.integers(2, 12))
        mine = rng.uniform(0.5, 1.0, n)
        theirs = mine - rng.normal(rng.uniform(-0.03, 0.05), 0.03, n)
        assert_stats_match(paired_stats(mine, theirs), paired_reference(mine.tolist(), theirs.tolist()))


@NO_WARNINGS
@pytest.mark.parametrize("diff", [
    [0.1, 0.1, -0.1, 0.2, 0.3],                 # ties among |d|
    [0.0, 0.05, -0.02, 0.1, 0.0],               # zero differences are dropped by the Wilcoxon test
    [0.02, 0.02, 0.02],                         # constant: t-test p = 0, Wilcoxon 2 / 8
    [0.0, 0.0, 0.0],                            # all zero: t-test p = 1, no Wilcoxon
    [0.04],                                     # one unit: nothing but the mean
    [0.25, 0.125, -0.5, 0.375, 0.25, -0.125],   # exact binary fractions: ties stay ties
])
def test_paired_stats_edge_cases(diff):
    theirs = [0.5] * len(diff)
    mine = [0.5 + d for d in diff]
    assert_stats_match(paired_stats(mine, theirs), paired_reference(mine, theirs))


@NO_WARNINGS
def test_paired_stats_edge_case_values():
    assert paired_stats([0.52] * 3, [0.5] * 3)["p_value"] == 0.0
    assert paired_stats([0.52] * 3, [0.5] * 3)["p_wilcoxon"] == pytest.approx(0.25)
    zero = paired_stats([0.5] * 3, [0.5] * 3)
    assert zero["p_value"] == 1.0 and math.isnan(zero["p_wilcoxon"]) and zero["wins"] == zero["losses"] == 0
    empty = paired_stats([], [])
    assert math.isnan(empty["mean_diff"]) and math.isnan(empty["p_value"]) and empty["wins"] == 0


def random_rows(rng: np.random.Generator) -> pd.DataFrame:
    """Two scorers x three objectives x up to 4 classes x 3 seeds, with runs missing at random (at
    most 12 pairs: the exact references enumerate 2^12 sign assignments)."""
    classes = [f"c{i}" for i in range(int(rng.integers(1, 5)))]
    frames = []
    for scorer in ("knn", "kde"):
        aurocs = {(o, c, s): float(rng.uniform(0.5, 1.0)) for o in ("firm", "simclr", "supcon")
                  for c in classes for s in range(3) if rng.random() > 0.25 or o == "firm"}
        frames.append(rows_of(aurocs, scorer))
    return pd.concat(frames, ignore_index=True)


def table_reference(rows: pd.DataFrame, reference: str, unit: str) -> list[dict]:
    """:func:`paired_table` with loops: common pairs, class means, statistics, Holm over the rows."""
    runs = {(r.scorer, r.objective, r.normal_class_name, r.seed): r.auroc for r in rows.itertuples()}
    out = []
    for scorer in sorted(set(rows["scorer"])):
        for other in sorted(set(rows["objective"]) - {reference}):
            if not any(k[:2] == (scorer, other) for k in runs):
                continue
            pairs = sorted((c, s) for (sc, o, c, s) in runs if (sc, o) == (scorer, reference)
                           and (scorer, other, c, s) in runs)
            classes = sorted({c for c, _ in pairs})
            if unit == "class":
                mine = [sum(runs[(scorer, reference, c, s)] for c2, s in pairs if c2 == c)
                        / sum(1 for c2, _ in pairs if c2 == c) for c in classes]
                theirs = [sum(runs[(scorer, other, c, s)] for c2, s in pairs if c2 == c)
                          / sum(1 for c2, _ in pairs if c2 == c) for c in classes]
            else:
                mine = [runs[(scorer, reference, c, s)] for c, s in pairs]
                theirs = [runs[(scorer, other, c, s)] for c, s in pairs]
            stats = paired_reference(mine, theirs) if mine else {"mean_diff": math.nan, "wins": 0, "losses": 0}
            out.append({"scorer": scorer, "objective": other, "n_classes": len(classes), "n_pairs": len(pairs),
                        **stats})
    for key in ("p_value", "p_wilcoxon"):
        adjusted = holm_reference([r.get(key, math.nan) for r in out])
        for r, p in zip(out, adjusted):
            r[key.replace("p_value", "p") + "_holm"] = p
    return out


@NO_WARNINGS
@pytest.mark.parametrize("unit", list(UNITS))
def test_paired_table_matches_the_loop_reference(unit):
    rng = np.random.default_rng(3)
    for _ in range(15):
        rows = random_rows(rng)
        table = paired_table(rows, "firm", unit=unit)
        assert list(table.columns) == PAIRED_COLUMNS and (table["unit"] == UNITS[unit]).all()
        want = table_reference(rows, "firm", unit)
        assert len(table) == len(want)
        for got, expected in zip(table.sort_values(["scorer", "objective"]).to_dict("records"),
                                 sorted(want, key=lambda r: (r["scorer"], r["objective"]))):
            assert (got["scorer"], got["objective"]) == (expected.pop("scorer"), expected.pop("objective"))
            assert_stats_match(got, expected)


@NO_WARNINGS
def test_paired_table_class_unit_by_hand():
    aurocs = {("firm", "a", 0): 0.9, ("firm", "a", 1): 0.8, ("firm", "b", 0): 0.7, ("firm", "b", 1): 0.75,
              ("firm", "c", 0): 0.6,
              ("simclr", "a", 0): 0.85, ("simclr", "a", 1): 0.82, ("simclr", "b", 0): 0.6,  # simclr lacks (b, 1)
              ("simclr", "c", 0): 0.62,
              ("supcon", "a", 0): 0.5}  # one class: no spread, no test
    table = paired_table(rows_of(aurocs), "firm").set_index("objective")
    diff = np.array([(0.9 + 0.8) / 2 - (0.85 + 0.82) / 2, 0.7 - 0.6, 0.6 - 0.62])  # (b, 1) is not used
    row = table.loc["simclr"]
    assert row["unit"] == "class (seeds averaged)" and (row["n_classes"], row["n_pairs"]) == (3, 4)
    assert row["mean_diff"] == pytest.approx(diff.mean()) and row["std_diff"] == pytest.approx(diff.std(ddof=1))
    assert (row["wins"], row["losses"]) == (2, 1)
    assert row["ci_high"] - row["mean_diff"] == pytest.approx(4.303 * diff.std(ddof=1) / math.sqrt(3), rel=1e-3)
    assert row["p_wilcoxon"] == pytest.approx(wilcoxon_reference(diff.tolist()))
    one = table.loc["supcon"]
    assert (one["n_classes"], one["n_pairs"]) == (1, 1) and one["mean_diff"] == pytest.approx(0.4)
    assert all(math.isnan(one[k]) for k in ("std_diff", "ci_low", "ci_high", "p_value", "p_wilcoxon", "p_holm",
                                            "p_wilcoxon_holm"))
    assert row["p_holm"] == pytest.approx(row["p_value"])  # supcon's NaN is not a member of the family


def test_class_seed_view_counts_every_pair():
    aurocs = {("firm", "a", 0): 0.9, ("firm", "a", 1): 0.8, ("firm", "b", 0): 0.7,
              ("simclr", "a", 0): 0.85, ("simclr", "a", 1): 0.82, ("simclr", "b", 0): 0.6}
    row = paired_table(rows_of(aurocs), "firm", unit="class_seed").iloc[0]
    assert row["unit"] == "class × seed" and (row["n_classes"], row["n_pairs"]) == (2, 3)
    assert row["mean_diff"] == pytest.approx(np.mean([0.05, -0.02, 0.1])) and (row["wins"], row["losses"]) == (2, 1)


def test_holm_family_is_every_row_of_the_table():
    rng = np.random.default_rng(4)
    frames = []
    for scorer in ("knn", "kde", "mahalanobis"):
        firm = rng.uniform(0.6, 0.9, 8)
        aurocs = {**{("firm", str(i), 0): a for i, a in enumerate(firm)},
                  **{("simclr", str(i), 0): a - 0.05 + rng.normal(0, 0.03) for i, a in enumerate(firm)},
                  **{("supcon", str(i), 0): a + rng.normal(0, 0.03) for i, a in enumerate(firm)}}
        frames.append(rows_of(aurocs, scorer))
    table = paired_table(pd.concat(frames), "firm")
    assert len(table) == 6
    np.testing.assert_allclose(table["p_holm"], holm_reference(table["p_value"].tolist()))
    np.testing.assert_allclose(table["p_wilcoxon_holm"], holm_reference(table["p_wilcoxon"].tolist()))
    assert (table["p_holm"] > table["p_value"]).any()


def test_confidence_interval_excludes_zero_exactly_when_p_is_below_five_percent():
    rng = np.random.default_rng(0)
    significant = []
    for shift in [0.0, 0.01, 0.03, 0.1]:
        firm = rng.uniform(0.6, 0.9, 8)
        other = firm - shift + rng.normal(0, 0.03, 8)
        aurocs = {**{("firm", str(i), s): a + 0.01 * s for i, a in enumerate(firm) for s in (0, 1)},
                  **{("simclr", str(i), s): a for i, a in enumerate(other) for s in (0, 1)}}
        row = paired_table(rows_of(aurocs), "firm").iloc[0]
        assert (row["ci_low"] > 0 or row["ci_high"] < 0) == (row["p_value"] < 0.05)
        significant.append(bool(row["p_value"] < 0.05))
    assert set(significant) == {True, False}  # both sides of the boundary were exercised


def test_unknown_reference_and_unit_are_named():
    with pytest.raises(AnobenchError, match="reference objective 'nope' has no finished run; objectives: firm"):
        paired_table(rows_of({("firm", "a", 0): 0.9}), "nope")
    with pytest.raises(AnobenchError, match="unknown paired unit 'seed'; valid units: class, class_seed"):
        paired_table(rows_of({("firm", "a", 0): 0.9}), "firm", unit="seed")
    with pytest.raises(AnobenchError, match="no AUROC curve"):
        convergence_table(pd.DataFrame(curve_rows("simclr", "a", 0, [(0, 0.5), (10, 0.6)])), "firm")


# ---------------------------------------------------------------- convergence

@pytest.mark.parametrize(("aurocs", "target", "expected"), [
    ([0.5, 0.7, 0.9], 0.8, 150.0),     # halfway between the checkpoints at 100 and 200
    ([0.5, 0.7, 0.9], 0.7, 100.0),     # exactly at a checkpoint
    ([0.85, 0.7, 0.9], 0.8, 0.0),      # the untrained encoder is already there
    ([0.5, 0.9, 0.6], 0.8, 75.0),      # the first crossing counts, not the last value
    ([0.5, 0.7, 0.75], 0.8, math.nan),  # never reached
])
def test_steps_to_reach(aurocs, target, expected):
    got = steps_to_reach(np.array([0, 100, 200]), np.array(aurocs), target)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_steps_to_reach_sorts_the_checkpoints():
    assert steps_to_reach(np.array([200, 0, 100]), np.array([0.9, 0.5, 0.7]), 0.8) == pytest.approx(150.0)


@pytest.mark.parametrize(("own", "needed", "expected"), [
    (600.0, 150.0, 4.0), (0.0, 0.0, 1.0), (300.0, 0.0, math.inf), (0.0, 150.0, 0.0),
    (300.0, math.nan, 0.0),        # censored: the reference never gets there, the slowest outcome
    (math.nan, 150.0, math.inf),   # censored: only the other run never gets there
    (math.nan, math.nan, 0.0),     # the reference never gets there either
])
def test_pair_speedup_counts_censored_pairs(own, needed, expected):
    assert pair_speedup(own, needed) == expected


def summary_reference(pairs: list[tuple[str, float, float]]) -> dict[str, float]:
    """Order statistics by sorting, the class sign test by summing binomial terms."""
    values = sorted(s for _, s, _ in pairs)
    n = len(values)
    quantile = {q: values[math.floor(q * (n - 1))] for q in (0.25, 0.5, 0.75)}
    net: dict[str, int] = {}
    for c, s, _ in pairs:
        net[c] = net.get(c, 0) + (s > 1) - (s < 1)
    faster, slower = sum(v > 0 for v in net.values()), sum(v < 0 for v in net.values())
    k, m = min(faster, slower), faster + slower
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m if m else math.nan
    return {"n_pairs": n, "n_classes": len(net), "median_speedup": quantile[0.5], "q25_speedup": quantile[0.25],
            "q75_speedup": quantile[0.75], "faster_classes": faster, "slower_classes": slower,
            "p_sign": min(1.0, 2 * tail) if m else math.nan,
            "faster_pairs": sum(s > 1 for _, s, _ in pairs), "slower_pairs": sum(s < 1 for _, s, _ in pairs),
            "never_reached": sum(math.isnan(r) for *_, r in pairs), "reached_at_init": sum(r == 0 for *_, r in pairs)}


@NO_WARNINGS
def test_speedup_summary_matches_the_reference_on_random_pairs():
    rng = np.random.default_rng(5)
    for _ in range(100):
        n = int(rng.integers(1, 25))
        classes = [f"c{int(i)}" for i in rng.integers(0, 8, n)]
        needed = rng.choice([0.0, 100.0, 300.0, math.nan], n, p=[0.1, 0.4, 0.3, 0.2])
        own = rng.choice([0.0, 50.0, 200.0, 600.0], n)
        speedups = [pair_speedup(o, r) for o, r in zip(own, needed)]
        pairs = list(zip(classes, speedups, needed))
        frame = pd.DataFrame(pairs, columns=["normal_class_name", "speedup", "reference_steps"])
        got, want = speedup_summary(frame), summary_reference(pairs)
        for key, value in want.items():
            assert (math.isnan(got[key]) and math.isnan(value)) or got[key] == pytest.approx(value), key


def test_speedup_summary_keeps_censored_pairs():
    # two of five pairs never reached by the reference: 0x, so the median is 2 (over the rest it would be 8)
    pairs = pd.DataFrame({"normal_class_name": list("abcde"), "speedup": [2.0, 8.0, 10.0, 0.0, 0.0],
                          "reference_steps": [50.0, 20.0, 10.0, math.nan, math.nan]})
    summary = speedup_summary(pairs)
    assert (summary["median_speedup"], summary["q25_speedup"], summary["q75_speedup"]) == (2.0, 0.0, 8.0)
    assert summary["never_reached"] == 2 and summary["n_pairs"] == 5
    # the lower middle value: no interpolation towards inf
    infinite = pairs.assign(speedup=[1.5, 4.0, 30.0, math.inf, math.inf], reference_steps=[1.0, 1.0, 1.0, 0.0, 0.0])
    assert speedup_summary(infinite.iloc[1:])["median_speedup"] == 30.0
    with pytest.raises(AnobenchError, match="NaN speed-up"):
        speedup_summary(pairs.assign(speedup=[2.0, 8.0, 10.0, math.nan, math.nan]))


def test_sign_test_is_over_classes():
    # class a: both seeds faster; b: split (dropped); c, d, e, f: faster in one seed, tie in the other
    pairs = pd.DataFrame({"normal_class_name": list("aabbccddeeff"),
                          "speedup": [2.0, 3.0, 2.0, 0.5, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0],
                          "reference_steps": [10.0] * 12})
    summary = speedup_summary(pairs)
    assert (summary["faster_classes"], summary["slower_classes"], summary["n_classes"]) == (5, 0, 6)
    assert summary["p_sign"] == pytest.approx(2 / 32) and (summary["faster_pairs"], summary["slower_pairs"]) == (7, 1)


@NO_WARNINGS
def test_convergence_table_and_summary():
    curves = pd.DataFrame(
        curve_rows("firm", "a", 0, [(0, 0.5), (100, 0.7), (200, 0.9)])
        + curve_rows("simclr", "a", 0, [(0, 0.5), (100, 0.6), (200, 0.8)])   # firm reaches 0.8 at 150
        + curve_rows("firm", "b", 0, [(0, 0.9), (100, 0.9), (200, 0.95)])
        + curve_rows("simclr", "b", 0, [(0, 0.5), (100, 0.6), (200, 0.7)])   # firm starts above: inf
        + curve_rows("firm", "c", 0, [(0, 0.5), (100, 0.55), (200, 0.6)])
        + curve_rows("simclr", "c", 0, [(0, 0.5), (100, 0.6), (200, 0.7)])   # never: censored, 0
        + curve_rows("firm", "d", 0, [(0, 0.5), (100, 0.9), (200, 0.9)])
        + curve_rows("simclr", "d", 0, [(0, 0.5), (100, 0.6), (200, 0.7)])   # 0.7 at 50: 4x
        + curve_rows("firm", "e", 0, [(0, 0.5), (100, 0.9), (200, 0.9)])
        + curve_rows("simclr", "e", 0, [(0, 0.5), (100, 0.8), (200, 0.7)])   # simclr peaked: 0.7 at 200/3 vs 50
        + curve_rows("firm", "f", 0, [(0, 0.6), (100, 0.7), (200, 0.8)])
        + curve_rows("simclr", "f", 0, [(0, 0.6), (100, 0.55), (200, 0.5)])  # both start above 0.5: a tie
    )
    table = convergence_table(curves, "firm").set_index("normal_class_name")
    assert table.loc["a", "reference_steps"] == pytest.approx(150) and table.loc["a", "speedup"] == pytest.approx(200 / 150)
    assert table.loc["b", "speedup"] == math.inf
    assert math.isnan(table.loc["c", "reference_steps"]) and table.loc["c", "speedup"] == 0.0
    assert table.loc["d", "speedup"] == pytest.approx(4.0) and table.loc["d", "target_auroc"] == pytest.approx(0.7)
    assert table.loc["a", "objective_steps"] == pytest.approx(200)
    assert table.loc["e", "objective_steps"] == pytest.approx(200 / 3) and table.loc["e", "reference_steps"] == pytest.approx(50)
    assert table.loc["e", "speedup"] == pytest.approx(4 / 3)
    assert table.loc["f", ["objective_steps", "reference_steps", "speedup"]].tolist() == [0.0, 0.0, 1.0]
    summary = convergence_summary(table.reset_index()).iloc[0]
    assert summary["n_pairs"] == 6 and summary["reached_at_init"] == 2 and summary["never_reached"] == 1
    # over all six pairs, sorted 0, 1, 4/3, 4/3, 4, inf: the lower middle value is the third
    assert summary["median_speedup"] == pytest.approx(4 / 3)
    assert summary["q25_speedup"] == 1.0 and summary["q75_speedup"] == pytest.approx(4 / 3)
    assert (summary["faster_classes"], summary["slower_classes"]) == (4, 1)
    assert summary["p_sign_holm"] == summary["p_sign"]  # a family of one row


def test_convergence_summary_holm_spans_every_row():
    pairs = []
    for scorer, objective, speedup in [("knn", "simclr", 3.0), ("knn", "supcon", 0.5), ("kde", "simclr", 2.0)]:
        pairs += [{**ARENA, "scorer": scorer, "objective": objective, "normal_class_name": f"c{i}",
                   "speedup": speedup if i < 7 else 1 / speedup, "reference_steps": 10.0} for i in range(8)]
    summary = convergence_summary(pd.DataFrame(pairs))
    np.testing.assert_allclose(summary["p_sign_holm"], holm_reference(summary["p_sign"].tolist()))
    assert summary["p_sign"].tolist() == pytest.approx([0.0703125] * 3)


# ---------------------------------------------------------------- the CLI

def test_leaderboard_reference_writes_the_comparison(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri, "cmp")
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "cmp", "--tracking-uri", uri,
                                      "--output-dir", str(tmp_path), "--reference", "firm"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "cmp"
    curves = pd.read_csv(folder / "curves.csv", dtype={"normal_class": str})
    assert len(curves) == 3 * len(AUROC) and set(curves["step"]) == {0, STEPS // 2, STEPS}
    paired = pd.read_csv(folder / "paired_vs_firm.csv").iloc[0]
    firm = [np.mean([AUROC[("firm", c, s)] for s in (0, 1)]) for c in "01"]
    simclr = [np.mean([AUROC[("simclr", c, s)] for s in (0, 1)]) for c in "01"]
    assert list(paired.index) == PAIRED_COLUMNS and paired["unit"] == "class (seeds averaged)"
    assert paired["objective"] == "simclr" and (paired["n_classes"], paired["n_pairs"]) == (2, 4)
    assert paired["mean_diff"] == pytest.approx(np.mean(firm) - np.mean(simclr))
    diff = np.subtract(firm, simclr)
    assert paired["p_value"] == pytest.approx(t_two_sided_p(diff.mean() / (diff.std(ddof=1) / math.sqrt(2)), 1))
    assert paired["p_wilcoxon"] == pytest.approx(0.5) and paired["p_holm"] == pytest.approx(paired["p_value"])
    by_pair = pd.read_csv(folder / "paired_vs_firm_class_seed.csv").iloc[0]
    assert by_pair["unit"] == "class × seed" and by_pair["n_pairs"] == 4 and by_pair["wins"] == 4
    convergence = pd.read_csv(folder / "convergence_vs_firm.csv", dtype={"normal_class_name": str})
    # firm's curve: 0.5, (0.5 + a) / 2, a at steps 0, 10, 20; simclr's final AUROC is the target.
    for row in convergence.itertuples():
        a, target = AUROC[("firm", row.normal_class_name[-1], row.seed)], row.target_auroc
        mid = (0.5 + a) / 2
        needed = 10 * (target - 0.5) / (mid - 0.5) if target <= mid else 10 + 10 * (target - mid) / (a - mid)
        assert row.reference_steps == pytest.approx(needed) and row.speedup == pytest.approx(STEPS / needed)
    markdown = (folder / "comparison_vs_firm.md").read_text()
    assert markdown.startswith("# firm against each objective") and "Unit: the class." in markdown
    assert "| simclr | 2 | 4 |" in markdown and "Secondary view, unit class × seed" in markdown
    inflation = pd.read_csv(folder / "selection_inflation.csv")
    assert set(inflation["objective"]) == {"firm", "simclr"} and (inflation["inflation_points"] == 0).all()


def test_leaderboard_reference_must_exist(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri, "cmp2")
    result = CliRunner().invoke(app, ["leaderboard", "--experiment", "cmp2", "--tracking-uri", uri,
                                      "--output-dir", str(tmp_path), "--reference", "csi"])
    assert result.exit_code == 2 and "reference objective 'csi' has no finished run" in result.stderr
    assert not (tmp_path / "cmp2").exists()


def test_pipe_table_aligns_numbers_and_checks_row_width():
    from anobench.report.markdown import number_cell, pipe_table

    assert pipe_table(["a", "n"], [["x", 1], ["y", number_cell(float("nan"), ".2f")]], right={"n"}) == [
        "| a | n |", "|---|---:|", "| x | 1 |", "| y |  |"]
    with pytest.raises(ValueError, match=r"a table row has 1 cells for 2 columns: \['x'\]"):
        pipe_table(["a", "n"], [["x"]])
