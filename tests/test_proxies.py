"""Label-free proxies (anobench.proxies), each against a slow float64 loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anobench.errors import ConfigError, UnknownNameError
from anobench.outliers import get_generator
from anobench.proxies import (
    RANKME_EPSILON,
    VAL_OUTLIERS,
    alignment,
    rankme,
    resolve_val_outliers,
    uniformity,
    val_auroc,
    val_mean_score,
)


def reference_rankme(z: np.ndarray, eps: float = RANKME_EPSILON) -> float:
    """Singular values as square roots of the eigenvalues of the smaller Gram matrix."""
    gram = z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z
    sigma = [math.sqrt(max(v, 0.0)) for v in np.linalg.eigvalsh(gram)]
    total = sum(sigma)
    entropy = 0.0
    for s in sigma:
        p = s / total + eps
        if p > 0:
            entropy -= p * math.log(p)
    return math.exp(entropy)


def unit(row: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in row))
    return [v / norm for v in row]


def reference_alignment(a: np.ndarray, b: np.ndarray, alpha: float) -> float:
    total = 0.0
    for x, y in zip(a.tolist(), b.tolist()):
        x, y = unit(x), unit(y)
        total += math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y))) ** alpha
    return total / len(a)


def reference_uniformity(z: np.ndarray, t: float) -> float:
    rows = [unit(r) for r in z.tolist()]
    total, pairs = 0.0, 0
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            total += math.exp(-t * sum((p - q) ** 2 for p, q in zip(rows[i], rows[j])))
            pairs += 1
    return math.log(total / pairs)


@pytest.mark.parametrize("shape", [(50, 8), (8, 50), (20, 20), (1, 5), (5, 1)])
@pytest.mark.parametrize("eps", [RANKME_EPSILON, 0.0])
def test_rankme_matches_reference(shape, eps):
    z = np.random.default_rng(shape[0] * 100 + shape[1]).normal(size=shape)
    assert rankme(torch.from_numpy(z), eps) == pytest.approx(reference_rankme(z, eps), rel=1e-9)


@pytest.mark.parametrize("rank", [1, 2, 5, 16])
def test_rankme_of_a_matrix_of_known_rank(rank):
    # Z = U diag(3, ..., 3, 0, ...) Vᵀ: `rank` equal singular values of 16 possible.
    rng = np.random.default_rng(rank)
    u, _ = np.linalg.qr(rng.normal(size=(40, 16)))
    v, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    sigma = np.r_[np.full(rank, 3.0), np.zeros(16 - rank)]
    z = torch.from_numpy(u @ np.diag(sigma) @ v.T)
    assert rankme(z, epsilon=0.0) == pytest.approx(rank, rel=1e-9)
    # With ε each of the r values is 1/r + ε and each of the 16 − r others about ε.
    eps = RANKME_EPSILON
    exact = math.exp(-rank * (1 / rank + eps) * math.log(1 / rank + eps)
                     - (16 - rank) * eps * math.log(eps))
    assert rankme(z) == pytest.approx(exact, rel=1e-6)
    assert rankme(z) == pytest.approx(rank, rel=1e-4)


def test_rankme_ignores_scale_and_runs_on_float32():
    z = torch.randn(30, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert rankme(5 * z) == pytest.approx(rankme(z), rel=1e-12)
    assert rankme(z.float()) == pytest.approx(rankme(z.double()), rel=1e-5)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(4, 3), "all zero"),
    (torch.tensor([[1.0, float("nan")]]), "non-finite"),
    (torch.ones(3), "must be an \\(N, F\\) tensor"),
    (torch.ones(0, 3), "at least 1 row"),
    (np.ones((3, 3)), "must be an \\(N, F\\) tensor"),
])
def test_rankme_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        rankme(bad)


def test_rankme_negative_epsilon():
    with pytest.raises(ValueError, match="epsilon must be >= 0, got -1"):
        rankme(torch.eye(2), epsilon=-1)


@pytest.mark.parametrize("alpha", [2.0, 1.0, 3.5])
def test_alignment_matches_reference(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    a, b = rng.normal(size=(25, 7)), rng.normal(size=(25, 7))
    got = alignment(torch.from_numpy(a), torch.from_numpy(b), alpha)
    assert got == pytest.approx(reference_alignment(a, b, alpha), rel=1e-12)


def test_alignment_by_hand():
    # Row 1: (1, 0) and (0, 1), squared distance 2; row 2: the same direction, distance 0.
    view1 = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    view2 = torch.tensor([[0.0, 5.0], [0.0, 3.0]])
    assert alignment(view1, view2) == pytest.approx(1.0)
    assert alignment(view1, view2, alpha=1) == pytest.approx(math.sqrt(2) / 2)


@pytest.mark.parametrize("args,match", [
    ((torch.ones(3, 2), torch.ones(4, 2)), "differ in shape"),
    ((torch.zeros(1, 2), torch.ones(1, 2)), "view1 has 1 all-zero row"),
    ((torch.ones(2), torch.ones(2)), "view1 must be an \\(N, F\\) tensor"),
])
def test_alignment_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        alignment(*args)


def test_alignment_bad_alpha():
    with pytest.raises(ValueError, match="alpha must be > 0, got 0"):
        alignment(torch.ones(1, 2), torch.ones(1, 2), alpha=0)


@pytest.mark.parametrize("t", [2.0, 0.5, 7.0])
def test_uniformity_matches_reference(t):
    z = np.random.default_rng(int(t * 10)).normal(size=(30, 5))
    expected = reference_uniformity(z, t)
    assert uniformity(torch.from_numpy(z), t) == pytest.approx(expected, rel=1e-12)


def test_uniformity_by_hand():
    # Antipodes: ‖z₁ − z₂‖² = 4, log exp(−2·4) = −8. Three points 120° apart on a circle:
    # every squared distance is 3, so −6.
    antipodes = torch.tensor([[1.0, 0.0], [-3.0, 0.0]])
    assert uniformity(antipodes) == pytest.approx(-8.0)
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    triangle = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert uniformity(triangle) == pytest.approx(-6.0)
    # (1,0), (0,1), (-1,0): squared distances 2, 4, 2 → log((2e⁻⁴ + e⁻⁸) / 3).
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert uniformity(three) == pytest.approx(math.log((2 * math.exp(-4) + math.exp(-8)) / 3))


def test_uniformity_of_one_point_collapse_is_zero():
    assert uniformity(torch.ones(5, 3)) == pytest.approx(0.0)


@pytest.mark.parametrize("bad,match", [
    (torch.ones(1, 3), "at least 2 row"),
    (torch.tensor([[0.0, 0.0], [1.0, 0.0]]), "1 all-zero row"),
    (torch.tensor([[float("inf"), 0.0], [1.0, 0.0]]), "non-finite"),
])
def test_uniformity_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        uniformity(bad)


def test_uniformity_bad_t():
    with pytest.raises(ValueError, match="t must be > 0, got -2"):
        uniformity(torch.eye(2), t=-2)


def test_val_mean_score_matches_reference():
    scores = np.random.default_rng(0).normal(size=101)
    reference = 0.0
    for s in scores.tolist():
        reference += s
    assert val_mean_score(torch.from_numpy(scores)) == pytest.approx(reference / 101, rel=1e-12)
    assert val_mean_score(scores.tolist()) == pytest.approx(reference / 101, rel=1e-12)


@pytest.mark.parametrize("bad,match", [
    ([], "non-empty 1-D"), ([[1.0]], "non-empty 1-D"),
    ([1.0, float("nan")], "1 non-finite"),
])
def test_val_mean_score_bad_input(bad, match):
    with pytest.raises(ValueError, match=f"val_scores .*{match}"):
        val_mean_score(bad)


@pytest.mark.parametrize("train,val,expected", [
    ("rot90+rot180+rot270", None, VAL_OUTLIERS),
    ("rot90", None, VAL_OUTLIERS),
    ("cutpaste", None, "rot90+rot180+rot270"),
    ("scramble+hflip", None, "rot90+rot180+rot270"),
    ("rot90+rot180+rot270", "hflip+cutpaste", "hflip+cutpaste"),
])
def test_resolve_val_outliers(train, val, expected):
    assert resolve_val_outliers(train, val) == expected


def test_val_outliers_sharing_a_training_generator_is_an_error():
    with pytest.raises(ConfigError, match="shares \\['rot90'\\] with the training outliers"):
        resolve_val_outliers("rot90+rot180", "cutpaste+rot90")


def test_no_disjoint_default_is_an_error():
    with pytest.raises(ConfigError, match="overlap both"):
        resolve_val_outliers("cutpaste+rot90")


def test_val_outliers_unknown_name():
    with pytest.raises(UnknownNameError, match="unknown outlier generator 'nope'"):
        resolve_val_outliers("rot90", "nope")


def reference_auroc(normal: list[float], anomalous: list[float]) -> float:
    """Probability that an anomaly outscores a normal, ties one half, over all pairs."""
    total = 0.0
    for a in anomalous:
        for n in normal:
            total += 1.0 if a > n else 0.5 if a == n else 0.0
    return total / (len(normal) * len(anomalous))


def mean_brightness_of_centre(images: torch.Tensor) -> np.ndarray:
    return images[:, :, 8:24, 8:24].double().mean(dim=(1, 2, 3)).numpy()


def test_val_auroc_matches_reference():
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    images[:, :, 12:20, 12:20] = 40  # a dark centre that cutpaste and scramble can move away
    anomalies, _ = get_generator(VAL_OUTLIERS)(images, torch.Generator().manual_seed(5))
    expected = reference_auroc(mean_brightness_of_centre(images).tolist(),
                               mean_brightness_of_centre(anomalies).tolist())
    got = val_auroc(images, VAL_OUTLIERS, mean_brightness_of_centre, seed=5)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 < got < 1.0


def test_val_auroc_scores_normals_then_the_same_anomalies_once():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    seen = []

    def record(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return torch.arange(len(batch), dtype=torch.float64)

    assert val_auroc(images, "rot90", record, seed=3) == 1.0
    val_auroc(images, "rot90", record, seed=3)
    assert len(seen) == 2 and seen[0].equal(seen[1])
    assert seen[0][:5].equal(images) and seen[0][5:].equal(torch.rot90(images, 1, dims=(2, 3)))


@pytest.mark.parametrize("returned,match", [
    (np.zeros(3), "score returned 3 scores for 4 images"),
    (np.array([0.0, 1.0, float("nan"), 2.0]), "non-finite"),
])
def test_val_auroc_bad_scores(returned, match):
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=match):
        val_auroc(images, "hflip", lambda batch: returned)


@pytest.mark.parametrize("images,match", [
    (torch.zeros(2, 3, 8, 8), "uint8"), (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "got 0"),
])
def test_val_auroc_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        val_auroc(images, "hflip", lambda batch: np.zeros(len(batch)))
