"""Parsing of ``name:key=value,key=value`` specs (scorers) and ``key=value`` settings, and the
type checks of settings against their annotations.

Example:
    >>> parse_spec("knn:k=1")
    ('knn', {'k': 1})
    >>> parse_spec("pyod:IForest:n_estimators=200")
    ('pyod', {'detector': 'IForest', 'n_estimators': 200})
    >>> parse_assignment("tau=0.1")
    ('tau', 0.1)
    >>> matches_type(True, int), matches_type(float("inf"), float), matches_type(3, float)
    (False, False, True)
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
import unicodedata
from collections.abc import Iterable
from typing import Any, Callable, Literal, Union

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


def parse_assignments(texts: Iterable[str], where: str) -> dict[str, Any]:
    """Parse ``key=value`` items into a dict.

    Args:
        texts: The items.
        where: Where they come from, for error messages (``"spec 'knn:k=1'"``, ``"-p"``).

    Raises:
        ConfigError: If an item is not ``key=value`` or a key is given twice.
    """
    params: dict[str, Any] = {}
    for text in texts:
        try:
            key, value = parse_assignment(text)
        except ConfigError as error:
            raise ConfigError(f"{error} in {where}") from None
        if key in params:
            raise ConfigError(f"parameter {key!r} is given twice in {where}")
        params[key] = value
    return params


MEMBER_PARAMS: dict[str, str] = {"pyod": "detector"}
"""Spec names that take a member of their family first, ``pyod:IForest:n_estimators=200``, and
the parameter the member is passed as."""


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``name`` or ``name:k=v,k=v`` into the name and its parameters; a name of
    :data:`MEMBER_PARAMS` reads ``name:member`` and ``name:member:k=v,k=v``.

    Raises:
        ConfigError: If the name is empty, a parameter is not ``key=value`` (also a ``:`` without
            parameters), a parameter is given twice or a member is missing.
    """
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"empty name in spec {text!r}; expected name or name:key=value,...")
    params: dict[str, Any] = {}
    member_param = MEMBER_PARAMS.get(name)
    if member_param is not None and colon:
        member, colon, rest = rest.partition(":")
        if not member.strip() or "=" in member:
            raise ConfigError(f"spec {text!r} names no {member_param}; expected {name}:NAME or "
                              f"{name}:NAME:key=value,...")
        params[member_param] = member.strip()
    assignments = parse_assignments(rest.split(",") if colon else (), f"spec {text!r}")
    if member_param in assignments:
        raise ConfigError(f"parameter {member_param!r} is given twice in spec {text!r}")
    return name, {**params, **assignments}


_NAMES: dict[Any, tuple[str, str]] = {
    int: ("an integer", "integers"), float: ("a finite number", "finite numbers"),
    str: ("a string", "strings"), bool: ("true or false", "booleans"),
}
"""How messages name the values of a plain type: one value, several values."""


def describe_type(annotation: Any, plural: bool = False) -> str:
    """How an error message names the values of a type annotation ("an integer", ...)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in _NAMES:
        return _NAMES[annotation][plural]
    if annotation is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a, plural) for a in args)
    if origin is list:
        return f"a list of {describe_type(args[0], plural=True)}"
    if origin is dict:
        return f"a dict with {describe_type(args[0], plural=True)} as keys"
    return f"a {getattr(annotation, '__name__', annotation)}"


def matches_type(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is a valid value of the annotation.

    Stricter than ``isinstance``: a bool is not an integer or a number, and a float must be
    finite; an int is a valid float (it is kept as it is, so it serialises unchanged).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (Union, types.UnionType):
        return any(matches_type(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(matches_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(matches_type(k, args[0]) for k in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def check_type(name: str, value: Any, annotation: Any) -> None:
    """Check that ``value`` of setting ``name`` matches its type annotation.

    Raises:
        ConfigError: Naming the setting, the bad value and the expected type.
    """
    if not matches_type(value, annotation):
        raise ConfigError(f"{name} must be {describe_type(annotation)}, got {value!r}")


def check_params(what: str, factory: Callable[..., Any], params: dict[str, Any]) -> None:
    """Check parameter names and types against the signature of ``factory`` (a class or function).
    A factory that takes ``**kwargs`` checks the names it does not declare itself.

    Raises:
        ConfigError: For a parameter the factory does not take or a value of the wrong type,
            naming ``what``, the parameter and the valid parameters.
    """
    signature = inspect.signature(factory)
    hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    any_name = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    for key, value in params.items():
        if key not in signature.parameters and not any_name:
            valid = ", ".join(signature.parameters) or "none"
            raise ConfigError(f"{what}: unknown parameter {key!r}; valid parameters: {valid}")
        if key in hints:
            check_type(f"{what}: {key}", value, hints[key])


def check_experiment_name(name: str) -> str:
    """Return ``name`` if it can name an experiment and its results folder, else raise.

    Raises:
        ConfigError: For an empty name, ``.`` or ``..``, a path separator or a control character.
    """
    if name.strip() in ("", ".", "..") or any(c in "/\\" or unicodedata.category(c) == "Cc" for c in name):
        raise ConfigError(
            f"bad experiment name {name!r}; expected a folder name: not empty, '.' or '..', "
            "without '/', '\\' or control characters"
        )
    return name
