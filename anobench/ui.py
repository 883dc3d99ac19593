"""The MLflow comparison UI on anobench's tracking store.

Before it starts ``mlflow ui`` it checks that the store exists (it never creates one) and that
the port is free; a taken port is a one-line error that says who holds it: another MLflow UI
(which would serve *its* store at the printed URL) or another program. The server runs in its
own process group; stopping it (Ctrl-C, SIGTERM) stops the whole group, uvicorn included, so
nothing stays listening.

Example:
    >>> with start_ui(port=free_port()) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:5123
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from anobench.errors import AnobenchError
from anobench.interrupts import check_interrupted
from anobench.store import require_store
from anobench.tracking import default_tracking_uri

PROBE_TIMEOUT_S = 2.0
GROUP_EXIT_TIMEOUT_S = 10.0
"""How long :meth:`UiServer.stop` waits for the SIGKILLed process group to be gone."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class UiServer:
    """A running ``mlflow ui`` process and the address it serves."""

    process: subprocess.Popen[bytes]
    url: str

    def serve(self) -> int:
        """Wait for the server to exit; its exit code. An interrupt within
        :func:`anobench.interrupts.sigterm_as_interrupt` ends the wait within a second, even one
        whose exception Python dropped."""
        while True:
            check_interrupted()
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.process.wait(timeout=1)

    def stop(self) -> None:
        """Stop the server's whole process group (mlflow and its uvicorn) and wait until none of
        it is left; SIGKILL after 20 s."""
        with contextlib.suppress(ProcessLookupError):  # the group has already exited
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):  # uvicorn may outlive mlflow: the group goes
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        # Killed members of the group die, and are reaped by init, a moment later: on a loaded
        # machine `anobench ui` could otherwise exit while a uvicorn process still exists.
        deadline = time.monotonic() + GROUP_EXIT_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _get(url: str) -> tuple[int, str, str]:
    """``(status, Server header, body)`` of a GET; status 0 if nothing answers HTTP."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return response.status, response.headers.get("Server", ""), response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Server", ""), ""
    except (urllib.error.URLError, OSError):
        return 0, "", ""


def port_holder(port: int) -> str | None:
    """``pid N (command line)`` of the process listening on TCP ``port``, from ``/proc``; None if
    it cannot be found (not Linux, or another user's process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc") if inodes else []):
        with contextlib.suppress(OSError):
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return f"pid {pid} ({command.strip()[:120]})"
    return None


def check_port(host: str, port: int) -> None:
    """Check that ``host:port`` is free to listen on.

    Raises:
        AnobenchError: Naming who holds the port (another MLflow UI, another web server, a
            program that does not answer HTTP, and its pid when it can be found), or why the
            port cannot be used.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
            return
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise AnobenchError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    url = f"http://{host}:{port}"
    holder = port_holder(port)
    who = f"; held by {holder}" if holder else ""
    status, server, body = _get(f"{url}/version")
    if status == 200 and _get(f"{url}/health")[2].strip() == "OK":
        raise AnobenchError(
            f"port {port} is taken by another MLflow UI (MLflow {body.strip()}{who}), which serves its own "
            f"store, not this one: stop it, or pass --port {free_port(host)}"
        )
    kind = f"another web server ({server or f'HTTP {status}'})" if status else "a program that does not answer HTTP"
    raise AnobenchError(f"port {port} is taken by {kind}{who}: pass another --port, e.g. --port {free_port(host)}")


def launch_ui(tracking_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
              timeout_s: float = 120.0) -> UiServer:
    """Start ``mlflow ui`` on the store, in a process group of its own, and wait until it answers.

    Raises:
        AnobenchError: If there is no store at ``tracking_uri``, the port is taken, or the server
            exits or does not answer within ``timeout_s``.
    """
    uri = tracking_uri or default_tracking_uri()
    require_store(uri)
    check_port(host, port)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    # stderr to a file, not a pipe: a pipe nobody reads would block the server once full
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    server = UiServer(process, f"http://{host}:{port}")
    try:
        _wait_until_ready(server, log, timeout_s)
    except BaseException:  # an error, or Ctrl-C while it starts: nothing may stay listening
        server.stop()
        raise
    return server


def _wait_until_ready(server: UiServer, log: IO[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log.seek(0)
            message = log.read().decode(errors="replace").strip()
            last = message.splitlines()[-1] if message else f"exit code {server.process.returncode}"
            raise AnobenchError(f"mlflow ui at {server.url} exited: {last}")
        if _get(f"{server.url}/health")[0] == 200 and server.process.poll() is None:
            return
        time.sleep(0.5)
    raise AnobenchError(f"mlflow ui at {server.url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def start_ui(tracking_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000) -> Iterator[UiServer]:
    """:func:`launch_ui` as a context manager that stops the server on exit."""
    server = launch_ui(tracking_uri, host, port)
    try:
        yield server
    finally:
        server.stop()
