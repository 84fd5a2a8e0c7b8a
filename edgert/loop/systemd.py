"""sd_notify for unattended runs under systemd (``Type=notify``, ``WatchdogSec=``).

systemd passes ``NOTIFY_SOCKET`` (a local unix datagram socket path; ``@name``
is the abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``. We send
``READY=1`` once the loop runs, ``WATCHDOG=1`` while it makes progress (at
half the watchdog period) and ``STOPPING=1`` at the end. This is local IPC to
PID 1, not networking; without ``NOTIFY_SOCKET`` nothing is opened at all.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]

log = logging.getLogger("edgert.loop.systemd")


class SystemdNotifier:
    """Sends sd_notify messages when running under systemd; does nothing otherwise.

    Args:
        environ: Where to read ``NOTIFY_SOCKET`` / ``WATCHDOG_USEC`` / ``WATCHDOG_PID`` (default ``os.environ``).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or ""
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2e6
        self._sock: socket.socket | None = None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        """True when systemd is listening."""
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send one ``KEY=value`` message; False when not under systemd or the send failed."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(message.encode("utf-8"), self.address)
            return True
        except OSError as e:
            log.warning("sd_notify to %r failed: %s", self.address, e)
            return False

    def ready(self, status: str = "") -> None:
        """``READY=1`` (and a STATUS line)."""
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        """``WATCHDOG=1``, at most every half watchdog period."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        """``STOPPING=1`` and close the socket."""
        self.notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
