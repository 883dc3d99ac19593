"""Registered objectives: every entry's smoke test, the wrappers, and CSI/OE by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from anobench.errors import UnknownNameError
from anobench.objectives import (
    OUTLIER_LABEL,
    FIRMLoss,
    NTXentLoss,
    StepOutputs,
    SupConLoss,
    get_objective,
    list_objectives,
)

FEATURES = 6


def step(
    inliers: int = 2, shifts: int = 3, seed: int = 0, label: int = 4, grad: bool = False
) -> StepOutputs:
    """CSI-style batch: every inlier followed by its `shifts` shifted copies (ids 1..shifts)."""
    g = torch.Generator().manual_seed(seed)
    n = inliers * (1 + shifts)
    generator_ids = torch.arange(1 + shifts).repeat(inliers)
    source_index = torch.arange(inliers).repeat_interleave(1 + shifts) * (1 + shifts)
    labels = torch.where(generator_ids == 0, label, OUTLIER_LABEL)
    f1 = torch.randn(n, FEATURES, generator=g, requires_grad=grad)
    f2 = torch.randn(n, FEATURES, generator=g, requires_grad=grad)
    head = torch.randn(FEATURES, 4, generator=g)
    return StepOutputs(
        features1=f1, features2=f2,
        z1=F.normalize(f1 @ head, dim=1), z2=F.normalize(f2 @ head, dim=1),
        labels=labels, generator_ids=generator_ids, source_index=source_index,
    )


def test_registry_names() -> None:
    assert list_objectives() == ["csi", "firm", "oe", "rot-supcon", "simclr", "supcon"]
    with pytest.raises(UnknownNameError, match="valid names: csi, firm"):
        get_objective("firmm")


@pytest.mark.parametrize("name", list_objectives())
def test_every_objective_trains_a_step(name: str) -> None:
    objective = get_objective(name)
    objective.build(FEATURES)
    outputs = step(grad=True)
    loss = objective(outputs)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert outputs.features1.grad is not None and torch.isfinite(outputs.features1.grad).all()
    assert all(p.grad is not None for p in objective.parameters())
    scores = objective.own_scores(torch.randn(5, FEATURES))
    assert scores is None or scores.shape == (5,)


@pytest.mark.parametrize("name", ["firm", "simclr", "supcon", "rot-supcon", "csi"])
def test_contrastive_params_validated(name: str) -> None:
    with pytest.raises(ValueError, match="tau"):
        get_objective(name, tau=0.0)
    with pytest.raises(ValueError, match="concat, pairwise"):
        get_objective(name, mode="both")


@pytest.mark.parametrize("mode", ["concat", "pairwise"])
def test_wrappers_use_the_right_loss_and_inputs(mode: str) -> None:
    out = step(inliers=3, seed=1)
    tau = 0.4
    expected = {
        "firm": FIRMLoss(tau, -1, mode)(out.z1, out.z2, out.labels),
        "simclr": NTXentLoss(tau, mode)(out.z1, out.z2),
        "supcon": SupConLoss(tau, mode)(out.z1, out.z2, out.labels),
        "rot-supcon": SupConLoss(tau, mode)(out.z1, out.z2, out.generator_ids),
    }
    for name, value in expected.items():
        assert float(get_objective(name, tau=tau, mode=mode)(out)) == pytest.approx(float(value))
    assert len({round(float(v), 9) for v in expected.values()}) == 4


def test_defaults() -> None:
    firm = get_objective("firm")
    assert firm.loss.tau == 0.2 and firm.loss.mode == "concat" and firm.loss.outlier_label == -1
    assert not firm.recipe.outliers_from_inliers
    assert get_objective("csi").recipe.outliers_from_inliers


def test_csi_head_and_hand_computed_loss() -> None:
    csi = get_objective("csi", tau=0.3, shift_weight=0.5)
    csi.build(FEATURES)
    assert csi.shift_head is not None
    assert csi.shift_head.weight.shape == (4, FEATURES) and csi.shift_head.bias.shape == (4,)
    bias = [0.5, -1.0, 2.0, 0.0]
    with torch.no_grad():
        csi.shift_head.weight.zero_()
        csi.shift_head.bias.copy_(torch.tensor(bias))
    out = step(inliers=2, seed=2)  # shift targets 0,1,2,3,0,1,2,3 on both views
    log_norm = math.log(sum(math.exp(b) for b in bias))
    targets = out.generator_ids.tolist() * 2
    ce = sum(log_norm - bias[t] for t in targets) / len(targets)
    assert csi.shift_loss(out).item() == pytest.approx(ce, rel=1e-6)
    ntxent = float(NTXentLoss(0.3)(out.z1, out.z2))
    assert csi(out).item() == pytest.approx(ntxent + 0.5 * ce, rel=1e-6)


def test_csi_head_learns_from_features() -> None:
    csi = get_objective("csi")
    csi.build(2)
    with torch.no_grad():
        csi.shift_head.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]]))
        csi.shift_head.bias.zero_()
    f = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    out = StepOutputs(
        features1=f, features2=f, z1=F.normalize(f, dim=1), z2=F.normalize(f, dim=1),
        labels=torch.tensor([0, OUTLIER_LABEL]), generator_ids=torch.tensor([0, 1]),
        source_index=torch.tensor([0, 0]),
    )
    row0 = math.log(math.exp(2) + 1 + math.exp(-2) + 1) - 2  # logits 2, 0, -2, 0, target 0
    row1 = math.log(1 + math.exp(3) + 1 + math.exp(-3)) - 3  # logits 0, 3, 0, -3, target 1
    assert csi.shift_loss(out).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_csi_errors() -> None:
    csi = get_objective("csi")
    with pytest.raises(RuntimeError, match="build"):
        csi(step())
    csi.build(FEATURES)
    bad_ids = step()
    bad_ids.generator_ids[1] = 4
    with pytest.raises(ValueError, match="num_shifts"):
        csi(bad_ids)
    no_source = step()
    no_source.source_index[1] = -1
    with pytest.raises(ValueError, match="outliers_from_inliers"):
        csi(no_source)
    with pytest.raises(ValueError, match="num_shifts"):
        get_objective("csi", num_shifts=1)


def _outputs(features: torch.Tensor, labels: list[int]) -> StepOutputs:
    z = F.normalize(features, dim=1)
    ids = torch.tensor([0 if y >= 0 else 1 for y in labels])
    return StepOutputs(
        features1=features, features2=features, z1=z, z2=z, labels=torch.tensor(labels),
        generator_ids=ids, source_index=torch.full((len(labels),), -1),
    )


def test_oe_binary_by_hand() -> None:
    oe = get_objective("oe")
    oe.build(2)
    assert oe.head is not None and oe.head.weight.shape == (1, 2)
    with torch.no_grad():
        oe.head.weight.copy_(torch.tensor([[1.0, -1.0]]))
        oe.head.bias.fill_(0.5)
    f = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    logits = [1 - 2 + 0.5, 3 + 0.5, 0.5]
    is_out = [0, 1, 1]

    def bce(x: float, y: int) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    expected = sum(bce(x, y) for x, y in zip(logits, is_out)) / 3
    assert oe(_outputs(f, [3, OUTLIER_LABEL, OUTLIER_LABEL])).item() == pytest.approx(expected)
    assert oe.own_scores(f).tolist() == pytest.approx(logits)


def test_oe_multiclass_by_hand() -> None:
    oe = get_objective("oe", num_classes=3)
    oe.build(3)
    assert oe.head is not None and oe.head.weight.shape == (3, 3)
    with torch.no_grad():
        oe.head.weight.copy_(torch.eye(3))
        oe.head.bias.zero_()
    f = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 3.0, 0.0]])
    labels = [0, 2, OUTLIER_LABEL, OUTLIER_LABEL]

    def log_softmax(row: list[float]) -> list[float]:
        norm = math.log(sum(math.exp(v) for v in row))
        return [v - norm for v in row]

    rows = [log_softmax(r) for r in f.tolist()]
    ce_in = -(rows[0][0] + rows[1][2]) / 2
    uniform = -(sum(rows[2]) / 3 + sum(rows[3]) / 3) / 2
    assert oe(_outputs(f, labels)).item() == pytest.approx(ce_in + 0.5 * uniform, rel=1e-6)
    msp = [-max(math.exp(v) for v in r) for r in rows]
    assert oe.own_scores(f).tolist() == pytest.approx(msp, rel=1e-6)
    assert msp[2] > msp[3]  # the flat row scores as more anomalous


def test_oe_errors() -> None:
    oe = get_objective("oe")
    with pytest.raises(RuntimeError, match="build"):
        oe.own_scores(torch.zeros(1, 2))
    oe.build(2)
    with pytest.raises(ValueError, match="num_classes"):
        oe(_outputs(torch.zeros(3, 2), [0, 1, OUTLIER_LABEL]))
    multi = get_objective("oe", num_classes=2)
    multi.build(2)
    with pytest.raises(ValueError, match="0..1"):
        multi(_outputs(torch.zeros(3, 2), [0, 2, OUTLIER_LABEL]))
