"""Sweep grids: objectives x outlier sources x datasets x normal classes x seeds x presets.

A :class:`SweepSpec` comes from command-line flags or from a TOML file (see ``benchmarks/``) and
expands into one :class:`~anobench.config.RunConfig` per trained encoder; every scorer of the grid
is applied to each encoder, so adding a scorer never multiplies training.

Example:
    >>> spec = SweepSpec(objectives=("firm", "simclr"), classes=("0", "1"), seeds=(0, 1), presets=("smoke",))
    >>> len(expand(spec))
    8

A sweep file::

    experiment = "digits-demo"
    [grid]
    objectives = ["firm", "simclr", "supcon"]
    scorers = ["knn", "mahalanobis"]
    datasets = ["digits"]
    classes = [0, 1, 2]          # or "all"
    seeds = [0, 1]
    presets = ["smoke"]
    [run]
    steps = 40
    eval_checkpoints = 4
    val_fraction = 0.1           # held-out normals for the label-free proxies and thresholds
    [objective_params.firm]
    tau = 0.2

Several grids in one file: ``[[grid]]`` tables instead of one ``[grid]``; the first is complete
and every later one lists only the keys it changes (e.g. an objective that runs with one seed)::

    [[grid]]
    objectives = ["firm", "simclr"]
    seeds = [0, 1]
    [[grid]]
    objectives = ["csi"]
    scorers = ["knn", "csi"]
    seeds = [0]
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anobench.config import PRESETS, RunConfig, preset
from anobench.errors import ConfigError
from anobench.packing import parse_runs_per_device
from anobench.specs import check_experiment_name
from anobench.thresholds import DEFAULT_TARGET_FPR

GRID_KEYS: tuple[str, ...] = ("objectives", "scorers", "outliers", "datasets", "classes", "seeds", "presets")
TRAIN_OVERRIDES: tuple[str, ...] = ("epochs", "steps", "batch_size", "outlier_ratio", "width", "precision")
RUN_KEYS: tuple[str, ...] = (
    "data_root", "oe_source", "image_size", "device", "eval_checkpoints", "val_fraction", "val_outliers", "target_fpr",
    *TRAIN_OVERRIDES, "runs_per_device",
)
TOP_KEYS: tuple[str, ...] = ("experiment", "grid", "run", "objective_params")
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "data_root": (str,), "oe_source": (str,), "image_size": (int,), "device": (str,),
    "eval_checkpoints": (int,), "val_fraction": (int, float), "val_outliers": (str,), "target_fpr": (float,),
    "epochs": (int,), "steps": (int,), "batch_size": (int,),
    "outlier_ratio": (int, float), "width": (int, float), "precision": (str,), "runs_per_device": (int, str),
}
ALL_CLASSES = "all"
MAX_RANGE = 10_000
"""The most values one ``low-high`` range of ``--seeds`` may expand to."""


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs plus the settings they share.

    Attributes:
        objectives: Objective names.
        scorers: Scorer specs, all applied to every trained encoder.
        outliers: Outlier-source specs ("rot90+rot180+rot270", "cutpaste", "oe", ...).
        datasets: Dataset names.
        classes: Normal classes (ids or names), or ``("all",)`` for every class of each dataset.
        seeds: Seeds.
        presets: Training presets.
        run: Shared run settings: any of :data:`RUN_KEYS` (train overrides apply on top of each
            preset; ``steps`` wins over ``epochs``). ``runs_per_device`` (``"auto"`` or N) is
            a scheduling setting: concurrent runs per GPU; it is not part of a run's config or key.
        objective_params: Constructor parameters per objective name.
        experiment: MLflow experiment (and results folder) of the sweep.
        more_grids: Further grids, each given by the grid keys (:data:`GRID_KEYS`) in which it
            differs from this one; their runs join this grid's runs.
    """

    objectives: tuple[str, ...] = ("firm",)
    scorers: tuple[str, ...] = ("knn",)
    outliers: tuple[str, ...] = ("rot90+rot180+rot270",)
    datasets: tuple[str, ...] = ("digits",)
    classes: tuple[str, ...] = ("0",)
    seeds: tuple[int, ...] = (0,)
    presets: tuple[str, ...] = ("quick",)
    run: dict[str, Any] = field(default_factory=dict)
    objective_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiment: str = "default"
    more_grids: tuple[dict[str, tuple[Any, ...]], ...] = ()

    def __post_init__(self) -> None:
        for key in GRID_KEYS:
            if not getattr(self, key):
                raise ConfigError(f"sweep grid {key} is empty; give at least one value")
        unknown = sorted(set(self.run) - set(RUN_KEYS))
        if unknown:
            raise ConfigError(f"unknown run setting {unknown[0]!r}; valid settings: {', '.join(RUN_KEYS)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds repeat a value: {list(self.seeds)}")
        for changes in self.more_grids:
            unknown = sorted(set(changes) - set(GRID_KEYS))
            if unknown:
                raise ConfigError(f"unknown grid key {unknown[0]!r}; valid keys: {', '.join(GRID_KEYS)}")
        check_experiment_name(self.experiment)
        if "runs_per_device" in self.run:
            parse_runs_per_device(self.run["runs_per_device"])

    def with_changes(self, **changes: Any) -> SweepSpec:
        """A copy with ``changes``; None values and empty tuples keep the current setting.

        A changed grid key applies to every grid: it also replaces that key in :attr:`more_grids`.
        """
        kept = {k: v for k, v in changes.items() if v is not None and v != ()}
        more = tuple({k: v for k, v in grid.items() if k not in kept} for grid in kept.get("more_grids", self.more_grids))
        return dataclasses.replace(self, **{**kept, "more_grids": more})

    def grids(self) -> list[SweepSpec]:
        """This grid and each of :attr:`more_grids` as a single-grid spec."""
        first = dataclasses.replace(self, more_grids=())
        return [first, *(dataclasses.replace(first, **changes) for changes in self.more_grids)]


def _class_sizes(dataset: str, classes: tuple[str, ...], run: dict[str, Any], loaded_sets: dict[tuple, Any]) -> dict[str, int]:
    """The normal classes of ``dataset`` (``all`` = every class id), each checked to make a
    one-class task, with its number of training images; datasets are loaded once per (name,
    root, image size) across the grids via ``loaded_sets``."""
    from anobench.data import load_dataset
    from anobench.data.protocol import check_task_class

    where = (dataset, run.get("data_root"), run.get("image_size", 32))
    if where not in loaded_sets:
        loaded_sets[where] = load_dataset(*where)
    loaded = loaded_sets[where]
    names = [str(i) for i in range(len(loaded.class_names))] if classes == (ALL_CLASSES,) else classes
    return {name: int((loaded.train.labels == check_task_class(loaded, name)).sum()) for name in names}


def _check_names(spec: SweepSpec) -> None:
    from anobench.data import list_datasets
    from anobench.evaluation import build_scorers
    from anobench.objectives import get_objective, list_objectives
    from anobench.outliers import list_generators
    from anobench.runner import checked_build

    objectives = list_objectives()
    for name in spec.objectives:
        if name not in objectives:
            raise ConfigError(f"unknown objective {name!r}; valid names: {', '.join(objectives)}")
        checked_build(f"objective {name!r}", get_objective, name, **spec.objective_params.get(name, {}))
    checked_build("scorers", build_scorers, list(spec.scorers))
    generators = list_generators()
    for source in spec.outliers:
        for part in source.split("+"):
            if part.strip() not in generators:
                raise ConfigError(f"unknown outlier generator {part.strip()!r} in {source!r}; "
                                  f"valid names: {', '.join(generators)}")
    datasets = list_datasets()
    for name in spec.datasets:
        if name not in datasets:
            raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(datasets)}")
    for name in spec.presets:
        preset(name)


def expand(spec: SweepSpec) -> list[RunConfig]:
    """Every run of every grid, validated, without duplicates (equal keys), in a stable order:
    preset, dataset, seed, class, then grid, objective, outlier source.

    Raises:
        ConfigError, UnknownNameError, DataError: For a bad name or setting, before any run.
    """
    stray = sorted(set(spec.objective_params) - {o for grid in spec.grids() for o in grid.objectives})
    if stray:
        raise ConfigError(f"objective_params for {stray[0]!r}, which is not in the grid's objectives")
    runs: dict[str, RunConfig] = {}
    loaded_sets: dict[tuple, Any] = {}
    for grid in spec.grids():
        for config in _expand_grid(grid, loaded_sets):
            runs.setdefault(config.key(), config)
    fields = ("preset", "dataset", "seed", "normal_class")
    first_seen: dict[str, dict[Any, int]] = {name: {} for name in fields}
    for config in runs.values():
        for name in fields:
            first_seen[name].setdefault(getattr(config, name), len(first_seen[name]))
    return sorted(runs.values(), key=lambda c: tuple(first_seen[n][getattr(c, n)] for n in fields))


def _expand_grid(spec: SweepSpec, loaded_sets: dict[tuple, Any]) -> list[RunConfig]:
    _check_names(spec)
    run = dict(spec.run)
    overrides = {k: run.pop(k) for k in TRAIN_OVERRIDES if k in run}
    if "steps" not in overrides and "epochs" in overrides:
        overrides["steps"] = None
    trains = {name: dataclasses.replace(PRESETS[name], **overrides) for name in spec.presets}

    def make(preset_name: str, dataset: str, seed: int, normal_class: str, objective: str, outliers: str) -> RunConfig:
        uses_oe = "oe" in (p.strip() for p in outliers.split("+"))
        return RunConfig(
            objective=objective, scorers=list(spec.scorers),
            objective_params=dict(spec.objective_params.get(objective, {})),
            outliers=outliers, oe_source=run.get("oe_source") if uses_oe else None,
            dataset=dataset, data_root=run.get("data_root"), normal_class=normal_class,
            image_size=run.get("image_size", 32), preset=preset_name, seed=seed,
            device=run.get("device", "auto"), eval_checkpoints=run.get("eval_checkpoints", 0),
            val_fraction=float(run.get("val_fraction", 0.0)), val_outliers=run.get("val_outliers"),
            target_fpr=run.get("target_fpr", DEFAULT_TARGET_FPR),
            train=trains[preset_name],
        )

    # The run settings (image size, device, ...) are checked before a dataset is loaded with them.
    for preset_name in spec.presets:
        make(preset_name, spec.datasets[0], spec.seeds[0], "0", spec.objectives[0], spec.outliers[0])
    classes = {d: _class_sizes(d, spec.classes, spec.run, loaded_sets) for d in spec.datasets}
    configs: dict[str, RunConfig] = {}
    for preset_name, dataset, seed in itertools.product(spec.presets, spec.datasets, spec.seeds):
        for normal_class, objective, outliers in itertools.product(classes[dataset], spec.objectives, spec.outliers):
            config = make(preset_name, dataset, seed, normal_class, objective, outliers)
            config.check_data_size(classes[dataset][normal_class])
            configs.setdefault(config.key(), config)
    return list(configs.values())


def _strings(where: str, value: Any, kind: type = str) -> tuple[Any, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where} is empty; give at least one value")
    out = []
    for item in values:
        if kind is int and (isinstance(item, bool) or not isinstance(item, int)):
            raise ConfigError(f"{where} must hold integers, got {item!r}")
        if kind is str and isinstance(item, (int, str)) and not isinstance(item, bool):
            item = str(item)
        elif kind is str:
            raise ConfigError(f"{where} must hold strings, got {item!r}")
        out.append(item)
    return tuple(out)


def spec_from_toml(path: Path) -> SweepSpec:
    """Read a sweep file.

    Raises:
        ConfigError: For a missing or malformed file, an unknown key or a value of the wrong type,
            naming the file and the key.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read sweep file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"sweep file {path} is not valid TOML: {error}") from None
    try:
        return _spec_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"sweep file {path}: {error}") from None


def _table(data: dict[str, Any], key: str, valid: tuple[str, ...]) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{key} must be a table ([{key}]), got {table!r}")
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key '{key}.{unknown[0]}'; valid keys: {', '.join(valid)}")
    return table


def _spec_from_dict(data: dict[str, Any]) -> SweepSpec:
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; valid keys: {', '.join(TOP_KEYS)}")
    grids = data.get("grid", {})
    tables = grids if isinstance(grids, list) else [grids]
    if not tables:
        raise ConfigError("grid is an empty list; give at least one [[grid]] table")
    grid, *more = [_table({"grid": table}, "grid", GRID_KEYS) for table in tables]
    run = _table(data, "run", RUN_KEYS)
    for key, value in run.items():
        if isinstance(value, bool) or not isinstance(value, _RUN_TYPES[key]):
            raise ConfigError(f"run.{key} must be {' or '.join(t.__name__ for t in _RUN_TYPES[key])}, got {value!r}")
    params = data.get("objective_params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ConfigError("objective_params must hold one table per objective ([objective_params.firm])")
    changes, *more_grids = [
        {key: _strings(f"grid.{key}", table[key], int if key == "seeds" else str) for key in table}
        for table in (grid, *more)
    ]
    experiment = data.get("experiment", "default")
    if not isinstance(experiment, str) or not experiment:
        raise ConfigError(f"experiment must be a non-empty string, got {experiment!r}")
    spec = SweepSpec(run=run, objective_params=params, experiment=experiment).with_changes(**changes)
    return dataclasses.replace(spec, more_grids=tuple(more_grids))


def parse_int_list(flag: str, text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; ``"0-4"`` -> ``(0, 1, 2, 3, 4)``.

    Raises:
        ConfigError: Naming ``flag`` and the bad item: not an integer or range, or a range that
            is empty or longer than :data:`MAX_RANGE`.
    """
    out: list[int] = []
    for item in (p.strip() for p in text.split(",")):
        low, high = _int_range(flag, item)
        if not 0 <= high - low < MAX_RANGE:
            raise ConfigError(f"{flag}: bad range {item!r}; expected low-high with low <= high, "
                              f"at most {MAX_RANGE} values")
        out.extend(range(low, high + 1))
    return tuple(out)


def _int_range(flag: str, item: str) -> tuple[int, int]:
    """``"3"`` -> ``(3, 3)``, ``"0-4"`` -> ``(0, 4)``."""
    head, dash, high = item[1:].partition("-")  # a leading '-' is a sign
    low = item[:1] + head
    try:
        return int(low), int(high) if dash else int(low)
    except ValueError:
        raise ConfigError(f"{flag}: {item!r} is not an integer or a range like 0-4") from None


def check_done_csv(path: Path) -> None:
    """Check that ``path`` is a results CSV: a readable file whose header has ``run_key``.

    Raises:
        ConfigError: Naming the path and what is wrong.
    """
    try:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
    except OSError as error:
        raise ConfigError(f"--done-csv {path}: cannot read it ({error.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        header = []
    if "run_key" not in header:
        raise ConfigError(f"--done-csv {path} is not a results CSV: its header has no run_key column")


def parse_name_list(text: str) -> tuple[str, ...]:
    """``"0,1,airplane"`` -> ``("0", "1", "airplane")``; empty items dropped."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def build_spec(
    file: Path | None = None,
    *,
    objectives: tuple[str, ...] = (),
    scorers: tuple[str, ...] = (),
    outliers: tuple[str, ...] = (),
    datasets: tuple[str, ...] = (),
    classes: str | None = None,
    seeds: str | None = None,
    presets: tuple[str, ...] = (),
    objective_params: dict[str, Any] | None = None,
    experiment: str | None = None,
    **run: Any,
) -> SweepSpec:
    """The spec of ``anobench sweep``: the file's (or the defaults), overridden by every flag given.

    Args:
        file: A sweep file, or None.
        objectives ... presets: Grid flags; empty keeps the file's value. ``classes`` is ``all``
            or a comma list, ``seeds`` a comma list or range.
        objective_params: ``-p`` parameters, applied to every objective of the grid.
        experiment: MLflow experiment; None keeps the file's (else "default").
        run: Run settings (:data:`RUN_KEYS`); None values are not set.

    Raises:
        ConfigError: For a bad file, flag value or combination, naming it.
    """
    base = spec_from_toml(file) if file is not None else SweepSpec()
    spec = base.with_changes(
        objectives=objectives, scorers=scorers, outliers=outliers, datasets=datasets,
        classes=parse_name_list(classes) if classes is not None else None,
        seeds=parse_int_list("--seeds", seeds) if seeds is not None else None,
        presets=presets, experiment=experiment,
    )
    for grid in spec.grids():
        if ALL_CLASSES in grid.classes and grid.classes != (ALL_CLASSES,):
            raise ConfigError(f"classes: 'all' cannot be combined with other classes, got {list(grid.classes)}")
    settings = {**spec.run, **{k: v for k, v in run.items() if v is not None}}
    params = {name: dict(p) for name, p in spec.objective_params.items()}
    for name in dict.fromkeys(o for grid in spec.grids() for o in grid.objectives):
        params.setdefault(name, {}).update(objective_params or {})
    params = {name: p for name, p in params.items() if p}
    return dataclasses.replace(spec, run=settings, objective_params=params)
