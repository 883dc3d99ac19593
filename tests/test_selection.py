"""Measuring label-free proxies against test AUROC (anobench.report.selection)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anobench.errors import UnknownNameError
from anobench.metrics import auroc
from anobench.report.selection import (
    COLUMNS,
    GROUP,
    LEVELS,
    PROXY_DIRECTIONS,
    VERSUS_RANDOM_COLUMNS,
    cluster_bootstrap_interval,
    proxy_contexts,
    select,
    selection_table,
    spearman,
    versus_random,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "selection.md"
OBJECTIVES = ["firm", "simclr", "supcon"]
STEPS = [0, 100, 200, 300]


def study(seed: int = 0) -> pd.DataFrame:
    """A random study: 2 scorers x 4 classes x 2 seeds x 3 objectives x 4 steps, every proxy,
    some proxies missing (NaN) and ties in rounded proxies."""
    rng = np.random.default_rng(seed)
    rows = []
    for scorer in ["knn", "center"]:
        for cls in ["c0", "c1", "c2", "c3"]:
            for run_seed in [0, 1]:
                for objective in OBJECTIVES:
                    for step in STEPS:
                        row = {"dataset": "d", "outliers": "o", "preset": "p", "scorer": scorer,
                               "normal_class_name": cls, "seed": run_seed, "objective": objective,
                               "step": step, "auroc": rng.uniform(0.5, 1.0)}
                        for proxy in PROXY_DIRECTIONS:
                            value = round(rng.normal(), 1)
                            row[proxy] = np.nan if rng.uniform() < 0.1 else value
                        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.loc[frame["step"] == 0, "train_loss"] = np.nan  # no loss before training
    return frame


def reference_spearman(x: list[float], y: list[float]) -> float:
    def ranks(v: list[float]) -> list[float]:
        return [1 + sum(w < u for w in v) + (sum(w == u for w in v) - 1) / 2 for u in v]

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return math.nan if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def reference_contexts(frame: pd.DataFrame, proxy: str, level: str) -> dict[tuple, dict]:
    """Per context, by plain loops over row dicts."""
    direction = PROXY_DIRECTIONS[proxy]
    candidate = LEVELS[level]
    rows = frame.to_dict("records")
    run_key = [*GROUP, "normal_class_name", "seed", "objective"]
    context_key = run_key if level == "checkpoint" else run_key[:-1]
    if level == "objective":
        last: dict[tuple, int] = {}
        for r in rows:
            key = tuple(r[c] for c in run_key)
            last[key] = max(last.get(key, r["step"]), r["step"])
        rows = [r for r in rows if r["step"] == last[tuple(r[c] for c in run_key)]]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not math.isnan(r[proxy]):
            groups.setdefault(tuple(r[c] for c in context_key), []).append(r)
    out = {}
    for key, candidates in groups.items():
        if len(candidates) < 2:
            continue
        candidates.sort(key=lambda r: r[candidate])
        best = candidates[0]
        for r in candidates[1:]:
            if direction * r[proxy] > direction * best[proxy]:
                best = r
        aurocs = [r["auroc"] for r in candidates]
        oracle = max(aurocs)
        out[key] = {
            "picked": best[candidate], "n_candidates": len(candidates),
            "regret_points": 100 * (oracle - best["auroc"]),
            "regret_random_points": 100 * (oracle - sum(aurocs) / len(aurocs)),
            "spearman": reference_spearman([direction * r[proxy] for r in candidates], aurocs),
        }
    return out


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_spearman_matches_reference(n):
    rng = np.random.default_rng(n)
    x, y = rng.integers(0, 4, n).astype(float), rng.normal(size=n)
    expected = reference_spearman(x.tolist(), y.tolist())
    got = spearman(x, y)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


def test_spearman_of_constant_input_is_nan():
    assert math.isnan(spearman(np.ones(4), np.arange(4.0)))
    assert math.isnan(spearman(np.arange(4.0), np.ones(4)))


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("proxy", list(PROXY_DIRECTIONS))
def test_proxy_contexts_match_reference(proxy, level):
    frame = study(seed=len(proxy))
    got = proxy_contexts(frame, proxy, level)
    expected = reference_contexts(frame, proxy, level)
    context = [c for c in got.columns if c in [*GROUP, "normal_class_name", "seed"]]
    if level == "checkpoint":
        context.append("objective")
    assert len(got) == len(expected) > 0
    for row in got.to_dict("records"):
        ref = expected[tuple(row[c] for c in context)]
        assert row[LEVELS[level]] == ref["picked"]
        assert row["n_candidates"] == ref["n_candidates"]
        assert row["regret_points"] == pytest.approx(ref["regret_points"], abs=1e-9)
        assert row["regret_random_points"] == pytest.approx(ref["regret_random_points"], abs=1e-9)
        if math.isnan(ref["spearman"]):
            assert math.isnan(row["spearman"])
        else:
            assert row["spearman"] == pytest.approx(ref["spearman"], abs=1e-12)


def test_select_matches_proxy_contexts_and_ignores_row_order():
    frame = study(seed=1)
    for proxy in PROXY_DIRECTIONS:
        for level in LEVELS:
            picked = select(frame, proxy, level)
            shuffled = select(frame.sample(frac=1.0, random_state=3), proxy, level)
            assert picked.equals(shuffled)
            contexts = proxy_contexts(frame, proxy, level)
            assert picked[["objective", "step"]].equals(contexts[["objective", "step"]])


@pytest.mark.parametrize("proxy", list(PROXY_DIRECTIONS))
def test_a_perfect_proxy_in_its_direction_has_no_regret(proxy):
    frame = study(seed=2)
    frame[proxy] = PROXY_DIRECTIONS[proxy] * frame["auroc"]
    for level in LEVELS:
        contexts = proxy_contexts(frame, proxy, level)
        assert np.allclose(contexts["spearman"], 1.0) and (contexts["regret_points"] == 0).all()
    frame[proxy] = -frame[proxy]
    assert np.allclose(proxy_contexts(frame, proxy, "checkpoint")["spearman"], -1.0)


def test_objective_level_reads_only_each_runs_last_step():
    frame = study(seed=3)
    best_early = frame["step"] < 300
    frame.loc[best_early, "rankme"] = 1e6  # would win every choice if earlier steps counted
    frame.loc[~best_early, "rankme"] = frame.loc[~best_early, "objective"].map(
        {"firm": 1.0, "simclr": 3.0, "supcon": 2.0})
    picked = select(frame, "rankme", "objective")
    assert set(picked["objective"]) == {"simclr"} and set(picked["step"]) == {300}


def test_ties_go_to_the_first_candidate():
    frame = study(seed=4)
    frame["alignment"] = 0.5
    assert set(select(frame, "alignment", "objective")["objective"]) == {"firm"}
    assert set(select(frame, "alignment", "checkpoint")["step"]) == {0}


def test_missing_proxy_values_are_not_candidates():
    frame = study(seed=5)
    picked = select(frame, "train_loss", "checkpoint")
    assert (picked["step"] > 0).all()
    frame["val_auroc"] = np.nan  # val_fraction = 0: no held-out normals
    assert len(select(frame, "val_auroc", "checkpoint")) == 0
    table = selection_table(frame, ["val_auroc"])
    assert (table["n_contexts"] == 0).all() and table["spearman"].isna().all()


def test_label_shuffle_changes_no_selection():
    """Test labels only evaluate proxies: shuffling them moves test AUROC, never a selection."""
    rng = np.random.default_rng(11)
    is_anomaly = rng.uniform(size=300) < 0.4
    rows = []
    for cls in ["c0", "c1", "c2"]:
        for objective in OBJECTIVES:
            for step in STEPS:
                signal = rng.uniform(0.0, 2.0)
                noise = rng.normal(size=300)
                rows.append({"dataset": "d", "outliers": "o", "preset": "p", "scorer": "knn",
                             "normal_class_name": cls, "seed": 0, "objective": objective,
                             "step": step, "signal": signal, "noise": noise,
                             **{p: rng.normal() for p in PROXY_DIRECTIONS}})
    frame = pd.DataFrame(rows)

    def with_labels(labels: np.ndarray) -> pd.DataFrame:
        scores = [n + s * labels for n, s in zip(frame["noise"], frame["signal"])]
        aurocs = [auroc(s, labels) for s in scores]
        return frame.drop(columns=["signal", "noise"]).assign(auroc=aurocs)

    true, shuffled = with_labels(is_anomaly), with_labels(rng.permutation(is_anomaly))
    assert not np.allclose(true["auroc"], shuffled["auroc"])
    for proxy in PROXY_DIRECTIONS:
        for level in LEVELS:
            picked = select(true, proxy, level)
            assert picked.equals(select(shuffled, proxy, level))
            assert picked.equals(select(true.drop(columns=["auroc"]), proxy, level))
            regret_true = proxy_contexts(true, proxy, level)["regret_points"]
            assert regret_true.notna().all()


def reference_bootstrap(values, clusters, n_boot, seed, confidence):
    """Loops over the same seeded draws of cluster indices (the draws are part of the spec)."""
    labels = sorted(set(c for v, c in zip(values, clusters) if not math.isnan(v)))
    if len(labels) < 2:
        return math.nan, math.nan
    draws = np.random.default_rng(seed).integers(0, len(labels), (n_boot, len(labels)))
    means = []
    for replicate in draws:
        total, count = 0.0, 0
        for index in replicate:
            for v, c in zip(values, clusters):
                if c == labels[index] and not math.isnan(v):
                    total, count = total + v, count + 1
        means.append(total / count)
    tail = 100 * (1 - confidence) / 2
    return tuple(np.percentile(means, [tail, 100 - tail]))


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_cluster_bootstrap_matches_reference(confidence):
    rng = np.random.default_rng(6)
    values = rng.normal(size=40)
    values[[3, 17]] = np.nan
    clusters = rng.choice(["a", "b", "c", "d", "e"], size=40)
    got = cluster_bootstrap_interval(values, clusters, 300, 9, confidence)
    assert got == pytest.approx(reference_bootstrap(values.tolist(), clusters.tolist(), 300, 9,
                                                    confidence), abs=1e-12)
    assert got[0] <= np.nanmean(values) <= got[1]


def test_cluster_bootstrap_resamples_clusters_not_values():
    # Two clusters of 50 identical values: resampling values would give a tight interval around
    # 0.5; resampling clusters gives means 0, 0.5 or 1 only.
    values = np.r_[np.zeros(50), np.ones(50)]
    clusters = np.repeat(["a", "b"], 50)
    low, high = cluster_bootstrap_interval(values, clusters, 1000, 0)
    assert (low, high) == (0.0, 1.0)


def test_cluster_bootstrap_needs_two_clusters():
    one_cluster = cluster_bootstrap_interval(np.ones(4), np.array(list("aaaa")))
    assert all(math.isnan(v) for v in one_cluster)
    values = np.array([1.0, np.nan])
    assert all(math.isnan(v) for v in cluster_bootstrap_interval(values, np.array(["a", "b"])))


@pytest.mark.parametrize("kwargs,match", [
    ({"n_boot": 0}, "n_boot must be >= 1, got 0"),
    ({"confidence": 1.0}, "confidence must be in \\(0, 1\\), got 1.0"),
])
def test_cluster_bootstrap_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cluster_bootstrap_interval(np.ones(3), np.array(list("abc")), **kwargs)
    with pytest.raises(ValueError, match="1-D of one length"):
        cluster_bootstrap_interval(np.ones(3), np.array(list("ab")))


def test_selection_table_matches_reference():
    frame = study(seed=7)
    table = selection_table(frame, n_boot=50, seed=4)
    assert list(table.columns) == [*GROUP, *COLUMNS]
    assert len(table) == 2 * len(PROXY_DIRECTIONS) * len(LEVELS)
    for row in table.to_dict("records"):
        part = frame[frame["scorer"] == row["scorer"]]
        ref = reference_contexts(part, row["proxy"], row["level"])
        spearmans = [r["spearman"] for r in ref.values()]
        regrets = [r["regret_points"] for r in ref.values()]
        clusters = [key[len(GROUP)] for key in ref]
        assert row["direction"] == ("higher" if PROXY_DIRECTIONS[row["proxy"]] > 0 else "lower")
        assert row["n_contexts"] == len(ref) and row["n_classes"] == len(set(clusters))
        assert row["spearman"] == pytest.approx(np.nanmean(spearmans), abs=1e-12)
        assert row["regret_points"] == pytest.approx(np.mean(regrets), abs=1e-9)
        assert row["regret_random_points"] == pytest.approx(
            np.mean([r["regret_random_points"] for r in ref.values()]), abs=1e-9)
        # Contexts reach the bootstrap in the order proxy_contexts lists them.
        context = [*GROUP, "normal_class_name", "seed", "objective"]
        context = context if row["level"] == "checkpoint" else context[:-1]
        contexts = proxy_contexts(part, row["proxy"], row["level"]).to_dict("records")
        order = [tuple(r[c] for c in context) for r in contexts]
        for stat, values in (("spearman", spearmans), ("regret", regrets)):
            by_key = dict(zip(ref, values))
            expected = reference_bootstrap([by_key[k] for k in order],
                                           [k[len(GROUP)] for k in order], 50, 4, 0.95)
            assert (row[f"{stat}_low"], row[f"{stat}_high"]) == pytest.approx(expected, abs=1e-9)


def test_versus_random_pairs_class_means_and_adjusts_the_family():
    from scipy.stats import t as student_t
    from scipy.stats import ttest_rel, wilcoxon

    frame = study(seed=9)
    table = versus_random(frame)
    assert list(table.columns) == [*GROUP, *VERSUS_RANDOM_COLUMNS]
    assert len(table) == 2 * len(PROXY_DIRECTIONS) * len(LEVELS)
    for scorer, family in table.groupby("scorer"):
        part = frame[frame["scorer"] == scorer]
        raw_t, raw_w = [], []
        for row in family.to_dict("records"):
            ref = reference_contexts(part, row["proxy"], row["level"])
            classes = sorted({key[len(GROUP)] for key in ref})
            mine, chance = [], []
            for cls in classes:
                own = [r for key, r in ref.items() if key[len(GROUP)] == cls]
                mine.append(sum(r["regret_points"] for r in own) / len(own))
                chance.append(sum(r["regret_random_points"] for r in own) / len(own))
            gains = [c - m for c, m in zip(chance, mine)]
            n = len(gains)
            mean = sum(gains) / n
            sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / (n - 1))
            half = student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)
            assert row["n_classes"] == n
            assert row["regret_points"] == pytest.approx(sum(mine) / n, abs=1e-9)
            assert row["regret_random_points"] == pytest.approx(sum(chance) / n, abs=1e-9)
            assert row["gain_points"] == pytest.approx(mean, abs=1e-9)
            assert (row["gain_low"], row["gain_high"]) == pytest.approx((mean - half, mean + half), abs=1e-9)
            assert row["wins"] == sum(g > 0 for g in gains) and row["losses"] == sum(g < 0 for g in gains)
            raw_t.append(ttest_rel(chance, mine).pvalue)
            raw_w.append(wilcoxon(gains).pvalue)
            assert row["p_value"] == pytest.approx(raw_t[-1]) and row["p_wilcoxon"] == pytest.approx(raw_w[-1])
        for column, raw in (("p_holm", raw_t), ("p_wilcoxon_holm", raw_w)):
            order = sorted(range(len(raw)), key=lambda i: raw[i])
            expected, running = [0.0] * len(raw), 0.0
            for rank, i in enumerate(order):
                running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
                expected[i] = running
            assert family[column].tolist() == pytest.approx(expected)


def test_versus_random_a_proxy_ordered_as_test_auroc_has_no_regret_and_beats_chance():
    frame = study(seed=10)
    better = frame.copy()
    better["auroc"] = np.where(better["val_auroc"].isna(), better["auroc"], 0.5 + 0.01 * better["val_auroc"])
    table = versus_random(better, ["val_auroc"]).set_index(["scorer", "level"])
    assert (table["regret_points"] == 0).all()  # the proxy orders the candidates as test AUROC does
    assert (table["gain_points"] > 0).all()


def test_selection_table_keeps_missing_comparison_keys():
    frame = study(seed=8)
    frame["preset"] = np.nan  # an empty CSV cell
    table = selection_table(frame, ["rankme"], n_boot=50)
    assert len(table) == 2 * len(LEVELS) and table["preset"].isna().all()
    assert (table["n_contexts"] > 0).all()


def test_unknown_proxy():
    with pytest.raises(UnknownNameError, match="unknown selection proxy 'accuracy'"):
        select(study(seed=9), "accuracy", "objective")


@pytest.mark.parametrize("call,match", [
    (lambda f: select(f, "rankme", "class"),
     "level must be one of \\['checkpoint', 'objective'\\], got 'class'"),
    (lambda f: select(f.drop(columns=["step"]), "rankme", "objective"),
     "lacks column\\(s\\) \\['step'\\]"),
    (lambda f: proxy_contexts(f.drop(columns=["auroc"]), "rankme", "objective"),
     "lacks column\\(s\\) \\['auroc'\\]"),
    (lambda f: select(pd.concat([f, f.head(1)]), "rankme", "checkpoint"), "1 duplicate row"),
    (lambda f: proxy_contexts(f.assign(auroc=f["auroc"].where(f["step"] > 0)), "rankme",
                              "checkpoint"),
     "auroc must lie in \\[0, 1\\], got 48 value\\(s\\) outside \\(NaN included\\), first nan"),
    (lambda f: proxy_contexts(f.assign(auroc=f["auroc"] + 1), "rankme", "objective"),
     "auroc must lie in \\[0, 1\\]"),
])
def test_errors_name_the_bad_value(call, match):
    with pytest.raises(ValueError, match=match):
        call(study(seed=9))


def test_docs_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {})
