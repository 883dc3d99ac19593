"""Render the generated parts of docs/results/cifar10-cpu.md and the README from results/cifar10-cpu/.

Everything between the markers ``<!-- generated:start -->`` and ``<!-- generated:end -->`` of the
report, and between ``<!-- cifar10-cpu headline:start/end -->`` of the README, is replaced by
tables built from the committed files (runs.csv, curves.csv, leaderboard.csv/.md,
paired_vs_firm.csv, convergence_vs_firm.csv, comparison_vs_firm.md, selection_inflation.csv); the
hand-written text around them is kept.

The verdicts use the statistics of :mod:`anobench.report.comparison`: the class is the unit (seeds
averaged first), significance is judged on Holm-adjusted p-values over the family of the claims
table (the paired t-test, beside it the Wilcoxon test, for the two gains; the sign test over
classes for the two speed-ups: :func:`claim_family`), and a speed-up's median
and quartiles are taken over all pairs, censored ones included (:func:`speedup_summary`).

    python benchmarks/cifar10_report.py            # after benchmarks/cifar10_study.sh export
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anobench.report.comparison import PAIR, convergence_summary, holm, paired_units
from anobench.report.markdown import mean_std_cell, number_cell, pipe_table, replace_block
from anobench.report.selection_inflation import SELECTION

START, END = "<!-- generated:start -->", "<!-- generated:end -->"
HEADLINE_START, HEADLINE_END = "<!-- cifar10-cpu headline:start -->", "<!-- cifar10-cpu headline:end -->"
MAIN_SCORER = "knn"
ALPHA = 0.05
"""Significance level of every verdict, applied to Holm-adjusted p-values."""
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class Claim:
    """One of the FIRM paper's claims: FIRM against ``other`` (an objective name).

    ``kind`` is ``gain`` (mean AUROC difference, in AUROC units), ``best_class`` (the largest
    per-class difference) or ``speedup`` (convergence ratio).
    """

    text: str
    kind: str
    other: str
    value: float


CLAIMS = (
    Claim("+6.2 AUROC points over NT-Xent (`simclr`), mean over classes", "gain", "simclr", 0.062),
    Claim("+2 points over Rot-SupCon", "gain", "rot-supcon", 0.02),
    Claim("up to +16.9 points on a single class (vs NT-Xent)", "best_class", "simclr", 0.169),
    Claim("up to +16.9 points on a single class (vs Rot-SupCon)", "best_class", "rot-supcon", 0.169),
    Claim("about 12x faster convergence than NT-Xent", "speedup", "simclr", 12.0),
    Claim("about 7x faster convergence than Rot-SupCon", "speedup", "rot-supcon", 7.0),
)


def planned_runs(sweep: Path) -> dict[str, int]:
    """Runs per objective in the sweep file: classes x seeds of each grid."""
    data = tomllib.loads(sweep.read_text())
    grids = data["grid"] if isinstance(data["grid"], list) else [data["grid"]]
    first, planned = grids[0], {}
    for grid in grids:
        merged = {**first, **grid}
        classes = 10 if merged.get("classes", "all") == "all" else len(merged["classes"])
        for objective in merged["objectives"]:
            planned[objective] = planned.get(objective, 0) + classes * len(merged["seeds"])
    return planned


def status_table(runs: pd.DataFrame, planned: dict[str, int]) -> str:
    done = runs.groupby("objective")["run_key"].nunique()
    rows = [[objective, int(done.get(objective, 0)), count] for objective, count in planned.items()]
    rows.append(["all", int(done.sum()), sum(planned.values())])
    return "\n".join(pipe_table(["objective", "finished runs", "planned"], rows, right={"finished runs", "planned"}))


def per_class_table(runs: pd.DataFrame, curves: pd.DataFrame, scorer: str) -> str:
    """Objective x class: mean ± std AUROC over seeds (final step), plus the untrained floor."""
    part = runs[runs["scorer"] == scorer]
    stats = part.groupby(["objective", "normal_class_name"])["auroc"].agg(["mean", "std", "count"])
    classes = [c for c in CLASSES if c in set(part["normal_class_name"])]
    rows = []
    for objective in sorted(part["objective"].unique()):
        cells = []
        for c in classes:
            if (objective, c) not in stats.index:
                cells.append("")
                continue
            row = stats.loc[(objective, c)]
            cells.append(mean_std_cell(row["mean"], row["std"], ".3f"))  # one seed: std NaN, mean alone
        means = stats.loc[objective]["mean"]
        rows.append([objective, *cells, f"{means.mean():.3f} ({len(means)} cl.)"])
    floor = curves[(curves["scorer"] == scorer) & (curves["step"] == 0)]
    if len(floor):
        by_class = floor.groupby(["normal_class_name", "seed"])["auroc"].mean().groupby("normal_class_name").mean()
        cells = [f"{by_class[c]:.3f}" if c in by_class.index else "" for c in classes]
        rows.append(["untrained encoder (step 0)", *cells, f"{by_class.mean():.3f}"])
    return "\n".join(pipe_table(["objective", *classes, "mean"], rows, right={*classes, "mean"}))


def judge_gain(paired: pd.Series, claimed: float) -> tuple[str, str]:
    """Measured class-level mean difference (a row of ``paired_vs_firm.csv``) and the verdict
    against ``claimed``.

    FIRM is significantly ahead (behind) when the Holm-adjusted paired t-test gives p < 0.05 and
    the mean is above (below) 0; the claim holds when, in addition, the 95% interval reaches it.
    The Wilcoxon test is shown beside the t-test, and the verdict says when it disagrees.
    """
    low, high = paired["ci_low"], paired["ci_high"]
    measured = (f"{100 * paired['mean_diff']:+.1f} points (95% CI {100 * low:+.1f} to {100 * high:+.1f} over "
                f"{paired['n_classes']} classes, {paired['n_pairs']} class × seed pairs averaged per class; "
                f"{paired['wins']}/{paired['losses']} classes won/lost; t-test p = {paired['p_value']:.2g}, "
                f"Holm {paired['p_holm']:.2g}; Wilcoxon p = {paired['p_wilcoxon']:.2g}, "
                f"Holm {paired['p_wilcoxon_holm']:.2g})")
    if np.isnan(paired["p_holm"]):
        return measured, "too few classes"
    significant = paired["p_holm"] < ALPHA
    if significant and paired["mean_diff"] < 0:
        verdict = "reversed: FIRM is behind"
    elif significant:
        verdict = "holds" if high >= claimed else "FIRM is ahead, by less than claimed"
    else:
        verdict = ("not shown: no significant difference after Holm; the interval contains the claim"
                   if high >= claimed else "not shown: no significant difference after Holm; the claim lies above "
                   "the interval")
    if significant != (paired["p_wilcoxon_holm"] < ALPHA):
        verdict += " (the Wilcoxon test, after Holm, disagrees)"
    return measured, verdict


def judge_best_class(runs: pd.DataFrame, other: str, claimed: float) -> tuple[str, str]:
    """The largest per-class difference of the class means (over seeds, on common pairs)."""
    mine, theirs = (runs[runs["objective"] == name].set_index(PAIR)["auroc"] for name in ("firm", other))
    a, b = paired_units(mine, theirs, "class")
    if a.empty:
        return "no common pairs", "too few pairs"
    by_class = a - b
    best = by_class.idxmax()
    measured = f"largest {100 * by_class[best]:+.1f} points ({best}); smallest {100 * by_class.min():+.1f} ({by_class.idxmin()})"
    return measured, "reached" if by_class[best] >= claimed else "not reached"


def judge_speedup(summary: pd.Series, claimed: float) -> tuple[str, str]:
    """A row of :func:`~anobench.report.comparison.convergence_summary` and the verdict against
    ``claimed``: FIRM is faster when the Holm-adjusted sign test over classes gives p < 0.05 and
    the median over all pairs is above 1; "about Nx" holds when, in addition, the median is at
    least N / 1.5; reversed when the test finds more classes slower."""
    split = summary["n_classes"] - summary["faster_classes"] - summary["slower_classes"]
    measured = (f"median {summary['median_speedup']:.1f}x (quartiles {summary['q25_speedup']:.1f}-"
                f"{summary['q75_speedup']:.1f}) over all {summary['n_pairs']} pairs, {summary['never_reached']} "
                f"censored at 0x (FIRM never reached the target); faster in {summary['faster_pairs']} pairs, "
                f"slower in {summary['slower_pairs']}; by class {summary['faster_classes']} faster, "
                f"{summary['slower_classes']} slower, {split} split (sign test over classes "
                f"p = {number_cell(summary['p_sign'], '.2g')}, Holm {number_cell(summary['p_sign_holm'], '.2g')})")
    significant = summary["p_sign_holm"] < ALPHA
    if significant and summary["median_speedup"] > 1:
        holds = summary["median_speedup"] >= claimed / 1.5
        return measured, "holds" if holds else "FIRM is faster, by less than claimed"
    if significant and summary["slower_classes"] > summary["faster_classes"]:
        return measured, "reversed: FIRM is slower"
    return measured, "not shown: no significant difference after Holm"


def claim_family(paired: pd.DataFrame, speed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``paired`` and ``speed`` (one scorer's rows) with their Holm p-values recomputed over the
    family of the claims table: the gain tests (against every objective a gain claim names) and
    the speed-up sign tests (every objective a speed-up claim names), four tests for the paper's
    claims. ``p_holm`` adjusts the gains' t-tests and ``p_wilcoxon_holm`` their Wilcoxon tests,
    each in a family with the speed-up sign tests (``p_sign_holm``, the larger of its two
    adjustments)."""
    gains = paired[paired["objective"].isin({c.other for c in CLAIMS if c.kind == "gain"})].copy()
    speeds = speed[speed["objective"].isin({c.other for c in CLAIMS if c.kind == "speedup"})].copy()
    adjusted_sign = np.zeros(len(speeds))
    for column, holm_column in (("p_value", "p_holm"), ("p_wilcoxon", "p_wilcoxon_holm")):
        family = holm([*gains[column], *speeds["p_sign"]])
        gains[holm_column] = family[: len(gains)]
        adjusted_sign = np.fmax(adjusted_sign, family[len(gains):])
    speeds["p_sign_holm"] = adjusted_sign
    return gains, speeds


def claim_rows(runs: pd.DataFrame, paired: pd.DataFrame, convergence: pd.DataFrame, scorer: str) -> list[list[str]]:
    """The paper's claims against this study's figures for one scorer: [claim, measured, verdict].

    The Holm family of the verdicts is the claims table's own tests for that scorer
    (:func:`claim_family`); ``paired_vs_firm.csv`` keeps its wider family (every scorer and
    objective) for exploration.
    """
    speed = convergence_summary(convergence)
    runs, paired, speed = (t[t["scorer"] == scorer] for t in (runs, paired, speed))
    paired, speed = claim_family(paired, speed)
    rows = []
    for claim in CLAIMS:
        if claim.kind == "gain":
            match = paired[paired["objective"] == claim.other]
            measured, verdict = judge_gain(match.iloc[0], claim.value) if len(match) else ("no runs", "too few classes")
        elif claim.kind == "best_class":
            measured, verdict = judge_best_class(runs, claim.other, claim.value)
        else:
            match = speed[speed["objective"] == claim.other]
            measured, verdict = judge_speedup(match.iloc[0], claim.value) if len(match) else ("no common pairs",
                                                                                                "too few pairs")
        rows.append([claim.text, measured, verdict])
    return rows


def selection_table(inflation: pd.DataFrame, scorer: str) -> str:
    """``selection_inflation.csv`` for one scorer: per objective the last-step AUROC (what this
    study reports), the best checkpoint per run chosen on test AUROC, and the difference; plus
    the inflation under every scorer."""
    part = inflation[inflation["scorer"] == scorer].sort_values("inflation_points")
    by_scorer = inflation.pivot(index="objective", columns="scorer", values="inflation_points")
    scorers = [s for s in by_scorer.columns if s != scorer]
    best = f"best of {part['n_checkpoints'].max()} checkpoints, {SELECTION}"
    columns = ["objective", "runs", "last step (reported)", best, f"inflation (points), {scorer}",
               *[f"inflation, {s}" for s in scorers]]
    rows = [[r["objective"], r["n_runs"], f"{r['auroc_last']:.3f}", f"{r['auroc_best_on_test']:.3f}",
             f"{r['inflation_points']:+.2f}", *[number_cell(by_scorer.loc[r["objective"], s], "+.2f") for s in scorers]]
            for _, r in part.iterrows()]
    return "\n".join(pipe_table(columns, rows, right=set(columns[1:])))


def claims_markdown(rows: list[list[str]]) -> str:
    """:func:`claim_rows` as a Markdown table."""
    return "\n".join(pipe_table(["claim (FIRM paper)", "measured here", "verdict"], rows))


def claims_table(runs: pd.DataFrame, paired: pd.DataFrame, convergence: pd.DataFrame, scorer: str) -> str:
    """The claims of :data:`CLAIMS`, judged for one scorer, as a Markdown table."""
    return claims_markdown(claim_rows(runs, paired, convergence, scorer))


def headline(leaderboard: pd.DataFrame, claims: list[list[str]], status: str) -> str:
    """The README's summary: mean kNN k=5 AUROC per objective and the verdicts on the NT-Xent
    gain and speed-up claims (``claims`` is :func:`claim_rows`, in :data:`CLAIMS` order)."""
    part = leaderboard[leaderboard["scorer"] == MAIN_SCORER].sort_values("auroc_mean", ascending=False)
    rows = [[r["objective"], f"{r['auroc_mean']:.3f}" + (f" ± {r['auroc_std']:.3f}" if r["n_seeds"] > 1 else ""),
             r["n_classes"], r["n_seeds"]] for _, r in part.iterrows()]
    table = pipe_table(["objective", "AUROC, kNN k=5 (mean over classes ± std over seeds)", "classes", "seeds"],
                       rows, right={"AUROC, kNN k=5 (mean over classes ± std over seeds)", "classes", "seeds"})
    versus = [f"- FIRM paper, {text}. Measured: {measured}; **{verdict}**."
              for claim, (text, measured, verdict) in zip(CLAIMS, claims)
              if claim.other == "simclr" and claim.kind != "best_class"]
    return "\n".join([status, "", *table, "", *versus])


def render(folder: Path, sweep: Path) -> tuple[str, str]:
    """The report's generated block and the README's headline block."""
    runs = pd.read_csv(folder / "runs.csv", dtype={"normal_class": str})
    curves = pd.read_csv(folder / "curves.csv", dtype={"normal_class": str})
    leaderboard = (folder / "leaderboard.md").read_text().split("\n", 2)[2].strip()
    comparison = (folder / "comparison_vs_firm.md").read_text().split("\n", 1)[1].strip()
    paired = pd.read_csv(folder / "paired_vs_firm.csv")
    convergence = pd.read_csv(folder / "convergence_vs_firm.csv")
    inflation = pd.read_csv(folder / "selection_inflation.csv")
    planned = planned_runs(sweep)
    finished = runs["run_key"].nunique()
    provisional = "" if finished >= sum(planned.values()) else (
        f" **Provisional: {finished} of {sum(planned.values())} runs finished.**")
    claims = claim_rows(runs, paired, convergence, MAIN_SCORER)
    report = "\n\n".join([
        "### Status\n\n" + status_table(runs, planned),
        ("### The paper's claims, measured (kNN k=5; unit: the class, FIRM minus the other objective with each "
         "averaged over its seeds; Holm over the four tests of this table: two gains, two speed-ups)"
         f"\n\nVerdict rules are stated under *Against the paper's claims* below.{provisional}\n\n"
         + claims_markdown(claims)),
        f"### Per class, kNN k=5 (`{MAIN_SCORER}`): final AUROC, mean ± std over seeds\n\n"
        + per_class_table(runs, curves, MAIN_SCORER),
        "### Per class, kNN k=1 (`knn:k=1`)\n\n" + per_class_table(runs, curves, "knn:k=1"),
        "### Leaderboard over scorers (mean over classes; ± std over seeds; p: paired t-test vs the best row)\n\n"
        + leaderboard,
        "### FIRM against each objective: paired tests and convergence\n\n" + comparison,
        ("### Checkpoint selection on test labels, measured (kNN k=5; inflation in AUROC points)\n\n"
         + selection_table(inflation, MAIN_SCORER)),
        ("### Learning curves\n\n![AUROC during training](../../results/cifar10-cpu/auroc_curves.png)\n\n"
         "![AUROC per class](../../results/cifar10-cpu/per_class_auroc.png)"),
    ])
    status = (f"All {finished} runs finished." if not provisional
              else f"Provisional, {finished} of {sum(planned.values())} runs finished:")
    return report, headline(pd.read_csv(folder / "leaderboard.csv"), claims, status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--results", type=Path, default=Path("results/cifar10-cpu"))
    parser.add_argument("--sweep", type=Path, default=Path("benchmarks/cifar10-cpu.toml"))
    parser.add_argument("--doc", type=Path, default=Path("docs/results/cifar10-cpu.md"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args()
    report, summary = render(args.results, args.sweep)
    for path, start, end, body in [(args.doc, START, END, report), (args.readme, HEADLINE_START, HEADLINE_END, summary)]:
        path.write_text(replace_block(path.read_text(), start, end, body, path))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
