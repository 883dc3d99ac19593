"""The ``anobench`` command line: a thin layer over the Python API.

Example:
    anobench run --objective firm --scorer knn
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)
from rich.table import Table

from anobench.bench import BenchConfig, BenchResult, run_bench
from anobench.config import PRESETS, RunConfig, preset
from anobench.distributed import launched_rank
from anobench.errors import AnobenchError, ConfigError
from anobench.plugins import REGISTRIES, labelled_names
from anobench.runner import run_experiment
from anobench.specs import check_experiment_name, parse_assignments
from anobench.system import tune_malloc
from anobench.thresholds import DEFAULT_TARGET_FPR
from anobench.interrupts import check_interrupted, exit_code, signal_name, sigterm_as_interrupt
from anobench.store_lock import LockedMlflowTracker
from anobench.tracking import DEFAULT_EXPERIMENT, quiet_store_setup
from anobench.training import StepInfo

UsageError: type[Exception] = typer.BadParameter.__base__
"""click's UsageError (an unknown option or command, a value that is not a number); typer >= 0.24
raises its vendored copy of click's, so it is found through the public BadParameter."""


class OneLineErrors(TyperGroup):
    """The command group, printing a command's usage errors as the one ``error:`` line that every
    other bad input gives."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            raise fail(error.format_message()) from None


VAL_FRACTION_HELP = ("Withhold this fraction of the normal training images from training, for the label-free "
                     "proxies and the threshold (0 = none).")
VAL_OUTLIERS_HELP = ("Generators of the held-out synthetic anomalies, disjoint from --outliers "
                     "[default: cutpaste+cutpaste-scar+scramble].")
TARGET_FPR_HELP = "False-positive rate of the calibrated threshold."

app = typer.Typer(
    cls=OneLineErrors,
    help="Benchmark contrastive objectives for anomaly detection.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


@app.callback()
def setup() -> None:
    """Benchmark contrastive objectives for anomaly detection."""
    quiet_store_setup()


def fail(message: str) -> typer.Exit:
    """Print one error line to stderr and return the exit (code 2) to raise."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(2)


def interrupted(interrupt: KeyboardInterrupt, what: str) -> typer.Exit:
    """Print one line about a SIGINT or SIGTERM and return the exit (128 + signal) to raise."""
    err.print(f"interrupted by {signal_name(interrupt)}: {what}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(exit_code(interrupt))


@app.command()
def run(
    objective: str = typer.Option("firm", help="Objective to train (anobench list shows all)."),
    scorer: list[str] = typer.Option(["knn"], help="Scorer spec, repeatable: knn, knn:k=1, mahalanobis."),
    dataset: str = typer.Option("digits", help="digits (built in), cifar10, cifar100, fashion-mnist, mnist, imagefolder, or a plugin's dataset."),
    data_root: Optional[Path] = typer.Option(None, help="Dataset folder [default: $ANOBENCH_DATA_ROOT]."),
    normal_class: str = typer.Option("0", help="Normal class, by index or name."),
    preset_name: str = typer.Option("quick", "--preset", help="Training preset: smoke, quick, paper."),
    seed: int = typer.Option(0, help="Seed of initialisation, sampling, outliers and augmentation."),
    outliers: str = typer.Option("rot90+rot180+rot270", help="Outlier generators, '+'-joined."),
    oe_source: Optional[str] = typer.Option(None, help="Outlier Exposure images for --outliers oe: a dataset name or an image folder."),
    objective_param: list[str] = typer.Option([], "--objective-param", "-p", help="Objective parameter key=value, repeatable (e.g. tau=0.2, mode=pairwise)."),
    epochs: Optional[int] = typer.Option(None, help="Training length in epochs (overrides the preset)."),
    steps: Optional[int] = typer.Option(None, help="Training length in steps (overrides epochs)."),
    batch_size: Optional[int] = typer.Option(None, help="Samples per step, inliers and outliers together."),
    outlier_ratio: Optional[float] = typer.Option(None, help="Outliers per inlier in each batch (3 = 1:3)."),
    width: Optional[float] = typer.Option(None, help="ResNet-18 width multiplier."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate of the OneCycle schedule."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16."),
    image_size: int = typer.Option(32, help="Side of the square images the model sees."),
    eval_checkpoints: int = typer.Option(0, help="Also measure test AUROC at this many evenly spaced points of training, for AULC (never for selection)."),
    val_fraction: float = typer.Option(0.0, help=VAL_FRACTION_HELP),
    val_outliers: Optional[str] = typer.Option(None, help=VAL_OUTLIERS_HELP),
    target_fpr: float = typer.Option(DEFAULT_TARGET_FPR, help=TARGET_FPR_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store or server [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, help="MLflow experiment name."),
    output_dir: Path = typer.Option(Path("results"), help="Results CSV goes to OUTPUT_DIR/EXPERIMENT/runs.csv."),
    log_model: bool = typer.Option(True, "--log-model/--no-log-model", help="Log the detector as the run's MLflow model (docs/detector.md)."),
) -> None:
    """Train one encoder, score its embeddings with every scorer, print and record the metrics."""
    try:
        overrides = {
            k: v for k, v in {
                "epochs": epochs, "batch_size": batch_size, "outlier_ratio": outlier_ratio,
                "width": width, "precision": precision, "lr": lr,
            }.items() if v is not None
        }
        if steps is not None:
            overrides["steps"] = steps
        elif epochs is not None:
            overrides["steps"] = None
        train_cfg = dataclasses.replace(preset(preset_name), **overrides)
        config = RunConfig(
            objective=objective, scorers=scorer,
            objective_params=parse_assignments(objective_param, "-p"),
            outliers=outliers, oe_source=oe_source, dataset=dataset,
            data_root=str(data_root) if data_root is not None else None,
            normal_class=normal_class, image_size=image_size, preset=preset_name, seed=seed,
            device=device, eval_checkpoints=eval_checkpoints, val_fraction=val_fraction,
            val_outliers=val_outliers, target_fpr=target_fpr, train=train_cfg,
        )
        tune_malloc()
        tracker = LockedMlflowTracker(tracking_uri, check_experiment_name(experiment))
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
            check_interrupted()

        try:
            with sigterm_as_interrupt():
                result = run_experiment(
                    config, tracker=tracker, results_csv=output_dir / experiment / "runs.csv",
                    on_step=on_step, log_model=log_model,
                )
        finally:
            progress.stop()
    except AnobenchError as error:
        if launched_rank() != 0:  # under torchrun every rank fails alike; rank 0 says why
            raise typer.Exit(2) from None
        raise fail(str(error)) from None
    except KeyboardInterrupt as interrupt:
        raise interrupted(interrupt, "a run that had started and not finished is marked KILLED in MLflow") from None
    if launched_rank() != 0:  # only rank 0 of a torchrun run scores and reports
        return
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


# --- sweep, leaderboard and ui commands (docs/sweeps.md) ---
@app.command()
def sweep(
    file: Optional[Path] = typer.Argument(None, help="Sweep file (TOML, see benchmarks/); flags override its values."),
    objective: list[str] = typer.Option([], help="Objective, repeatable."),
    scorer: list[str] = typer.Option([], help="Scorer spec, repeatable; all are applied to each trained encoder."),
    outliers: list[str] = typer.Option([], help="Outlier source ('+'-joined generators), repeatable."),
    dataset: list[str] = typer.Option([], help="Dataset, repeatable."),
    classes: Optional[str] = typer.Option(None, help="Normal classes: 'all' or a comma list (ids or names)."),
    seeds: Optional[str] = typer.Option(None, help="Seeds: a comma list or a range like 0-4."),
    preset_name: list[str] = typer.Option([], "--preset", help="Training preset, repeatable."),
    objective_param: list[str] = typer.Option([], "--objective-param", "-p", help="Objective parameter key=value for every objective, repeatable."),
    data_root: Optional[Path] = typer.Option(None, help="Dataset folder [default: $ANOBENCH_DATA_ROOT]."),
    oe_source: Optional[str] = typer.Option(None, help="Outlier Exposure images for outlier sources with 'oe'."),
    epochs: Optional[int] = typer.Option(None, help="Training length in epochs (overrides the presets)."),
    steps: Optional[int] = typer.Option(None, help="Training length in steps (overrides epochs)."),
    batch_size: Optional[int] = typer.Option(None, help="Samples per step."),
    outlier_ratio: Optional[float] = typer.Option(None, help="Outliers per inlier."),
    width: Optional[float] = typer.Option(None, help="ResNet-18 width multiplier."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16."),
    image_size: Optional[int] = typer.Option(None, help="Side of the square images."),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N (workers are pinned to one GPU each)."),
    eval_checkpoints: Optional[int] = typer.Option(None, help="Test AUROC at this many evenly spaced points of training, for AULC (0 = off)."),
    val_fraction: Optional[float] = typer.Option(None, help=VAL_FRACTION_HELP),
    val_outliers: Optional[str] = typer.Option(None, help=VAL_OUTLIERS_HELP),
    target_fpr: Optional[float] = typer.Option(None, help=TARGET_FPR_HELP),
    executor: str = typer.Option("local", help="local (worker processes) or ray."),
    workers: Optional[int] = typer.Option(None, help="Local workers [default: --runs-per-device per GPU, else 1]."),
    runs_per_device: Optional[str] = typer.Option(None, help="Concurrent runs per GPU, or 'auto': measured by a short probe, capped by memory (10% left free) [default: the file's, else auto]. Refused without GPUs (use --workers)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address [default: start a local Ray instance]."),
    cpus_per_run: Optional[int] = typer.Option(None, help="Ray: CPUs per run when there is no GPU [default: 1]."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Steps between training checkpoints [default: ten per run]."),
    checkpoint_dir: Path = typer.Option(Path(".anobench/checkpoints"), help="Checkpoint folder."),
    done_csv: list[Path] = typer.Option([], help="Exported results CSV whose run_key rows count as finished, repeatable."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment [default: the file's, else 'default']."),
    output_dir: Path = typer.Option(Path("results"), help="Results CSV goes to OUTPUT_DIR/EXPERIMENT/runs.csv."),
    log_model: bool = typer.Option(True, "--log-model/--no-log-model", help="Log the detector as the run's MLflow model (docs/detector.md)."),
) -> None:
    """Run a grid of runs on local workers or Ray; finished runs are skipped, interrupted ones
    resume. Exit code 1 if any run failed."""
    from anobench.packing import parse_runs_per_device
    from anobench.scheduler import LocalExecutor, SweepOptions, run_sweep
    from anobench.sweep import build_spec, check_done_csv, expand

    def note(line: str) -> None:
        err.print(line, highlight=False, markup=False)
    from anobench.sweep_display import SweepDisplay

    try:
        if executor not in ("local", "ray"):
            raise ConfigError(f"--executor must be local or ray, got {executor!r}")
        if executor == "local" and (address is not None or cpus_per_run is not None):
            raise ConfigError(f"--{'address' if address is not None else 'cpus-per-run'} needs --executor ray")
        if executor == "ray" and workers is not None:
            raise ConfigError("--workers is for --executor local; Ray places runs by their resources (--cpus-per-run)")
        spec = build_spec(
            file, objectives=tuple(objective), scorers=tuple(scorer), outliers=tuple(outliers),
            datasets=tuple(dataset), classes=classes, seeds=seeds, presets=tuple(preset_name),
            objective_params=parse_assignments(objective_param, "-p"), experiment=experiment,
            data_root=str(data_root) if data_root is not None else None, oe_source=oe_source,
            epochs=epochs, steps=steps, batch_size=batch_size, outlier_ratio=outlier_ratio, width=width,
            precision=precision, image_size=image_size, device=device, eval_checkpoints=eval_checkpoints,
            val_fraction=val_fraction, val_outliers=val_outliers, target_fpr=target_fpr,
            runs_per_device=runs_per_device,
        )
        packing = parse_runs_per_device(spec.run.get("runs_per_device", "auto"))
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every must be >= 1, got {checkpoint_every}")
        for path in done_csv:
            check_done_csv(path)
        configs = expand(spec)
        options = dataclasses.replace(SweepOptions.resolve(spec.experiment, tracking_uri, output_dir, checkpoint_dir,
                                                           checkpoint_every, tuple(done_csv)), log_model=log_model)
        if executor == "ray":
            from anobench.ray_executor import RayExecutor

            chosen = RayExecutor(address=address, cpus_per_run=1 if cpus_per_run is None else cpus_per_run,
                                 runs_per_device=packing, say=note)
        else:
            chosen = LocalExecutor(workers=workers, runs_per_device=packing, say=note)
        tune_malloc()
        with sigterm_as_interrupt(), SweepDisplay(err, chosen) as display:
            report = run_sweep(configs, options, chosen, display, on_plan=display.plan)
    except AnobenchError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt as interrupt:
        raise interrupted(interrupt, "the same command resumes the sweep") from None
    ran = len(report.outcomes) - len(report.elsewhere)
    elsewhere = f", {len(report.elsewhere)} left to another sweep" if report.elsewhere else ""
    out.print(
        f"{len(configs)} runs: {ran - len(report.failed)} finished, {len(report.skipped)} skipped "
        f"(already finished){elsewhere}, {len(report.failed)} failed; wall {report.wall_s:.1f} s; "
        f"experiment {options.experiment!r} in {options.tracking_uri}", highlight=False,
    )
    if report.failed:
        raise typer.Exit(1)


@app.command()
def bench(
    preset_name: str = typer.Option("quick", "--preset", help="Preset whose model, batch and precision are measured."),
    objective: str = typer.Option("firm", help="Objective of the pipeline measurement."),
    width: Optional[float] = typer.Option(None, help="ResNet-18 width multiplier (overrides the preset)."),
    head_layers: Optional[int] = typer.Option(None, help="Linear layers of the projection head."),
    head_hidden: Optional[int] = typer.Option(None, help="Hidden width of the projection head."),
    batch_size: Optional[int] = typer.Option(None, help="Samples per step, inliers and outliers together."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="Channels-last memory format (default: the preset's)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default: the preset's)."),
    dataset: str = typer.Option("cifar10", help="Whose one-class training shape the random images take: cifar10, cifar100, fashion-mnist."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    steps: int = typer.Option(10, help="Timed steps of the model and of the pipeline, alternating; the fastest is kept."),
    repeats: int = typer.Option(3, help="Timed repeats of the augmentation and baseline; the best is kept."),
    warmup_steps: int = typer.Option(2, help="Untimed steps first."),
    workers: int = typer.Option(2, help="DataLoader workers of the PIL pipelines."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Measure batched vs PIL augmentation."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Measure the authors'-style baseline epoch."),
    malloc: bool = typer.Option(True, "--tune-malloc/--no-tune-malloc", help="Keep large buffers in glibc's heap (as `run` does)."),
    json_output: bool = typer.Option(False, "--json", help="Table to stderr, one JSON line to stdout."),
) -> None:
    """Measure the model's limit, the training pipeline, the augmentation and the baseline."""
    try:
        overrides = {
            k: v for k, v in {
                "width": width, "head_layers": head_layers, "head_hidden": head_hidden,
                "batch_size": batch_size, "precision": precision, "channels_last": channels_last,
                "compile": compile_model,
            }.items() if v is not None
        }
        config = BenchConfig(
            train=dataclasses.replace(preset(preset_name), **overrides), preset=preset_name,
            objective=objective, dataset=dataset, device=device, steps=steps, repeats=repeats,
            warmup_steps=warmup_steps, augment=augment, pil_workers=workers, baseline=baseline,
        )
        tuned = tune_malloc() if malloc else False
        with err.status("benchmarking") as status:
            result = run_bench(config, log=status.update)
    except AnobenchError as error:
        raise fail(str(error)) from None
    result.settings["malloc_tuned"] = tuned
    (err if json_output else out).print(bench_table(result))
    if json_output:
        out.print(json.dumps(result.to_dict()), markup=False, highlight=False, soft_wrap=True)


def bench_table(result: BenchResult) -> Table:
    """The bench result as a table: every rate in augmented images (samples x 2 views) per second."""
    s = result.settings
    table = Table(title=(
        f"{s['preset']} on {s['device']}: width {s['width']}, head {s['head']}, batch "
        f"{s['batch_size']}, {s['precision']}{', channels-last' if s['channels_last'] else ''}"
        f"{', compiled' if s['compile'] else ''}; {s['threads']} threads; fastest of {s['steps']} steps"
    ))
    for column in ("measure", "value", "what"):
        table.add_column(column, justify="right" if column == "value" else "left")

    def row(name: str, value: float | None, fmt: str, what: str) -> None:
        table.add_row(name, "-" if value is None else format(value, fmt), what)

    row("model_img_s", result.model_img_s, ",.0f", "forward + backward + step on ready tensors (the limit)")
    row("pipeline_img_s", result.pipeline_img_s, ",.0f", "full training step of the real loop")
    row("efficiency", result.efficiency, ".3f", "pipeline / model")
    row("augment_img_s", result.augment_img_s, ",.0f", "batched augmentation alone")
    row("pil_augment_img_s", result.pil_augment_img_s, ",.0f", f"PIL + DataLoader, {s['pil_workers']} workers")
    row("epoch_s", result.epoch_s, ",.1f", f"one-class {s['dataset']} epoch, {s['steps_per_epoch']} steps")
    row("baseline_epoch_s", result.baseline_epoch_s, ",.1f", f"authors'-style pipeline, {s['baseline_steps_per_epoch']} steps")
    row("speedup_vs_baseline", result.speedup_vs_baseline, ".2f", "baseline_epoch_s / epoch_s")
    row("peak_rss_mb", result.peak_rss_mb, ",.0f", "after model and pipeline")
    return table


@app.command()
def leaderboard(
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, help="MLflow experiment."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
    output_dir: Path = typer.Option(Path("results"), help="Files go to OUTPUT_DIR/EXPERIMENT/."),
    reference: Optional[str] = typer.Option(None, help="Objective compared with every other one: paired tests and convergence speed-ups."),
) -> None:
    """Write runs.csv, per_class.csv, leaderboard.csv/.md, curves.csv and plots of an experiment's finished runs."""
    from anobench.report.leaderboard import write_leaderboard
    from anobench.results_csv import torn_last_row

    try:
        name = check_experiment_name(experiment)
        torn = torn_last_row(output_dir / name / "runs.csv")
        paths = write_leaderboard(tracking_uri, name, output_dir, reference)
    except AnobenchError as error:
        raise fail(str(error)) from None
    if torn is not None:
        err.print(f"warning: {paths['runs.csv']} had a torn row ({torn}); rebuilt it from the store",
                  markup=False, highlight=False, soft_wrap=True)
    out.print(paths["leaderboard.md"].read_text(), markup=False, highlight=False)
    out.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False, soft_wrap=True)


@app.command()
def ui(
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
    host: str = typer.Option("127.0.0.1", help="Interface to serve on."),
    port: int = typer.Option(5000, help="Port to serve on."),
) -> None:
    """Start the MLflow UI on the store, print its URL, and serve until interrupted (Ctrl-C or
    SIGTERM stop the server, uvicorn included)."""
    from anobench.ui import launch_ui

    try:
        with sigterm_as_interrupt():
            server = launch_ui(tracking_uri, host, port)
            try:
                out.print(f"MLflow UI: {server.url}  (Ctrl-C stops it)", highlight=False)
                code = server.serve()
            finally:
                server.stop()
    except AnobenchError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt as interrupt:
        err.print(f"MLflow UI stopped ({signal_name(interrupt)})", highlight=False)
        return
    err.print(f"error: mlflow ui exited by itself (exit code {code})", highlight=False)
    raise typer.Exit(1)
# --- end of sweep, leaderboard and ui commands ---


@app.command()
def predict(
    run_ref: Optional[str] = typer.Argument(None, metavar="RUN", help="Run id, runs:/ or models:/ URI (or --best)."),
    paths: list[Path] = typer.Argument(None, metavar="[PATH]...", help="Image files or folders (searched recursively)."),
    best: bool = typer.Option(False, "--best", help="Use the experiment's best run for --scorer."),
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, help="MLflow experiment of --best."),
    scorer: Optional[str] = typer.Option(None, help="Scorer of --best."),
    output: Optional[Path] = typer.Option(None, help="Write the scores to this CSV instead of printing them."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store or server [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
) -> None:
    """Score image files with a run's logged detector (docs/detector.md)."""
    import mlflow
    from rich.progress import Progress
    from rich.table import Table

    from anobench.predict import choose_run, collect_paths, load_detector, predict_files, resolve_model_uri
    from anobench.tracking import default_tracking_uri

    try:
        mlflow.set_tracking_uri(tracking_uri or default_tracking_uri())
        if best and run_ref is not None:  # with --best, the first argument is a PATH
            run_ref, paths = None, [Path(run_ref), *(paths or [])]
        run_ref, why = choose_run(run_ref, best, scorer, experiment, tracking_uri)
        if why is not None:
            err.print(f"run {run_ref}: {why}", markup=False, highlight=False, soft_wrap=True)
        files = collect_paths(paths or [])
        if not files:
            raise ConfigError("no PATH given: name image files or folders")
        model = load_detector(resolve_model_uri(run_ref))
        detector = model.unwrap_python_model().detector
        with Progress(transient=True, console=err, disable=len(files) <= 256) as progress:
            task_id = progress.add_task("scoring", total=len(files))
            frame, failures = predict_files(detector, files, detector.config.image_size,
                                            lambda n: progress.advance(task_id, n))
    except AnobenchError as error:
        err.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for path, why in failures:
        err.print(f"skipped {path}: {why}", markup=False, highlight=False, soft_wrap=True)
    if output is not None:
        frame.to_csv(output, index=False)
        err.print(f"{len(frame)} images scored, {len(failures)} skipped: {output}", markup=False, highlight=False)
        return
    table = Table(*frame.columns)
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


@app.command()
def register(
    run_ref: Optional[str] = typer.Argument(None, metavar="RUN", help="Run id or runs:/ URI (or --best)."),
    name: str = typer.Option(..., help="Registered model name: a new one, or an existing one to add a version to."),
    best: bool = typer.Option(False, "--best", help="Register the experiment's best run for --scorer."),
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, help="MLflow experiment of --best."),
    scorer: Optional[str] = typer.Option(None, help="Scorer of --best."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow store or server [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
) -> None:
    """Put a run's logged detector in the MLflow Model Registry, tagged with the run's headline
    metrics (docs/detector.md)."""
    from anobench.model_registry import register_detector
    from anobench.predict import choose_run

    try:
        run_ref, why = choose_run(run_ref, best, scorer, experiment, tracking_uri)
        if why is not None:
            err.print(f"run {run_ref}: {why}", markup=False, highlight=False, soft_wrap=True)
        version = register_detector(run_ref, name, tracking_uri)
    except AnobenchError as error:
        raise fail(str(error)) from None
    out.print(f"registered {version.name!r} version {version.version}: models:/{version.name}/{version.version} "
              f"(run {version.run_id})", markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_names() -> None:
    """List the registered objectives, scorers, datasets, outlier generators and presets; an entry
    from a plugin is followed by its distribution and version (docs/plugins.md)."""
    try:
        lines = [f"{title}: {', '.join(labelled_names(registry))}" for title, registry in REGISTRIES.items()]
    except AnobenchError as error:
        raise fail(str(error)) from None
    for line in [*lines, f"presets: {', '.join(sorted(PRESETS))}"]:
        out.print(line, highlight=False, soft_wrap=True)


# --- data commands (docs/data.md) ---
data_commands = typer.Typer(
    cls=OneLineErrors, help="Download datasets and check data folders (docs/data.md).",
    no_args_is_help=True,
)
app.add_typer(data_commands, name="data")


@data_commands.command("download")
def data_download(
    name: str = typer.Argument(..., help="cifar10, cifar100, fashion-mnist, mnist or mvtec."),
    root: Path = typer.Option(..., help="Data root: the dataset's folders go under it; pass it as --data-root."),
    category: Optional[str] = typer.Option(None, help="mvtec only: a category (screw, bottle, ...) or all."),
    mirror: Optional[str] = typer.Option(None, help="Base URL serving <dataset>/<file> [default: $ANOBENCH_DATA_MIRROR, else the official URLs]."),
) -> None:
    """Download a dataset, check it and unpack it into the layout --data-root reads (resumable; a
    dataset folder appears under ROOT only once complete)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from anobench.data.download import download

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, transient=True,  # so an error stays one line
    )
    tasks: dict[str, Any] = {}

    def on_bytes(file: str, done: int, total: int | None) -> None:
        if file not in tasks:
            tasks[file] = progress.add_task(file, total=total)
        progress.update(tasks[file], completed=done, total=total)

    try:
        with sigterm_as_interrupt(), progress:
            installed = download(name, root, category, mirror, on_bytes)
    except AnobenchError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt as interrupt:
        raise interrupted(interrupt, "the same command resumes the download") from None
    for item in installed:
        state = "downloaded and checked" if item.fetched else "already there, checked"
        out.print(f"{item.name}: {item.folder} ({state})", highlight=False, soft_wrap=True)
    usage = (f"--dataset imagefolder --data-root {installed[0].folder} --normal-class good"
             if name == "mvtec" else f"--dataset {name} --data-root {root}")
    out.print(f"run it with: anobench run {usage}", highlight=False, soft_wrap=True)


@data_commands.command("check")
def data_check(
    dataset: str = typer.Option(..., help="Dataset name (anobench list shows all)."),
    root: Optional[Path] = typer.Option(None, help="Data root [default: $ANOBENCH_DATA_ROOT]."),
) -> None:
    """Load a dataset and print its images per class and split, or name what is missing or corrupt."""
    from anobench.data import load_dataset

    try:
        loaded = load_dataset(dataset, root)
    except AnobenchError as error:
        raise fail(str(error)) from None
    counts = loaded.class_counts()
    table = Table()
    for column in ("id", "class", "train", "test"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for index, class_name in enumerate(loaded.class_names):
        table.add_row(str(index), class_name, str(counts["train"][index]), str(counts["test"][index]))
    table.add_row("", "total", str(len(loaded.train)), str(len(loaded.test)))
    out.print(f"{dataset}: {loaded.split}", highlight=False, soft_wrap=True)
    out.print(table)
# --- end of data commands ---


def main() -> None:
    """Entry point of the ``anobench`` script."""
    app()


if __name__ == "__main__":  # python -m anobench.cli, as torchrun -m runs it
    main()
