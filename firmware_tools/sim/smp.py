"""The simulated board's SMP server: frames in, each request routed to its handler, the reply framed out.

A device drops what it cannot take (bad frames, replies in the request
direction, packets larger than its buffer) without answering, and answers a
request whose fields have the wrong type with EINVAL rather than crashing
(PROTOCOL.md sections 1 and 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from edgert.errors import EdgertError
from firmware_tools.framing import FrameDecoder
from firmware_tools.protocol import ERR_NOT_SUPPORTED, GROUP_EDGERT, MGMT_ERR, OP_READ, OP_WRITE, make_packet, parse_packet
from firmware_tools.sim.faults import Faults

__all__ = ["FRAME_OVERHEAD", "Handler", "Route", "SmpServer", "group_error", "fits_buffer"]

log = logging.getLogger("edgert.firmware.sim")

#: SMP serial frame bytes around a packet in the device buffer: 2-byte length + 2-byte CRC16.
FRAME_OVERHEAD = 4

#: A request handler: the request's CBOR map in, the reply's map out (None: no reply).
Handler = Callable[[dict], dict | None]
#: How a request is routed: ``(group, command id, is a write)``.
Route = tuple[int, int, bool]


def group_error(group: int, rc: int) -> dict:
    """An SMP v2 group error reply ``{"err": {"group": G, "rc": N}}``."""
    return {"err": {"group": group, "rc": rc}}


def fits_buffer(op: int, group: int, command: int, body: dict, buf_size: int) -> bool:
    """Whether a packet (header + CBOR ``body``) and its frame fit a device buffer of ``buf_size`` bytes."""
    return FRAME_OVERHEAD + len(make_packet(op, group, command, 0, body)) <= buf_size


class SmpServer:
    """Decode received bytes into SMP requests and answer them through ``routes``.

    Args:
        routes: Handler per ``(group, command id, is a write)``.
        buf_size: The device's SMP buffer: larger requests are dropped.
        faults: The plan's frame faults (``drop-frame``, ``dup-frame``) apply here.
        stats: Counters shared with the board (``frames``, ``bad_frames``).
    """

    def __init__(self, routes: dict[Route, Handler], buf_size: int, faults: Faults, stats: dict[str, Any]) -> None:
        self.routes = routes
        self.buf_size = buf_size
        self.faults = faults
        self.stats = stats
        self.decoder = FrameDecoder()

    def requests(self, data: bytes) -> Iterator[bytes]:
        """The packets of the frames completed by ``data``, as the device sees them (dropped or repeated frames)."""
        for packet in self.decoder.feed(data):
            index = self.stats["frames"]
            self.stats["frames"] += 1
            if index in self.faults.drop_frame:
                continue
            for _ in range(2 if index in self.faults.dup_frame else 1):
                yield packet

    def answer(self, packet: bytes) -> tuple[dict, bytes] | None:
        """``(header, reply packet)`` for one request packet, or None when the device does not answer.

        Exceptions of the handler other than malformed fields (e.g. a power cut) propagate.
        """
        try:
            head, body = parse_packet(packet)
        except EdgertError:
            self.stats["bad_frames"] += 1
            return None
        if head["op"] not in (OP_READ, OP_WRITE) or len(packet) + FRAME_OVERHEAD > self.buf_size:
            return None  # not a request / larger than the device's buffer: a real board drops it
        try:
            reply = self._handle(head, body)
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            # A request with fields of the wrong type: firmware answers EINVAL, it does not crash.
            log.info("sim: malformed request (group %d id %d): %s", head["group"], head["id"], e)
            reply = {"rc": MGMT_ERR.EINVAL}
        if reply is None:
            return None
        return head, make_packet(head["op"] + 1, head["group"], head["id"], head["seq"], reply, version=head["version"])

    def _handle(self, head: dict, body: dict) -> dict | None:
        handler = self.routes.get((head["group"], head["id"], head["op"] == OP_WRITE))
        if handler is None:
            # Unknown edgert command: the group's NOT_SUPPORTED; anything else: SMP's generic ENOTSUP.
            return group_error(GROUP_EDGERT, ERR_NOT_SUPPORTED) if head["group"] == GROUP_EDGERT else {"rc": MGMT_ERR.ENOTSUP}
        return handler(body)

