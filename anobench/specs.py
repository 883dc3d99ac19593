"""Parsing of ``name:key=value,key=value`` specs (scorers) and ``key=value`` settings.

Example:
    >>> parse_spec("knn:k=1")
    ('knn', {'k': 1})
    >>> parse_assignment("tau=0.1")
    ('tau', 0.1)
"""

from __future__ import annotations

import json
from typing import Any

from anobench.errors import ConfigError


def parse_value(text: str) -> Any:
    """A JSON literal (number, bool, null, list) if ``text`` is one, else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``key=value`` into the key and the parsed value.

    Raises:
        ConfigError: If there is no ``=`` or the key is empty.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got {text!r}")
    return key.strip(), parse_value(value.strip())


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``name`` or ``name:k=v,k=v`` into the name and its parameters.

    Raises:
        ConfigError: If the name is empty or a parameter is not ``key=value``.
    """
    name, _, rest = text.partition(":")
    if not name.strip():
        raise ConfigError(f"empty name in spec {text!r}")
    params = dict(parse_assignment(part) for part in rest.split(",") if part.strip())
    return name.strip(), params
