"""Render the generated part of docs/results/cifar10-cpu.md from results/cifar10-cpu/.

Everything between the markers ``<!-- generated:start -->`` and ``<!-- generated:end -->`` is
replaced by tables built from the committed files (runs.csv, curves.csv, leaderboard.md,
comparison_vs_firm.md); the hand-written text around them is kept.

    python benchmarks/cifar10_report.py            # after benchmarks/cifar10_study.sh export
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pandas as pd

START, END = "<!-- generated:start -->", "<!-- generated:end -->"
MAIN_SCORER = "knn"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


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
    lines = ["| objective | finished runs | planned |", "|---|---:|---:|"]
    for objective, count in planned.items():
        lines.append(f"| {objective} | {int(done.get(objective, 0))} | {count} |")
    lines.append(f"| all | {int(done.sum())} | {sum(planned.values())} |")
    return "\n".join(lines)


def per_class_table(runs: pd.DataFrame, curves: pd.DataFrame, scorer: str) -> str:
    """Objective x class: mean ± std AUROC over seeds (final step), plus the untrained floor."""
    part = runs[runs["scorer"] == scorer]
    stats = part.groupby(["objective", "normal_class_name"])["auroc"].agg(["mean", "std", "count"])
    classes = [c for c in CLASSES if c in set(part["normal_class_name"])]
    header = "| objective | " + " | ".join(classes) + " | mean |"
    lines = [header, "|---|" + "---:|" * (len(classes) + 1)]
    for objective in sorted(part["objective"].unique()):
        cells = []
        for c in classes:
            if (objective, c) not in stats.index:
                cells.append("")
                continue
            row = stats.loc[(objective, c)]
            std = "" if row["count"] < 2 else f" ± {row['std']:.3f}"
            cells.append(f"{row['mean']:.3f}{std}")
        means = stats.loc[objective]["mean"]
        lines.append(f"| {objective} | " + " | ".join(cells) + f" | {means.mean():.3f} ({len(means)} cl.) |")
    floor = curves[(curves["scorer"] == scorer) & (curves["step"] == 0)]
    if len(floor):
        by_class = floor.groupby(["normal_class_name", "seed"])["auroc"].mean().groupby("normal_class_name").mean()
        cells = [f"{by_class[c]:.3f}" if c in by_class.index else "" for c in classes]
        lines.append("| untrained encoder (step 0) | " + " | ".join(cells) + f" | {by_class.mean():.3f} |")
    return "\n".join(lines)


def render(folder: Path, sweep: Path) -> str:
    runs = pd.read_csv(folder / "runs.csv", dtype={"normal_class": str})
    curves = pd.read_csv(folder / "curves.csv", dtype={"normal_class": str})
    leaderboard = (folder / "leaderboard.md").read_text().split("\n", 2)[2].strip()
    comparison = (folder / "comparison_vs_firm.md").read_text().split("\n", 1)[1].strip()
    return "\n\n".join([
        START,
        "### Status\n\n" + status_table(runs, planned_runs(sweep)),
        f"### Per class, kNN k=5 (`{MAIN_SCORER}`): final AUROC, mean ± std over seeds\n\n"
        + per_class_table(runs, curves, MAIN_SCORER),
        "### Per class, kNN k=1 (`knn:k=1`)\n\n" + per_class_table(runs, curves, "knn:k=1"),
        "### Leaderboard over scorers (mean over classes; ± std over seeds; p: paired t-test vs the best row)\n\n"
        + leaderboard,
        "### FIRM against each objective: paired tests and convergence\n\n" + comparison,
        "### Learning curves\n\n![AUROC during training](../../results/cifar10-cpu/auroc_curves.png)\n\n"
        "![AUROC per class](../../results/cifar10-cpu/per_class_auroc.png)",
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--results", type=Path, default=Path("results/cifar10-cpu"))
    parser.add_argument("--sweep", type=Path, default=Path("benchmarks/cifar10-cpu.toml"))
    parser.add_argument("--doc", type=Path, default=Path("docs/results/cifar10-cpu.md"))
    args = parser.parse_args()
    text = args.doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"error: {args.doc} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    args.doc.write_text(head + render(args.results, args.sweep) + tail)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
