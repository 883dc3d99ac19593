"""benchmarks/selection_report.py: the label-free selection report from a study's files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anobench.report.selection import PROXY_DIRECTIONS, selection_table

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "selection_report.py"
spec = importlib.util.spec_from_file_location("selection_report", SCRIPT)
report = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = report
spec.loader.exec_module(report)

CLASSES = ["airplane", "automobile", "bird"]
OBJECTIVES = ["firm", "simclr", "csi"]
STEPS = [0, 60, 120]


def write_study(folder: Path, fprs: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A 3-class x 3-objective study with two scorers; ``fprs`` are the runs' realised FPRs."""
    rng = np.random.default_rng(0)
    curves, runs = [], []
    fpr = iter(fprs * 2)
    for scorer in ["knn", "kde"]:
        for cls in CLASSES:
            for objective in OBJECTIVES:
                key = f"{objective}-{cls}"
                for step in STEPS:
                    row = {"dataset": "cifar10", "outliers": "rot90", "preset": "quick", "objective": objective,
                           "scorer": scorer, "run_key": key, "normal_class_name": cls, "seed": 0, "step": step,
                           "auroc": rng.uniform(0.5, 0.9)}
                    row.update({proxy: rng.normal() for proxy in PROXY_DIRECTIONS})
                    curves.append(row)
                runs.append({"run_key": key, "objective": objective, "scorer": scorer, "normal_class_name": cls,
                             "seed": 0, "auroc": curves[-1]["auroc"], "target_fpr": 0.05, "val_fraction": 0.1,
                             "threshold_source": "held-out", "fpr_at_threshold": next(fpr),
                             "tpr_at_threshold": 0.5})
    curves, runs = pd.DataFrame(curves), pd.DataFrame(runs)
    curves.to_csv(folder / "curves.csv", index=False)
    runs.to_csv(folder / "runs.csv", index=False)
    selection_table(curves, n_boot=50).to_csv(folder / "selection.csv", index=False)
    return curves, runs


def sweep_file(folder: Path, classes: int) -> Path:
    path = folder / "sweep.toml"
    path.write_text(f'experiment = "x"\n[[grid]]\nobjectives = {OBJECTIVES!r}\nclasses = {list(range(classes))}\n'
                    'seeds = [0]\n'.replace("'", '"'))
    return path


def test_report_has_every_section_and_counts_runs_inside_the_interval(tmp_path):
    fprs = [0.05, 0.02, 0.08, 0.03, 0.07, 0.05, 0.04, 0.06, 0.10]  # interval [0.029, 0.075]: 6 inside
    write_study(tmp_path, fprs)
    body = report.render(tmp_path, sweep_file(tmp_path, 3))
    assert "All 9 planned runs finished." in body
    for title in ["What is being chosen", "Choosing the objective", "Choosing the checkpoint within",
                  "Choosing the checkpoint among the trained steps", "Every scorer",
                  "Thresholds at the 5% target FPR"]:
        assert title in body
    knn_row = next(line for line in body.splitlines() if line.startswith("| `knn` | 9 |"))
    assert "[0.029, 0.075]" in knn_row and "| 6/9 |" in knn_row and "0.100" in knn_row
    assert "| all | 18 | held-out |" in body and "| 12/18 |" in body  # both scorers got the same FPRs
    assert (tmp_path / "proxies_vs_auroc.png").stat().st_size > 0
    assert "**Provisional: 9 of 30 runs finished.**" in report.render(tmp_path, sweep_file(tmp_path, 10))


def test_fixed_choices_regret_against_the_oracle(tmp_path):
    curves, _ = write_study(tmp_path, [0.05] * 9)
    knn = curves[curves["scorer"] == "knn"]
    last = knn[knn["step"] == 120]
    expected_objective = np.mean([
        100 * (last[last["normal_class_name"] == c]["auroc"].max()
               - last[(last["normal_class_name"] == c) & (last["objective"] == "firm")]["auroc"].iloc[0])
        for c in CLASSES])
    assert report.fixed_choice_regret(knn, "objective") == pytest.approx(expected_objective)
    per_run = [100 * (g["auroc"].max() - g[g["step"] == 120]["auroc"].iloc[0])
               for _, g in knn.groupby(["normal_class_name", "objective"])]
    assert report.fixed_choice_regret(knn, "checkpoint") == pytest.approx(np.mean(per_run))


def test_main_replaces_only_the_generated_block(tmp_path, monkeypatch):
    write_study(tmp_path, [0.05] * 9)
    doc = tmp_path / "report.md"
    doc.write_text("# hand-written\n<!-- generated:start -->\nstale table\n<!-- generated:end -->\nverdict\n")
    monkeypatch.setattr(sys, "argv", ["selection_report.py", "--results", str(tmp_path),
                                      "--sweep", str(sweep_file(tmp_path, 3)), "--doc", str(doc)])
    report.main()
    text = doc.read_text()
    assert text.startswith("# hand-written\n<!-- generated:start -->") and text.endswith("<!-- generated:end -->\nverdict\n")
    assert "stale table" not in text and "### Status" in text
