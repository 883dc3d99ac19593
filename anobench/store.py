"""Tracking stores made ready before any work starts.

- :func:`check_tracking_uri` fails within seconds, with one line, on a URI that is malformed,
  names a scheme MLflow does not know, a server or database that does not answer, or a sqlite
  file or folder that cannot be written (MLflow itself retries for minutes, then prints a
  traceback).
- :func:`ensure_store` (writers) creates a missing sqlite store atomically: MLflow builds its
  tables in ``<db>.partial-<pid>`` beside the target, which is renamed into place under the
  store lock, so a kill or a full disk never leaves a half-built store. A half-built store left
  by an older anobench or by MLflow itself is moved aside to ``<db>.incomplete-<time>`` and
  rebuilt, with one warning line.
- :func:`require_store` (readers) never creates a store: a sqlite file that does not exist is
  an error naming the path.

Example:
    >>> require_store("sqlite:///typo.db")
    Traceback (most recent call last):
    ...
    anobench.store.StoreError: no MLflow store at typo.db: check --tracking-uri; anobench run and anobench sweep create one
    >>> check_tracking_uri("bogus://x")
    Traceback (most recent call last):
    ...
    anobench.store.StoreError: tracking URI 'bogus://x': MLflow knows no store scheme 'bogus' (use sqlite:///PATH, http(s)://HOST:PORT, a folder or a database URL)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from anobench.errors import AnobenchError
from anobench.store_lock import sqlite_path, store_lock

PROBE_TIMEOUT_S = 3.0
"""How long a server or database may take to accept a connection."""
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}
_PROFILES = ("databricks", "databricks-uc", "uc")
"""URIs that name a Databricks profile, not a location; MLflow checks those itself."""
_PARTIAL, _INCOMPLETE = ".partial-", ".incomplete-"
_CREATED_BY = "check --tracking-uri; anobench run and anobench sweep create one"

_log = logging.getLogger(__name__)


class StoreError(AnobenchError):
    """A tracking store that cannot be used: malformed, unreachable, unwritable, missing or
    damaged beyond repair."""


def _scheme(uri: str) -> str:
    """MLflow's store scheme of ``uri`` (a database driver suffix dropped)."""
    from mlflow.utils.uri import get_uri_scheme

    return get_uri_scheme(uri)


def _sqlite_file(uri: str) -> Path:
    """The database file of a sqlite URI.

    Raises:
        StoreError: If the URI names no file (``sqlite://``, ``sqlite:/x``, in-memory).
    """
    path = sqlite_path(uri)
    if path is None or str(path) in ("", ".", ":memory:"):
        raise StoreError(f"tracking URI {uri!r}: a sqlite store needs a file, as in sqlite:///PATH/mlflow.db")
    return path


def _folder_store(uri: str) -> Path:
    """The folder of a file store URI (``file:///PATH`` or a plain path)."""
    return Path(urlsplit(uri).path if uri.startswith("file:") else uri)


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _check_reachable(uri: str) -> None:
    parts = urlsplit(uri)
    try:
        port = parts.port or _DEFAULT_PORTS.get(_scheme(uri))
    except ValueError as error:
        raise StoreError(f"tracking URI {uri!r}: {error}") from None
    if not parts.hostname or port is None:
        raise StoreError(f"tracking URI {uri!r} names no host and port")
    try:
        socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        raise StoreError(
            f"cannot reach the tracking store {uri} ({parts.hostname}:{port}: {_reason(error)})"
        ) from None


def _check_writable_folder(folder: Path, uri: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise StoreError(f"cannot write the folder {folder} of the tracking store {uri}: {_reason(error)}") from None


def _check_writable_sqlite(path: Path, uri: str) -> None:
    _check_writable_folder(path.parent, uri)
    if path.is_dir():
        raise StoreError(f"tracking store {path} ({uri}) is a folder, not a sqlite file")
    if path.exists():
        try:
            open(path, "r+b").close()
        except OSError as error:
            raise StoreError(f"cannot write the tracking store {path} ({uri}): {_reason(error)}") from None


def check_tracking_uri(uri: str) -> None:
    """Fail fast unless a writer can use the store at ``uri``; creates nothing but folders.

    Raises:
        StoreError: If the URI is malformed, its scheme unknown, its server or database does not
            accept a connection within :data:`PROBE_TIMEOUT_S`, or its file or folder cannot be
            written.
    """
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    if uri in _PROFILES:
        return
    scheme = _scheme(uri)
    if scheme not in _tracking_store_registry._registry:
        raise StoreError(
            f"tracking URI {uri!r}: MLflow knows no store scheme {scheme!r} (use sqlite:///PATH, "
            "http(s)://HOST:PORT, a folder or a database URL)"
        )
    if scheme == "sqlite":
        _check_writable_sqlite(_sqlite_file(uri), uri)
    elif scheme in _DEFAULT_PORTS:
        _check_reachable(uri)
    elif scheme in ("", "file"):
        _check_writable_folder(_folder_store(uri), uri)


@functools.cache
def _head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())


def _half_built(path: Path, uri: str) -> str | None:
    """Why the sqlite store at ``path`` is half-built (None if it is complete).

    Raises:
        StoreError: If it is not a sqlite database, or holds runs at another schema revision.
    """
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
            row = db.execute("select version_num from alembic_version").fetchone() if "alembic_version" in tables else None
            runs = db.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0
    except sqlite3.DatabaseError as error:
        raise StoreError(f"tracking store {path} ({uri}) is not a readable sqlite database: {error}") from None
    revision, head = (row[0] if row else None), _head_revision()
    if revision == head:
        return None
    if runs:
        raise StoreError(
            f"tracking store {path} holds {runs} runs at schema revision {revision}, not {head}; back it "
            f"up, then run: mlflow db upgrade {uri}"
        )
    return f"schema revision {revision}, not {head}, and no run"


def _build(path: Path) -> None:
    """Create a complete store at ``path``: built beside it, then renamed into place."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    partial = path.with_name(f"{path.name}{_PARTIAL}{os.getpid()}")
    partial_uri = f"sqlite:///{partial}"
    MlflowClient(tracking_uri=partial_uri).get_experiment("0")  # tables, migrations, experiment 0
    engine = SqlAlchemyStore._engine_map.pop(partial_uri, None)  # MLflow caches one per URI
    if engine is not None:
        engine.dispose()
    os.rename(partial, path)


def _set_aside(path: Path, why: str) -> None:
    aside = path.with_name(f"{path.name}{_INCOMPLETE}{time.strftime('%Y%m%dT%H%M%S')}")
    os.rename(path, aside)
    journal = path.with_name(f"{path.name}-journal")
    if journal.exists():
        os.rename(journal, aside.with_name(f"{aside.name}-journal"))
    _log.warning("warning: tracking store %s was half-built (%s); moved it to %s and built a new one",
                 path, why, aside)


def _complete(path: Path, uri: str) -> bool:
    return path.is_file() and path.stat().st_size > 0 and _half_built(path, uri) is None


def _repair_or_build(path: Path, uri: str) -> None:
    """Under the store lock: drop builds that a killed process left, then build a missing or
    empty store, or set a half-built one aside and build it anew."""
    with store_lock(uri):
        for stale in path.parent.glob(f"{path.name}{_PARTIAL}*"):
            stale.unlink()
        if path.exists() and path.stat().st_size > 0:
            why = _half_built(path, uri)
            if why is None:
                return
            _set_aside(path, why)
        elif path.exists():
            path.unlink()  # an empty file: sqlite had not written its header yet
        _build(path)


def ensure_store(uri: str) -> None:
    """Make the store at ``uri`` ready to write to (see the module docstring).

    Raises:
        StoreError: As :func:`check_tracking_uri`; or the sqlite file is damaged beyond repair.
    """
    check_tracking_uri(uri)
    if _scheme(uri) == "sqlite":
        path = _sqlite_file(uri)
        if not _complete(path, uri):
            _repair_or_build(path, uri)


def require_store(uri: str) -> None:
    """Check that the store at ``uri`` exists and answers, without ever creating one; a
    half-built sqlite store is set aside and rebuilt (empty), as by :func:`ensure_store`.

    Raises:
        StoreError: If there is no store at ``uri``, or it cannot be reached or repaired.
    """
    if uri in _PROFILES:
        return
    scheme = _scheme(uri)
    if scheme == "sqlite":
        path = _sqlite_file(uri)
        if not path.is_file():
            raise StoreError(f"no MLflow store at {path}: {_CREATED_BY}")
        if not _complete(path, uri):
            _repair_or_build(path, uri)
    elif scheme in ("", "file"):
        folder = _folder_store(uri)
        if not folder.is_dir():
            raise StoreError(f"no MLflow store at {folder}: {_CREATED_BY}")
    else:
        check_tracking_uri(uri)
