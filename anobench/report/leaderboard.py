"""Leaderboard of an experiment: reads its finished MLflow runs and writes tables and plots.

Files written under ``OUTPUT_DIR/<experiment>/`` (the columns are documented in the README):

- ``runs.csv``: one row per run x scorer, the :data:`~anobench.results_csv.RESULT_COLUMNS`
  schema that ``anobench run`` appends (``schema_version`` column);
- ``per_class.csv``: one row per objective x scorer, a column per normal class ("mean ± std"
  AUROC over seeds);
- ``leaderboard.csv`` and ``leaderboard.md``: objective x scorer, mean AUROC over classes ± std
  over seeds (of each seed's mean over the classes every seed has), rank, AULC, and a paired
  t-test over (class, seed) against the best row;
- ``curves.csv``: every AUROC measured during training (runs with ``eval_checkpoints``), one row
  per run x scorer x step;
- ``auroc_curves.png`` (AUROC versus training progress per objective, the AULC picture) and
  ``per_class_auroc.png``;
- ``selection.csv`` (runs with curves and label-free proxies): how well each proxy picks the
  objective and the checkpoint that test AUROC would (:mod:`anobench.report.selection`), also a section
  of ``leaderboard.md``;
- ``selection_inflation.csv`` (runs with curves): the last-step AUROC against the best
  checkpoint chosen on test labels (:mod:`anobench.report.selection_inflation`);
- with a reference objective (``--reference firm``): ``paired_vs_firm.csv`` (unit: the class),
  ``paired_vs_firm_class_seed.csv`` (unit: class x seed), ``convergence_vs_firm.csv`` and
  ``comparison_vs_firm.md`` (:mod:`anobench.report.comparison`).

Example:
    >>> paths = write_leaderboard(experiment="digits-smoke")  # doctest: +SKIP
    >>> paths["leaderboard.csv"]  # doctest: +SKIP
    PosixPath('results/digits-smoke/leaderboard.csv')
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anobench.config import RunConfig, TrainConfig
from anobench.errors import AnobenchError
from anobench.label_free import PROXIES, RUN_PROXIES, SCORER_PROXIES, THRESHOLD_COLUMNS
from anobench.plugins import row_plugins
from anobench.provenance import ENVIRONMENT_TAGS
from anobench.report.comparison import paired_stats, paired_units
from anobench.report.markdown import mean_std_cell, number_cell, pipe_table
from anobench.results_csv import PLUGINS_COLUMN, RESULT_COLUMNS, SCHEMA_VERSION, config_columns
from anobench.run_ownership import reap_orphans
from anobench.store import StoreError, require_store
from anobench.store_lock import store_lock
from anobench.tracking import DEFAULT_EXPERIMENT, default_tracking_uri, metric_key

GROUP = ["dataset", "outliers", "preset", "objective", "scorer"]
"""A leaderboard row; ranks and tests compare rows with the same dataset, outliers and preset."""
ARENA = ["dataset", "outliers", "preset"]


def _config(text: str) -> RunConfig:
    data = json.loads(text)
    train = TrainConfig(**data.pop("train"))
    known = set(RunConfig.__dataclass_fields__)
    return RunConfig(**{k: v for k, v in data.items() if k in known}, train=train)


def _iso(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def load_runs(tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiment's finished runs as tables.

    Returns:
        ``(rows, curves)``: rows in the :data:`RESULT_COLUMNS` schema (one per run x scorer; of
        several finished runs with one key, the latest); curves with columns ``run_key, step,
        progress, auroc`` plus the group columns, one per AUROC evaluation during training.

    The store is never created: a store that does not exist is an error. Runs left RUNNING by a
    process that is gone are marked KILLED first (:func:`anobench.run_ownership.reap_orphans`).

    Raises:
        AnobenchError: If there is no store at the URI, or the experiment does not exist or has
            no finished run.
    """
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    try:
        require_store(uri)
    except StoreError as error:
        raise StoreError(f"no experiment {experiment!r} in {uri}: {error}") from None
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise AnobenchError(f"no experiment {experiment!r} in {uri}")
    with store_lock(uri):
        reap_orphans(client, [found.experiment_id])
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                                  order_by=["attributes.end_time DESC"], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    latest: dict[str, Any] = {}
    for run in runs:
        latest.setdefault(run.data.tags.get("run_key", run.info.run_id), run)
    if not latest:
        raise AnobenchError(f"experiment {experiment!r} in {uri} has no finished run")
    rows, curves = [], []
    for key, run in latest.items():
        text = run.data.tags.get("config_json") or Path(client.download_artifacts(run.info.run_id, "config.json")).read_text()
        config = _config(text)
        metrics = run.data.metrics
        run_proxies = {name: _history(client, run, name) for name in RUN_PROXIES}
        for spec in config.scorers:
            history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric_key("auroc", spec)))
            proxies = {**run_proxies, **{name: _history(client, run, name, spec) for name in SCORER_PROXIES}}
            steps = history[-1][0] if history else ""
            row = {
                "run_key": key, "mlflow_run_id": run.info.run_id, "finished_at": _iso(run.info.end_time),
                "objective": config.objective, "outliers": config.outliers, "dataset": config.dataset,
                "normal_class": config.normal_class,
                "normal_class_name": run.data.tags.get("normal_class", config.normal_class),
                "seed": config.seed, "preset": config.preset, "scorer": spec,
                **{name: metrics.get(metric_key(name, spec), np.nan) for name in ("auroc", "aupr", "fpr95", "aulc")},
                "steps": steps, "train_wall_s": metrics.get("train_wall_s", np.nan),
                "images_per_s": metrics.get("images_per_s", np.nan),
                "total_wall_s": round((run.info.end_time - run.info.start_time) / 1000, 3),
                "config_json": config.to_json(),
                **{name: values.get(max(values), np.nan) if values else np.nan for name, values in proxies.items()},
                **{name: metrics.get(metric_key(name, spec), np.nan) for name in THRESHOLD_COLUMNS if name != "threshold_source"},
                "threshold_source": run.data.tags.get(metric_key("threshold_source", spec), ""),
                **config_columns(config),
                **{column: run.data.tags.get(tag, "") for column, tag in ENVIRONMENT_TAGS.items()},
                PLUGINS_COLUMN: row_plugins(run.data.tags, spec),
                "schema_version": SCHEMA_VERSION,
            }
            rows.append(row)
            if len(history) > 1:
                for step, value in history:
                    curves.append({**{c: row[c] for c in GROUP}, "run_key": key, "normal_class_name": row["normal_class_name"],
                                   "seed": config.seed, "step": step, "progress": step / max(history[-1][0], 1), "auroc": value,
                                   **{name: values.get(step, np.nan) for name, values in proxies.items()}})
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    curve_frame = pd.DataFrame(curves)
    if len(curve_frame):
        curve_frame = curve_frame.sort_values(GROUP + ["normal_class_name", "seed", "step"], ignore_index=True)
    return frame.sort_values(GROUP + ["normal_class_name", "seed"], ignore_index=True), curve_frame


def _history(client: Any, run: Any, name: str, spec: str | None = None) -> dict[int, float]:
    """``{step: value}`` of a proxy metric of a run (a scorer's with ``spec``); empty if never
    logged (runs before schema version 4, proxies that were skipped)."""
    key = metric_key(name) if spec is None else metric_key(name, spec)
    if key not in run.data.metrics:
        return {}
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}


def per_class_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Objective x scorer rows, a column per normal class: "mean ± std" AUROC over seeds (the mean
    alone for one seed)."""
    stats = rows.groupby(GROUP + ["normal_class_name"])["auroc"].agg(["mean", "std"]).reset_index()
    stats["cell"] = [mean_std_cell(m, s, ".4f") for m, s in zip(stats["mean"], stats["std"])]
    table = stats.pivot(index=GROUP, columns="normal_class_name", values="cell")
    table["mean"] = stats.groupby(GROUP)["mean"].mean().round(4)
    table = table.reset_index()
    table.columns.name = None
    table.insert(0, "schema_version", SCHEMA_VERSION)
    return table


def _mean_and_seed_std(rows: pd.DataFrame) -> pd.DataFrame:
    """Per row of GROUP: the mean over classes of each class's mean over seeds, and the std over
    seeds of each seed's mean over the classes that every seed has (NaN for one seed).

    While a study is partial its seeds can cover different classes; averaging each seed over its
    own classes would then compare easy classes with hard ones instead of seeds.
    """
    by_class = rows.groupby(GROUP + ["normal_class_name"])
    per_class = by_class["auroc"].mean().groupby(GROUP).mean()
    seeds = rows.groupby(GROUP)["seed"].nunique().rename("n_seeds")
    in_every_seed = by_class["seed"].transform("nunique") == rows.groupby(GROUP)["seed"].transform("nunique")
    std = rows[in_every_seed].groupby(GROUP + ["seed"])["auroc"].mean().groupby(GROUP).std()
    summary = pd.DataFrame({"auroc_mean": per_class, "auroc_std": std, "n_seeds": seeds})
    return summary.reset_index()


def _distributions(plugins: pd.Series) -> str:
    """The plugin distributions of a row's runs, ``"name version, ..."`` sorted (empty for built-ins).

    Example:
        >>> _distributions(pd.Series(["a 1.0, b 2", "", "a 1.0"]))
        'a 1.0, b 2'
    """
    return ", ".join(sorted({name for text in plugins.fillna("") for name in str(text).split(", ") if name}))


def leaderboard_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Objective x scorer: mean AUROC ± std over seeds, rank, AULC and a paired test against the
    best row of the same dataset, outliers and preset.

    The test is a paired t-test with the class as the unit: over the (class, seed) pairs both rows
    have (``n_pairs``), each row's AUROC is averaged over the seeds per class, and the classes are
    the sample (:func:`anobench.report.comparison.paired_units`). The best row's p-value is empty, as is
    one with fewer than two classes.
    """
    summary = _mean_and_seed_std(rows)
    extra = rows.groupby(GROUP).agg(
        n_runs=("run_key", "nunique"), n_classes=("normal_class_name", "nunique"), aulc_mean=("aulc", "mean"),
        aupr_mean=("aupr", "mean"), fpr95_mean=("fpr95", "mean"), train_wall_s_mean=("train_wall_s", "mean"),
        plugins=(PLUGINS_COLUMN, _distributions),
    ).reset_index()
    table = summary.merge(extra, on=GROUP)
    table["rank"] = table.groupby(ARENA)["auroc_mean"].rank(ascending=False, method="min").astype(int)
    paired = rows.set_index(GROUP + ["normal_class_name", "seed"])["auroc"]
    best_of: list[str] = []
    p_values: list[float] = []
    n_pairs: list[int] = []
    for _, row in table.iterrows():
        arena = table[(table[ARENA] == row[ARENA]).all(axis=1)]
        best = arena.sort_values("auroc_mean", ascending=False).iloc[0]
        best_of.append(f"{best['objective']}/{best['scorer']}")
        mine = paired.loc[tuple(row[GROUP])]
        theirs = paired.loc[tuple(best[GROUP])]
        n_pairs.append(len(mine.index.intersection(theirs.index)))
        same = tuple(best[GROUP]) == tuple(row[GROUP])
        per_class = paired_units(mine, theirs, "class")
        p_values.append(np.nan if same else paired_stats(*per_class)["p_value"])
    table["best"] = best_of
    table["n_pairs"] = n_pairs
    table["p_value_vs_best"] = p_values
    table["schema_version"] = SCHEMA_VERSION
    order = GROUP[:3] + ["rank"] + GROUP[3:]
    rest = [c for c in table.columns if c not in order]
    return table[order + rest].sort_values(ARENA + ["rank", "objective", "scorer"], ignore_index=True)


def selection_markdown(selection: pd.DataFrame) -> str:
    """``selection.csv`` as a Markdown section: does each label-free proxy pick what test AUROC
    would pick (test labels only evaluate the proxies, never choose)."""
    columns = ["scorer", "proxy", "better", "selects", "contexts", "Spearman [95% CI]", "regret, points [95% CI]",
               "random pick, points"]
    rows = [[r["scorer"], r["proxy"], r["direction"], r["level"], r["n_contexts"],
             f"{number_cell(r['spearman'], '.2f')} [{number_cell(r['spearman_low'], '.2f')}, "
             f"{number_cell(r['spearman_high'], '.2f')}]",
             f"{number_cell(r['regret_points'], '.2f')} [{number_cell(r['regret_low'], '.2f')}, "
             f"{number_cell(r['regret_high'], '.2f')}]",
             number_cell(r["regret_random_points"], ".2f")] for _, r in selection.iterrows()]
    return ("## Label-free selection (selection.csv)\n\nSpearman correlation of each proxy with test AUROC, "
            "and the regret of choosing by it against the oracle, over the choices of an objective per class "
            "and seed (`objective`) and of a checkpoint per run (`checkpoint`); classes are resampled for the "
            "intervals. Test labels only evaluate the proxies here.\n\n"
            + "\n".join(pipe_table(columns, rows, right=set(columns[4:]))) + "\n")


def markdown_table(table: pd.DataFrame) -> str:
    """The leaderboard as a Markdown table; with a ``plugins`` column when a row comes from a plugin."""
    columns = ["dataset", "outliers", "preset", "rank", "objective", "scorer", "AUROC (mean ± std)", "AULC",
               "seeds", "p vs best"]
    rows = [[r["dataset"], r["outliers"], r["preset"], r["rank"], r["objective"], r["scorer"],
             mean_std_cell(r["auroc_mean"], r["auroc_std"], ".4f"), number_cell(r["aulc_mean"], ".4f"), r["n_seeds"],
             number_cell(r["p_value_vs_best"], ".3g")] for _, r in table.iterrows()]
    if table["plugins"].astype(bool).any():
        columns.append("plugins")
        for row, plugins in zip(rows, table["plugins"]):
            row.append(plugins)
    return "\n".join(pipe_table(columns, rows, right=set(columns[3:4] + columns[6:]))) + "\n"


def objective_colors(objectives: list[str]) -> dict[str, Any]:
    """One fixed colour per objective (sorted names on the tab10 cycle), the same in every panel."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(objectives))}


def _panels(n: int, width: float, height: float) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels, at most three per row; unused cells are hidden."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(3, max(n, 1))
    nrows = -(-max(n, 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[max(n, 1):]:
        ax.set_visible(False)
    return fig, flat


def curves_figure(curves: pd.DataFrame) -> Any:
    """AUROC versus training progress, one panel per scorer, one line per objective (mean over
    classes and seeds), each objective in the same colour everywhere."""
    scorers = sorted(curves["scorer"].unique()) if len(curves) else ["(no curves)"]
    colors = objective_colors(list(curves["objective"].unique()) if len(curves) else [])
    fig, axes = _panels(len(scorers), 5, 4)
    for ax, scorer in zip(axes, scorers):
        part = curves[curves["scorer"] == scorer] if len(curves) else curves
        for objective, group in part.groupby("objective") if len(part) else []:
            mean = group.assign(progress=group["progress"].round(3)).groupby("progress")["auroc"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", label=objective, color=colors[objective])
        ax.set(title=f"scorer {scorer}", xlabel="training progress", ylabel="test AUROC", xlim=(0, 1))
        ax.grid(alpha=0.3)
        if len(part):
            ax.legend(fontsize="small")
    fig.suptitle("AUROC during training (mean over classes and seeds; area under each curve = AULC)")
    fig.tight_layout()
    return fig


def per_class_figure(rows: pd.DataFrame) -> Any:
    """AUROC per normal class: one panel per scorer, a bar per objective (± std over seeds)."""
    stats = rows.groupby(["scorer", "objective", "normal_class_name"])["auroc"].agg(["mean", "std"]).reset_index()
    classes = sorted(stats["normal_class_name"].unique(), key=str)
    scorers = sorted(stats["scorer"].unique()) if len(stats) else ["(no runs)"]
    colors = objective_colors(list(stats["objective"].unique()))
    low = min(0.5, float(stats["mean"].min()) - 0.05) if len(stats) else 0.0
    fig, axes = _panels(len(scorers), max(6.0, 0.9 * len(classes)), 3.5)
    x = np.arange(len(classes))
    for ax, scorer in zip(axes, scorers):
        part = stats[stats["scorer"] == scorer]
        objectives = sorted(part["objective"].unique())
        width = 0.8 / max(len(objectives), 1)
        for i, objective in enumerate(objectives):
            bars = part[part["objective"] == objective].set_index("normal_class_name").reindex(classes)
            ax.bar(x + i * width, bars["mean"], width, yerr=bars["std"].fillna(0), label=objective,
                   color=colors[objective], capsize=2)
        ax.set_xticks(x + width * (len(objectives) - 1) / 2, [str(c) for c in classes], rotation=30)
        ax.set(title=f"scorer {scorer}", ylabel="test AUROC", ylim=(low, 1.0))
        ax.grid(axis="y", alpha=0.3)
        if objectives:
            ax.legend(fontsize="x-small", ncol=2)
    fig.suptitle("AUROC per normal class (final step; ± std over seeds)")
    fig.tight_layout()
    return fig


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_leaderboard(
    tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, output_dir: Path = Path("results"),
    reference: str | None = None,
) -> dict[str, Path]:
    """Read the experiment from MLflow and write every leaderboard file (each atomically).

    Args:
        tracking_uri: MLflow store (None: the default store).
        experiment: MLflow experiment; the files go to ``output_dir / experiment``.
        output_dir: Parent folder of the files.
        reference: Objective to compare every other objective with (paired tests, convergence).

    Returns:
        The written files by name.

    Raises:
        AnobenchError: If the experiment has no finished run, or ``reference`` no run or curve.
    """
    import matplotlib.pyplot as plt

    from anobench.report.comparison import comparison_markdown, convergence_summary, convergence_table, paired_table
    from anobench.report.selection import selection_table
    from anobench.report.selection_inflation import selection_inflation

    rows, curves = load_runs(tracking_uri, experiment)
    folder = output_dir / experiment
    table = leaderboard_table(rows)
    texts: dict[str, str] = {}
    selection = None
    if len(curves):
        texts["selection_inflation.csv"] = selection_inflation(curves).to_csv(index=False)
        measured = [p for p in PROXIES if p in curves and curves[p].notna().any()]
        if measured:
            selection = selection_table(curves, measured)
            texts["selection.csv"] = selection.to_csv(index=False)
    if reference is not None:
        paired, convergence = paired_table(rows, reference), convergence_table(curves, reference)
        by_pair = paired_table(rows, reference, unit="class_seed")
        texts[f"paired_vs_{reference}.csv"] = paired.to_csv(index=False)
        texts[f"paired_vs_{reference}_class_seed.csv"] = by_pair.to_csv(index=False)
        texts[f"convergence_vs_{reference}.csv"] = convergence.to_csv(index=False)
        texts[f"comparison_vs_{reference}.md"] = comparison_markdown(paired, by_pair, convergence_summary(convergence),
                                                                     reference)
    names = ["runs.csv", "per_class.csv", "leaderboard.csv", "leaderboard.md", "curves.csv", "auroc_curves.png",
             "per_class_auroc.png", *texts]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in names}
    for name, text in texts.items():
        _write_text(paths[name], text)
    _write_text(paths["curves.csv"], curves.to_csv(index=False))
    _write_text(paths["runs.csv"], rows.to_csv(index=False))
    _write_text(paths["per_class.csv"], per_class_table(rows).to_csv(index=False))
    _write_text(paths["leaderboard.csv"], table.to_csv(index=False))
    _write_text(paths["leaderboard.md"], f"# Leaderboard: {experiment}\n\n" + markdown_table(table)
                + ("" if selection is None else "\n" + selection_markdown(selection)))
    for name, figure in (("auroc_curves.png", curves_figure(curves)), ("per_class_auroc.png", per_class_figure(rows))):
        figure.savefig(paths[name], dpi=100)
        plt.close(figure)
    return paths
