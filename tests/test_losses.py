"""The contrastive losses against a float64 reference written as plain loops over anchors."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from anobench.objectives import FIRMLoss, NTXentLoss, SupConLoss, contrastive_loss

OUT = -1
Key = tuple[int, int]  # (sample index, view 1 or 2)
Rule = Callable[[int, int], bool]


def rule_for(kind: str, labels: list[int]) -> Rule:
    """Is sample j (either view) a positive of anchor sample i, as in docs/method.md §3's table."""
    if kind == "ntxent":
        return lambda i, j: i == j
    if kind == "supcon":
        return lambda i, j: labels[i] == labels[j]
    if kind == "firm":
        return lambda i, j: j == i if labels[i] == OUT else labels[j] == labels[i]
    raise AssertionError(kind)


def positive_sets(n: int, mode: str, rule: Rule) -> dict[Key, set[Key]]:
    """Positive candidates of every anchor, by layout."""
    if mode == "pairwise":
        return {(i, 1): {(j, 2) for j in range(n) if rule(i, j)} for i in range(n)}
    keys = [(i, v) for i in range(n) for v in (1, 2)]
    return {a: {b for b in keys if b != a and rule(a[0], b[0])} for a in keys}


def reference(z1: torch.Tensor, z2: torch.Tensor, sets: dict[Key, set[Key]], mode: str,
              tau: float) -> float:
    """ℓ_i = −(1/|P(i)|) Σ_p log(exp(s(i,p)/τ) / Σ_{a∈A(i)} exp(s(i,a)/τ)), mean over anchors."""
    views = {1: z1.double().tolist(), 2: z2.double().tolist()}
    n = len(views[1])

    def sim(a: Key, b: Key) -> float:
        return sum(x * y for x, y in zip(views[a[1]][a[0]], views[b[1]][b[0]])) / tau

    total = 0.0
    for anchor, positives in sets.items():
        if mode == "pairwise":
            candidates = [(j, 2) for j in range(n)]
        else:
            candidates = [(j, v) for j in range(n) for v in (1, 2) if (j, v) != anchor]
        log_norm = math.log(sum(math.exp(sim(anchor, c)) for c in candidates))
        total += -sum(sim(anchor, p) - log_norm for p in positives) / len(positives)
    return total / len(sets)


def make_loss(kind: str, tau: float, mode: str) -> Callable[..., torch.Tensor]:
    if kind == "ntxent":
        loss = NTXentLoss(tau=tau, mode=mode)
        return lambda z1, z2, labels: loss(z1, z2)
    module = FIRMLoss(tau=tau, mode=mode) if kind == "firm" else SupConLoss(tau=tau, mode=mode)
    return lambda z1, z2, labels: module(z1, z2, labels)


def views(n: int, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    z2 = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    return z1, z2


LABEL_PATTERNS = {
    "inliers+outliers": [0, 0, 0, 0, OUT, OUT, OUT, OUT, OUT, OUT],
    "multi-class": [2, 0, OUT, 1, 0, 2, OUT, 1, 0, OUT],
    "single-sample classes": [0, 1, 2, OUT, 3, OUT, 4, OUT],
    "few outliers": [5, 5, 5, 5, 5, 5, OUT],
}
KINDS = ["firm", "supcon", "ntxent"]
MODES = ["concat", "pairwise"]


@pytest.mark.parametrize("pattern", LABEL_PATTERNS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_loop_reference(kind: str, mode: str, pattern: str) -> None:
    labels = LABEL_PATTERNS[pattern]
    z1, z2 = views(len(labels), seed=len(pattern))
    tau = 0.3
    sets = positive_sets(len(labels), mode, rule_for(kind, labels))
    expected = reference(z1, z2, sets, mode, tau)
    got = make_loss(kind, tau, mode)(z1, z2, torch.tensor(labels))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_kinds_differ() -> None:
    """The three positive sets really give three different losses on the same batch."""
    labels = LABEL_PATTERNS["multi-class"]
    z1, z2 = views(len(labels))
    values = {float(make_loss(k, 0.2, "concat")(z1, z2, torch.tensor(labels))) for k in KINDS}
    assert len(values) == 3


# Hand-enumerated positive sets for labels [0, 0, -1, 1] (samples a, b, o, c).
HAND_LABELS = [0, 0, OUT, 1]
HAND_SETS = {
    ("firm", "pairwise"): {
        (0, 1): {(0, 2), (1, 2)}, (1, 1): {(0, 2), (1, 2)}, (2, 1): {(2, 2)}, (3, 1): {(3, 2)},
    },
    ("firm", "concat"): {
        (0, 1): {(0, 2), (1, 1), (1, 2)}, (0, 2): {(0, 1), (1, 1), (1, 2)},
        (1, 1): {(1, 2), (0, 1), (0, 2)}, (1, 2): {(1, 1), (0, 1), (0, 2)},
        (2, 1): {(2, 2)}, (2, 2): {(2, 1)},
        (3, 1): {(3, 2)}, (3, 2): {(3, 1)},
    },
    ("ntxent", "pairwise"): {
        (0, 1): {(0, 2)}, (1, 1): {(1, 2)}, (2, 1): {(2, 2)}, (3, 1): {(3, 2)},
    },
    ("ntxent", "concat"): {
        (0, 1): {(0, 2)}, (0, 2): {(0, 1)}, (1, 1): {(1, 2)}, (1, 2): {(1, 1)},
        (2, 1): {(2, 2)}, (2, 2): {(2, 1)}, (3, 1): {(3, 2)}, (3, 2): {(3, 1)},
    },
}
# SupCon with two outliers: labels [0, 0, -1, -1] (outliers attract each other).
HAND_SUPCON_LABELS = [0, 0, OUT, OUT]
HAND_SUPCON_SETS = {
    "pairwise": {
        (0, 1): {(0, 2), (1, 2)}, (1, 1): {(0, 2), (1, 2)},
        (2, 1): {(2, 2), (3, 2)}, (3, 1): {(2, 2), (3, 2)},
    },
    "concat": {
        (0, 1): {(0, 2), (1, 1), (1, 2)}, (0, 2): {(0, 1), (1, 1), (1, 2)},
        (1, 1): {(1, 2), (0, 1), (0, 2)}, (1, 2): {(1, 1), (0, 1), (0, 2)},
        (2, 1): {(2, 2), (3, 1), (3, 2)}, (2, 2): {(2, 1), (3, 1), (3, 2)},
        (3, 1): {(3, 2), (2, 1), (2, 2)}, (3, 2): {(3, 1), (2, 1), (2, 2)},
    },
}


@pytest.mark.parametrize(("kind", "mode"), sorted(HAND_SETS))
def test_hand_enumerated_positive_sets(kind: str, mode: str) -> None:
    z1, z2 = views(4, seed=7)
    expected = reference(z1, z2, HAND_SETS[kind, mode], mode, 0.2)
    assert float(make_loss(kind, 0.2, mode)(z1, z2, torch.tensor(HAND_LABELS))) == pytest.approx(
        expected, rel=1e-10
    )


@pytest.mark.parametrize("mode", MODES)
def test_hand_enumerated_supcon(mode: str) -> None:
    z1, z2 = views(4, seed=8)
    expected = reference(z1, z2, HAND_SUPCON_SETS[mode], mode, 0.2)
    got = SupConLoss(0.2, mode)(z1, z2, torch.tensor(HAND_SUPCON_LABELS))
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_two_sample_value_by_hand() -> None:
    """N=2, NT-Xent pairwise: ℓ_0 = −log(e^{s00/τ} / (e^{s00/τ} + e^{s01/τ})), all by hand."""
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[0.6, 0.8], [0.8, -0.6]], dtype=torch.float64)
    tau = 0.5
    l0 = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.8 / tau)))
    l1 = -math.log(math.exp(-0.6 / tau) / (math.exp(0.8 / tau) + math.exp(-0.6 / tau)))
    assert float(NTXentLoss(tau, "pairwise")(z1, z2)) == pytest.approx((l0 + l1) / 2, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_low_precision_against_float64_reference(kind: str, mode: str, dtype: torch.dtype) -> None:
    labels = LABEL_PATTERNS["multi-class"]
    z1, z2 = views(len(labels), d=16, seed=3)
    z1, z2 = z1.to(dtype), z2.to(dtype)
    tau = 0.05  # logits up to 20: exp would overflow float16 if computed in it
    sets = positive_sets(len(labels), mode, rule_for(kind, labels))
    expected = reference(z1, z2, sets, mode, tau)  # on the same rounded inputs
    got = make_loss(kind, tau, mode)(z1, z2, torch.tensor(labels))
    assert got.dtype == torch.promote_types(dtype, torch.float32)
    assert torch.isfinite(got)
    # Inputs are rounded alike on both sides, so only the float32 arithmetic differs.
    assert float(got) == pytest.approx(expected, rel=1e-10 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_backward_is_finite(dtype: torch.dtype) -> None:
    z1, z2 = (z.to(dtype).requires_grad_() for z in views(6, seed=4))
    FIRMLoss(tau=0.01, mode="concat")(z1, z2, torch.tensor([0, 0, 0, OUT, OUT, OUT])).backward()
    assert z1.grad is not None and z2.grad is not None
    assert torch.isfinite(z1.grad.float()).all() and torch.isfinite(z2.grad.float()).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind: str, mode: str) -> None:
    labels = torch.tensor([0, 1, 0, OUT, OUT])
    g = torch.Generator().manual_seed(11)
    z1 = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    loss = make_loss(kind, 0.7, mode)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, labels), (z1, z2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_permutation_invariance(kind: str, mode: str) -> None:
    labels = torch.tensor(LABEL_PATTERNS["multi-class"])
    z1, z2 = views(len(labels), seed=5)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    loss = make_loss(kind, 0.2, mode)
    assert float(loss(z1[perm], z2[perm], labels[perm])) == pytest.approx(
        float(loss(z1, z2, labels)), rel=1e-12
    )


def test_firm_custom_outlier_label() -> None:
    z1, z2 = views(6, seed=9)
    a = FIRMLoss(outlier_label=-7)(z1, z2, torch.tensor([0, 0, -7, -7, 1, 1]))
    b = FIRMLoss()(z1, z2, torch.tensor([0, 0, -1, -1, 1, 1]))
    assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_firm_warns_once_without_outliers() -> None:
    z1, z2 = views(4)
    loss = FIRMLoss()
    with pytest.warns(UserWarning, match="without outliers"):
        loss(z1, z2, torch.tensor([0, 0, 0, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(z1, z2, torch.tensor([0, 0, 0, 0]))
        loss(z1, z2, torch.tensor([0, 0, OUT, OUT]))


def test_empty_row_raises_naming_row_and_counts() -> None:
    z1, z2 = views(3)
    positives = torch.tensor([[True, False, False], [False, False, False], [False, False, True]])
    with pytest.raises(ValueError, match=r"row 1 \(label 0\).*label counts: \{-1: 1, 0: 2\}"):
        contrastive_loss(z1, z2, positives, labels=torch.tensor([0, 0, -1]))
    with pytest.raises(ValueError, match="row 1 has no positive"):
        contrastive_loss(z1, z2, positives, mode="pairwise")


def test_firm_rejects_unknown_negative_label() -> None:
    z1, z2 = views(3)
    with pytest.raises(ValueError, match=r"label counts: \{-2: 1, -1: 1, 0: 1\}"):
        FIRMLoss()(z1, z2, torch.tensor([0, -1, -2]))


@pytest.mark.parametrize("tau", [0, -0.1, float("nan"), float("inf"), "0.2"])
@pytest.mark.parametrize("cls", [FIRMLoss, NTXentLoss, SupConLoss])
def test_bad_tau_raises(cls: type, tau: object) -> None:
    with pytest.raises(ValueError, match="tau"):
        cls(tau=tau)


@pytest.mark.parametrize("cls", [FIRMLoss, NTXentLoss, SupConLoss])
def test_bad_mode_lists_valid_modes(cls: type) -> None:
    with pytest.raises(ValueError, match="concat, pairwise.*'symmetric'"):
        cls(mode="symmetric")


def test_bad_outlier_label_and_shapes() -> None:
    with pytest.raises(ValueError, match="outlier_label"):
        FIRMLoss(outlier_label=0)
    z1, z2 = views(4)
    with pytest.raises(ValueError, match="same shape"):
        NTXentLoss()(z1, z2[:3])
    with pytest.raises(ValueError, match="labels"):
        SupConLoss()(z1, z2, torch.tensor([0, 1, 0]))
