"""Exceptions that anobench raises for bad input; the CLI prints their message as one line."""


class AnobenchError(Exception):
    """Base class of every error caused by bad input (names, data, configuration)."""


class UnknownNameError(AnobenchError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class DataError(AnobenchError):
    """A data folder or file is missing, incomplete or unreadable."""


class ConfigError(AnobenchError, ValueError):
    """A run or training setting is out of its valid range."""
