"""SIGTERM handled like Ctrl-C, and neither lost: a ``kill`` (or a batch system's stop) raises
:class:`Terminated`, a ``KeyboardInterrupt``, so a run is marked KILLED and every ``finally``
runs (the UI's server is stopped, a sweep's workers too) instead of the process vanishing.

Python runs a signal handler wherever the main thread is; when that is a finalizer or a weakref
callback (SQLAlchemy's, during garbage collection), the exception it raises is printed as
"Exception ignored" and dropped, and the process goes on (seen in 1 of 3 SIGTERMs to a loaded
``anobench run``). So the interrupt is also recorded: loops call :func:`check_interrupted` at
their safe points, and the block raises it at its end.

Example:
    >>> import os, signal
    >>> with sigterm_as_interrupt():
    ...     try:
    ...         os.kill(os.getpid(), signal.SIGTERM)
    ...     except KeyboardInterrupt as error:
    ...         print(signal_name(error), exit_code(error))
    SIGTERM 143
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


_received: list[int] = []
"""The signals received within :func:`sigterm_as_interrupt`, first first."""


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise _interrupt(signum)


def check_interrupted() -> None:
    """Raise the first SIGINT or SIGTERM received within :func:`sigterm_as_interrupt` again, in
    case its handler's raise was dropped; nothing outside the block, or without a signal."""
    if _received:
        raise _interrupt(_received[0])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``,
    and a block that ends without raising one it received raises it at its end (call it from the
    main thread)."""
    _received.clear()
    previous = {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
        check_interrupted()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()


def signal_name(interrupt: KeyboardInterrupt) -> str:
    """SIGTERM for :class:`Terminated`, else SIGINT (Ctrl-C)."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit code of a process ended by the signal: 128 + its number."""
    return 128 + int(signal.Signals[signal_name(interrupt)])
