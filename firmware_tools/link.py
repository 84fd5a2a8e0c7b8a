"""A synchronous SMP-over-serial link: open any pyserial URL, send packets, collect replies.

Takes a port path or URL (``/dev/ttyACM0``, ``socket://host:port``,
``spy:///dev/ttyUSB0``, ``loop://``) or an already open pyserial port object,
the way pyserial's own tools do. Framing is :mod:`firmware_tools.framing`;
this module adds timing (an estimate of when the bytes written so far have
left the UART, so a sender can keep the line busy without queueing more than
it must) and reconnection after the port vanished (USB CDC re-enumeration,
a pulled cable).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import serial

from firmware_tools.errors import DeviceSilentError, PortError, ProtocolError
from firmware_tools.framing import MAX_LINE_LENGTH, FrameDecoder, encode_frame
from firmware_tools.protocol import OP_READ_RSP, OP_WRITE_RSP, parse_packet, raise_for_error

__all__ = [
    "DEFAULT_BAUDRATE",
    "POLL_INTERVAL",
    "Timeouts",
    "SmpLink",
    "PortLost",
]

log = logging.getLogger("edgert.firmware.link")

DEFAULT_BAUDRATE = 115200
#: How long one blocking read may wait before the caller re-checks its deadlines.
POLL_INTERVAL = 0.005
#: UART bits per byte (start + 8 data + stop), to turn a baud rate into bytes per second.
BITS_PER_BYTE = 10
#: Largest frame the host writes at once on the wire (a 4 KiB device buffer, base64-encoded, in lines).
MAX_FRAME_WIRE = 6000


@dataclass(frozen=True)
class Timeouts:
    """Named timeouts and retry counts; every wait is ``base + per-byte cost``, never a fixed guess.

    Attributes:
        response_base: Seconds a device may take to start answering a small request.
        wire_factor: Slack on the wire time of request + reply (line jitter, USB latency).
        write_per_kib: Device seconds to program one KiB of flash (slow NOR flash: ~20 KiB/s).
        hash_per_kib: Device seconds to SHA-256 one KiB.
        retries: Consecutive failed attempts (no progress) before giving up.
        reconnect: Seconds to wait for a vanished port to come back.
        open: Seconds to wait for a port to open.
    """

    response_base: float = 1.0
    wire_factor: float = 2.0
    write_per_kib: float = 0.05
    hash_per_kib: float = 0.01
    retries: int = 4
    reconnect: float = 5.0
    open: float = 2.0

    def scaled(self, factor: float) -> Timeouts:
        """The same policy with every duration multiplied by ``factor`` (tests use < 1)."""
        return Timeouts(
            self.response_base * factor,
            self.wire_factor,
            self.write_per_kib * factor,
            self.hash_per_kib * factor,
            self.retries,
            self.reconnect * factor,
            self.open * factor,
        )


class PortLost(Exception):
    """Internal signal: the port failed mid-transfer (caught by the uploader, which reconnects)."""


class SmpLink:
    """One SMP serial connection.

    Args:
        port: A pyserial URL/path, or an open pyserial port object (used as is).
        baudrate: Line rate; also what wire-time estimates assume.
        timeouts: The retry/timeout policy.
        line_length: Longest line the device accepts.
    """

    def __init__(self, port: str | Any, *, baudrate: int = DEFAULT_BAUDRATE, timeouts: Timeouts | None = None,
                 line_length: int = MAX_LINE_LENGTH) -> None:
        self.timeouts = timeouts or Timeouts()
        self.line_length = line_length
        self.decoder = FrameDecoder()
        self._queue: list[bytes] = []
        self._seq = 0
        self._tx_end = 0.0
        # A port object the caller opened stays open after us; a URL we opened, we close.
        self._owned = isinstance(port, str)
        if self._owned:
            self.url = port
            self.baudrate = baudrate
            self.seconds_per_byte = BITS_PER_BYTE / float(self.baudrate)
            self.port = self._open(port)
        else:
            self.url = getattr(port, "port", None) or getattr(port, "name", None) or repr(port)
            self.port = port
            self.baudrate = int(getattr(port, "baudrate", baudrate) or baudrate)
            self.seconds_per_byte = BITS_PER_BYTE / float(self.baudrate)
            self.port.timeout = POLL_INTERVAL

    # -- connection ----------------------------------------------------------
    def _open(self, url: str) -> Any:
        deadline = time.monotonic() + self.timeouts.open
        last: Exception | None = None
        while True:
            try:
                port = serial.serial_for_url(url, baudrate=self.baudrate, timeout=POLL_INTERVAL,
                                             write_timeout=self.write_timeout)
                port.reset_input_buffer()
                return port
            except (serial.SerialException, OSError, ValueError) as e:
                last = e
            if time.monotonic() >= deadline:
                raise PortError(f"cannot open serial port {url}: {last}",
                                "check the cable and the port name (ls /dev/tty*), or that no other program holds it")
            time.sleep(0.1)

    @property
    def write_timeout(self) -> float:
        """How long one write may block: a device that stops reading must not hang the host."""
        return self.timeouts.response_base * 4 + self.timeouts.wire_factor * self.wire_seconds(MAX_FRAME_WIRE)

    def reconnect(self) -> None:
        """Close and reopen the port (same URL), waiting up to ``timeouts.reconnect`` for it to come back.

        Raises:
            PortError: The port did not come back, or it was given as an object that cannot reopen.
        """
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
        self.decoder.reset()
        self._queue.clear()
        self._tx_end = 0.0
        deadline = time.monotonic() + self.timeouts.reconnect
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.port.open()
                self.port.reset_input_buffer()
                log.info("reconnected to %s", self.url)
                return
            except (serial.SerialException, OSError) as e:
                last = e
                time.sleep(0.1)
        raise PortError(f"serial port {self.url} vanished and did not come back: {last}",
                        "reconnect the board and run the command again (the upload resumes)")

    def close(self) -> None:
        """Close the port (unless the caller passed it in open)."""
        if not self._owned:
            return
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> SmpLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sending / receiving ------------------------------------------------------
    def next_seq(self) -> int:
        """A fresh 8-bit sequence number."""
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    @property
    def tx_idle_at(self) -> float:
        """Monotonic time at which everything written so far has left the UART (estimate)."""
        return self._tx_end

    def drained(self, pending_wire: int = 0) -> None:
        """A reply proved the line delivered everything but ``pending_wire`` bytes: correct the estimate.

        On a link faster than ``baudrate`` (USB CDC ignores it) this keeps waits short.
        """
        self._tx_end = min(self._tx_end, time.monotonic() + self.wire_seconds(pending_wire))

    def wire_seconds(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line."""
        return nbytes * self.seconds_per_byte

    def send(self, packet: bytes) -> int:
        """Frame and write one SMP packet. Returns the bytes put on the wire.

        Raises:
            PortLost: The port failed (disconnected, write timed out).
        """
        frame = encode_frame(packet, self.line_length)
        try:
            self.port.write(frame)
        except (serial.SerialException, OSError) as e:
            raise PortLost(str(e)) from e
        now = time.monotonic()
        self._tx_end = max(now, self._tx_end) + self.wire_seconds(len(frame))
        return len(frame)

    def poll(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` seconds for the next SMP packet from the device.

        Raises:
            PortLost: The port failed.
        """
        if self._queue:
            return self._queue.pop(0)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                waiting = self.port.in_waiting
                data = self.port.read(waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise PortLost(str(e)) from e
            if data:
                self._queue.extend(self.decoder.feed(data))
                if self._queue:
                    return self._queue.pop(0)
            if time.monotonic() >= deadline:
                return None

    def response_timeout(self, request_wire: int, reply_wire: int = 64, write_bytes: int = 0,
                         hash_bytes: int = 0) -> float:
        """The size-scaled wait for one reply.

        Args:
            request_wire: Bytes of the request on the wire.
            reply_wire: Expected bytes of the reply on the wire.
            write_bytes: Bytes the device programs into flash to serve it.
            hash_bytes: Bytes the device hashes to serve it.
        """
        t = self.timeouts
        return (t.response_base + t.wire_factor * self.wire_seconds(request_wire + reply_wire)
                + t.write_per_kib * write_bytes / 1024 + t.hash_per_kib * hash_bytes / 1024)

    def request(self, packet_for_seq, what: str, *, reply_wire: int = 64, write_bytes: int = 0,
                hash_bytes: int = 0, retries: int | None = None, check: bool = True,
                extra_seconds: float = 0.0) -> dict[str, Any]:
        """Send a request and return the reply's CBOR map, retrying on silence.

        Args:
            packet_for_seq: ``f(seq) -> bytes`` building the request for a sequence number.
            what: Name of the request for messages.
            reply_wire: Expected reply size on the wire (for the timeout).
            write_bytes: Flash bytes the device writes to serve it (for the timeout).
            hash_bytes: Bytes the device hashes to serve it (for the timeout).
            retries: Attempts before :class:`DeviceSilentError` (default ``timeouts.retries``).
            check: Raise the mapped error when the reply is an SMP error.
            extra_seconds: Device compute time on top of the policy (e.g. an INVOKE).

        Raises:
            DeviceSilentError: No reply after all attempts.
            PortError: The port vanished and did not come back.
            DeviceRejectedError: The device answered with an error (``check=True``).
        """
        attempts = self.timeouts.retries if retries is None else retries
        waited = 0.0
        for attempt in range(max(1, attempts)):
            seq = self.next_seq()
            packet = packet_for_seq(seq)
            try:
                wire = self.send(packet)
                timeout = self.response_timeout(wire, reply_wire, write_bytes, hash_bytes) + extra_seconds
                deadline = max(time.monotonic(), self._tx_end) + timeout
                while True:
                    got = self.poll(deadline - time.monotonic())
                    if got is None:
                        break
                    head, body = parse_packet(got)
                    if head["seq"] != seq or head["op"] not in (OP_READ_RSP, OP_WRITE_RSP):
                        continue  # a late reply to an earlier attempt, or our own echo
                    self.drained()
                    if check:
                        raise_for_error(body, what)
                    return body
            except PortLost as e:
                log.warning("%s: port lost during %s (%s); reconnecting", self.url, what, e)
                self.reconnect()
                continue
            except ProtocolError as e:
                log.warning("%s: bad reply to %s: %s", self.url, what, e)
                continue
            waited += timeout
            log.debug("%s: no reply to %s (attempt %d/%d)", self.url, what, attempt + 1, attempts)
        raise DeviceSilentError(
            f"device on {self.url} did not answer {what} ({attempts} attempts, {waited:.1f}s)",
            "check that the board runs SMP-enabled firmware and the baud rate matches (--baud)",
        )
