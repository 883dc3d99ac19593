"""Detection metrics against scikit-learn, pairwise loops and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from anobench.metrics import aulc, aupr, auroc, detection_metrics, fpr_at_tpr


def pairwise_auroc(scores: list[float], labels: list[int]) -> float:
    """P(score of an anomaly > score of a normal) + 0.5 P(tie), by looping over all pairs."""
    total, count = 0.0, 0
    for si, yi in zip(scores, labels):
        if not yi:
            continue
        for sj, yj in zip(scores, labels):
            if yj:
                continue
            total += 1.0 if si > sj else 0.5 if si == sj else 0.0
            count += 1
    return total / count


def loop_fpr_at_tpr(scores: list[float], labels: list[int], tpr: float) -> float:
    """Lower the threshold over the sorted distinct scores until TPR reaches ``tpr``."""
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    for thr in sorted(set(scores), reverse=True):
        tp = sum(1 for s, y in zip(scores, labels) if y and s >= thr)
        fp = sum(1 for s, y in zip(scores, labels) if not y and s >= thr)
        if tp / n_pos >= tpr - 1e-12:
            return fp / n_neg
    raise AssertionError("unreachable: the lowest threshold flags every anomaly")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rounded", [False, True])
def test_random_against_sklearn_and_loops(seed: int, rounded: bool) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=60)
    labels[:2] = [0, 1]
    scores = rng.normal(size=60) + labels
    if rounded:  # many ties
        scores = np.round(scores, 0)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auroc(scores, labels) == pytest.approx(
        pairwise_auroc(scores.tolist(), labels.tolist()), abs=1e-12
    )
    assert aupr(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    expected = float(fpr[np.flatnonzero(tpr >= 0.95)[0]])
    assert fpr_at_tpr(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert fpr_at_tpr(scores, labels, 0.8) == pytest.approx(
        loop_fpr_at_tpr(scores.tolist(), labels.tolist(), 0.8), abs=1e-12
    )


def test_hand_computed_with_ties() -> None:
    scores, labels = [0.2, 0.5, 0.5, 0.9], [0, 1, 0, 1]
    # pairs (anomaly, normal): (.5,.2)=1, (.5,.5)=.5, (.9,.2)=1, (.9,.5)=1 -> 3.5 / 4
    assert auroc(scores, labels) == pytest.approx(0.875)
    # thresholds .9: P=1, R=.5 ; .5: P=2/3, R=1 -> .5 * 1 + .5 * 2/3
    assert aupr(scores, labels) == pytest.approx(0.5 + 1 / 3)
    # TPR first reaches 1 at threshold .5, flagging one of the two normals
    assert fpr_at_tpr(scores, labels) == pytest.approx(0.5)


def test_constant_score() -> None:
    labels = [0, 0, 0, 1]
    m = detection_metrics([3.0] * 4, labels)
    assert m == {"auroc": 0.5, "aupr": 0.25, "fpr95": 1.0}


def test_perfect_and_inverted_separation() -> None:
    labels = [0, 0, 1, 1]
    assert detection_metrics([0, 1, 2, 3], labels) == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    inverted = detection_metrics([3, 2, 1, 0], labels)
    assert inverted["auroc"] == 0.0 and inverted["fpr95"] == 1.0
    # thresholds 1: P=1/3, R=.5 ; 0: P=1/2, R=1
    assert inverted["aupr"] == pytest.approx(0.5 / 3 + 0.25)


def test_boolean_labels_and_keys() -> None:
    m = detection_metrics(np.array([0.1, 0.9, 0.3]), np.array([False, True, False]))
    assert set(m) == {"auroc", "aupr", "fpr95"}
    assert all(isinstance(v, float) for v in m.values())


@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([0.1, 0.2], [1, 1], "single class"),
        ([0.1, 0.2], [0, 0], "single class"),
        ([0.1, 0.2, 0.3], [0, 1], "differ in length"),
        ([0.1, float("nan")], [0, 1], "non-finite"),
        ([0.1, float("inf")], [0, 1], "non-finite"),
        ([0.1, 0.2], [0, 2], "0/1"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
    ],
)
@pytest.mark.parametrize("fn", [auroc, aupr, fpr_at_tpr, detection_metrics])
def test_invalid_input_raises(fn, scores, labels, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        fn(scores, labels)


def test_fpr_at_tpr_rejects_bad_level() -> None:
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr([0.1, 0.2], [0, 1], tpr=0.0)


def test_aulc_trapezoid_by_hand() -> None:
    # progress 0, 100, 300 -> 0, 1/3, 1 ; area = 1/3 * (.5 + .7)/2 + 2/3 * (.7 + .9)/2
    expected = (1 / 3) * 0.6 + (2 / 3) * 0.8
    assert aulc([0, 100, 300], [0.5, 0.7, 0.9]) == pytest.approx(expected)
    assert aulc([10, 20, 30, 40], [0.8] * 4) == pytest.approx(0.8)
    assert aulc(np.linspace(0, 1, 11), np.linspace(0.5, 1.0, 11)) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("progress", "aurocs", "match"),
    [
        ([0], [0.5], "at least two"),
        ([0, 1], [0.5], "equal length"),
        ([0, 0], [0.5, 0.6], "strictly increase"),
        ([1, 0], [0.5, 0.6], "strictly increase"),
        ([0, 1], [0.5, float("nan")], "finite"),
        ([0, 1], [0.5, 1.2], r"\[0, 1\]"),
    ],
)
def test_aulc_invalid_input_raises(progress, aurocs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        aulc(progress, aurocs)
