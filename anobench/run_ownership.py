"""Which process owns a RUNNING MLflow run, and what becomes of runs whose process is gone.

Every run that anobench creates carries the tags of its process (:func:`process_tags`): host
name, pid and the pid's start time, so a pid that the system reused is not taken for it. A
RUNNING run is *orphaned* when its process is known to be gone: it ran on this host and its pid
is dead, a zombie, or another process. :func:`reap_orphans` marks orphaned runs KILLED. The
process of a run from another host, or of a run without these tags (older versions), cannot
be checked; only a sweep about to run that same run key takes such a run for orphaned, as
sweeps always have.

:func:`claim_run` lets a sweep create a key's run only while no FINISHED and no live RUNNING run
of that key exists; called under the store lock, it makes two sweeps of one experiment share
their runs instead of duplicating them.

Example:
    >>> process_state(process_tags())
    'alive'
    >>> process_state({"anobench.host": "elsewhere", "anobench.pid": "1"})
    'unknown'
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Iterator, Literal

from anobench.errors import AnobenchError

HOST, PID, PID_START = "anobench.host", "anobench.pid", "anobench.pid_start"
"""The tags naming a run's process."""


class RunClaimed(AnobenchError):
    """Another process has finished, or is running, the run key that was to be run."""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of a process from ``/proc``; None if there is no such process.

    Raises:
        OSError: If ``/proc`` cannot be read (not Linux).
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name, in parentheses, may hold spaces
    return fields[0], fields[19]  # stat(5): field 3 is the state, field 22 the start time


def process_tags() -> dict[str, str]:
    """The tags naming this process, set on every run it creates."""
    stat = _proc_stat(os.getpid()) if Path("/proc/self/stat").exists() else None
    return {HOST: socket.gethostname(), PID: str(os.getpid()), PID_START: stat[1] if stat else ""}


def process_state(tags: dict[str, str]) -> Literal["alive", "dead", "unknown"]:
    """Whether the process named by a run's tags still runs; "unknown" for another host or a
    run without the tags."""
    host, pid = tags.get(HOST), tags.get(PID)
    if not host or not pid or host != socket.gethostname():
        return "unknown"
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return "dead"
        except PermissionError:
            return "alive"
        return "alive"
    stat = _proc_stat(int(pid))
    if stat is None or stat[0] == "Z" or (tags.get(PID_START) and stat[1] != tags[PID_START]):
        return "dead"
    return "alive"


def search_runs(client: Any, experiment_ids: list[str], filter_string: str) -> Iterator[Any]:
    """Every run of the experiments that matches ``filter_string``, page by page."""
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def reap_orphans(client: Any, experiment_ids: list[str], owned_keys: frozenset[str] = frozenset()) -> list[str]:
    """Mark KILLED the RUNNING runs whose process is gone, and those of ``owned_keys`` (the keys
    the caller is about to run) whose process cannot be checked.

    Returns:
        The ids of the runs marked KILLED.
    """
    killed = []
    for run in search_runs(client, experiment_ids, "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        state = process_state(tags)
        if state == "dead" or (state == "unknown" and tags.get("run_key") in owned_keys):
            why = (f"process {tags[PID]} on {tags[HOST]} is gone" if state == "dead"
                   else "its process cannot be checked from here, and a sweep took over its key")
            client.set_tag(run.info.run_id, "anobench.error", f"orphaned: {why}")
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    return killed


def claim_run(client: Any, experiment_id: str, key: str) -> None:
    """Let the caller create the run of ``key``; call it under the store lock, just before.

    Raises:
        RunClaimed: If a FINISHED run of ``key`` exists, or a RUNNING one whose process lives.
    """
    for run in search_runs(client, [experiment_id], f"tags.run_key = '{key}'"):
        tags = run.data.tags
        if run.info.status == "FINISHED":
            raise RunClaimed(f"run {key} was finished meanwhile (MLflow run {run.info.run_id})")
        if run.info.status == "RUNNING" and process_state(tags) == "alive":
            raise RunClaimed(f"run {key} is running in process {tags[PID]} on {tags[HOST]}")
    reap_orphans(client, [experiment_id], frozenset({key}))
