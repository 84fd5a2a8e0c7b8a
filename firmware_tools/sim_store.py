"""The simulated board's flash: a file with A/B model slots, alternating active records, image slots.

Layout (all offsets in the flash file)::

    0               record area 0 (4 KiB)
    4 KiB           record area 1 (4 KiB)
    8 KiB           image-state area (4 KiB)
    12 KiB          model slot 0           (slot_size)
    ...             model slot 1           (slot_size)
    ...             image slot 0 (primary)   (image_slot_size)
    ...             image slot 1 (secondary) (image_slot_size)

Every program operation is one *write step*; ``powerloss_at=N`` tears step N
(only its first half reaches the flash) and raises :class:`PowerLoss`, which
the simulator turns into a reboot. Records carry a sequence number and a
CRC32 and are written alternately into the two record areas, so a torn record
is simply ignored at boot and the previous one wins (PROTOCOL.md, section 6).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RECORD_AREA", "PowerLoss", "Entry", "Record", "FlashStore"]

RECORD_AREA = 4096
_MAGIC = b"EDGR"
_IMG_MAGIC = b"EIMG"
_NAME = 48
_ENTRY = struct.Struct(f"<BI32s{_NAME}s")
_HEAD = struct.Struct("<4sI")
_NO_SLOT = 0xFF
#: Largest single program operation; bigger writes are split into several steps, like page programming.
PAGE = 4096


class PowerLoss(Exception):
    """The simulated supply failed during a flash write (the simulator reboots)."""


@dataclass(frozen=True)
class Entry:
    """A model in a slot: which slot, its size, SHA-256 and name."""

    slot: int
    size: int
    sha: bytes
    name: str

    def summary(self) -> dict:
        """The INFO form (PROTOCOL.md model summary)."""
        return {"name": self.name, "size": self.size, "sha": self.sha}


@dataclass(frozen=True)
class Record:
    """The active record: which model runs, which one ROLLBACK returns to."""

    seq: int
    active: Entry | None
    previous: Entry | None


def _pack_entry(e: Entry | None) -> bytes:
    if e is None:
        return _ENTRY.pack(_NO_SLOT, 0, b"\0" * 32, b"")
    return _ENTRY.pack(e.slot, e.size, e.sha, e.name.encode()[:_NAME])


def _unpack_entry(raw: bytes) -> Entry | None:
    slot, size, sha, name = _ENTRY.unpack(raw)
    if slot == _NO_SLOT:
        return None
    return Entry(slot, size, bytes(sha), name.rstrip(b"\0").decode(errors="replace"))


def encode_record(rec: Record) -> bytes:
    """Serialise a record with its trailing CRC32."""
    body = _HEAD.pack(_MAGIC, rec.seq) + _pack_entry(rec.active) + _pack_entry(rec.previous)
    return body + struct.pack("<I", zlib.crc32(body))


def decode_record(raw: bytes) -> Record | None:
    """Parse a record area; None when empty, torn or corrupt."""
    n = _HEAD.size + 2 * _ENTRY.size
    if len(raw) < n + 4:
        return None
    body, (crc,) = raw[:n], struct.unpack_from("<I", raw, n)
    if body[:4] != _MAGIC or zlib.crc32(body) != crc:
        return None
    seq = _HEAD.unpack_from(body)[1]
    return Record(seq, _unpack_entry(body[_HEAD.size:_HEAD.size + _ENTRY.size]), _unpack_entry(body[_HEAD.size + _ENTRY.size:]))


class FlashStore:
    """File-backed flash with counted write steps and an optional power cut.

    Args:
        path: The flash file (created, erased to 0xFF, when missing or of the wrong size).
        slot_size: Bytes per model slot.
        image_slot_size: Bytes per MCUboot image slot.
        powerloss_at: Tear this write step (1-based) and raise :class:`PowerLoss`.
    """

    def __init__(self, path: str | Path, slot_size: int, image_slot_size: int, *, powerloss_at: int | None = None) -> None:
        self.path = Path(path)
        self.slot_size = slot_size
        self.image_slot_size = image_slot_size
        self.powerloss_at = powerloss_at
        self.steps = 0
        self.slot_offsets = (3 * RECORD_AREA, 3 * RECORD_AREA + slot_size)
        base = 3 * RECORD_AREA + 2 * slot_size
        self.image_offsets = (base, base + image_slot_size)
        self.size = base + 2 * image_slot_size
        self.fresh = not self.path.exists() or self.path.stat().st_size != self.size
        if self.fresh:
            with open(self.path, "wb") as f:
                f.truncate(0)
                block = b"\xff" * 65536
                left = self.size
                while left:
                    n = min(left, len(block))
                    f.write(block[:n])
                    left -= n
        self._fd = os.open(self.path, os.O_RDWR)
        self.record, self.record_area = self._boot_record()

    def close(self) -> None:
        """Release the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- raw access ---------------------------------------------------------------
    def read(self, off: int, n: int) -> bytes:
        """Read ``n`` bytes at ``off``."""
        return os.pread(self._fd, n, off)

    def write(self, off: int, data: bytes) -> None:
        """Program ``data`` at ``off``, one write step per page.

        Raises:
            PowerLoss: This was the step chosen for the power cut (half of it was written).
        """
        for i in range(0, max(1, len(data)), PAGE):
            part = data[i:i + PAGE]
            self.steps += 1
            if self.powerloss_at is not None and self.steps == self.powerloss_at:
                os.pwrite(self._fd, part[: len(part) // 2], off + i)
                self.powerloss_at = None
                raise PowerLoss(f"power lost during write step {self.steps}")
            os.pwrite(self._fd, part, off + i)

    # -- records ------------------------------------------------------------------
    def _boot_record(self) -> tuple[Record, int]:
        # No valid record: seq 0 "in area 1", so the first commit goes to area 0.
        best, area = Record(0, None, None), 1
        for i in (0, 1):
            rec = decode_record(self.read(i * RECORD_AREA, RECORD_AREA))
            if rec is not None and rec.seq > best.seq:
                best, area = rec, i
        return best, area

    def commit(self, active: Entry | None, previous: Entry | None) -> Record:
        """Write a new record (seq + 1) into the other area; the switch happens when it is complete."""
        rec = Record(self.record.seq + 1, active, previous)
        area = 1 - self.record_area
        self.write(area * RECORD_AREA, encode_record(rec))
        self.record, self.record_area = rec, area
        return rec

    # -- models -------------------------------------------------------------------
    def slot_data(self, slot: int, size: int) -> bytes:
        """The first ``size`` bytes of model slot ``slot``."""
        return self.read(self.slot_offsets[slot], size)

    def entry_ok(self, entry: Entry) -> bool:
        """Whether a slot still holds exactly the model its entry names (SHA-256 check)."""
        return hashlib.sha256(self.slot_data(entry.slot, entry.size)).digest() == entry.sha

    # -- image state ---------------------------------------------------------------
    def image_state(self) -> dict:
        """The persisted MCUboot-like flags of the image slots."""
        raw = self.read(2 * RECORD_AREA, RECORD_AREA)
        if raw[:4] == _IMG_MAGIC:
            n = struct.unpack_from("<I", raw, 4)[0]
            if n <= RECORD_AREA - 12:
                body = raw[8:8 + n]
                if struct.unpack_from("<I", raw, 8 + n)[0] == zlib.crc32(body):
                    return json.loads(body)
        return {"pending": False, "permanent": False, "confirmed": True, "swapped": False}

    def set_image_state(self, state: dict) -> None:
        """Persist the image flags."""
        body = json.dumps(state, sort_keys=True).encode()
        self.write(2 * RECORD_AREA, _IMG_MAGIC + struct.pack("<I", len(body)) + body + struct.pack("<I", zlib.crc32(body)))

    def image_data(self, slot: int) -> bytes:
        """The whole image slot ``slot``."""
        return self.read(self.image_offsets[slot], self.image_slot_size)
