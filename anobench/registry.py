"""A name -> factory registry, shared by objectives, scorers and outlier generators.

Example:
    >>> reg: Registry[object] = Registry("widget")
    >>> @reg.register("plain")
    ... class Plain:
    ...     def __init__(self, size: int = 1) -> None:
    ...         self.size = size
    >>> reg.create("plain", size=3).size
    3
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from anobench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps registry names to factories (usually classes).

    Args:
        kind: What the registry holds, used in error messages ("objective", "scorer", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a factory under ``name``.

        Raises:
            ValueError: If ``name`` is already registered.
        """

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``.

        Raises:
            UnknownNameError: If ``name`` is not registered; the message lists the valid names.
        """
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def create(self, name: str, **params: Any) -> T:
        """Build the entry ``name`` with constructor parameters ``params``."""
        return self.factory(name)(**params)
