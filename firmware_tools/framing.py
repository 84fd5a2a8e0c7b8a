"""SMP serial framing: SMP packets <-> the base64 lines of Zephyr's console transport.

A frame on the wire is one or more lines. The first starts with ``0x06 0x09``,
each continuation with ``0x04 0x14``; every line ends with ``\\n`` and is at
most :data:`MAX_LINE_LENGTH` bytes. The base64 body, once decoded and
concatenated, is ``len (BE16) | SMP packet | CRC16 (BE16)`` where ``len``
counts the packet and the CRC, and the CRC is CRC16-CCITT (XMODEM: poly
0x1021, init 0) over the packet.

Encoding reuses ``smp.packet.encode`` (the maintained implementation).
Decoding is a pure, incremental parser (esptool's ``slip_reader`` style)
because a real serial line also carries boot logs and console text between
frames, and may deliver damaged frames: both must be skipped, never raised.
"""

from __future__ import annotations

import binascii
import re
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from smp import packet as smppacket

__all__ = [
    "MAX_LINE_LENGTH",
    "START",
    "CONTINUE",
    "crc16",
    "encode_frame",
    "encoded_size",
    "FrameDecoder",
    "iter_packets",
]

START = smppacket.START_DELIMITER  # 0x06 0x09
CONTINUE = smppacket.CONTINUE_DELIMITER  # 0x04 0x14
#: Zephyr's console transport reads lines into 128-byte buffers (incl. the NUL).
MAX_LINE_LENGTH = 127

if sys.version_info >= (3, 11):

    def _a2b_base64_strict(data: bytes) -> bytes:
        return binascii.a2b_base64(data, strict_mode=True)

else:
    # Python 3.10 has no strict_mode: accept exactly what 3.11's strict_mode accepts (whole quads, then
    # RFC 4648 padding, or extra "=" after a whole quad), then decode.
    _STRICT_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?|(?:[A-Za-z0-9+/]{4})+=+")

    def _a2b_base64_strict(data: bytes) -> bytes:
        if _STRICT_BASE64.fullmatch(data) is None:
            raise binascii.Error("not strict base64")
        return binascii.a2b_base64(data)

#: A frame cannot be larger than this (the 16-bit length field); longer garbage is dropped.
MAX_FRAME_BYTES = 0xFFFF
_LEN = struct.Struct("!H")


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM) over ``data``, as SMP serial uses it."""
    return binascii.crc_hqx(data, 0)


def encode_frame(packet: bytes, line_length: int = MAX_LINE_LENGTH) -> bytes:
    """Encode one SMP packet (header + CBOR) as the bytes to write on the serial line.

    Args:
        packet: The SMP packet (8-byte header + CBOR payload).
        line_length: Longest line on the wire (the device's line buffer minus one).

    Returns:
        All lines of the frame, concatenated.
    """
    return b"".join(smppacket.encode(packet, line_length=line_length))


def encoded_size(packet_len: int, line_length: int = MAX_LINE_LENGTH) -> int:
    """Bytes on the wire for a packet of ``packet_len`` bytes (used to size timeouts and chunks)."""
    b64 = 4 * ((packet_len + 4 + 2) // 3)
    per_line = ((line_length - smppacket.LINE_LENGTH_SUBTRACTOR) // 4) * 4
    lines = max(1, -(-b64 // per_line))
    return b64 + lines * 3


@dataclass
class FrameDecoder:
    """Incremental decoder: feed it whatever the line delivered, get whole SMP packets back.

    Noise outside frames (boot logs, shell prompts) is skipped. A frame with a
    bad CRC, bad base64 or a broken continuation is dropped and counted in
    :attr:`errors`; the decoder resynchronises on the next start delimiter.

    Attributes:
        errors: Frames dropped as damaged since creation.
        noise: Bytes skipped outside frames since creation.
    """

    errors: int = 0
    noise: int = 0
    _line: bytearray = field(default_factory=bytearray)
    _in_line: bool = False
    _body: bytearray | None = None
    _expected: int = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data`` and return the SMP packets completed by it (possibly none)."""
        out: list[bytes] = []
        for line in self._lines(data):
            packet = self._line_done(line)
            if packet is not None:
                out.append(packet)
        return out

    def reset(self) -> None:
        """Forget any partial frame (after a reconnect or a device reset)."""
        self._line.clear()
        self._in_line = False
        self._body = None
        self._expected = 0

    # -- internals ---------------------------------------------------------
    def _lines(self, data: bytes) -> Iterator[bytes]:
        """Split the stream into delimiter-led lines; everything else is noise."""
        i, n = 0, len(data)
        while i < n:
            if not self._in_line:
                # Look for the next byte that can start a delimiter; bytes before it are noise.
                j = i
                while j < n and data[j] not in (START[0], CONTINUE[0]):
                    j += 1
                self.noise += j - i
                if j >= n:
                    return
                self._in_line = True
                self._line.clear()
                i = j
            nl = data.find(b"\n", i)
            # A start delimiter inside a line means the line was cut off (a device reset, a lost
            # newline): base64 never contains 0x06, so restart at the new frame.
            restart = data.find(START, i + (0 if self._line else 1), nl if nl >= 0 else n)
            if restart >= 0:
                self.noise += len(self._line) + restart - i
                if self._body is not None:
                    self._fail()
                self._line.clear()
                i = restart
                nl = data.find(b"\n", i)
            if nl < 0:
                self._line += data[i:]
                if len(self._line) > MAX_FRAME_BYTES:
                    self._drop_line()
                return
            self._line += data[i : nl + 1]
            i = nl + 1
            line = bytes(self._line)
            self._in_line = False
            self._line.clear()
            yield line

    def _drop_line(self) -> None:
        self.noise += len(self._line)
        self._line.clear()
        self._in_line = False

    def _line_done(self, line: bytes) -> bytes | None:
        head, body = line[:2], line[2:-1]
        if head == START:
            if self._body is not None:
                self.errors += 1  # a new frame began before the last one completed
            self._body = bytearray()
            self._expected = 0
        elif head == CONTINUE:
            if self._body is None:
                self.noise += len(line)
                return None
        else:
            # A lone 0x06 / 0x04 byte in console text: not a frame.
            self.noise += len(line)
            return None
        try:
            self._body += _a2b_base64_strict(body.rstrip(b"\r"))
        except binascii.Error:
            self._fail()
            return None
        if self._expected == 0 and len(self._body) >= 2:
            self._expected = _LEN.unpack_from(self._body)[0]
            if self._expected < 2:
                self._fail()
                return None
        if self._expected and len(self._body) - 2 >= self._expected:
            frame = bytes(self._body[2 : 2 + self._expected])
            extra = len(self._body) - 2 - self._expected
            self._body = None
            self._expected = 0
            packet, crc = frame[:-2], _LEN.unpack(frame[-2:])[0]
            if extra or crc16(packet) != crc:
                self.errors += 1
                return None
            return packet
        return None

    def _fail(self) -> None:
        self.errors += 1
        self._body = None
        self._expected = 0


def iter_packets(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Generator over the SMP packets found in a stream of byte chunks (noise skipped).

    Args:
        chunks: Successive reads from a serial line.

    Yields:
        Each complete, CRC-checked SMP packet.
    """
    decoder = FrameDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
