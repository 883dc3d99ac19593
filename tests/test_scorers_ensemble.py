"""Multi-view ensembles (knn-shift, knn-ens) and the own-head pass-through (csi: test_csi_score.py)."""

from __future__ import annotations

import numpy as np
import pytest
from anobench.scorers import NotFittedError, get_scorer, list_scorers

VIEW_SCORERS = {"knn-shift": 4, "knn-ens": 40}


def views(seed: int, v: int, n: int, d: int = 5) -> np.ndarray:
    """(v, n, d) float32-representable raw features, a different mean direction per view."""
    rng = np.random.default_rng(seed)
    out = np.empty((v, n, d))
    for i in range(v):
        direction = np.zeros(d)
        direction[(i // max(1, v // 4)) % d] = 2.0
        out[i] = (direction + rng.normal(size=(n, d))) * rng.uniform(0.5, 2.0, size=(n, 1))
    return out.astype(np.float32).astype(np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_mean_topk(bank: np.ndarray, q: np.ndarray, k: int, skip: int | None) -> float:
    sims = sorted((cosine(q, b) for j, b in enumerate(bank) if j != skip), reverse=True)
    return sum(sims[:k]) / k


def ref_view_knn(bank4: np.ndarray, test: np.ndarray, k: int, loo: bool) -> np.ndarray:
    """−mean over views of the mean top-k similarity to the view's angle bank (angle-major)."""
    per_angle = test.shape[0] // 4
    out = []
    for m in range(test.shape[1]):
        vals = [
            ref_mean_topk(bank4[v // per_angle], test[v, m], k, m if loo else None)
            for v in range(test.shape[0])
        ]
        out.append(-sum(vals) / len(vals))
    return np.array(out)


def test_registered_views() -> None:
    for name, n_views in VIEW_SCORERS.items():
        scorer = get_scorer(name)
        assert scorer.views == ("rotations-crops" if n_views == 40 else "rotations")
    assert get_scorer("oe-head").views == "own-head"
    assert get_scorer("csi").views == "csi"
    assert {"knn-shift", "knn-ens", "csi", "oe-head"} <= set(list_scorers())


@pytest.mark.parametrize("k", [1, 3])
def test_knn_shift_against_loops(k: int) -> None:
    bank, test = views(0, 4, 20), views(1, 4, 7)
    scorer = get_scorer("knn-shift", k=k, backend="torch").fit(bank)
    np.testing.assert_allclose(
        scorer.decision_function(test), ref_view_knn(bank, test, k, False), atol=1e-5
    )
    np.testing.assert_allclose(scorer.score_train(), ref_view_knn(bank, bank, k, True), atol=1e-5)
    other = views(2, 4, 20)  # e.g. differently augmented views of the same training images
    np.testing.assert_allclose(
        scorer.score_train(other), ref_view_knn(bank, other, k, True), atol=1e-5
    )


def test_knn_ens_against_loops_and_angle_major_layout() -> None:
    bank, test = views(3, 4, 15), views(4, 40, 5)
    scorer = get_scorer("knn-ens", k=2).fit(bank)
    got = scorer.decision_function(test)
    np.testing.assert_allclose(got, ref_view_knn(bank, test, 2, False), atol=1e-5)
    # Crops may be permuted within an angle, but views are angle-major: moving a crop to
    # another angle's block changes the score.
    perm = np.concatenate([a * 10 + np.random.default_rng(a).permutation(10) for a in range(4)])
    np.testing.assert_allclose(scorer.decision_function(test[perm]), got, atol=1e-6)
    moved = test.copy()
    moved[[0, 10]] = moved[[10, 0]]
    assert not np.allclose(scorer.decision_function(moved), got, atol=1e-4)
    np.testing.assert_allclose(scorer.score_train(), ref_view_knn(bank, bank, 2, True), atol=1e-5)
    train_views = views(5, 40, 15)
    np.testing.assert_allclose(
        scorer.score_train(train_views), ref_view_knn(bank, train_views, 2, True), atol=1e-5
    )


@pytest.mark.parametrize("name", sorted(VIEW_SCORERS))
def test_far_image_scores_highest_and_identical_equal(name: str) -> None:
    rng = np.random.default_rng(14)
    n_views = VIEW_SCORERS[name]
    centre = np.zeros(5)
    centre[0] = 4.0
    bank = centre + 0.5 * rng.normal(size=(4, 40, 5))
    test = centre + 0.5 * rng.normal(size=(n_views, 6, 5))
    test[:, 5] = -centre
    test[:, 4] = test[:, 3]
    scores = get_scorer(name).fit(bank).decision_function(test)
    assert scores.dtype == np.float64 and scores.shape == (6,)
    assert np.argmax(scores) == 5
    assert scores[3] == pytest.approx(scores[4], abs=1e-9)


@pytest.mark.parametrize("name", sorted(VIEW_SCORERS))
def test_view_scorer_contract(name: str) -> None:
    n_views = VIEW_SCORERS[name]
    scorer = get_scorer(name)
    with pytest.raises(NotFittedError):
        scorer.decision_function(views(15, n_views, 3))
    before = set(vars(scorer))
    params = scorer.get_params()
    assert scorer.fit(views(16, 4, 12)) is scorer
    added = set(vars(scorer)) - before
    assert added and all(a.endswith("_") for a in added)
    assert scorer.get_params() == params
    with pytest.raises(ValueError, match="views"):
        scorer.decision_function(views(17, n_views + 1, 3))
    with pytest.raises(ValueError, match="3-D"):
        scorer.decision_function(np.ones((3, 5)))
    with pytest.raises(ValueError, match="4 views"):
        get_scorer(name).fit(views(18, 3, 12))


def test_oe_head_passes_own_scores_through() -> None:
    scorer = get_scorer("oe-head")
    with pytest.raises(NotFittedError):
        scorer.decision_function(np.zeros(3))
    assert scorer.fit(None) is scorer
    own = np.array([0.5, -2.0, 3.25], dtype=np.float32)
    out = scorer.decision_function(own)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, own.astype(np.float64))
    np.testing.assert_array_equal(scorer.score_train(own[:2]), own[:2].astype(np.float64))
    with pytest.raises(ValueError, match="1-D"):
        scorer.decision_function(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        scorer.decision_function(np.array([0.0, np.nan]))
