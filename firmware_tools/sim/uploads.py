"""The offset rules the File and Image uploads share (PROTOCOL.md section 3, "Upload rules").

Offset 0 with ``len`` starts a new upload, the held offset appends, any other
offset stores nothing and answers the held count so the host re-synchronises.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_tools.protocol import MGMT_ERR
from firmware_tools.sim_store import FlashStore

__all__ = ["Upload", "upload_request", "store_chunk"]


@dataclass
class Upload:
    """An upload in progress: bytes held so far of the announced total (RAM state: a reboot forgets it)."""

    held: int = 0
    total: int = 0


def upload_request(body: dict, limit: int) -> tuple[int, bytes, int | None] | dict:
    """``(off, data, total)`` of an upload request, or the error reply.

    ``total`` (the announced length) is given only at offset 0, which always starts a new upload.
    """
    off, data = body.get("off"), body.get("data")
    if not isinstance(off, int) or not isinstance(data, bytes):
        return {"rc": MGMT_ERR.EINVAL}
    if off != 0:
        return off, data, None
    total = body.get("len")
    if not isinstance(total, int):
        return {"rc": MGMT_ERR.EINVAL}
    if total > limit:
        return {"rc": MGMT_ERR.ENOMEM}
    return off, data, total


def store_chunk(store: FlashStore, up: Upload | None, base: int, off: int, data: bytes) -> dict:
    """Store one chunk of ``up`` at ``base + off``; a chunk not at the held offset gets it back to re-sync."""
    if up is None or off != up.held:
        return {"off": up.held if up else 0}
    if up.held + len(data) > up.total:
        return {"rc": MGMT_ERR.EINVAL}
    store.write(base + off, data)
    up.held += len(data)
    return {"off": up.held}
