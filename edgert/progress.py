"""Progress reporting: libraries call a callback, the CLI draws the bar.

A progress callback has the signature ``progress(done, total, label)``; ``total``
may be 0 when unknown. Library code never draws anything itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressFn", "TerminalProgress", "report"]

ProgressFn = Callable[[int, int, str], None]


def report(progress: ProgressFn | None, done: int, total: int, label: str = "") -> None:
    """Call ``progress`` if one was given (saves every caller an ``if``)."""
    if progress is not None:
        progress(done, total, label)


class TerminalProgress:
    """Draws a one-line progress bar on stderr (a plain line per update when not a tty).

    Args:
        stream: Where to draw; by default whatever ``sys.stderr`` is at each redraw (stdout is
            reserved for results), so the bar stays on the terminal while native output is
            captured (:mod:`edgert.native_output`).
        min_interval: Seconds between redraws, so a fast loop does not flood the terminal.
    """

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.1) -> None:
        self._stream = stream
        self.min_interval = min_interval
        self._last = 0.0
        self._label: str | None = None
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, done: int, total: int, label: str = "") -> None:
        now = time.monotonic()
        finished = total > 0 and done >= total
        if not finished and label == self._label and now - self._last < self.min_interval:
            return
        if not self._tty and not finished and label == self._label:
            # A log file gets the start and the end of each phase, not a wall of redraws.
            return
        self._last, self._label = now, label
        if total > 0:
            width = 30
            filled = int(width * min(done, total) / total)
            line = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            line = f"{label} {done}"
        end = "\n" if (finished or not self._tty) else ""
        self.stream.write(("\r" if self._tty else "") + line + end)
        self.stream.flush()
