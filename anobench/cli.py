"""The ``anobench`` command line: a thin layer over the Python API.

Example:
    anobench run --objective firm --scorer knn
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)
from rich.table import Table

from anobench.config import PRESETS, RunConfig, preset
from anobench.data import list_datasets
from anobench.errors import AnobenchError
from anobench.objectives import list_objectives
from anobench.outliers import list_generators
from anobench.runner import run_experiment
from anobench.scorers import list_scorers
from anobench.specs import parse_assignment
from anobench.system import tune_malloc
from anobench.tracking import DEFAULT_EXPERIMENT, MlflowTracker
from anobench.training import StepInfo

app = typer.Typer(
    help="Benchmark contrastive objectives for anomaly detection.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print one error line to stderr and return the exit (code 2) to raise."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(2)


@app.command()
def run(
    objective: str = typer.Option("firm", help="Objective to train (anobench list shows all)."),
    scorer: list[str] = typer.Option(["knn"], help="Scorer spec, repeatable: knn, knn:k=1, mahalanobis."),
    dataset: str = typer.Option("digits", help="digits (built in), cifar10, cifar100, fashion-mnist, imagefolder."),
    data_root: Optional[Path] = typer.Option(None, help="Dataset folder [default: $ANOBENCH_DATA_ROOT]."),
    normal_class: str = typer.Option("0", help="Normal class, by index or name."),
    preset_name: str = typer.Option("quick", "--preset", help="Training preset: smoke, quick, paper."),
    seed: int = typer.Option(0, help="Seed of initialisation, sampling, outliers and augmentation."),
    outliers: str = typer.Option("rot90+rot180+rot270", help="Outlier generators, '+'-joined."),
    objective_param: list[str] = typer.Option([], "--objective-param", "-p", help="Objective parameter key=value, repeatable (e.g. tau=0.2, mode=pairwise)."),
    epochs: Optional[int] = typer.Option(None, help="Training length in epochs (overrides the preset)."),
    steps: Optional[int] = typer.Option(None, help="Training length in steps (overrides epochs)."),
    batch_size: Optional[int] = typer.Option(None, help="Samples per step, inliers and outliers together."),
    outlier_ratio: Optional[float] = typer.Option(None, help="Outliers per inlier in each batch (3 = 1:3)."),
    width: Optional[float] = typer.Option(None, help="ResNet-18 width multiplier."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16."),
    image_size: int = typer.Option(32, help="Side of the square images the model sees."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store or server [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, help="MLflow experiment name."),
    output_dir: Path = typer.Option(Path("results"), help="Results CSV goes to OUTPUT_DIR/EXPERIMENT/runs.csv."),
) -> None:
    """Train one encoder, score its embeddings with every scorer, print and record the metrics."""
    try:
        overrides = {
            k: v for k, v in {
                "epochs": epochs, "batch_size": batch_size, "outlier_ratio": outlier_ratio,
                "width": width, "precision": precision,
            }.items() if v is not None
        }
        if steps is not None:
            overrides["steps"] = steps
        elif epochs is not None:
            overrides["steps"] = None
        train_cfg = dataclasses.replace(preset(preset_name), **overrides)
        config = RunConfig(
            objective=objective, scorers=scorer,
            objective_params=dict(parse_assignment(p) for p in objective_param),
            outliers=outliers, dataset=dataset,
            data_root=str(data_root) if data_root is not None else None,
            normal_class=normal_class, image_size=image_size, preset=preset_name, seed=seed,
            device=device, train=train_cfg,
        )
        tune_malloc()
        tracker = MlflowTracker(tracking_uri, experiment)
        progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[img_s]:.0f} img/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err,
        )
        task_id = progress.add_task("train", total=None, loss=float("nan"), img_s=0.0)

        def on_step(info: StepInfo) -> None:
            if info.step == 1:  # started here so that errors before training print no bar
                progress.start()
            progress.update(task_id, completed=info.step, total=info.total_steps,
                            loss=info.loss, img_s=info.images_per_s)

        try:
            result = run_experiment(
                config, tracker=tracker, results_csv=output_dir / experiment / "runs.csv",
                on_step=on_step,
            )
        finally:
            progress.stop()
    except AnobenchError as error:
        raise fail(str(error)) from None
    table = Table(title=f"{objective} on {dataset}, normal class {result.normal_class_name} (seed {seed}, preset {preset_name})")
    for column in ("scorer", "AUROC", "AUPR", "FPR@95TPR"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for r in result.scorer_results:
        table.add_row(r.spec, f"{r.metrics['auroc']:.4f}", f"{r.metrics['aupr']:.4f}", f"{r.metrics['fpr95']:.4f}")
    out.print(table)
    out.print(
        f"{result.train.steps} steps in {result.train.wall_s:.1f} s "
        f"({result.train.images_per_s:.0f} img/s); total {result.total_wall_s:.1f} s; "
        f"MLflow run {result.run_id} in {tracker.tracking_uri}"
    )


@app.command("list")
def list_names() -> None:
    """List the registered objectives, scorers, datasets, outlier generators and presets."""
    for title, names in (
        ("objectives", list_objectives()), ("scorers", list_scorers()),
        ("datasets", list_datasets()), ("outliers", list_generators()), ("presets", sorted(PRESETS)),
    ):
        out.print(f"{title}: {', '.join(names)}")


def main() -> None:
    """Entry point of the ``anobench`` script."""
    app()
