"""Sensor streams -> fixed windows of values, as pure byte-in/window-out logic.

A sensor board prints one reading per line (``0.12,0.40,-1.3``) or streams raw
little-endian samples. The model wants fixed windows of ``window`` values,
taken every ``hop`` values. :class:`WindowAssembler` turns arbitrary chunks of
bytes (however the serial driver splits them) into those windows; it never
raises on bad data: malformed lines are skipped and counted.

A port opened while the board is printing delivers the tail of a line first,
so a column count learned from the data is only adopted once two consecutive
lines agree on it.
"""

from __future__ import annotations

import collections
import logging
import math
import re
from dataclasses import dataclass

import numpy as np

from edgert.errors import InputDataError

__all__ = ["WindowAssembler", "WindowStats", "parse_csv_line", "MAX_LINE_BYTES", "BINARY_DTYPES", "RELEARN_AFTER"]

log = logging.getLogger("edgert.loop.windows")

#: A "line" longer than this without a newline is noise (wrong baud rate, binary garbage): dropped.
MAX_LINE_BYTES = 65536
#: Sample types a ``format=binary`` stream may carry (little endian).
BINARY_DTYPES = ("float32", "int8", "uint8", "int16", "int32")
#: Consecutive lines of one other column count (and no good line between) after which
#: a learned count gives way to it: the board's firmware changed its line format.
RELEARN_AFTER = 8

_SEPARATORS = re.compile(rb"[,;\s]+")


@dataclass
class WindowStats:
    """Counters of one stream.

    Attributes:
        lines: Lines (csv) or samples (binary) accepted.
        malformed: Lines skipped: not numbers, wrong number of columns, not finite, too long.
        windows: Windows produced.
        values: Values accepted (the lines' values; the samples of a binary stream).
    """

    lines: int = 0
    malformed: int = 0
    windows: int = 0
    values: int = 0


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
        columns: Values per csv line; None = learn it from the first two
            consecutive lines that agree (a lone first line of another count,
            a line torn by opening the port mid-way, is malformed). A learned
            count gives way to :data:`RELEARN_AFTER` consecutive lines of one
            other count (logged once); a given count never does.
        dtype: Sample type of a binary stream.
    """

    def __init__(
        self, window: int, hop: int | None = None, fmt: str = "csv", columns: int | None = None, dtype: str = "float32"
    ) -> None:
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
        self.columns = columns  # in force: given, or learned once confirmed
        self._given_columns = columns
        self._held: list[float] | None = None  # a first line waiting for a second to confirm its count
        self._other_count = self._other_run = 0  # a run of lines of one other count than a learned one
        self._wrong_counts: collections.Counter[int] = collections.Counter()  # value counts of rejected lines
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.stats = WindowStats()
        # Ring of pending values; capacity covers one window plus one worst-case line.
        self._values = np.empty(max(2 * window, 1024), np.float32)
        self._count = 0
        self._skip = 0  # values still to discard when hop > window
        self._pending = bytearray()
        self._resync = False

    def reset(self) -> None:
        """Forget partial data and a learned column count (after a reconnect the first bytes are a torn line)."""
        self._count = 0
        self._skip = 0
        self._pending.clear()
        self._resync = True
        self.columns = self._given_columns
        self._held = None
        self._other_run = 0

    def feed(self, chunk: bytes) -> list[np.ndarray]:
        """Add bytes; return the windows (float32, length ``window``) they completed."""
        self._pending += chunk
        if self.fmt == "csv":
            self._feed_lines()
        else:
            self._feed_binary()
        return self._take_windows()

    def finish(self) -> list[np.ndarray]:
        """End of the stream: use an unterminated last line and a lone first line; return the windows they complete.

        A single line that nothing contradicted is a whole input (``echo 1,2,3 | ...``), not a torn one.
        """
        windows = self.feed(b"\n") if self.fmt == "csv" else []
        if self._held is not None:
            held, self._held = self._held, None
            self.columns = len(held)
            self._take_line(held)
            windows += self._take_windows()
        return windows

    def diagnosis(self, ended: bool = False) -> str | None:
        """Why the stream gave no window, in one line that says the likely fix; None once it gave one.

        Args:
            ended: The stream is over: also explain one too short for a window.
        """
        stats = self.stats
        if stats.windows:
            return None
        if stats.malformed:
            total = stats.lines + stats.malformed
            head = f"{stats.malformed} of {total} lines were malformed" if stats.lines else f"all {total} lines were malformed"
            return f"{head}: {self._why_malformed()}"
        if ended:
            return f"ended after {stats.values} values, a window needs {self.window}; send at least one whole model input"
        return None

    def _why_malformed(self) -> str:
        wrong = sum(self._wrong_counts.values())
        if 2 * wrong < self.stats.malformed:
            return "most are not numbers; check baud= (a wrong rate garbles text) and format= (binary for raw samples)"
        if self.columns is None:
            counts = ", ".join(str(n) for n in sorted(self._wrong_counts)[:6])
            return f"lines have {counts} values, never one count twice in a row; check baud= and format=, or set columns="
        n = self._wrong_counts.most_common(1)[0][0]
        expected = f"not columns={self.columns}" if self._given_columns else f"earlier lines had {self.columns}"
        return f"lines have {n} values, {expected}; set columns={n} or check baud= and format="

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
            self._resync = True  # the rest of that line, up to its newline, is more of the same noise

    def _accept_line(self, line: bytes) -> None:
        values = parse_csv_line(line) if len(line) <= MAX_LINE_BYTES else None
        if values is None:
            self.stats.malformed += 1
        elif not values:
            return
        elif self.columns is None:
            self._learn(values)
        elif len(values) == self.columns:
            self._other_run = 0
            self._take_line(values)
        else:
            self._reject(values)

    def _learn(self, values: list[float]) -> None:
        """Adopt a column count once two consecutive lines have it; the first line is held, then kept."""
        held, self._held = self._held, values
        if held is None:
            return
        if len(held) != len(values):
            self._wrong_counts[len(held)] += 1  # a torn first line, or noise
            self.stats.malformed += 1
            return
        self._held = None
        self.columns = len(values)
        self._take_line(held)
        self._take_line(values)

    def _reject(self, values: list[float]) -> None:
        """Count a line of the wrong column count; a learned count gives way to a long run of another one."""
        n = len(values)
        if self._given_columns is None:
            self._other_run = self._other_run + 1 if n == self._other_count else 1
            self._other_count = n
            if self._other_run >= RELEARN_AFTER:
                log.warning("sensor lines now have %d values, not %d: windows restart from here (columns= pins a count)",
                            n, self.columns)
                self.columns = n
                self._other_run = 0
                self._count = self._skip = 0  # a window begun in the old layout is not finished in the new one
                self._take_line(values)  # the first line of the new layout
                return
        self.stats.malformed += 1
        self._wrong_counts[n] += 1

    def _take_line(self, values: list[float]) -> None:
        self.stats.lines += 1
        self.stats.values += len(values)
        self._append(np.asarray(values, np.float32))

    def _feed_binary(self) -> None:
        size = self.dtype.itemsize
        usable = len(self._pending) - len(self._pending) % size
        if usable:
            samples = np.frombuffer(bytes(self._pending[:usable]), self.dtype).astype(np.float32)
            del self._pending[:usable]
            self.stats.lines += samples.size
            self.stats.values += samples.size
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
