"""The scorer registry: one module per scorer family registers its entries here."""

from __future__ import annotations

from typing import Any

from anobench.registry import Registry
from anobench.scorers.base import Scorer

SCORERS: Registry[Scorer] = Registry("scorer")
register_scorer = SCORERS.register


def list_scorers() -> list[str]:
    """Names of all registered scorers, sorted."""
    return SCORERS.names()


def get_scorer(name: str, **params: Any) -> Scorer:
    """Build the scorer ``name`` with constructor parameters ``params``.

    Raises:
        UnknownNameError: If ``name`` is not registered.
    """
    return SCORERS.create(name, **params)
