"""Finding a dataset's files under a data root, with errors that name the expected layout."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from anobench.data.registry import DATA_ROOT_ENV
from anobench.errors import DataError


def require_root(dataset: str, data_root: Path | None, layout: str) -> Path:
    """Return ``data_root`` if it is an existing directory.

    Args:
        dataset: Dataset name, for messages.
        data_root: The resolved data root, None if none was given.
        layout: The expected layout, quoted in messages, with "DATA_ROOT" for the root.

    Raises:
        DataError: If no data root was given or it is not a directory.
    """
    if data_root is None:
        raise DataError(f"dataset {dataset!r} needs --data-root or {DATA_ROOT_ENV}")
    if not data_root.is_dir():
        raise DataError(
            f"dataset {dataset!r}: data root {data_root} is not a directory; "
            f"expected {expand(layout, data_root)}"
        )
    return data_root


def expand(layout: str, root: Path) -> str:
    """``layout`` with its "DATA_ROOT" placeholders replaced by ``root``."""
    return layout.replace("DATA_ROOT", str(root))


def find_files(
    root: Path,
    dataset: str,
    folders: Sequence[str],
    names: Sequence[str],
    layout: str,
    suffixes: Sequence[str] = ("",),
) -> dict[str, Path]:
    """Find the first folder under ``root`` that holds every file in ``names``.

    Args:
        root: The data root.
        dataset: Dataset name, for messages.
        folders: Candidate folders relative to ``root``, in order of preference ("." is root).
        names: Required file names.
        layout: The expected layout, quoted in messages, with "DATA_ROOT" for the root.
        suffixes: Accepted suffixes of each name, in order of preference (e.g. "", ".gz").

    Returns:
        Each name mapped to the file found for it.

    Raises:
        DataError: If no candidate folder is complete; names the most complete one and its
            missing files.
    """
    best: tuple[Path, list[str]] | None = None
    for folder in folders:
        directory = root / folder
        found = {name: _first_file(directory, name, suffixes) for name in names}
        missing = [name for name, path in found.items() if path is None]
        if not missing:
            return {name: path for name, path in found.items() if path is not None}
        if len(missing) < len(names) and (best is None or len(missing) < len(best[1])):
            best = (directory, missing)
    expected = expand(layout, root)
    if best is None:
        raise DataError(f"dataset {dataset!r}: no data found under {root}; expected {expected}")
    raise DataError(
        f"dataset {dataset!r}: incomplete folder {best[0]}, missing {', '.join(best[1])}; "
        f"expected {expected}"
    )


def _first_file(directory: Path, name: str, suffixes: Sequence[str]) -> Path | None:
    for suffix in suffixes:
        path = directory / f"{name}{suffix}"
        if path.is_file():
            return path
    return None
