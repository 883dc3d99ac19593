"""CSI's detector (``csi_score``, the ``csi`` scorer) and the views the harness feeds it."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from anobench.augment import AugmentRecipe, BatchAugmenter
from anobench.cli import app
from anobench.config import RunConfig, preset
from anobench.evaluation import CSI_VIEW_RECIPE, FeatureViews, csi_view, rotate
from anobench.models import ContrastiveModel
from anobench.objectives import get_objective
from anobench.runner import run_experiment
from anobench.scorers import CsiFeatures, NotFittedError, csi_score, get_scorer
from anobench.training import embed


def loop_reference(
    train_sim: np.ndarray, train_shift: np.ndarray, test_sim: np.ndarray, test_shift: np.ndarray,
    leave_one_out: bool = False,
) -> np.ndarray:
    """−CSI(x) written out with plain Python loops in float64, after alinlab/CSI ood_pre.py."""
    m_train, k_shifts, t_train, dim = train_sim.shape
    n_test, t_test = test_sim.shape[0], test_sim.shape[2]

    def mean_vector(x: np.ndarray, n: int, s: int, t_count: int) -> list[float]:
        return [sum(float(x[n, s, t, d]) for t in range(t_count)) / t_count for d in range(dim)]

    def mean_logit(x: np.ndarray, n: int, s: int, t_count: int) -> float:
        return sum(float(x[n, s, t, s]) for t in range(t_count)) / t_count

    axes, w_sim, w_shi = [], [], []
    for s in range(k_shifts):
        means = [mean_vector(train_sim, m, s, t_train) for m in range(m_train)]
        norms = [sum(v * v for v in mean) ** 0.5 for mean in means]
        axes.append([[v / (norm + 1e-8) for v in mean] for mean, norm in zip(means, norms)])
        w_sim.append(1.0 / (sum(norms) / m_train))
        w_shi.append(1.0 / (sum(mean_logit(train_shift, m, s, t_train) for m in range(m_train)) / m_train))
    out = []
    for n in range(n_test):
        total = 0.0
        for s in range(k_shifts):
            query = mean_vector(test_sim, n, s, t_test)
            best = max(
                sum(q * a for q, a in zip(query, axes[s][m]))
                for m in range(m_train)
                if not (leave_one_out and m == n)
            )
            total += best * w_sim[s] + mean_logit(test_shift, n, s, t_test) * w_shi[s]
        out.append(-total / k_shifts)
    return np.array(out)


def random_inputs(seed: int, m: int, n: int, k: int, t: int, d: int) -> tuple[np.ndarray, ...]:
    """Projections around a common direction (so the max is not a tie) and logits around 2."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=d)
    return (
        centre + rng.normal(size=(m, k, t, d)),
        rng.normal(2.0, 1.0, size=(m, k, t, k)),
        centre + rng.normal(size=(n, k, t, d)),
        rng.normal(2.0, 1.0, size=(n, k, t, k)),
    )


@pytest.mark.parametrize(
    ("m", "n", "k", "t", "d"),
    [(1, 1, 1, 1, 3), (1, 4, 2, 3, 5), (6, 3, 1, 2, 4), (5, 7, 4, 1, 8), (9, 2, 4, 10, 16)],
)
def test_against_loop_reference(m: int, n: int, k: int, t: int, d: int) -> None:
    arrays = random_inputs(m * 100 + t, m, n, k, t, d)
    expected = loop_reference(*arrays)
    np.testing.assert_allclose(csi_score(*arrays), expected, rtol=1e-5, atol=1e-6)
    scorer = get_scorer("csi", backend="torch").fit(CsiFeatures(arrays[0], arrays[1]))
    got = scorer.decision_function((arrays[2], arrays[3]))  # a plain pair works too
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_test_samples_may_differ_from_training_samples() -> None:
    train_sim, train_shift, _, _ = random_inputs(1, 5, 0, 4, 3, 6)
    _, _, test_sim, test_shift = random_inputs(2, 0, 4, 4, 7, 6)
    np.testing.assert_allclose(
        csi_score(train_sim, train_shift, test_sim, test_shift),
        loop_reference(train_sim, train_shift, test_sim, test_shift),
        rtol=1e-5,
        atol=1e-6,
    )


def hand_training_set() -> tuple[np.ndarray, np.ndarray]:
    """M = 2 training images, K = 2 shifts, T = 1 sample, D = 2.

    Projections: image 0: s0 (3, 4), s1 (0, 2); image 1: s0 (0, 1), s1 (2, 0).
      s0: norms 5 and 1, mean 3 -> w_sim,0 = 1/3; axes (0.6, 0.8), (0, 1).
      s1: norms 2 and 2, mean 2 -> w_sim,1 = 1/2; axes (0, 1), (1, 0).
    True-shift logits: s0: 2 and 4 -> w_shi,0 = 1/3; s1: 4 and 2 -> w_shi,1 = 1/3. The other
    logits (99) must not matter.
    """
    train_sim = np.array([[[[3.0, 4.0]], [[0.0, 2.0]]], [[[0.0, 1.0]], [[2.0, 0.0]]]])
    train_shift = np.array([[[[2.0, 99.0]], [[99.0, 4.0]]], [[[4.0, 99.0]], [[99.0, 2.0]]]])
    return train_sim, train_shift


def test_hand_computed_single_sample() -> None:
    train_sim, train_shift = hand_training_set()
    # Test image: s0 (6, 8): dots 10 and 8, max 10 -> 10/3; logit 3 -> 3/3 = 1.
    #             s1 (1, 3): dots 3 and 1, max 3 -> 3/2; logit 1.5 -> 1.5/3 = 0.5.
    # CSI = (10/3 + 1 + 3/2 + 1/2) / 2 = 19/6; anomaly score -19/6.
    test_sim = np.array([[[[6.0, 8.0]], [[1.0, 3.0]]]])
    test_shift = np.array([[[[3.0, -50.0]], [[-50.0, 1.5]]]])
    got = csi_score(train_sim, train_shift, test_sim, test_shift)
    np.testing.assert_allclose(got, [-19 / 6], rtol=1e-6)


def test_hand_computed_samples_are_averaged_before_the_dot_product() -> None:
    train_sim, train_shift = hand_training_set()
    # T = 2. s0: samples (6, 8), (0, 0) -> mean (3, 4): dots 5 and 4, max 5 -> 5/3;
    #            logits 3, 1 -> mean 2 -> 2/3.
    #        s1: samples (1, 3), (1, 1) -> mean (1, 2): dots 2 and 1, max 2 -> 2/2 = 1;
    #            logits 0, 3 -> mean 1.5 -> 0.5.
    # CSI = (5/3 + 2/3 + 1 + 1/2) / 2 = 23/12; anomaly score -23/12. The mean (3, 4) is not
    # normalised: its norm 5 scales the first term.
    test_sim = np.array([[[[6.0, 8.0], [0.0, 0.0]], [[1.0, 3.0], [1.0, 1.0]]]])
    test_shift = np.array([[[[3.0, 7.0], [1.0, 7.0]], [[7.0, 0.0], [7.0, 3.0]]]])
    got = csi_score(train_sim, train_shift, test_sim, test_shift)
    np.testing.assert_allclose(got, [-23 / 12], rtol=1e-6)


def test_an_image_equal_to_a_training_image_scores_lower_than_a_far_one() -> None:
    train_sim, train_shift, _, _ = random_inputs(3, 30, 0, 4, 2, 8)
    near_sim, near_shift = train_sim[:1], train_shift[:1]
    far_sim, far_shift = -train_sim[:1], train_shift[:1] - 4.0  # opposite side, unsure head
    scores = csi_score(
        train_sim, train_shift, np.concatenate([near_sim, far_sim]), np.concatenate([near_shift, far_shift])
    )
    assert scores[0] < scores[1]


def test_score_train_is_leave_one_out() -> None:
    train_sim, train_shift, _, _ = random_inputs(4, 12, 0, 4, 3, 6)
    scorer = get_scorer("csi", backend="torch").fit((train_sim, train_shift))
    np.testing.assert_allclose(
        scorer.score_train(),
        loop_reference(train_sim, train_shift, train_sim, train_shift, leave_one_out=True),
        rtol=1e-5,
        atol=1e-6,
    )
    single = get_scorer("csi").fit((train_sim[:1], train_shift[:1]))
    with pytest.raises(ValueError, match="at least 2"):
        single.score_train()


def test_scorer_contract_and_parameters() -> None:
    train_sim, train_shift, test_sim, test_shift = random_inputs(5, 6, 3, 4, 2, 5)
    scorer = get_scorer("csi", samples=3)
    assert scorer.views == "csi" and scorer.get_params()["samples"] == 3
    assert get_scorer("csi").get_params()["samples"] == 10  # CSI's --ood_samples
    with pytest.raises(NotFittedError):
        scorer.decision_function((test_sim, test_shift))
    before = set(vars(scorer))
    assert scorer.fit((train_sim, train_shift)) is scorer
    assert all(name.endswith("_") for name in set(vars(scorer)) - before)
    assert get_scorer("csi", **scorer.get_params()).get_params() == scorer.get_params()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="samples"):
            get_scorer("csi", samples=bad)


@pytest.mark.parametrize(
    ("train", "test", "match"),
    [
        (((6, 4, 2, 5), (6, 4, 2, 4)), ((3, 4, 2, 5), (3, 4, 2, 3)), r"shift_logits must have shape"),
        (((6, 4, 2, 5), (6, 4, 2, 4)), ((3, 2, 2, 5), (3, 2, 2, 2)), "4 shifts of dimension 5"),
        (((6, 4, 2, 5), (6, 4, 2, 4)), ((3, 4, 2, 7), (3, 4, 2, 4)), "4 shifts of dimension 5"),
        (((6, 4, 2, 5), (6, 4, 2, 4)), ((3, 4, 5), (3, 4, 4)), "non-empty"),
        (((0, 4, 2, 5), (0, 4, 2, 4)), ((3, 4, 2, 5), (3, 4, 2, 4)), "non-empty"),
    ],
)
def test_bad_shapes_raise(train: tuple, test: tuple, match: str) -> None:
    rng = np.random.default_rng(6)

    def make(shapes: tuple) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(size=shapes[0]), rng.normal(2.0, 0.1, size=shapes[1])

    with pytest.raises(ValueError, match=match):
        csi_score(*make(train), *make(test))


def test_bad_values_raise_or_warn() -> None:
    train_sim, train_shift, test_sim, test_shift = random_inputs(7, 6, 3, 2, 1, 4)
    bad = test_sim.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        csi_score(train_sim, train_shift, bad, test_shift)
    zero = train_shift.copy()
    zero[:, 1, :, 1] = 0.0
    with pytest.raises(ValueError, match="mean training logit"):
        csi_score(train_sim, zero, test_sim, test_shift)
    with pytest.raises(ValueError, match="zero norm"):
        csi_score(np.zeros_like(train_sim), train_shift, test_sim, test_shift)
    negative = train_shift.copy()
    negative[:, 0, :, 0] = -1.0
    with pytest.warns(UserWarning, match="negative"):
        csi_score(train_sim, negative, test_sim, test_shift)


def test_csi_view_flips_before_rotating() -> None:
    """With every other op off, a view of x rotated by 90 degrees is rot90(x) or rot90(hflip(x)),
    never hflip(rot90(x)) (= rot270 of the mirrored image); both flips occur."""
    identity = AugmentRecipe(crop_scale=(1.0, 1.0), jitter_p=0.0, blur_p=0.0)
    augmenter = BatchAugmenter(identity, size=8)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = csi_view(images, 1, augmenter, torch.Generator().manual_seed(0))
    plain = augmenter.apply(rotate(images, 1), augmenter.sample_params(64, torch.Generator()))
    mirrored = augmenter.apply(rotate(images.flip(3), 1), augmenter.sample_params(64, torch.Generator()))
    is_plain = (out - plain).abs().flatten(1).amax(dim=1) < 1e-5
    is_mirrored = (out - mirrored).abs().flatten(1).amax(dim=1) < 1e-5
    assert bool((is_plain ^ is_mirrored).all()) and 0 < int(is_plain.sum()) < 64


def test_csi_view_recipe_is_csis_evaluation_augmentation() -> None:
    assert CSI_VIEW_RECIPE.crop_scale == (0.54, 0.54) and CSI_VIEW_RECIPE.crop_ratio == (3 / 4, 4 / 3)
    assert CSI_VIEW_RECIPE.jitter == (0.4, 0.4, 0.4, 0.1) and CSI_VIEW_RECIPE.jitter_p == 0.8
    assert CSI_VIEW_RECIPE.grayscale_p == 0.2
    assert CSI_VIEW_RECIPE.blur_p == 0.0 and CSI_VIEW_RECIPE.hflip_p == 0.0  # flip: csi_view


def test_feature_views_give_projections_and_logits_per_rotation_and_sample() -> None:
    torch.manual_seed(0)
    cfg = preset("smoke")
    model = ContrastiveModel(cfg.width, cfg.head_hidden, cfg.head_layers, cfg.head_out)
    objective = get_objective("csi")
    objective.build(model.feature_dim)
    train = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    test = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)

    def views() -> FeatureViews:
        bound = functools.partial(embed, model, cfg=cfg, device=torch.device("cpu"))
        return FeatureViews(bound, lambda x: x, lambda x: x, train, test, objective)

    feature_views = views()
    bank, queries = feature_views.inputs(get_scorer("csi", samples=3))
    assert tuple(bank.projections.shape) == (5, 4, 3, cfg.head_out)
    assert tuple(bank.shift_logits.shape) == (5, 4, 3, 4)
    assert tuple(queries.projections.shape) == (3, 4, 3, cfg.head_out)
    assert tuple(queries.shift_logits.shape) == (3, 4, 3, 4)
    # The samples are different augmentations; the views are seeded, so they repeat exactly.
    assert not torch.allclose(bank.projections[:, :, 0], bank.projections[:, :, 1])
    again = views().csi("train", 3)
    assert torch.equal(again.projections, bank.projections)
    assert torch.equal(again.shift_logits, bank.shift_logits)
    # Projections are the head's raw output, not the unit vectors the losses see.
    assert not torch.allclose(bank.projections.norm(dim=3), torch.ones(5, 4, 3))
    assert feature_views.csi("train", 3) is bank  # embedded once


def test_run_with_the_csi_objective_gives_finite_scores() -> None:
    train = dataclasses.replace(preset("smoke"), steps=20)
    result = run_experiment(
        RunConfig(objective="csi", scorers=["csi:samples=2"], device="cpu", train=train)
    )
    (scored,) = result.scorer_results
    assert scored.spec == "csi:samples=2" and np.isfinite(scored.scores).all()
    assert len(np.unique(scored.scores)) > 1


def test_cli_run_with_the_csi_scorer_scores_the_final_model_only(tmp_path) -> None:
    """With --eval-checkpoints, kNN gets a curve (an AULC) and csi, final-step only, none."""
    args = ["run", "--objective", "csi", "--scorer", "csi:samples=2", "--scorer", "knn",
            "--preset", "smoke", "--device", "cpu", "--eval-checkpoints", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "results" / "default" / "runs.csv").set_index("scorer")
    assert 0.0 <= rows.loc["csi:samples=2", "auroc"] <= 1.0
    assert np.isnan(rows.loc["csi:samples=2", "aulc"]) and 0.0 <= rows.loc["knn", "aulc"] <= 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--objective", "firm"], "needs an objective with a shift head (csi)"),
        (["--objective", "csi", "-p", "num_shifts=3"], "num_shifts=4"),
        (["--objective", "csi", "--scorer", "csi:samples=0"], "samples must be an int >= 1"),
    ],
)
def test_csi_scorer_errors_are_one_clear_line(extra: list[str], message: str) -> None:
    scorer = [] if "--scorer" in extra else ["--scorer", "csi"]
    args = ["run", "--preset", "smoke", "--device", "cpu", "--steps", "2", *scorer, *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
