"""benchmarks/cifar10_report.py: the verdicts on the FIRM paper's claims."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anobench.report.comparison import convergence_summary

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cifar10_report.py"
spec = importlib.util.spec_from_file_location("cifar10_report", SCRIPT)
report = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = report  # dataclasses look their module up
spec.loader.exec_module(report)


def paired_row(mean: float, low: float, high: float, p_holm: float = 0.01, p_wilcoxon_holm: float = 0.02) -> pd.Series:
    return pd.Series({"mean_diff": mean, "ci_low": low, "ci_high": high, "wins": 9, "losses": 1, "n_classes": 10,
                      "n_pairs": 20, "p_value": 0.001, "p_holm": p_holm, "p_wilcoxon": 0.002,
                      "p_wilcoxon_holm": p_wilcoxon_holm}, dtype=object)  # a CSV row: counts stay integers


@pytest.mark.parametrize(("low", "high", "p_holm", "verdict"), [
    (0.05, 0.08, 0.01, "holds"),                                  # significant, the interval reaches the claim
    (0.01, 0.03, 0.01, "FIRM is ahead, by less than claimed"),
    (0.01, 0.03, 0.2, "not shown: no significant difference after Holm; the claim lies above the interval"),
    (-0.01, 0.08, 0.2, "not shown: no significant difference after Holm; the interval contains the claim"),
    (-0.05, -0.01, 0.01, "reversed: FIRM is behind"),
    (0.01, 0.03, math.nan, "too few classes"),
])
def test_gain_verdicts_use_the_holm_adjusted_t_test(low, high, p_holm, verdict):
    wilcoxon = 0.01 if p_holm < 0.05 else 0.3  # agreeing
    measured, got = report.judge_gain(paired_row((low + high) / 2, low, high, p_holm, wilcoxon), 0.062)
    assert got == verdict
    assert f"95% CI {100 * low:+.1f} to {100 * high:+.1f} over 10 classes, 20 class × seed pairs" in measured
    assert f"Holm {p_holm:.2g}; Wilcoxon p = 0.002, Holm {wilcoxon:.2g})" in measured


def test_gain_verdict_says_when_the_wilcoxon_test_disagrees():
    # the unadjusted interval excludes 0, but the Holm-adjusted t-test does not reach 0.05
    measured, verdict = report.judge_gain(paired_row(0.029, 0.010, 0.048, p_holm=0.12, p_wilcoxon_holm=0.039), 0.062)
    assert verdict == ("not shown: no significant difference after Holm; the claim lies above the interval "
                       "(the Wilcoxon test, after Holm, disagrees)")
    assert "9/1 classes won/lost" in measured
    assert report.judge_gain(paired_row(0.07, 0.05, 0.09, p_holm=0.01, p_wilcoxon_holm=0.2), 0.062)[1] == (
        "holds (the Wilcoxon test, after Holm, disagrees)")


def runs_of(aurocs: dict[tuple[str, str, int], float]) -> pd.DataFrame:
    return pd.DataFrame([{"objective": o, "normal_class_name": c, "seed": s, "auroc": a, "scorer": "knn"}
                         for (o, c, s), a in aurocs.items()])


def test_best_class_uses_class_means_over_common_pairs():
    runs = runs_of({("firm", "cat", 0): 0.80, ("firm", "cat", 1): 0.70, ("simclr", "cat", 0): 0.60,
                    ("simclr", "cat", 1): 0.60, ("firm", "dog", 0): 0.9, ("simclr", "dog", 0): 0.95,
                    ("firm", "dog", 1): 0.99})  # no simclr partner: ignored
    measured, verdict = report.judge_best_class(runs, "simclr", 0.169)
    assert measured == "largest +15.0 points (cat); smallest -5.0 (dog)" and verdict == "not reached"
    assert report.judge_best_class(runs, "simclr", 0.15)[1] == "reached"
    assert report.judge_best_class(runs, "supcon", 0.1) == ("no common pairs", "too few pairs")


def pairs_of(speedups: list[float], scorer: str = "knn", objective: str = "simclr") -> list[dict]:
    """One pair per class; 0 stands for a target the reference never reached (its steps NaN)."""
    return [{"dataset": "cifar10", "outliers": "rot", "preset": "quick", "scorer": scorer, "objective": objective,
             "normal_class_name": f"c{i}", "speedup": s, "reference_steps": math.nan if s == 0 else 100.0}
            for i, s in enumerate(speedups)]


def speedup_row(*values: float) -> pd.Series:
    return convergence_summary(pd.DataFrame(pairs_of(list(values)))).iloc[0]


def test_speedup_counts_censored_pairs_as_the_slowest():
    measured, verdict = report.judge_speedup(speedup_row(2.0, 8.0, 10.0, 0.0, 0.0), 12.0)
    # with the two censored pairs at 0 the median is 2 (over the reached pairs alone it would be 8)
    assert measured == ("median 2.0x (quartiles 0.0-8.0) over all 5 pairs, 2 censored at 0x (FIRM never reached "
                        "the target); faster in 3 pairs, slower in 2; by class 3 faster, 2 slower, 0 split "
                        "(sign test over classes p = 1, Holm 1)")
    assert verdict == "not shown: no significant difference after Holm"
    assert report.judge_speedup(speedup_row(1.5, 4.0, 30.0, math.inf), 12.0)[0].startswith(
        "median 4.0x (quartiles 1.5-30.0)")  # the lower middle value, no interpolation towards inf


@pytest.mark.parametrize(("values", "verdict"), [
    ([8.0] * 6 + [9.0, math.inf], "holds"),                                  # 8/0 classes, p = 0.008, median 8
    ([2.0] * 9 + [0.0], "not shown: no significant difference after Holm"),  # 9/1: p = 0.021, Holm 0.064
    ([2.0] * 10, "FIRM is faster, by less than claimed"),                    # 10/0, p = 0.002
    ([1.0] * 7 + [2.0] * 6, "not shown: no significant difference after Holm"),  # 6/0 but the median pair is a tie
    ([0.5] * 9 + [0.0], "reversed: FIRM is slower"),                         # 0/10, p = 0.002
])
def test_speedup_verdicts_need_a_significant_holm_adjusted_sign_test(values, verdict):
    # two more rows in the family, far from significant, triple the smallest p
    tied = pairs_of([2.0, 0.5], objective="supcon") + pairs_of([2.0, 0.5], objective="csi")
    summary = convergence_summary(pd.DataFrame(pairs_of(values) + tied))
    assert report.judge_speedup(summary[summary["objective"] == "simclr"].iloc[0], 12.0)[1] == verdict


def test_claims_table_has_one_row_per_claim_and_reads_only_its_scorer():
    runs = runs_of({("firm", "cat", 0): 0.8, ("simclr", "cat", 0): 0.7, ("rot-supcon", "cat", 0): 0.75})
    other_scorer = runs.assign(scorer="kde", auroc=0.1)
    paired = pd.DataFrame([{"scorer": "knn", "objective": "simclr", **paired_row(0.1, 0.08, 0.12)}])
    convergence = pd.DataFrame(pairs_of([20.0] * 8) + pairs_of([50.0] * 8, scorer="kde", objective="rot-supcon"))
    table = report.claims_table(pd.concat([runs, other_scorer]), paired, convergence, "knn").splitlines()
    assert len(table) == 2 + len(report.CLAIMS)
    assert table[2].endswith("| holds |")                                   # +10 points over simclr
    assert table[3] == "| +2 points over Rot-SupCon | no runs | too few classes |"
    assert "largest +10.0 points (cat)" in table[4] and "largest +5.0 points (cat)" in table[5]
    # 8/0 classes: p = 0.0078; Holm over the knn claims' tests (the simclr gain, p = 0.001, and
    # this one; the kde row is not in the family): 0.0078, the larger of max(2 x 0.001, 0.0078)
    assert "median 20.0x" in table[6] and "Holm 0.0078" in table[6] and table[6].endswith("| holds |")
    assert table[7].endswith("| no common pairs | too few pairs |")        # the kde row is not read


def test_selection_table_shows_the_oracle_and_every_scorer():
    inflation = pd.DataFrame([
        {"scorer": s, "objective": o, "n_runs": 20, "n_checkpoints": 6, "auroc_last": last,
         "auroc_best_on_test": last + gain / 100, "inflation_points": gain}
        for s, o, last, gain in [("knn", "firm", 0.77, 0.23), ("knn", "supcon", 0.75, 1.05),
                                 ("kde", "firm", 0.78, 0.16), ("kde", "supcon", 0.76, 0.87),
                                 ("csi", "csi", 0.67, 0.78), ("knn", "csi", 0.78, 0.78)]])
    lines = report.selection_table(inflation, "knn").splitlines()
    assert lines[0] == ("| objective | runs | last step (reported) | best of 6 checkpoints, selected on test labels "
                        "(oracle) | inflation (points), knn | inflation, csi | inflation, kde |")
    assert lines[2:] == ["| firm | 20 | 0.770 | 0.772 | +0.23 |  | +0.16 |",
                         "| csi | 20 | 0.780 | 0.788 | +0.78 | +0.78 |  |",
                         "| supcon | 20 | 0.750 | 0.760 | +1.05 |  | +0.87 |"]


def test_headline_sorts_objectives_and_keeps_the_nt_xent_verdicts():
    leaderboard = pd.DataFrame([
        {"scorer": "knn", "objective": "simclr", "auroc_mean": 0.70, "auroc_std": 0.01, "n_classes": 10, "n_seeds": 2},
        {"scorer": "knn", "objective": "firm", "auroc_mean": 0.75, "auroc_std": 0.02, "n_classes": 10, "n_seeds": 2},
        {"scorer": "knn", "objective": "csi", "auroc_mean": 0.72, "auroc_std": 0.0, "n_classes": 10, "n_seeds": 1},
        {"scorer": "kde", "objective": "firm", "auroc_mean": 0.99, "auroc_std": 0.0, "n_classes": 10, "n_seeds": 2}])
    claims = [[claim.text, f"m{i}", f"v{i}"] for i, claim in enumerate(report.CLAIMS)]
    lines = report.headline(leaderboard, claims, "All 100 runs finished.").splitlines()
    assert lines[0] == "All 100 runs finished."
    assert lines[4:7] == ["| firm | 0.750 ± 0.020 | 10 | 2 |", "| csi | 0.720 | 10 | 1 |", "| simclr | 0.700 ± 0.010 | 10 | 2 |"]
    assert lines[8:] == [f"- FIRM paper, {report.CLAIMS[0].text}. Measured: m0; **v0**.",
                         f"- FIRM paper, {report.CLAIMS[4].text}. Measured: m4; **v4**."]


def test_claim_family_adjusts_the_claims_tests_together() -> None:
    """Holm over the claims table's four tests (2 gains + 2 speed-ups), worked out by hand:
    t family [0.01, 0.5, 0.03, 1.0] -> [0.04, 1.0, 0.09, 1.0]; Wilcoxon family
    [0.002, 0.6, 0.03, 1.0] -> [0.008, 1.0, 0.09, 1.0]; rows of other objectives leave the family."""
    paired = pd.DataFrame({"objective": ["simclr", "rot-supcon", "supcon"], "p_value": [0.01, 0.5, 0.001],
                           "p_wilcoxon": [0.002, 0.6, 0.001]})
    speed = pd.DataFrame({"objective": ["simclr", "rot-supcon", "supcon"], "p_sign": [0.03, 1.0, 0.001]})
    gains, speeds = report.claim_family(paired, speed)
    assert gains["objective"].tolist() == ["simclr", "rot-supcon"]
    np.testing.assert_allclose(gains["p_holm"], [0.04, 1.0])
    np.testing.assert_allclose(gains["p_wilcoxon_holm"], [0.008, 1.0])
    np.testing.assert_allclose(speeds["p_sign_holm"], [0.09, 1.0])
