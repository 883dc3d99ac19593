"""Calibrated thresholds and conformal p-values (anobench.thresholds)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import kstest

from anobench.thresholds import (
    DEFAULT_TARGET_FPR,
    conformal_p_values,
    conformal_threshold,
    min_calibration_scores,
    rates_at_threshold,
    realised_fpr_interval,
)


def reference_p_values(val: list[float], test: list[float]) -> list[float]:
    return [(1 + sum(1 for v in val if v >= s)) / (len(val) + 1) for s in test]


def reference_threshold(val: list[float], alpha: float) -> float:
    """The ⌈(1 − α)(n + 1)⌉-th smallest score, α in exact decimal arithmetic."""
    rank = math.ceil((1 - Fraction(repr(alpha))) * (len(val) + 1))
    return sorted(val)[rank - 1]


@pytest.mark.parametrize("n,m", [(1, 5), (19, 40), (200, 300)])
def test_p_values_match_reference_with_ties(n, m):
    rng = np.random.default_rng(n)
    val, test = rng.integers(0, 10, n).astype(float), rng.integers(-1, 11, m).astype(float)
    got = conformal_p_values(val, test)
    assert got.dtype == np.float64 and got.shape == (m,)
    assert got.tolist() == pytest.approx(reference_p_values(val.tolist(), test.tolist()), abs=1e-15)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.29, 0.01, 0.5, 0.07])
@pytest.mark.parametrize("n", [99, 100, 257, 1000])
def test_threshold_matches_reference_and_p_value_rule(alpha, n):
    rng = np.random.default_rng(n)
    val = rng.normal(size=n)
    t = conformal_threshold(val, alpha)
    assert t == reference_threshold(val.tolist(), alpha)
    # Flagging s > t is the same decision as p(s) <= α, for every test score, tied ones too.
    test = np.r_[rng.normal(size=500), val]
    assert ((test > t) == (conformal_p_values(val, test) <= alpha)).all()


def test_threshold_with_ties_stays_a_calibration_score():
    val = [1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert conformal_threshold(val, alpha=0.2) == reference_threshold(val, 0.2) == 3.0


def test_min_calibration_scores_is_the_boundary():
    # α as meant: a decimal k/100 exactly, 1/k as the fraction (not its binary rounding).
    meant = {k / 100: Fraction(k, 100) for k in range(1, 100)}
    meant.update({1 / k: Fraction(1, k) for k in range(2, 60)})
    for alpha, exact in meant.items():
        n = min_calibration_scores(alpha)
        assert n == math.ceil(1 / exact) - 1, alpha
        conformal_threshold(np.arange(n, dtype=float), alpha)
        if n > 1:
            message = f"needs at least {n} calibration scores, got {n - 1}"
            with pytest.raises(ValueError, match=message):
                conformal_threshold(np.arange(n - 1, dtype=float), alpha)


def test_default_target_and_too_few_scores():
    assert DEFAULT_TARGET_FPR == 0.05 and min_calibration_scores(DEFAULT_TARGET_FPR) == 19
    with pytest.raises(ValueError, match="rate 0.05 needs at least 19 calibration scores, got 18"):
        conformal_threshold(np.zeros(18))


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan"), True, "0.05"])
def test_bad_alpha_names_it(alpha):
    with pytest.raises(ValueError, match="alpha must be in \\(0, 1\\)"):
        conformal_threshold(np.zeros(100), alpha)


@pytest.mark.parametrize("bad,match", [
    ([], "val_scores must be a non-empty 1-D"),
    ([1.0, float("inf")], "val_scores holds 1 non-finite"),
])
def test_bad_calibration_scores(bad, match):
    with pytest.raises(ValueError, match=match):
        conformal_p_values(bad, [0.0])


@pytest.mark.parametrize("n,alpha", [(99, 0.05), (30, 0.05), (19, 0.05), (40, 0.1)])
def test_false_positive_rate_on_synthetic_normals(n, alpha):
    # Fresh calibration and test normal per trial: the marginal FPR is exactly k / (n + 1),
    # k = ⌊α(n + 1)⌋ (continuous scores), e.g. 1/31 for n = 30. 20 000 trials give a binomial
    # sd of at most sqrt(0.05 · 0.95 / 20 000) = 0.0016; four sds bound it (seeded).
    trials = 20_000
    rng = np.random.default_rng(n)
    calibration, tests = rng.standard_t(3, size=(trials, n)), rng.standard_t(3, size=trials)
    flagged = [s > conformal_threshold(v, alpha) for v, s in zip(calibration, tests)]
    expected = math.floor(alpha * (n + 1) + 1e-9) / (n + 1)
    assert expected <= alpha
    sd = math.sqrt(alpha * (1 - alpha) / trials)
    assert np.mean(flagged) == pytest.approx(expected, abs=4 * sd)


def test_p_values_uniform_under_exchangeability():
    # One p-value per trial, each from its own 999 calibration scores: the p-values are i.i.d.
    # uniform on {1/1000, ..., 1}. KS distance to U(0, 1) with 2000 samples: the 0.1% critical
    # value is 1.95 / sqrt(2000) = 0.044, plus 0.001 for the grid; 0.05 is generous.
    rng = np.random.default_rng(17)
    p = np.array([conformal_p_values(rng.exponential(size=999), rng.exponential(size=1))[0]
                  for _ in range(2000)])
    assert kstest(p, "uniform").statistic < 0.05


def test_p_values_detect_a_shift():
    rng = np.random.default_rng(3)
    p = conformal_p_values(rng.normal(size=999), rng.normal(3.0, 1.0, size=2000))
    assert kstest(p, "uniform").statistic > 0.5


def test_rates_at_threshold_match_reference():
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 20, 300).astype(float)
    labels = rng.integers(0, 2, 300)
    got = rates_at_threshold(scores, labels, threshold=9.0)
    normal = [s for s, y in zip(scores, labels) if y == 0]
    anomalous = [s for s, y in zip(scores, labels) if y == 1]
    assert got == {
        "fpr_at_threshold": pytest.approx(sum(s > 9.0 for s in normal) / len(normal)),
        "tpr_at_threshold": pytest.approx(sum(s > 9.0 for s in anomalous) / len(anomalous)),
    }


def test_rates_at_threshold_errors():
    with pytest.raises(ValueError, match="single class"):
        rates_at_threshold([0.1, 0.2], [0, 0], 0.15)
    with pytest.raises(ValueError, match="threshold must be finite, got nan"):
        rates_at_threshold([0.1, 0.2], [0, 1], float("nan"))


def reference_beta_binomial_quantile(q: float, m: int, a: int, b: int) -> int:
    """Smallest x with P(X <= x) >= q, P(X = x) = C(m, x) B(x + a, m − x + b) / B(a, b)."""
    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    total = 0.0
    for x in range(m + 1):
        log_choose = math.lgamma(m + 1) - math.lgamma(x + 1) - math.lgamma(m - x + 1)
        total += math.exp(log_choose + log_beta(x + a, m - x + b) - log_beta(a, b))
        if total >= q - 1e-12:
            return x
    return m


@pytest.mark.parametrize("alpha,n_val,m", [(0.05, 500, 1000), (0.05, 19, 50), (0.1, 99, 9000)])
def test_realised_fpr_interval_matches_reference(alpha, n_val, m):
    k = math.floor(alpha * (n_val + 1) + 1e-9)
    low, high = realised_fpr_interval(alpha, n_val, m)
    assert low == reference_beta_binomial_quantile(0.025, m, k, n_val + 1 - k) / m
    assert high == reference_beta_binomial_quantile(0.975, m, k, n_val + 1 - k) / m


def test_realised_fpr_interval_covers_simulated_studies():
    # A central interval of a discrete law covers at least 95%; 2000 simulated studies (500
    # held-out and 1000 test normals each) give coverage with sd 0.005, so >= 0.93 is 4 sds.
    n_val, m, studies = 500, 1000, 2000
    low, high = realised_fpr_interval(0.05, n_val, m)
    rng = np.random.default_rng(8)
    realised = []
    for _ in range(studies):
        t = conformal_threshold(rng.normal(size=n_val), 0.05)
        realised.append(float((rng.normal(size=m) > t).mean()))
    realised = np.array(realised)
    assert np.mean((realised >= low) & (realised <= high)) >= 0.93
    assert realised.mean() == pytest.approx(25 / 501, abs=0.002)


@pytest.mark.parametrize("args,match", [
    ((0.05, 18, 100), "needs at least 19 calibration scores, got n_val=18"),
    ((0.05, 0, 100), "n_val must be an int >= 1, got 0"),
    ((0.05, 100, 0), "n_test_normal must be an int >= 1, got 0"),
    ((0.05, 100, 10, 1.0), "level must be in \\(0, 1\\), got 1.0"),
    ((2.0, 100, 10), "alpha must be in \\(0, 1\\), got 2.0"),
])
def test_realised_fpr_interval_errors(args, match):
    with pytest.raises(ValueError, match=match):
        realised_fpr_interval(*args)
