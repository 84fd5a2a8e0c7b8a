"""Sensor streams -> fixed windows of values, as pure byte-in/window-out logic.

A sensor board prints one reading per line (``0.12,0.40,-1.3``) or streams raw
little-endian samples. The model wants fixed windows of ``window`` values,
taken every ``hop`` values. :class:`WindowAssembler` turns arbitrary chunks of
bytes (however the serial driver splits them) into those windows; it never
raises on bad data: malformed lines are skipped and counted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from edgert.errors import InputDataError

__all__ = ["WindowAssembler", "WindowStats", "parse_csv_line", "MAX_LINE_BYTES", "BINARY_DTYPES"]

#: A "line" longer than this without a newline is noise (wrong baud rate, binary garbage): dropped.
MAX_LINE_BYTES = 65536
#: Sample types a ``format=binary`` stream may carry (little endian).
BINARY_DTYPES = ("float32", "int8", "uint8", "int16", "int32")

_SEPARATORS = re.compile(rb"[,;\s]+")


@dataclass
class WindowStats:
    """Counters of one stream.

    Attributes:
        lines: Lines (csv) or samples (binary) accepted.
        malformed: Lines skipped: not numbers, wrong number of columns, not finite, too long.
        windows: Windows produced.
    """

    lines: int = 0
    malformed: int = 0
    windows: int = 0


def parse_csv_line(line: bytes) -> list[float] | None:
    """Numbers of one sensor line, or None when it is not a line of finite numbers.

    Separators: commas, semicolons, whitespace. Empty lines and ``#`` comments
    return an empty list (not malformed: boards print banners and blank lines).
    """
    text = line.strip()
    if not text or text.startswith(b"#"):
        return []
    try:
        values = [float(tok) for tok in _SEPARATORS.split(text) if tok]
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return values


class WindowAssembler:
    """Feed bytes, get windows.

    Args:
        window: Values per window (the model input's element count).
        hop: Values between the starts of consecutive windows (default: ``window``,
            no overlap; ``hop < window`` slides, e.g. one sensor frame at a time).
        fmt: ``"csv"`` (one reading per line) or ``"binary"`` (raw samples).
        columns: Values per csv line; None = learn it from the first good line.
        dtype: Sample type of a binary stream.
    """

    def __init__(self, window: int, hop: int | None = None, fmt: str = "csv", columns: int | None = None, dtype: str = "float32") -> None:
        if window < 1:
            raise InputDataError(f"window={window} must be at least 1")
        hop = window if hop is None else hop
        if hop < 1:
            raise InputDataError(f"hop={hop} must be at least 1")
        if fmt not in ("csv", "binary"):
            raise InputDataError(f"format={fmt!r} is not csv or binary")
        if dtype not in BINARY_DTYPES:
            raise InputDataError(f"dtype={dtype!r} is not one of {', '.join(BINARY_DTYPES)}")
        self.window = window
        self.hop = hop
        self.fmt = fmt
        self.columns = columns
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.stats = WindowStats()
        # Ring of pending values; capacity covers one window plus one worst-case line.
        self._values = np.empty(max(2 * window, 1024), np.float32)
        self._count = 0
        self._skip = 0  # values still to discard when hop > window
        self._pending = bytearray()
        self._resync = False

    def reset(self) -> None:
        """Forget partial data (after a reconnect the first bytes are a torn line)."""
        self._count = 0
        self._skip = 0
        self._pending.clear()
        self._resync = True

    def feed(self, chunk: bytes) -> list[np.ndarray]:
        """Add bytes; return the windows (float32, length ``window``) they completed."""
        self._pending += chunk
        if self.fmt == "csv":
            self._feed_lines()
        else:
            self._feed_binary()
        return self._take_windows()

    def _feed_lines(self) -> None:
        buf = self._pending
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            if self._resync:
                # The first line after a reconnect usually starts mid-way: drop it uncounted.
                self._resync = False
                continue
            self._accept_line(line)
        del buf[:start]
        if len(buf) > MAX_LINE_BYTES:
            self.stats.malformed += 1
            buf.clear()

    def _accept_line(self, line: bytes) -> None:
        if len(line) > MAX_LINE_BYTES:
            self.stats.malformed += 1
            return
        values = parse_csv_line(line)
        if values is None:
            self.stats.malformed += 1
            return
        if not values:
            return
        if self.columns is None:
            self.columns = len(values)
        if len(values) != self.columns:
            self.stats.malformed += 1
            return
        self.stats.lines += 1
        self._append(np.asarray(values, np.float32))

    def _feed_binary(self) -> None:
        size = self.dtype.itemsize
        usable = len(self._pending) - len(self._pending) % size
        if usable:
            samples = np.frombuffer(bytes(self._pending[:usable]), self.dtype).astype(np.float32)
            del self._pending[:usable]
            self.stats.lines += samples.size
            for start in range(0, samples.size, self.window):
                self._append(samples[start : start + self.window])

    def _append(self, values: np.ndarray) -> None:
        if self._skip:
            dropped = min(self._skip, values.size)
            self._skip -= dropped
            values = values[dropped:]
        need = self._count + values.size
        if need > self._values.size:
            grown = np.empty(max(need, 2 * self._values.size), np.float32)
            grown[: self._count] = self._values[: self._count]
            self._values = grown
        self._values[self._count : need] = values
        self._count = need

    def _take_windows(self) -> list[np.ndarray]:
        out = []
        start = 0
        while self._count - start >= self.window:
            out.append(self._values[start : start + self.window].copy())
            start += self.hop
        if start:
            keep = max(self._count - start, 0)
            self._skip = max(start - self._count, 0)
            if keep:
                self._values[:keep] = self._values[start : start + keep]
            self._count = keep
        self.stats.windows += len(out)
        return out
