"""Ctrl-C honoured at safe points of long host jobs (optimize, demo).

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when
it handles SIGINT. During a conversion that is often inside the representative
dataset generator, which TensorFlow's calibrator calls from C++: the
calibrator turns the exception into an ordinary conversion error, the search
records a failed candidate and carries on, and the user's Ctrl-C is lost. How
often that happens depends on the machine's load (which thread the kernel
hands the signal to, and when the main thread notices).

So a long job runs inside :func:`deferred_interrupts`: SIGINT only sets a flag,
and the job calls :func:`checkpoint` between its steps (after each candidate,
after each training epoch), where ``KeyboardInterrupt`` is raised in plain
Python code that nothing swallows. A second Ctrl-C while the first is pending
raises at once, for a user who will not wait for the step to end.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["deferred_interrupts", "checkpoint", "interrupt_pending"]

_pending = threading.Event()
_active = 0
_previous = None  # the SIGINT handler the outermost block replaced


def _on_sigint(signum, frame) -> None:
    if _pending.is_set():
        raise KeyboardInterrupt
    _pending.set()


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Within the block, SIGINT sets a flag that :func:`checkpoint` turns into ``KeyboardInterrupt``.

    Outside the main thread (where Python cannot install signal handlers), or
    when SIGINT is ignored (a job started with ``nohup`` or in the background),
    the block runs unchanged. Blocks nest; the outermost one restores the
    previous handler. An interrupt still pending when the block ends is raised there.
    """
    global _active, _previous
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _active == 0:
        current = signal.getsignal(signal.SIGINT)
        if current is signal.SIG_IGN:
            # Started with Ctrl-C ignored (nohup, a background job): the user asked for that; keep it.
            yield
            return
        _previous = current
        _pending.clear()
        signal.signal(signal.SIGINT, _on_sigint)
    _active += 1
    try:
        yield
        checkpoint()
    finally:
        _active -= 1
        if _active == 0:
            signal.signal(signal.SIGINT, _previous if _previous is not None else signal.default_int_handler)
            _previous = None
            _pending.clear()


def interrupt_pending() -> bool:
    """True when a deferred Ctrl-C is waiting for the next :func:`checkpoint`."""
    return _pending.is_set()


def checkpoint() -> None:
    """Raise ``KeyboardInterrupt`` here if a deferred Ctrl-C is pending (call only between steps)."""
    if _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt
