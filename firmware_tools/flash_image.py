"""Program a model into a board's flash image on the host, as a debug probe programs a board's flash.

An emulated board's flash is a host file (:mod:`firmware_tools.emulate`). This writes the layout the
firmware's model store reads at boot (``device/model_store.c``), so the board starts with the model
active and runnable: no upload over the UART, which QEMU's one-byte CMSDK UART model delivers at about
10 KB/s (30 s for a 300 KB model). ``edgert device emulate --model`` and ``fit --measure-on emulated``
use it; ``edgert flash`` over SMP stays the way to change the model of a running board.

Layout (``model_store.h``)::

    0                 record area 0 (one sector)
    sector            record area 1 (one sector)
    2 * sector        model slot 0 (slot_size)
    ...               model slot 1 (slot_size)

A record is 192 bytes: magic ``EDGR``, format 1, sequence, the active and the previous entry (88 bytes
each: valid, slot, name length, size, SHA-256, name) and a CRC-32 of all that; the rest is erased
(0xFF). The programmed image holds one record (sequence 1) naming slot 0 as active, no previous model.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

from edgert.files import atomic_write
from firmware_tools.errors import ModelTooLargeError

__all__ = ["SECTOR_BYTES", "PRELOADED_NAME", "slot_bytes", "program_model"]

#: The firmware's flash sector (``EDGERT_FLASH_SECTOR``): one record area, the slot granularity.
SECTOR_BYTES = 4096
#: The name a programmed model carries in INFO's ``active`` (what ACTIVATE's ``name`` gives after an upload).
PRELOADED_NAME = "/edgert/preloaded.tflite"

_MAGIC = 0x52474445  # "EDGR" little-endian
_FORMAT = 1
_NAME_MAX = 48
_ENTRY = struct.Struct(f"<BBBxI32s{_NAME_MAX}s")  # valid, slot, name_len, pad, size, sha256, name: 88 bytes
_HEAD = struct.Struct("<III")  # magic, format, sequence
#: ``STORE_RECORD_SIZE``: the bytes a record occupies at the start of its area.
RECORD_BYTES = 192
_CRC_OFFSET = _HEAD.size + 2 * _ENTRY.size


def slot_bytes(flash_bytes: int, sector: int = SECTOR_BYTES) -> int:
    """Size of one model slot: what ``store_init(0)`` computes (half the flash after the two record areas)."""
    return ((flash_bytes - 2 * sector) // 2) // sector * sector


def _record(model: bytes, name: str) -> bytes:
    """The first record of a store: sequence 1, ``model`` active in slot 0, no previous model."""
    raw = name.encode()
    entry = _ENTRY.pack(1, 0, len(raw), len(model), hashlib.sha256(model).digest(), raw)
    body = _HEAD.pack(_MAGIC, _FORMAT, 1) + entry + bytes(_ENTRY.size)
    return body + struct.pack("<I", zlib.crc32(body)) + b"\xff" * (RECORD_BYTES - _CRC_OFFSET - 4)


def program_model(image: str | os.PathLike, model: bytes, *, flash_bytes: int, name: str = PRELOADED_NAME) -> Path:
    """Write a flash image of ``flash_bytes`` holding ``model`` as the active model, replacing ``image`` atomically.

    Args:
        image: The flash image file (created, or replaced whole: what it held before is gone).
        model: The .tflite bytes.
        flash_bytes: The firmware's model flash (:attr:`FirmwareBuild.flash_bytes`).
        name: The name INFO reports for the model (at most 48 bytes).

    Raises:
        ModelTooLargeError: The model is larger than a model slot.
    """
    slot = slot_bytes(flash_bytes)
    if len(model) > slot:
        raise ModelTooLargeError(f"the model ({len(model)} B) is larger than a model slot of this board ({slot} B)",
                                 "choose a target with more flash, or a smaller model")
    if not 0 < len(name.encode()) <= _NAME_MAX:
        raise ValueError(f"model name {name!r} must be 1 to {_NAME_MAX} bytes")
    flash = bytearray(b"\xff" * flash_bytes)
    flash[:RECORD_BYTES] = _record(model, name)
    flash[2 * SECTOR_BYTES:2 * SECTOR_BYTES + len(model)] = model
    return atomic_write(Path(image), bytes(flash))

