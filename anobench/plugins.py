"""Which plugins a run uses, as MLflow tags naming each plugin entry's distribution and version.

Plugins are discovered by the registries themselves (:mod:`anobench.registry`, docs/plugins.md);
this module only reports, for one :class:`~anobench.config.RunConfig`, which of the names it uses
come from an installed distribution rather than from anobench.

Example:
    >>> from anobench.config import RunConfig, preset
    >>> plugin_tags(RunConfig(objective="firm", scorers=["knn:k=1"], train=preset("smoke")))
    {}
"""

from __future__ import annotations

from typing import Any

from anobench.config import RunConfig
from anobench.data.registry import DATASETS
from anobench.objectives.registry import OBJECTIVES
from anobench.outliers import GENERATORS
from anobench.registry import Origin, Registry
from anobench.scorers.registry import SCORERS
from anobench.specs import parse_spec

REGISTRIES: dict[str, Registry[Any]] = {
    "objectives": OBJECTIVES, "scorers": SCORERS, "datasets": DATASETS, "outliers": GENERATORS,
}
"""Every registry that plugins extend, by the title ``anobench list`` gives it."""

PLUGINS_TAG = "anobench.plugins"
"""The tag listing every distribution a run's plugins come from, "name version, ..." sorted."""


def labelled_names(registry: Registry[Any]) -> list[str]:
    """The registry's names, sorted; a plugin's followed by its distribution and version.

    Example:
        >>> "firm" in labelled_names(OBJECTIVES)
        True
    """
    labelled = []
    for name in registry.names():
        origin = registry.origin(name)
        labelled.append(name if origin is None else f"{name} ({origin})")
    return labelled


def plugin_origins(config: RunConfig) -> dict[str, Origin]:
    """The plugin entries a run uses, keyed ``<entry-point group>.<name>``; built-ins are left out.

    The names are the objective, every scorer of the scorer specs, the dataset, every outlier
    generator of the outliers spec and the Outlier Exposure source where it names a dataset.
    """
    used: list[tuple[Registry[Any], str]] = [
        (OBJECTIVES, config.objective),
        *((SCORERS, parse_spec(spec)[0]) for spec in config.scorers),
        (DATASETS, config.dataset),
        *((GENERATORS, part.strip()) for part in config.outliers.split("+")),
    ]
    if config.oe_source in DATASETS.names():
        used.append((DATASETS, config.oe_source))
    origins = {}
    for registry, name in used:
        origin = registry.origin(name)
        if origin is not None:
            origins[f"{registry.group}.{name}"] = origin
    return origins


def plugin_tags(config: RunConfig) -> dict[str, str]:
    """MLflow tags recording the distribution and version of every plugin entry a run uses.

    One tag per entry, ``<entry-point group>.<name>`` = ``"<distribution> <version>"`` (e.g.
    ``anobench.objectives.firm-rot`` = ``anobench-plugin-example 0.1.0``), and
    :data:`PLUGINS_TAG` listing the distributions; no tags for a run of built-ins only.

    Raises:
        UnknownNameError: If the config names an entry no registry holds.
    """
    origins = plugin_origins(config)
    if not origins:
        return {}
    tags = {key: str(origin) for key, origin in origins.items()}
    tags[PLUGINS_TAG] = ", ".join(sorted({str(origin) for origin in origins.values()}))
    return tags


def row_plugins(tags: dict[str, str], scorer_spec: str) -> str:
    """The distributions behind one results row (one scorer of a run), from the run's
    :func:`plugin_tags`: every plugin entry of the run except the scorers of its other rows.

    Example:
        >>> tags = {"anobench.objectives.firm-rot": "ex 0.1", "anobench.scorers.mean-sim": "ex 0.1",
        ...         "anobench.scorers.other": "more 2", "run_key": "abc"}
        >>> row_plugins(tags, "knn"), row_plugins(tags, "other:k=3")
        ('ex 0.1', 'ex 0.1, more 2')
    """
    groups = {registry.group for registry in REGISTRIES.values()}
    own_scorer = f"{SCORERS.group}.{parse_spec(scorer_spec)[0]}"
    return ", ".join(sorted({
        origin for key, origin in tags.items()
        if key.rpartition(".")[0] in groups and (not key.startswith(f"{SCORERS.group}.") or key == own_scorer)
    }))
