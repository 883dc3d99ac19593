"""benchmarks/cifar10_report.py: the verdicts on the FIRM paper's claims."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cifar10_report.py"
spec = importlib.util.spec_from_file_location("cifar10_report", SCRIPT)
report = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = report  # dataclasses look their module up
spec.loader.exec_module(report)


def paired_row(mean: float, low: float, high: float) -> pd.Series:
    return pd.Series({"mean_diff": mean, "ci_low": low, "ci_high": high, "wins": 3, "losses": 1, "n_pairs": 4,
                      "p_value": 0.01})


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (0.05, 0.08, "holds"),                                   # interval contains the claim, excludes 0
    (0.07, 0.09, "holds"),                                   # entirely above the claim
    (0.01, 0.03, "FIRM is ahead, by less than claimed"),
    (-0.01, 0.03, "not shown: no significant difference"),
    (-0.01, 0.08, "not shown: the interval also contains 0"),
    (-0.05, -0.01, "reversed: FIRM is behind"),
    (math.nan, math.nan, "too few pairs"),
])
def test_gain_verdicts(low, high, verdict):
    measured, got = report.judge_gain(paired_row((low + high) / 2, low, high), 0.062)
    assert got == verdict
    if not math.isnan(low):
        assert f"95% CI {100 * low:+.1f} to {100 * high:+.1f}" in measured


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


def speedups(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"speedup": list(values)})


def test_speedup_ranks_never_reached_pairs_lowest():
    measured, verdict = report.judge_speedup(speedups(2.0, 8.0, 10.0, np.nan, np.nan), 12.0)
    # with the two never-reached pairs at 0 the median is 2 (over the finite pairs alone it would be 8)
    assert measured == ("median 2.0x (quartiles 0.0-8.0) over 5 pairs, 2 never reached; "
                        "faster in 3, slower in 2 (sign test p = 1)")
    assert verdict == "not shown: no significant difference"
    assert report.judge_speedup(speedups(1.5, 4.0, 30.0, np.inf), 12.0)[0].startswith(
        "median 4.0x (quartiles 1.5-30.0)")  # the lower middle value, no interpolation towards inf


@pytest.mark.parametrize(("values", "verdict"), [
    ([8.0] * 6 + [9.0, np.inf], "holds"),                                    # 8/0, p = 0.008, median 8 = 12 / 1.5
    ([2.0] * 9 + [np.nan], "FIRM is faster, by less than claimed"),          # 9/1, p = 0.02
    ([2.0] * 8 + [0.5, np.nan], "not shown: no significant difference"),     # 8/2, p = 0.11
    ([1.0] * 7 + [2.0] * 6, "not shown: no significant difference"),         # 6/0 but the median pair is a tie
    ([0.5] * 6 + [np.nan], "reversed: FIRM is slower"),                      # 0/7, p = 0.016
])
def test_speedup_verdicts_need_a_significant_sign_test(values, verdict):
    assert report.judge_speedup(speedups(*values), 12.0)[1] == verdict


def test_claims_table_has_one_row_per_claim_and_reads_only_its_scorer():
    runs = runs_of({("firm", "cat", 0): 0.8, ("simclr", "cat", 0): 0.7, ("rot-supcon", "cat", 0): 0.75})
    other_scorer = runs.assign(scorer="kde", auroc=0.1)
    paired = pd.DataFrame([{"scorer": "knn", "objective": "simclr", "mean_diff": 0.1, "ci_low": 0.08, "ci_high": 0.12,
                            "wins": 1, "losses": 0, "n_pairs": 1, "p_value": 0.001}])
    convergence = pd.DataFrame([{"scorer": "knn", "objective": "simclr", "speedup": 20.0}] * 8   # sign test p = 0.008
                               + [{"scorer": "kde", "objective": "rot-supcon", "speedup": 50.0}] * 8)
    table = report.claims_table(pd.concat([runs, other_scorer]), paired, convergence, "knn").splitlines()
    assert len(table) == 2 + len(report.CLAIMS)
    assert table[2].endswith("| holds |")                                   # +10 points over simclr
    assert table[3] == "| +2 points over Rot-SupCon | no runs | too few pairs |"
    assert "largest +10.0 points (cat)" in table[4] and "largest +5.0 points (cat)" in table[5]
    assert "median 20.0x" in table[6] and table[6].endswith("| holds |")
    assert table[7].endswith("| no common pairs | too few pairs |")        # the kde row is not read


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


def test_replace_block_keeps_the_text_around_the_markers(tmp_path):
    text = "intro\n<!-- a -->\nold\n<!-- b -->\noutro\n"
    assert report.replace_block(text, "<!-- a -->", "<!-- b -->", "new", tmp_path) == (
        "intro\n<!-- a -->\n\nnew\n\n<!-- b -->\noutro\n")
    with pytest.raises(SystemExit, match="has no <!-- x --> ... <!-- b --> block"):
        report.replace_block(text, "<!-- x -->", "<!-- b -->", "new", tmp_path)
