"""SIGTERM handled like Ctrl-C, and neither lost: a ``kill`` (or a batch system's stop) raises
:class:`Terminated`, a ``KeyboardInterrupt``, so a run is marked KILLED and every ``finally``
runs (the UI's server is stopped, a sweep's workers too) instead of the process vanishing.

Python runs a signal handler wherever the main thread is; when that is a finalizer or a weakref
callback (SQLAlchemy's, during garbage collection), the exception it raises is printed as
"Exception ignored" and dropped, and the process goes on (about half of our SIGTERMs to
``anobench run`` on a loaded machine). So a dropped interrupt is kept: loops call
:func:`check_interrupted` at their safe points, and the block raises it at its end.

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
import sys
from types import FrameType
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


_dropped: list[KeyboardInterrupt] = []
"""Interrupts raised within :func:`sigterm_as_interrupt` that Python dropped, oldest first."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt()


def check_interrupted() -> None:
    """Raise again the first interrupt that Python dropped within :func:`sigterm_as_interrupt`
    (once); nothing if none was dropped."""
    if _dropped:
        dropped = _dropped.pop(0)
        raise type(dropped)(*dropped.args)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``; one
    that Python drops is kept (instead of its "Exception ignored" report) for
    :func:`check_interrupted`, and raised at the block's end if nothing raised it before (call it
    from the main thread)."""
    _dropped.clear()
    previous = {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    report = sys.unraisablehook

    def keep_interrupts(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _dropped.append(unraisable.exc_value)
        else:
            report(unraisable)

    sys.unraisablehook = keep_interrupts
    try:
        yield
        check_interrupted()
    finally:
        sys.unraisablehook = report
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _dropped.clear()


def signal_name(interrupt: KeyboardInterrupt) -> str:
    """SIGTERM for :class:`Terminated`, else SIGINT (Ctrl-C)."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit code of a process ended by the signal: 128 + its number."""
    return 128 + int(signal.Signals[signal_name(interrupt)])
