"""The objective registry: one module per objective family registers its entries here."""

from __future__ import annotations

from typing import Any

from anobench.objectives.base import Objective
from anobench.registry import Registry

OBJECTIVES: Registry[Objective] = Registry("objective")
register_objective = OBJECTIVES.register


def list_objectives() -> list[str]:
    """Names of all registered objectives, sorted."""
    return OBJECTIVES.names()


def get_objective(name: str, **params: Any) -> Objective:
    """Build the objective ``name`` with constructor parameters ``params``.

    Raises:
        UnknownNameError: If ``name`` is not registered.
    """
    return OBJECTIVES.create(name, **params)
