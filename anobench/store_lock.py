"""Serialised writes to a local sqlite MLflow store, so many worker processes can share it.

sqlite allows one writer at a time; MLflow's store gives up with "database is locked" when a
writer waits too long. :class:`LockedMlflowTracker` takes an exclusive ``fcntl`` lock on
``<db>.lock`` around every client call, so writers queue instead of failing. Other stores
(servers, other databases) are used unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Any, Callable, Iterator

from anobench.tracking import MlflowTracker


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


_held: dict[Path, int] = {}
"""How deeply this process holds each store's lock: a second ``flock`` on a new descriptor of
the same file would wait for the first, so nested holds (a claim around client calls) count."""


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold the store's write lock (a no-op for stores that are not sqlite files); nested holds
    in one process are free.

    Example:
        >>> with store_lock("sqlite:///mlflow.db"), store_lock("sqlite:///mlflow.db"):
        ...     Path("mlflow.db.lock").exists()
        True
    """
    db = sqlite_path(tracking_uri)
    if db is None:
        yield
        return
    db = db.absolute()
    if _held.get(db):
        _held[db] += 1
        try:
            yield
        finally:
            _held[db] -= 1
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held[db] = 1
        try:
            yield
        finally:
            _held[db] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


class _LockedClient:
    """Forwards every method of an MLflow client, each call under the store lock; the client
    itself is made under the lock too (its first use may create or migrate the database)."""

    def __init__(self, make: Callable[[], Any], tracking_uri: str) -> None:
        self._make, self._uri, self._client = make, tracking_uri, None

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with store_lock(self._uri):
                if self._client is None:
                    self._client = self._make()
                return getattr(self._client, name)(*args, **kwargs)

        return call


class LockedMlflowTracker(MlflowTracker):
    """An :class:`~anobench.tracking.MlflowTracker` whose writes to a sqlite store are
    serialised; a run is created in one hold of the lock with the checks that precede it."""

    def _client(self) -> Any:
        self.prepare()
        return _LockedClient(super()._client, self.tracking_uri)

    def _create_run(self, client: Any, run_name: str, tags: dict[str, str]) -> str:
        with store_lock(self.tracking_uri):
            return super()._create_run(client, run_name, tags)
