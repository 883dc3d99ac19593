"""A name -> factory registry, shared by objectives, scorers, datasets and outlier generators.

Built-in entries register with :meth:`Registry.register` when their module is imported. Installed
distributions add entries through the entry-point group of the registry's kind
(:data:`ENTRY_POINT_GROUPS`); they are discovered when the registry is first looked up
(:meth:`Registry.names`, :meth:`Registry.factory`, :meth:`Registry.create`,
:meth:`Registry.origin`). See docs/plugins.md.

Example:
    >>> reg: Registry[object] = Registry("widget")
    >>> @reg.register("plain")
    ... class Plain:
    ...     def __init__(self, size: int = 1) -> None:
    ...         self.size = size
    >>> reg.create("plain", size=3).size
    3
    >>> reg.origin("plain") is None  # built in
    True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Generic, TypeVar

from anobench.errors import AnobenchError, UnknownNameError

T = TypeVar("T")

ENTRY_POINT_GROUPS: dict[str, str] = {
    "objective": "anobench.objectives",
    "scorer": "anobench.scorers",
    "dataset": "anobench.datasets",
    "outlier generator": "anobench.outliers",
}
"""The entry-point group each registry kind reads its plugins from."""

_log = logging.getLogger(__name__)


class PluginError(AnobenchError):
    """A plugin cannot be used: its name clashes with another entry, or it failed to load."""


@dataclass(frozen=True)
class Origin:
    """The installed distribution that provides a plugin entry.

    Example:
        >>> str(Origin("anobench-plugin-example", "0.1.0"))
        'anobench-plugin-example 0.1.0'
    """

    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass
class _Plugins:
    """What discovery found in one entry-point group."""

    factories: dict[str, Callable[..., Any]] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    """Entries that failed to load: name -> the message naming the plugin and its error."""
    clash: str | None = None
    """The message of the first entry whose name was already taken, if any."""


class Registry(Generic[T]):
    """Maps registry names to factories (usually classes), built in or from plugins.

    Args:
        kind: What the registry holds, used in error messages ("objective", "scorer", ...); a
            kind listed in :data:`ENTRY_POINT_GROUPS` also loads plugins from its group.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = ENTRY_POINT_GROUPS.get(kind)
        self._builtins: dict[str, Callable[..., T]] = {}
        self._plugins: _Plugins | None = None  # None until the first lookup discovers them

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a built-in factory under ``name``.

        Raises:
            ValueError: If ``name`` is already built in.
            PluginError: If a plugin already registered ``name``.
        """

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._builtins:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if self._plugins is not None and name in self._plugins.origins:
                raise PluginError(self._clash_message(name, self._plugins.origins[name], None))
            self._builtins[name] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        """Registered names, built in and from plugins, sorted."""
        return sorted([*self._builtins, *self._discover().factories])

    def origin(self, name: str) -> Origin | None:
        """The distribution that provides ``name``, or None for a built-in entry.

        Raises:
            UnknownNameError: If ``name`` is not registered.
        """
        self.factory(name)
        return self._discover().origins.get(name)

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``.

        Raises:
            UnknownNameError: If ``name`` is not registered; the message lists the valid names.
            PluginError: If ``name`` is a plugin that failed to load (the message gives its
                error), or two entries share a name.
        """
        plugins = self._discover()
        if name in self._builtins:
            return self._builtins[name]
        if name in plugins.factories:
            return plugins.factories[name]
        if name in plugins.broken:
            raise PluginError(plugins.broken[name])
        raise UnknownNameError(self.kind, name, self.names())

    def create(self, name: str, **params: Any) -> T:
        """Build the entry ``name`` with constructor parameters ``params``."""
        return self.factory(name)(**params)

    def _discover(self) -> _Plugins:
        """The plugins of this registry's entry-point group, loaded at the first call.

        A plugin that fails to load is logged as one warning line and left out.

        Raises:
            PluginError: If a plugin's name is already taken, now and at every later lookup.
        """
        if self._plugins is None:
            self._plugins = _Plugins()
            if self.group is not None:
                for entry in entry_points(group=self.group):
                    self._add_plugin(self._plugins, entry)
        if self._plugins.clash is not None:
            raise PluginError(self._plugins.clash)
        return self._plugins

    def _add_plugin(self, plugins: _Plugins, entry: EntryPoint) -> None:
        origin = _origin(entry)
        if entry.name in self._builtins or entry.name in plugins.origins:
            if plugins.clash is None:
                other = plugins.origins.get(entry.name)
                plugins.clash = self._clash_message(entry.name, origin, other)
            return
        try:
            factory = entry.load()
        except Exception as error:  # a plugin's import can fail in any way; it must not stop the others
            message = (
                f"{self.kind} plugin {entry.name!r} ({entry.value}, {origin}) failed to load: "
                f"{type(error).__name__}: {error}"
            )
            plugins.broken[entry.name] = message
            _log.warning("warning: %s; skipped", message)
            return
        plugins.factories[entry.name] = factory
        plugins.origins[entry.name] = origin

    def _clash_message(self, name: str, plugin: Origin, other: Origin | None) -> str:
        holder = f"the built-in {self.kind}" if other is None else f"the {self.kind} of the plugin {other}"
        return (
            f"{self.kind} {name!r} of the plugin {plugin} clashes with {holder} of the same name; "
            f"rename one of the two entry points (group {self.group})"
        )


def _origin(entry: EntryPoint) -> Origin:
    """The distribution of an entry point; "unknown" where importlib cannot tell."""
    if entry.dist is None:
        return Origin(entry.module, "unknown")
    return Origin(entry.dist.name, entry.dist.version)
