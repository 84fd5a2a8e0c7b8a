"""The simulated board's UART: the master side of a real pseudo-terminal, paced at a line rate.

Hosts open the slave through a stable symlink (:attr:`PtyLine.port`) with
pyserial like any ``/dev/ttyACM0``. Bytes move at the configured rate in both
directions (a token bucket per direction, full duplex), so throughput and
timeouts behave like a real UART.
"""

from __future__ import annotations

import errno
import os
import pty
import select
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

__all__ = ["PtyLine", "BURST_SECONDS"]

#: Most bytes a direction may move at once after being idle (a UART FIFO plus scheduler slack), in seconds of line time.
BURST_SECONDS = 0.01


class PtyLine:
    """A paced full-duplex line on a pty whose slave is reachable at ``port`` (a symlink).

    Args:
        port: Path of the symlink hosts open; it always points to the current pty.
        baudrate: Line rate in bits/s (10 bits per byte); 0 = unpaced.
        stats: Counters shared with the board; the line adds ``tx_bytes``.
    """

    def __init__(self, port: str, baudrate: int, stats: dict[str, Any]) -> None:
        self.port = port
        self.baudrate = baudrate
        self.stats = stats
        #: Bytes queued for the host; the serving thread drains them at the line rate.
        self.tx = bytearray()
        self._master = self._slave = -1

    @property
    def pts(self) -> str:
        """The current pseudo-terminal device the :attr:`port` symlink points to."""
        return os.path.realpath(self.port)

    def open(self) -> None:
        """Open a fresh pty and point :attr:`port` at it."""
        self._master, self._slave = pty.openpty()
        # Raw mode on our own slave handle too: until a host opens the port the line discipline must not echo/cook.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self.port)  # atomic: a host reopening the path never sees it missing

    def close(self) -> None:
        """Close both sides of the pty (the host's open port starts failing)."""
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    def hang_up(self) -> None:
        """Hang up like a USB CDC device re-enumerating: the host's port fails, the path comes back."""
        self.close()
        self.tx = bytearray()
        time.sleep(0.05)
        self.open()

    def serve(self, stop: threading.Event, receive: Callable[[bytes], None]) -> None:
        """Move bytes until ``stop`` is set: drain :attr:`tx` to the host, hand received bytes to ``receive``."""
        rate = self.baudrate / 10.0
        burst = max(64.0, rate * BURST_SECONDS)
        rx_tokens = tx_tokens = burst
        last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if rate:
                rx_tokens = min(burst, rx_tokens + (now - last) * rate)
                tx_tokens = min(burst, tx_tokens + (now - last) * rate)
            last = now
            if self.tx and (not rate or tx_tokens >= 1):
                n = len(self.tx) if not rate else min(len(self.tx), int(tx_tokens))
                try:
                    written = os.write(self._master, bytes(self.tx[:n]))
                except BlockingIOError:
                    written = 0
                except OSError:
                    written = n  # nobody reads the port: the bytes are lost, as on a real UART
                del self.tx[:written]
                self.stats["tx_bytes"] += written
                tx_tokens -= written
            want = 65536 if not rate else int(rx_tokens)
            if want >= 1:
                timeout = 0.05 if not self.tx else (0.001 if rate else 0.0)
                try:
                    ready, _, _ = select.select([self._master], [], [], timeout)
                except (OSError, ValueError):
                    ready = []
                if ready:
                    try:
                        data = os.read(self._master, want)
                    except BlockingIOError:
                        data = b""
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if data:
                        rx_tokens -= len(data)
                        receive(data)
            else:
                time.sleep(max(0.0002, (1 - rx_tokens) / rate))
