"""Render the generated part of docs/results/label-free-selection.md from results/cifar10-selection/.

Everything between ``<!-- generated:start -->`` and ``<!-- generated:end -->`` of the report is
replaced by tables built from the committed files (runs.csv, curves.csv, selection.csv); the
hand-written text around them is kept. The figure ``proxies_vs_auroc.png`` is written beside
the results.

Test labels enter only to *evaluate* the label-free proxies and thresholds: every pick is made by
:func:`anobench.report.selection.select`, which never reads test AUROC. Whether a proxy beats a
random pick is tested with the class as the unit (:func:`anobench.report.selection.versus_random`:
paired t-test and Wilcoxon, Holm over the proxies and levels of one scorer).

    python benchmarks/selection_report.py     # after STUDY=cifar10-selection benchmarks/cifar10_study.sh export
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_report import per_class_table, planned_runs  # a sibling script

from anobench.data.holdout import holdout_size
from anobench.report.markdown import mean_std_cell, number_cell, pipe_table, replace_block
from anobench.report.selection import GROUP, PROXY_DIRECTIONS, selection_table, versus_random
from anobench.thresholds import realised_fpr_interval

START, END = "<!-- generated:start -->", "<!-- generated:end -->"
MAIN_SCORER = "knn"
DEFAULT_OBJECTIVE = "firm"
"""The objective a user without any proxy would take: anobench's default (`anobench run`)."""
TRAIN_PER_CLASS, TEST_NORMAL_PER_CLASS = 5000, 1000
"""CIFAR-10: training images of one class; normal test images of one class."""


def interval_cell(mean: float, low: float, high: float, spec: str) -> str:
    """``"mean [low, high]"``, the interval left out when it is NaN."""
    if pd.isna(low):
        return number_cell(mean, spec)
    return f"{number_cell(mean, spec)} [{number_cell(low, spec)}, {number_cell(high, spec)}]"


def p_cell(p: float) -> str:
    """A p-value to 3 decimals, ``<0.001`` below."""
    return "" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def fixed_choice_regret(curves: pd.DataFrame, level: str) -> float:
    """Mean class regret, in AUROC points, of the choice made with no proxy at all.

    ``objective``: always :data:`DEFAULT_OBJECTIVE` (its last step); ``checkpoint``: always
    the last step. Averaged per class first, as :func:`versus_random` does.
    """
    run = ["normal_class_name", "seed", "objective"]
    last = curves[curves["step"] == curves.groupby(run)["step"].transform("max")]
    if level == "objective":
        oracle = last.groupby(["normal_class_name", "seed"])["auroc"].max()
        fixed = last[last["objective"] == DEFAULT_OBJECTIVE].set_index(["normal_class_name", "seed"])["auroc"]
    else:
        oracle = curves.groupby(run)["auroc"].max()
        fixed = last.set_index(run)["auroc"]
    regret = 100 * (oracle - fixed).dropna()
    return float(regret.groupby(level="normal_class_name").mean().mean())


def proxy_table(curves: pd.DataFrame, selection: pd.DataFrame, versus: pd.DataFrame, level: str) -> str:
    """One selection level of one scorer: agreement, regret, and the test against a random pick."""
    rows = []
    for proxy in PROXY_DIRECTIONS:
        s = selection[(selection["proxy"] == proxy) & (selection["level"] == level)]
        v = versus[(versus["proxy"] == proxy) & (versus["level"] == level)]
        if s.empty or v.empty or s["n_contexts"].iloc[0] == 0:
            continue
        s, v = s.iloc[0], v.iloc[0]
        rows.append([
            f"`{proxy}`", s["direction"], int(s["n_contexts"]),
            interval_cell(s["spearman"], s["spearman_low"], s["spearman_high"], ".2f"),
            interval_cell(s["regret_points"], s["regret_low"], s["regret_high"], ".2f"),
            number_cell(v["regret_random_points"], ".2f"),
            interval_cell(v["gain_points"], v["gain_low"], v["gain_high"], ".2f"),
            f"{int(v['wins'])}/{int(v['losses'])}", p_cell(v["p_holm"]), p_cell(v["p_wilcoxon_holm"]),
        ])
    fixed = ("always `firm` (anobench's default)" if level == "objective" else "always the last step")
    rows.append([fixed + ", no proxy", "", "", "", number_cell(fixed_choice_regret(curves, level), ".2f"),
                 "", "", "", "", ""])
    columns = ["proxy", "better", "contexts", "Spearman [95% CI]", "regret, points [95% CI]",
               "random pick, points", "gain over random [95% t-CI]", "classes won/lost",
               "p Holm (t)", "p Holm (Wilcoxon)"]
    return "\n".join(pipe_table(columns, rows, right=set(columns[2:])))


def scorer_summary(selection: pd.DataFrame, versus: pd.DataFrame) -> str:
    """Every scorer at a glance: Spearman and regret of each proxy at both levels."""
    scorers = sorted(selection["scorer"].unique())
    rows = []
    for proxy in PROXY_DIRECTIONS:
        for level in ("objective", "checkpoint"):
            cells = []
            for scorer in scorers:
                s = selection[(selection["scorer"] == scorer) & (selection["proxy"] == proxy)
                              & (selection["level"] == level)]
                v = versus[(versus["scorer"] == scorer) & (versus["proxy"] == proxy) & (versus["level"] == level)]
                if s.empty or s["n_contexts"].iloc[0] == 0:
                    cells.append("")
                    continue
                star = "*" if not v.empty and v["p_holm"].iloc[0] < 0.05 and v["p_wilcoxon_holm"].iloc[0] < 0.05 else ""
                cells.append(f"{number_cell(s['spearman'].iloc[0], '.2f')} / "
                             f"{number_cell(s['regret_points'].iloc[0], '.1f')} "
                             f"({number_cell(v['regret_random_points'].iloc[0], '.1f')}){star}")
            rows.append([f"`{proxy}`", level, *cells])
    return "\n".join(pipe_table(["proxy", "selects", *scorers], rows, right=set(scorers)))


def threshold_table(runs: pd.DataFrame, by: str) -> str:
    """Realised test FPR and TPR at the threshold calibrated for the target FPR, grouped by ``by``,
    then over all rows."""
    rows = []
    for key, part in [*runs.groupby(by, sort=True), ("all", runs)]:
        alpha = float(part["target_fpr"].iloc[0])
        n_val = holdout_size(TRAIN_PER_CLASS, float(part["val_fraction"].iloc[0]))
        low, high = realised_fpr_interval(alpha, n_val, TEST_NORMAL_PER_CLASS)
        fpr = part["fpr_at_threshold"]
        inside = int(((fpr >= low) & (fpr <= high)).sum())
        rows.append([
            key if key == "all" else f"`{key}`", len(part), ", ".join(sorted(part["threshold_source"].astype(str).unique())),
            f"{alpha:.2f}", mean_std_cell(fpr.mean(), fpr.std(), ".4f"), f"{fpr.min():.3f}–{fpr.max():.3f}",
            f"[{low:.3f}, {high:.3f}]", f"{inside}/{len(part)}", f"{part['tpr_at_threshold'].mean():.3f}",
        ])
    columns = [by, "runs", "calibrated on", "target FPR", "realised FPR, mean ± sd", "min–max",
               "95% interval if exchangeable", "runs inside", "TPR, mean"]
    return "\n".join(pipe_table(columns, rows, right=set(columns[1:]) - {"calibrated on"}))


def scatter_figure(curves: pd.DataFrame, scorer: str) -> Figure:
    """Each proxy against test AUROC at every evaluated step after the first, one colour per objective."""
    part = curves[(curves["scorer"] == scorer) & (curves["step"] > 0)]
    proxies = [p for p in PROXY_DIRECTIONS if p in part.columns and part[p].notna().any()]
    rows = -(-len(proxies) // 3)
    figure = Figure(figsize=(12, 4 * rows))
    axes = figure.subplots(rows, 3, squeeze=False).ravel()
    for ax in axes[len(proxies):]:
        ax.set_visible(False)
    for ax, proxy in zip(axes, proxies):
        for objective, points in part.groupby("objective"):
            ax.scatter(points[proxy], points["auroc"], s=10, alpha=0.7, label=objective)
        better = "higher" if PROXY_DIRECTIONS[proxy] > 0 else "lower"
        ax.set(xlabel=f"{proxy} ({better} is better)", ylabel=f"test AUROC ({scorer})")
    figure.axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def render(folder: Path, sweep: Path) -> str:
    """The report's generated block (and the figure, written into ``folder``)."""
    runs = pd.read_csv(folder / "runs.csv", dtype={"normal_class": str})
    curves = pd.read_csv(folder / "curves.csv")
    selection = pd.read_csv(folder / "selection.csv")
    versus = versus_random(curves, by=GROUP)
    planned = sum(planned_runs(sweep).values())
    finished = runs["run_key"].nunique()
    status = (f"All {finished} planned runs finished." if finished >= planned
              else f"**Provisional: {finished} of {planned} runs finished.**")
    main_curves = curves[curves["scorer"] == MAIN_SCORER]
    main_trained = main_curves[main_curves["step"] > 0]
    main_selection = selection[selection["scorer"] == MAIN_SCORER]
    main_versus = versus[versus["scorer"] == MAIN_SCORER]
    scatter_figure(curves, MAIN_SCORER).savefig(folder / "proxies_vs_auroc.png", dpi=80)
    return "\n\n".join([
        "### Status\n\n" + status,
        (f"### What is being chosen: final test AUROC per class (`{MAIN_SCORER}`, kNN k=5)\n\n"
         + per_class_table(runs, curves, MAIN_SCORER)),
        (f"### Choosing the objective for each class (`{MAIN_SCORER}`)\n\nOne context per class: the six "
         "objectives' last checkpoints. Spearman: over the candidates of a context, averaged over contexts "
         "(bootstrap interval over classes). Regret: best test AUROC of the context minus that of the "
         "proxy's pick, in AUROC points. Gain: random pick's expected regret minus the proxy's, per class; "
         "p-values Holm-adjusted over the 12 tests (6 proxies × 2 levels) of this scorer. Unit: the class.\n\n"
         + proxy_table(main_curves, main_selection, main_versus, "objective")),
        (f"### Choosing the checkpoint within each run (`{MAIN_SCORER}`)\n\nOne context per run: its evaluated "
         "steps (0 = the untrained encoder, then every 60 steps to 300). Per class, the regrets of its six "
         "runs are averaged first.\n\n" + proxy_table(main_curves, main_selection, main_versus, "checkpoint")),
        ("### Choosing the checkpoint among the trained steps only (60 to 300; `" + MAIN_SCORER + "`)\n\n"
         "The same choice without the untrained encoder of step 0, which no user would deploy: a proxy "
         "that prefers step 0 is penalised above only for that. Holm over this table's own family "
         "(6 proxies × 2 levels, the objective level unchanged).\n\n"
         + proxy_table(main_trained, selection_table(main_trained), versus_random(main_trained), "checkpoint")),
        ("### Every scorer: Spearman / regret in points (random pick's regret)\n\n"
         "`*`: the proxy beats a random pick after Holm by both the t-test and the Wilcoxon test.\n\n"
         + scorer_summary(selection, versus)),
        ("### Thresholds at the 5% target FPR, on the real test set\n\nThe threshold is fitted on the "
         "held-out normals' scores only; test labels only measure it. The interval is the central 95% "
         "of the realised FPR under exchangeability (Beta-binomial: 500 calibration scores, 1,000 normal "
         "test images; `anobench.thresholds.realised_fpr_interval`).\n\nBy scorer:\n\n"
         + threshold_table(runs, "scorer") + f"\n\nBy objective (`{MAIN_SCORER}`):\n\n"
         + threshold_table(runs[runs["scorer"] == MAIN_SCORER], "objective")),
        (f"### Proxies against test AUROC (`{MAIN_SCORER}`, every checkpoint after step 0)\n\n"
         f"![proxies against test AUROC](../../results/{folder.name}/proxies_vs_auroc.png)"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--results", type=Path, default=Path("results/cifar10-selection"))
    parser.add_argument("--sweep", type=Path, default=Path("benchmarks/cifar10-selection.toml"))
    parser.add_argument("--doc", type=Path, default=Path("docs/results/label-free-selection.md"))
    args = parser.parse_args()
    body = render(args.results, args.sweep)
    args.doc.write_text(replace_block(args.doc.read_text(), START, END, body, args.doc))
    print(f"wrote {args.doc} and {args.results / 'proxies_vs_auroc.png'}")


if __name__ == "__main__":
    main()
