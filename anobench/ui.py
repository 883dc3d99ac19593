"""The MLflow comparison UI on anobench's tracking store.

Example:
    >>> with start_ui(port=free_port()) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:5123
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Iterator

from anobench.errors import AnobenchError
from anobench.tracking import default_tracking_uri


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

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_ui(tracking_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
              timeout_s: float = 120.0) -> UiServer:
    """Start ``mlflow ui`` on the store and wait until it answers.

    Raises:
        AnobenchError: If the server exits or does not answer within ``timeout_s``.
    """
    uri = tracking_uri or default_tracking_uri()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = UiServer(process, f"http://{host}:{port}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip()
            last = message.splitlines()[-1] if message else f"exit code {process.returncode}"
            raise AnobenchError(f"mlflow ui on port {port} exited: {last}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    server.stop()
    raise AnobenchError(f"mlflow ui on port {port} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def start_ui(tracking_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000) -> Iterator[UiServer]:
    """:func:`launch_ui` as a context manager that stops the server on exit."""
    server = launch_ui(tracking_uri, host, port)
    try:
        yield server
    finally:
        server.stop()
