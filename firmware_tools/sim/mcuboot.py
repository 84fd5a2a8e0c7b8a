"""The simulated board's MCUboot image slots: Image group state/upload/erase, swap and revert on reset.

Image slot 0 holds the running firmware, slot 1 what was uploaded. A test
(pending) slot 1 is swapped in at the next reset and swapped back at the reset
after that unless it was confirmed, as MCUboot's swap mode does (PROTOCOL.md
section 3). A signed model arrives in slot 1 too; :meth:`ImageSlots.model_payload`
hands it to ACTIVATE ``"img:1"``.
"""

from __future__ import annotations

from typing import Any

from firmware_tools.errors import SignatureError
from firmware_tools.protocol import ERR_NO_MODEL, ERR_SIGNATURE_INVALID, GROUP_EDGERT, MGMT_ERR
from firmware_tools.sim.smp import group_error
from firmware_tools.sim.uploads import Upload, store_chunk, upload_request
from firmware_tools.sim_store import FlashStore

__all__ = ["ImageSlots", "write_factory_image"]


def write_factory_image(store: FlashStore, target_name: str) -> None:
    """A fresh board ships with a (tiny, unsigned) firmware image in image slot 0, like any MCUboot device."""
    from firmware_tools.signing import make_image

    image = make_image(b"edgert simulated firmware " + target_name.encode())
    powerloss, store.powerloss_at = store.powerloss_at, None  # factory programming, not a step
    store.write(store.image_offsets[0], image)
    store.steps, store.powerloss_at = 0, powerloss


class ImageSlots:
    """The Image group over the flash's two image slots.

    Args:
        store: The flash.
        require_signature: Accept only images signed by one of ``trust_keys``.
        trust_keys: Loaded keys the device trusts.
    """

    def __init__(self, store: FlashStore, require_signature: bool, trust_keys: list[Any]) -> None:
        self.store = store
        self.require_signature = require_signature
        self.trust_keys = trust_keys
        #: The upload into slot 1 in progress (RAM state).
        self.upload: Upload | None = None

    def entries(self) -> list[dict]:
        """The Image state list: one entry per slot holding a complete image."""
        from firmware_tools.signing import image_hash

        state = self.store.image_state()
        out = []
        for slot in (0, 1):
            if slot == 1 and self.upload is not None and self.upload.held != self.upload.total:
                continue
            digest = image_hash(self.store.image_data(slot))
            if digest is None:
                continue
            entry = {"slot": slot, "version": "0.0.0", "hash": digest, "bootable": True,
                     "pending": slot == 1 and bool(state.get("pending")),
                     "confirmed": slot == 0 and bool(state.get("confirmed", True)),
                     "active": slot == 0,
                     "permanent": slot == 1 and bool(state.get("permanent"))}
            out.append(entry)
        return out

    def read_state(self, body: dict) -> dict:
        """Image state (read)."""
        return {"images": self.entries(), "splitStatus": 0}

    def write_state(self, body: dict) -> dict:
        """Image state (write): mark slot 1 for test or permanently, or confirm the running image."""
        digest, confirm = body.get("hash"), bool(body.get("confirm", False))
        state = self.store.image_state()
        entries = {e["hash"]: e for e in self.entries()}
        if digest is None:
            if not confirm:
                return {"rc": MGMT_ERR.EINVAL}
            state["confirmed"] = True
            state["swapped"] = False
        else:
            e = entries.get(bytes(digest))
            if e is None:
                return {"rc": MGMT_ERR.ENOENT}
            if e["slot"] == 1:
                if self.require_signature:
                    try:
                        from firmware_tools.signing import verify_image

                        verify_image(self.store.read(self.store.image_offsets[1], self._image_len(1)), self.trust_keys)
                    except SignatureError:
                        return {"rc": MGMT_ERR.EINVAL}
                state["pending"], state["permanent"] = True, confirm
            elif confirm:
                state["confirmed"], state["swapped"] = True, False
        self.store.set_image_state(state)
        return self.read_state({})

    def _image_len(self, slot: int) -> int:
        from firmware_tools.signing import image_size

        return image_size(self.store.image_data(slot))

    def _swap(self) -> None:
        a, b = self.store.image_data(0), self.store.image_data(1)
        self.store.write(self.store.image_offsets[0], b)
        self.store.write(self.store.image_offsets[1], a)

    def upload_chunk(self, body: dict) -> dict:
        """Image upload into slot 1 (offset 0 starts over and cancels a pending test of the old slot 1)."""
        request = upload_request(body, self.store.image_slot_size)
        if isinstance(request, dict):
            return request
        off, data, total = request
        if total is not None:
            self.upload = Upload(0, total)
            state = self.store.image_state()
            if state.get("pending"):
                state["pending"] = state["permanent"] = False
                self.store.set_image_state(state)
        return store_chunk(self.store, self.upload, self.store.image_offsets[1], off, data)

    def erase(self, body: dict) -> dict:
        """Image erase: slot 1 back to erased flash."""
        self.store.write(self.store.image_offsets[1], b"\xff" * self.store.image_slot_size)
        self.upload = None
        return {}

    def reset(self) -> None:
        """What MCUboot does at reset: swap in a pending slot 1, or revert a swapped image that was not confirmed."""
        state = self.store.image_state()
        if state.get("pending"):
            self._swap()
            state = {"pending": False, "permanent": state.get("permanent", False),
                     "confirmed": state.get("permanent", False), "swapped": not state.get("permanent", False)}
            self.store.set_image_state(state)
        elif state.get("swapped") and not state.get("confirmed"):
            self._swap()  # the test image was not confirmed: MCUboot reverts
            self.store.set_image_state({"pending": False, "permanent": False, "confirmed": True, "swapped": False})

    def model_payload(self) -> bytes | dict:
        """The model carried by the complete image in slot 1, signature checked when required, or the error reply.

        NO_MODEL when no complete image was uploaded; SIGNATURE_INVALID when it is not an image, or (signatures
        required) not signed by a trusted key.
        """
        from firmware_tools.signing import image_payload, verify_image

        up = self.upload
        if up is None or up.held != up.total:
            return group_error(GROUP_EDGERT, ERR_NO_MODEL)
        image = self.store.read(self.store.image_offsets[1], up.total)
        try:
            return verify_image(image, self.trust_keys) if self.require_signature else image_payload(image)
        except SignatureError:
            return group_error(GROUP_EDGERT, ERR_SIGNATURE_INVALID)
