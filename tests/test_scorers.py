"""Single-view scorers against slow loop references, plus registry-wide contract tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from anobench.scorers import NotFittedError, Scorer, get_scorer, list_scorers
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.covariance import LedoitWolf
from sklearn.svm import OneClassSVM

from anobench.knn import faiss_available

SINGLE = [n for n in list_scorers() if get_scorer(n).views == "single"]
FAST_PARAMS = {"lof": {"n_neighbors": 5}, "ocsvm": {"n_folds": 3}}


def make(name: str, **params: object) -> Scorer:
    return get_scorer(name, **{**FAST_PARAMS.get(name, {}), **params})


def features(seed: int, n: int, d: int = 6) -> np.ndarray:
    """Raw features with varied norms and a shared mean direction (like encoder outputs).

    Values are float32-representable, as scorers compute from float32 features.
    """
    rng = np.random.default_rng(seed)
    direction = np.ones(d) / math.sqrt(d)
    x = (2.0 * direction + rng.normal(size=(n, d))) * rng.uniform(0.5, 3.0, size=(n, 1))
    return x.astype(np.float32).astype(np.float64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    out = np.array(x, dtype=np.float64)
    for i in range(len(out)):
        out[i] = out[i] / math.sqrt(sum(v * v for v in out[i]))
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------- loop references


def ref_knn(bank: np.ndarray, queries: np.ndarray, k: int, loo: bool, norm: bool) -> np.ndarray:
    out = []
    for i, q in enumerate(queries):
        sims = sorted(
            (cosine(q, b) for j, b in enumerate(bank) if not (loo and i == j)), reverse=True
        )
        s = sum(sims[:k]) / k
        out.append(-s * (np.linalg.norm(q) if norm else 1.0))
    return np.array(out)


def ref_ledoit_wolf_alpha(x: np.ndarray) -> float:
    """Ledoit & Wolf (2004): alpha = min(b2, d2) / d2 with per-sample loops."""
    n, d = x.shape
    u = x - x.mean(axis=0)
    s = sum(np.outer(r, r) for r in u) / n
    mu = np.trace(s) / d
    d2 = np.sum((s - mu * np.eye(d)) ** 2) / d
    b2 = sum(np.sum((np.outer(r, r) - s) ** 2) for r in u) / (n * n * d)
    return min(b2, d2) / d2


def ref_gaussian(others: np.ndarray, alpha: float, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (1-alpha) S + alpha tr(S)/d I + reg I of ``others`` (S divided by n)."""
    n, d = others.shape
    m = others.mean(axis=0)
    s = sum(np.outer(r - m, r - m) for r in others) / n
    return m, (1 - alpha) * s + alpha * np.trace(s) / d * np.eye(d) + reg * np.eye(d)


def ref_mahalanobis(bank: np.ndarray, queries: np.ndarray, loo: bool) -> np.ndarray:
    xb, xq = unit_rows(bank), unit_rows(queries)
    alpha = ref_ledoit_wolf_alpha(xb)
    out = []
    for i, q in enumerate(xq):
        others = np.delete(xb, i, axis=0) if loo else xb
        m, cov = ref_gaussian(others, alpha, 0.0)
        out.append(math.sqrt((q - m) @ np.linalg.solve(cov, q - m)))
    return np.array(out)


def ref_gde(bank: np.ndarray, queries: np.ndarray, reg: float, loo: bool) -> np.ndarray:
    xb, xq = unit_rows(bank), unit_rows(queries)
    out = []
    for i, q in enumerate(xq):
        others = np.delete(xb, i, axis=0) if loo else xb
        m, cov = ref_gaussian(others, 0.0, reg)
        out.append(-multivariate_normal(mean=m, cov=cov).logpdf(q))
    return np.array(out)


def ref_kde(bank: np.ndarray, queries: np.ndarray, loo: bool) -> np.ndarray:
    xb, xq = unit_rows(bank), unit_rows(queries)
    gamma = 20.0 / (np.var(xb) * xb.shape[1])
    out = []
    for i, q in enumerate(xq):
        logits = [gamma * float(q @ b) for j, b in enumerate(xb) if not (loo and i == j)]
        out.append(-logsumexp(logits) / gamma)
    return np.array(out)


def ref_center(bank: np.ndarray, queries: np.ndarray, loo: bool) -> np.ndarray:
    xb = unit_rows(bank)
    out = []
    for i, q in enumerate(queries):
        others = [b for j, b in enumerate(xb) if not (loo and i == j)]
        c = sum(others) / len(others)
        out.append(1.0 - cosine(q, c))
    return np.array(out)


def ref_lof(bank: np.ndarray, queries: np.ndarray | None, k: int) -> np.ndarray:
    """LOF by its definition (Breunig et al. 2000), Euclidean on unit rows; None = training LOF."""
    xb = unit_rows(bank)
    n = len(xb)

    def neighbours(p: np.ndarray, skip: int | None) -> list[tuple[float, int]]:
        dists = [(float(np.linalg.norm(p - xb[j])), j) for j in range(n) if j != skip]
        return sorted(dists)[:k]

    train_nb = [neighbours(xb[j], j) for j in range(n)]
    k_dist = [nb[-1][0] for nb in train_nb]

    def lrd(nb: list[tuple[float, int]]) -> float:
        reach = [max(k_dist[j], dist) for dist, j in nb]
        return 1.0 / (sum(reach) / k + 1e-10)  # scikit-learn's guard against zero

    train_lrd = [lrd(nb) for nb in train_nb]
    if queries is None:
        nbs = train_nb
    else:
        nbs = [neighbours(q, None) for q in unit_rows(queries)]
    return np.array([sum(train_lrd[j] for _, j in nb) / k / lrd(nb) for nb in nbs])


# ---------------------------------------------------------------- reference comparisons


BACKENDS = [
    "torch",
    pytest.param(
        "faiss",
        marks=pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed"),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "k", "norm"),
    [("knn", 5, False), ("knn", 1, False), ("knn-norm", 1, True), ("knn-norm", 3, True)],
)
def test_knn_family_against_loops(name: str, k: int, norm: bool, backend: str) -> None:
    bank, test = features(0, 40), features(1, 15)
    scorer = make(name, k=k, backend=backend).fit(torch.from_numpy(bank))
    np.testing.assert_allclose(
        scorer.decision_function(test), ref_knn(bank, test, k, False, norm), atol=1e-5
    )
    np.testing.assert_allclose(scorer.score_train(), ref_knn(bank, bank, k, True, norm), atol=1e-5)


def test_knn_self_match_rule() -> None:
    bank = features(2, 30)
    scorer = make("knn", k=1).fit(bank)
    # With the self-match, every training point would score exactly -1 (cosine with itself).
    np.testing.assert_allclose(scorer.decision_function(bank), -1.0, atol=1e-6)
    assert (scorer.score_train() > -1.0 + 1e-4).all()
    # A duplicate elsewhere in the bank is a genuine neighbour, not a self-match.
    dup = np.vstack([bank, bank[:1]])
    loo = make("knn", k=1).fit(dup).score_train()
    assert loo[0] == pytest.approx(-1.0, abs=1e-6) and loo[-1] == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("loo", [False, True])
def test_mahalanobis_against_loops(loo: bool) -> None:
    bank, test = features(3, 40, d=5), features(4, 12, d=5)
    scorer = make("mahalanobis").fit(bank)
    assert scorer.shrinkage_ == pytest.approx(LedoitWolf().fit(unit_rows(bank)).shrinkage_)
    assert scorer.shrinkage_ == pytest.approx(ref_ledoit_wolf_alpha(unit_rows(bank)))
    got = scorer.score_train() if loo else scorer.decision_function(test)
    np.testing.assert_allclose(got, ref_mahalanobis(bank, bank if loo else test, loo), rtol=1e-6)


@pytest.mark.parametrize("loo", [False, True])
def test_gde_against_loops(loo: bool) -> None:
    bank, test = features(5, 30, d=4), features(6, 10, d=4)
    scorer = make("gde", reg=1e-3).fit(bank)
    got = scorer.score_train() if loo else scorer.decision_function(test)
    np.testing.assert_allclose(got, ref_gde(bank, bank if loo else test, 1e-3, loo), rtol=1e-6)


@pytest.mark.parametrize("loo", [False, True])
def test_kde_against_loops(loo: bool) -> None:
    bank, test = features(7, 35), features(8, 10)
    scorer = make("kde", max_chunk_elements=50).fit(bank)  # several row chunks
    got = scorer.score_train() if loo else scorer.decision_function(test)
    np.testing.assert_allclose(got, ref_kde(bank, bank if loo else test, loo), rtol=1e-6)


@pytest.mark.parametrize("loo", [False, True])
def test_center_against_loops(loo: bool) -> None:
    bank, test = features(9, 25), features(10, 10)
    scorer = make("center").fit(bank)
    got = scorer.score_train() if loo else scorer.decision_function(test)
    np.testing.assert_allclose(got, ref_center(bank, bank if loo else test, loo), atol=1e-10)


@pytest.mark.parametrize("loo", [False, True])
def test_lof_against_loops(loo: bool) -> None:
    bank, test = features(11, 30), features(12, 10)
    scorer = make("lof", n_neighbors=5).fit(bank)
    got = scorer.score_train() if loo else scorer.decision_function(test)
    np.testing.assert_allclose(got, ref_lof(bank, None if loo else test, 5), rtol=1e-6)


def test_ocsvm_gamma_sign_and_cross_fitting() -> None:
    bank, test = features(13, 30), features(14, 10)
    xb, xt = unit_rows(bank), unit_rows(test)
    gamma = 10.0 / (np.var(xb) * xb.shape[1])
    scorer = make("ocsvm", nu=0.2, n_folds=3).fit(bank)
    assert scorer.gamma_ == pytest.approx(gamma)
    expected = -OneClassSVM(kernel="rbf", gamma=gamma, nu=0.2).fit(xb).decision_function(xt)
    np.testing.assert_allclose(scorer.decision_function(test), expected, rtol=1e-5, atol=1e-7)
    train = np.empty(30)
    for fold in range(3):
        held = [i for i in range(30) if i % 3 == fold]
        rest = [i for i in range(30) if i % 3 != fold]
        svm = OneClassSVM(kernel="rbf", gamma=gamma, nu=0.2).fit(xb[rest])
        train[held] = -svm.decision_function(xb[held])
    np.testing.assert_allclose(scorer.score_train(), train, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- registry-wide contract


@pytest.mark.parametrize("name", SINGLE)
def test_far_point_scores_highest(name: str) -> None:
    rng = np.random.default_rng(20)
    d = 6
    centre = np.zeros(d)
    centre[0] = 4.0
    bank = centre + 0.5 * rng.normal(size=(60, d))
    near = centre + 0.5 * rng.normal(size=(10, d))
    far = -centre + 0.5 * rng.normal(size=(1, d))
    scores = make(name).fit(bank).decision_function(np.vstack([near, far]))
    assert scores.dtype == np.float64 and scores.shape == (11,)
    assert np.argmax(scores) == 10, scores


@pytest.mark.parametrize("name", SINGLE)
def test_identical_points_score_equal(name: str) -> None:
    bank = features(21, 40)
    row = features(22, 1)
    scores = make(name).fit(bank).decision_function(np.vstack([row, row, features(23, 3)]))
    assert scores[0] == pytest.approx(scores[1], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", SINGLE)
def test_train_scores_exclude_self(name: str) -> None:
    """score_train differs from scoring the bank with itself inside, and flags a planted outlier."""
    rng = np.random.default_rng(24)
    centre = np.zeros(6)
    centre[0] = 4.0
    bank = centre + 0.5 * rng.normal(size=(40, 6))
    bank[7] = -centre  # an outlier inside the training bank
    scorer = make(name).fit(bank)
    train = scorer.score_train()
    assert train.shape == (40,) and train.dtype == np.float64 and np.isfinite(train).all()
    assert np.argmax(train) == 7
    assert not np.allclose(train, scorer.decision_function(bank), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", SINGLE)
def test_use_before_fit_raises(name: str) -> None:
    scorer = make(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        scorer.decision_function(features(0, 3))
    with pytest.raises(NotFittedError):
        scorer.score_train()


@pytest.mark.parametrize("name", SINGLE)
def test_fitted_attributes_and_params(name: str) -> None:
    scorer = make(name)
    params = scorer.get_params()
    before = set(vars(scorer))
    scorer.fit(torch.from_numpy(features(25, 30)).float())
    added = set(vars(scorer)) - before
    assert added and all(a.endswith("_") for a in added), added
    assert scorer.get_params() == params
    assert isinstance(get_scorer(name, **params), type(scorer))
    assert scorer.fit(features(26, 30)) is scorer


@pytest.mark.parametrize("name", SINGLE)
def test_bad_features_raise(name: str) -> None:
    scorer = make(name).fit(features(27, 30))
    with pytest.raises(ValueError, match="non-finite"):
        scorer.decision_function(np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        scorer.decision_function(np.ones(6))


@pytest.mark.parametrize(
    ("name", "params", "n"),
    [
        ("knn", {"k": 5}, 5),
        ("knn-norm", {"k": 0}, 10),
        ("mahalanobis", {}, 2),
        ("lof", {"n_neighbors": 5}, 5),
        ("kde", {}, 1),
        ("ocsvm", {"n_folds": 3}, 5),
    ],
)
def test_bank_too_small_raises(name: str, params: dict, n: int) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=r"rows|k must"):
        get_scorer(name, **params).fit(features(28, n))


def test_features_that_require_grad_are_accepted() -> None:
    bank = torch.randn(30, 6, requires_grad=True)
    scores = make("knn", k=2, backend="torch").fit(bank).decision_function(bank[:3])
    assert scores.shape == (3,) and np.isfinite(scores).all()
