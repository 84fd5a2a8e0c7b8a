"""The simulated board's A/B model slots: File group upload/status/hash, ACTIVATE and ROLLBACK.

Uploads go to the slot that is not active; ACTIVATE checks the staged bytes'
SHA-256 and then writes one record naming the new slot, so a power cut leaves
the complete old or the complete new model (PROTOCOL.md sections 3, 4 and 6).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from firmware_tools.protocol import (
    ERR_BAD_INPUT,
    ERR_HASH_MISMATCH,
    ERR_NO_MODEL,
    ERR_NO_PREVIOUS,
    ERR_SIGNATURE_INVALID,
    ERR_TOO_LARGE,
    FS_ERR,
    GROUP_EDGERT,
    GROUP_FILE,
    IMAGE_STAGED_NAME,
    STAGED_NAME,
)
from firmware_tools.sim.faults import Faults
from firmware_tools.sim.mcuboot import ImageSlots
from firmware_tools.sim.smp import group_error
from firmware_tools.sim.uploads import Upload, store_chunk, upload_request
from firmware_tools.sim_store import Entry, FlashStore

__all__ = ["ModelSlots"]


class ModelSlots:
    """The models a board holds, and the requests that change them. RAM state lives as long as one boot.

    Args:
        store: The flash (its record names the active and previous model).
        slot_size: Largest model a slot holds.
        faults: The plan (``wrong-hash`` changes every SHA-256 the device reports or compares).
        require_signature: Refuse plain staged files: only signed images (``"img:1"``) may become active.
        images: The image slots ACTIVATE ``"img:1"`` takes its model from.
        on_change: Called when the active model changes (the runner forgets staged inputs and outputs).
    """

    def __init__(self, store: FlashStore, slot_size: int, faults: Faults, require_signature: bool, images: ImageSlots,
                 on_change: Callable[[], None]) -> None:
        self.store = store
        self.slot_size = slot_size
        self.faults = faults
        self.require_signature = require_signature
        self.images = images
        self.on_change = on_change
        #: The file upload in progress, and the slot it goes to.
        self.staged: Upload | None = None
        self.staged_slot = 0
        rec = store.record
        # A record naming a slot whose bytes do not hash to it cannot happen with the write order used;
        # checking anyway means a simulated flash that was tampered with never runs a wrong model.
        #: Whether the recorded active model's bytes check out (else the board runs none).
        self.active_ok = rec.active is None or store.entry_ok(rec.active)

    @property
    def active(self) -> Entry | None:
        """The model INVOKE runs (None when there is none, or its bytes did not check out at boot)."""
        rec = self.store.record
        return rec.active if self.active_ok else None

    def _free_slot(self) -> int:
        """The slot a new model goes to: not the active one; the previous model in it is forgotten durably first."""
        rec = self.store.record
        slot = 1 - rec.active.slot if rec.active else 0
        if rec.previous is not None and rec.previous.slot == slot:
            self.store.commit(rec.active, None)
        return slot

    # File group
    def file_upload(self, body: dict) -> dict:
        """File upload of the staged model."""
        if body.get("name") != STAGED_NAME:
            return group_error(GROUP_FILE, FS_ERR.FILE_INVALID_NAME)  # this board stores models only
        request = upload_request(body, self.slot_size)
        if isinstance(request, dict):
            return request
        off, data, total = request
        if total is not None:
            self.staged_slot = self._free_slot()
            self.staged = Upload(0, total)
        return store_chunk(self.store, self.staged, self.store.slot_offsets[self.staged_slot], off, data)

    def file_status(self, body: dict) -> dict:
        """File status: bytes held of the staged model."""
        if body.get("name") != STAGED_NAME:
            return group_error(GROUP_FILE, FS_ERR.FILE_NOT_FOUND)
        return {"len": self.staged.held if self.staged else 0}

    def _staged_bytes(self, off: int = 0, n: int | None = None) -> bytes:
        held = self.staged.held if self.staged else 0
        n = held - off if n is None else min(n, held - off)
        return self.store.read(self.store.slot_offsets[self.staged_slot] + off, max(0, n)) if held else b""

    def file_hash(self, body: dict) -> dict:
        """File hash (SHA-256) of the staged model, or of a range of it."""
        if body.get("name") != STAGED_NAME or self.staged is None:
            return group_error(GROUP_FILE, FS_ERR.FILE_NOT_FOUND)
        if body.get("type", "sha256") != "sha256":
            return group_error(GROUP_FILE, FS_ERR.CHECKSUM_HASH_NOT_FOUND)
        off = int(body.get("off", 0) or 0)
        data = self._staged_bytes(off, body.get("len"))
        return {"type": "sha256", "off": off, "len": len(data), "output": self.faults.digest(data)}

    # edgert group
    def activate(self, body: dict) -> dict:
        """ACTIVATE the staged file or the image in image slot 1, when its SHA-256 is the requested one."""
        name, sha = body.get("name"), body.get("sha")
        if not isinstance(sha, bytes) or len(sha) != 32:
            return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
        if name == IMAGE_STAGED_NAME:
            return self._activate_image(sha)
        if name != STAGED_NAME or self.staged is None:
            return group_error(GROUP_EDGERT, ERR_NO_MODEL)
        if self.require_signature:
            return group_error(GROUP_EDGERT, ERR_SIGNATURE_INVALID)
        data = self._staged_bytes()
        if self.staged.held != self.staged.total or self.faults.digest(data) != sha:
            return group_error(GROUP_EDGERT, ERR_HASH_MISMATCH)
        return self._switch(Entry(self.staged_slot, len(data), sha, os.path.basename(name)))

    def _activate_image(self, sha: bytes) -> dict:
        payload = self.images.model_payload()
        if isinstance(payload, dict):
            return payload
        if len(payload) > self.slot_size:
            return group_error(GROUP_EDGERT, ERR_TOO_LARGE)
        if self.faults.digest(payload) != sha:
            return group_error(GROUP_EDGERT, ERR_HASH_MISMATCH)
        slot = self._free_slot()
        self.store.write(self.store.slot_offsets[slot], payload)
        self.staged_slot = slot
        return self._switch(Entry(slot, len(payload), sha, IMAGE_STAGED_NAME))

    def _switch(self, entry: Entry) -> dict:
        rec = self.store.record
        self.store.commit(entry, rec.active if self.active_ok else None)
        self.staged = None
        self.active_ok = True
        self.on_change()
        return {"active": entry.summary()}

    def rollback(self, body: dict) -> dict:
        """ROLLBACK: the previous model becomes active and the active one previous."""
        rec = self.store.record
        if rec.previous is None or not self.store.entry_ok(rec.previous):
            return group_error(GROUP_EDGERT, ERR_NO_PREVIOUS)
        self.store.commit(rec.previous, rec.active)
        self.staged = None
        self.on_change()
        return {"active": rec.previous.summary()}
