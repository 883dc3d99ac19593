"""The scorer registry: one module per scorer family registers its entries here.

:func:`get_scorer` checks the parameters before a scorer exists (names and types against the
constructor, then the constructor's own range checks, then the neighbour counts), so a bad spec
fails when a run is configured; :func:`check_bank_size` checks the neighbour counts against the
bank once its size is known, before training.
"""

from __future__ import annotations

from typing import Any

from anobench.errors import ConfigError
from anobench.registry import Registry
from anobench.scorers.base import Scorer
from anobench.specs import check_params, matches_type

SCORERS: Registry[Scorer] = Registry("scorer")
register_scorer = SCORERS.register

NEIGHBOUR_PARAMS: tuple[str, ...] = ("k", "n_neighbors")
"""Constructor parameters that count neighbours in the bank: each must be a positive integer, and
the bank must hold at least that many rows plus one (a training point never counts itself)."""


def list_scorers() -> list[str]:
    """Names of all registered scorers, sorted."""
    return SCORERS.names()


def get_scorer(name: str, **params: Any) -> Scorer:
    """Build the scorer ``name`` with constructor parameters ``params``.

    Raises:
        UnknownNameError: If ``name`` is not registered.
        ConfigError: For an unknown parameter, a value of the wrong type or out of range, naming
            the scorer and the parameter.
    """
    factory = SCORERS.factory(name)
    check_params(f"scorer {name!r}", factory, params)
    try:
        scorer = factory(**params)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None  # the constructors name themselves
    check_bank_size(name, scorer)
    return scorer


def check_bank_size(spec: str, scorer: Scorer, n_bank: int | None = None) -> None:
    """Check the scorer's neighbour counts (:data:`NEIGHBOUR_PARAMS`): positive, and with
    ``n_bank`` given, smaller than the bank.

    Args:
        spec: The scorer's name or spec, for messages.
        scorer: The scorer.
        n_bank: Rows of the bank it will be fitted on (the normal training images), if known.

    Raises:
        ConfigError: Naming the scorer, the parameter, its value and the largest valid value.
    """
    for key, value in scorer.get_params().items():
        if key not in NEIGHBOUR_PARAMS:
            continue
        if not matches_type(value, int) or value < 1:  # a PyOD detector's parameters are not typed
            raise ConfigError(f"scorer {spec!r}: {key} must be a positive integer, got {value!r}")
        if n_bank is not None and value >= n_bank:
            raise ConfigError(
                f"scorer {spec!r}: {key}={value} needs at least {value + 1} normal training images "
                f"(a training image is not its own neighbour), got {n_bank}; use {key} <= {n_bank - 1}"
            )
