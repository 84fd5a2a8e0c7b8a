"""The simulated board: flash, RAM state and the SMP routes wired together, powered on and off.

:class:`Simulator` owns the parts, each in its own module: the paced pty line
(:mod:`~firmware_tools.sim.line`), the SMP server (:mod:`~firmware_tools.sim.smp`),
the model slots (:mod:`~firmware_tools.sim.models`), the MCUboot image slots
(:mod:`~firmware_tools.sim.mcuboot`), the TFLite Micro runner
(:mod:`~firmware_tools.sim.tflm`) and the fault plan
(:mod:`~firmware_tools.sim.faults`). A boot rebuilds everything that lives in
RAM from what the flash (:mod:`firmware_tools.sim_store`) holds; the OS group
(echo, reset, MCUmgr params) and INFO are answered here.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edgert.errors import InputDataError
from firmware_tools.framing import encode_frame
from firmware_tools.protocol import (
    CMD_ACTIVATE,
    CMD_INFO,
    CMD_INVOKE,
    CMD_ROLLBACK,
    CMD_TENSOR_READ,
    CMD_TENSOR_WRITE,
    FILE_HASH,
    FILE_STATUS,
    FILE_UPLOAD,
    GROUP_EDGERT,
    GROUP_FILE,
    GROUP_IMAGE,
    GROUP_OS,
    IMAGE_ERASE,
    IMAGE_STATE,
    IMAGE_UPLOAD,
    OS_ECHO,
    OS_MCUMGR_PARAMS,
    OS_RESET,
)
from firmware_tools.sim.faults import Faults
from firmware_tools.sim.line import PtyLine
from firmware_tools.sim.mcuboot import ImageSlots, write_factory_image
from firmware_tools.sim.models import ModelSlots
from firmware_tools.sim.smp import Handler, Route, SmpServer
from firmware_tools.sim.tflm import KERNELS, TflmRunner
from firmware_tools.sim_store import RECORD_AREA, FlashStore, PowerLoss

__all__ = ["Simulator", "DEFAULT_BUF_SIZE", "DEFAULT_BUF_COUNT", "IMAGE_OVERHEAD", "describe"]

log = logging.getLogger("edgert.firmware.sim")

#: The simulated CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE / _COUNT.
DEFAULT_BUF_SIZE = 2048
DEFAULT_BUF_COUNT = 4
#: Room for the MCUboot header and TLVs in an image slot on top of a model slot.
IMAGE_OVERHEAD = 4096
_BOOT_BANNER = b"*** Booting Zephyr OS build v3.7.0 ***\r\n[00:00:00.000,000] <inf> edgert_sim: SMP server ready\r\n"


class Simulator:
    """A board on a pty: ``with Simulator("cortex-m4-256k") as sim: flash_model(sim.port, ...)``.

    Args:
        target: Target profile name or path (``edgert.targets.load_target``): sizes flash and RAM.
        flash_path: Flash file (kept across runs, like a board's flash); when None, a temporary one
            that :meth:`stop` deletes.
        baudrate: Emulated line rate (bits/s, 10 bits per byte); None or 0 = unpaced.
        faults: Fault injection plan.
        require_signature: Accept only MCUboot images signed by one of ``trust_keys``.
        trust_keys: Paths of PEM keys (public or private) the device trusts.
        slot_size: Override the model slot size (bytes).
        ram: Override the RAM available to the tensor arena (bytes).
        buf_size: SMP buffer size reported by MCUmgr params.
        buf_count: SMP buffers reported by MCUmgr params.
        tensor_io: Serve TENSOR_WRITE/TENSOR_READ and staged INVOKE (INFO ``tensor_io``); False emulates
            firmware from before them, whose INVOKE carries everything inline.

    Attributes:
        port: The symlink hosts open (it follows the pty across simulated disconnects).
        stats: Counters: ``rx_bytes, tx_bytes, frames, bad_frames, reboots, disconnects, invokes``.
        boots: One entry per power-on.
        line: The paced pty.
        models: The model slots (``models.staged`` is the file upload in progress).
        images: The MCUboot image slots.
        runner: The TFLite Micro runner.
        smp: The SMP server of the current boot.
    """

    def __init__(self, target: str | Path = "cortex-m4-256k", *, flash_path: str | Path | None = None,
                 baudrate: int | None = 115200, faults: Faults | None = None, require_signature: bool = False,
                 trust_keys: tuple[str | Path, ...] | list = (), slot_size: int | None = None, ram: int | None = None,
                 buf_size: int = DEFAULT_BUF_SIZE, buf_count: int = DEFAULT_BUF_COUNT, tensor_io: bool = True) -> None:
        from edgert.targets import load_target

        self.target = load_target(target)
        self.baudrate = baudrate or 0
        self.faults = faults or Faults()
        self.require_signature = require_signature
        self.buf_size, self.buf_count = buf_size, buf_count
        self.tensor_io = tensor_io
        if require_signature and not trust_keys:
            raise InputDataError("--require-signature needs at least one --trust-key",
                                 "pass the public key PEM the device trusts")
        from firmware_tools.signing import load_key

        self.trust_keys = [load_key(k) for k in trust_keys]
        self.slot_size = slot_size or ((self.target.flash_bytes - 2 * RECORD_AREA) // 2) // RECORD_AREA * RECORD_AREA
        self.ram = ram if ram is not None else self.target.ram_bytes - buf_size * buf_count
        self._tmp = tempfile.mkdtemp(prefix="edgert-sim-")
        self.flash_path = Path(flash_path) if flash_path else Path(self._tmp) / "flash.bin"
        self.port = os.path.join(self._tmp, "tty")
        self.stats = {"rx_bytes": 0, "tx_bytes": 0, "frames": 0, "bad_frames": 0, "reboots": 0, "disconnects": 0,
                      "invokes": 0}
        #: One entry per power-on: what the boot found active and whether its SHA-256 checked out.
        self.boots: list[dict[str, Any]] = []
        self.line = PtyLine(self.port, self.baudrate, self.stats)
        self._store: FlashStore | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        try:
            self._boot()
        except BaseException:
            self._remove_tmp()
            raise

    # -- lifecycle --------------------------------------------------------------------
    def _boot(self) -> None:
        """Power on: read flash, rebuild everything that lives in RAM."""
        if self._store is not None:
            self._store.close()
        self._store = store = FlashStore(self.flash_path, self.slot_size, self.slot_size + IMAGE_OVERHEAD,
                                         powerloss_at=self.faults.powerloss_at)
        if store.fresh:
            write_factory_image(store, self.target.name)
        self.faults.powerloss_at = store.powerloss_at
        self._reboot_pending = False
        #: The Image group's slots (MCUboot).
        self.images = ImageSlots(store, self.require_signature, self.trust_keys)
        #: The model slots: File group, ACTIVATE, ROLLBACK.
        self.models = ModelSlots(store, self.slot_size, self.faults, self.require_signature, self.images,
                                 on_change=lambda: self.runner.forget())
        #: The interpreter: INVOKE, TENSOR_WRITE, TENSOR_READ.
        self.runner = TflmRunner(lambda: self.models.active, lambda e: store.slot_data(e.slot, e.size), self.ram,
                                 self.buf_size, self.tensor_io, self.stats)
        self.smp = SmpServer(self._routes(), self.buf_size, self.faults, self.stats)
        rec = store.record
        self.boots.append({"active": rec.active.sha.hex() if rec.active else None, "intact": self.models.active_ok,
                           "seq": rec.seq})

    def _routes(self) -> dict[Route, Handler]:
        """Which part answers which request: ``(group, command id, is a write)`` -> handler."""
        routes: dict[Route, Handler] = {
            (GROUP_OS, OS_ECHO, True): self._os_echo,
            (GROUP_OS, OS_RESET, True): self._os_reset,
            (GROUP_OS, OS_MCUMGR_PARAMS, False): self._os_params,
            (GROUP_FILE, FILE_UPLOAD, True): self.models.file_upload,
            (GROUP_FILE, FILE_STATUS, False): self.models.file_status,
            (GROUP_FILE, FILE_HASH, False): self.models.file_hash,
            (GROUP_IMAGE, IMAGE_STATE, False): self.images.read_state,
            (GROUP_IMAGE, IMAGE_STATE, True): self.images.write_state,
            (GROUP_IMAGE, IMAGE_UPLOAD, True): self.images.upload_chunk,
            (GROUP_IMAGE, IMAGE_ERASE, True): self.images.erase,
            (GROUP_EDGERT, CMD_INFO, False): lambda b: self.info(),
            (GROUP_EDGERT, CMD_ACTIVATE, True): self.models.activate,
            (GROUP_EDGERT, CMD_ROLLBACK, True): self.models.rollback,
            (GROUP_EDGERT, CMD_INVOKE, True): self.runner.invoke,
        }
        if self.tensor_io:
            routes[(GROUP_EDGERT, CMD_TENSOR_WRITE, True)] = self.runner.tensor_write
            routes[(GROUP_EDGERT, CMD_TENSOR_READ, False)] = self.runner.tensor_read
        return routes

    @property
    def pts(self) -> str:
        """The current pseudo-terminal device the :attr:`port` symlink points to."""
        return self.line.pts

    @property
    def store(self) -> FlashStore:
        """The flash."""
        assert self._store is not None
        return self._store

    def start(self) -> Simulator:
        """Open the pty and serve it in a background thread."""
        self.line.open()
        self.line.tx = bytearray(_BOOT_BANNER if self.faults.noise else b"")
        self._stop.clear()
        self._thread = threading.Thread(target=self.line.serve, args=(self._stop, self._receive), name="edgert-sim",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the pty and the flash file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.line.close()
        if self._store is not None:
            self._store.close()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        """Delete the simulator's own directory (the port symlink, and the flash file when it was temporary)."""
        try:
            shutil.rmtree(self._tmp)
        except FileNotFoundError:
            pass
        except OSError as e:  # cleanup must not mask why the simulator stopped
            log.warning("could not remove %s: %s", self._tmp, e)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        """The INFO reply's content (also used by the CLI's ``--json``)."""
        rec = self.store.record
        active = self.models.active
        body = {
            "active": active.summary() if active else None,
            "previous": rec.previous.summary() if rec.previous else None,
            "slot_size": self.slot_size,
            "ram": self.ram,
            "target": self.target.name,
            "invoke": True,
            "sign": self.require_signature,
        }
        if self.tensor_io:
            body.update(tensor_io=True, kernels=KERNELS)
            if active is None:
                body["arena_used"] = 0
            else:
                arena = self.runner.arena_used(active)
                if arena is not None:
                    body["arena_used"] = arena
        return body

    # -- bytes in, replies out ---------------------------------------------------------
    def _receive(self, data: bytes) -> None:
        """What the line received, through the byte faults and the SMP server."""
        f = self.faults
        start = self.stats["rx_bytes"]
        end = start + len(data)
        self.stats["rx_bytes"] = end
        cut = next((n for n in f.disconnect_at if start <= n < end), None)
        if cut is not None:
            data = data[: cut - start]
        data = f.corrupt(data, start)
        if f.silent_at is not None and end > f.silent_at:
            data = data[: max(0, f.silent_at - start)]
        for packet in self.smp.requests(data):
            self._dispatch(packet)
        # After a power cut this is the new boot's decoder, which starts counting afresh.
        self.stats["bad_frames"] = self.smp.decoder.errors
        if cut is not None:
            f.disconnect_at.remove(cut)
            log.info("sim: disconnect at byte %d", self.stats["rx_bytes"])
            self.stats["disconnects"] += 1
            self.line.hang_up()
            self.smp.decoder.reset()

    def _dispatch(self, packet: bytes) -> None:
        if self.faults.silent_at is not None and self.stats["rx_bytes"] > self.faults.silent_at:
            return
        try:
            answer = self.smp.answer(packet)
        except PowerLoss as e:
            log.info("sim: %s; rebooting", e)
            self._power_cut()
            self.line.tx = bytearray(_BOOT_BANNER)  # what was queued died with the power
            return
        if answer is None:
            return
        head, out = answer
        if self.faults.noise:
            self.line.tx += f"[{time.monotonic():012.6f}] <dbg> smp: group {head['group']} id {head['id']}\r\n".encode()
        self.line.tx += encode_frame(out)
        if self._reboot_pending:
            self._reboot_pending = False
            try:
                self._reboot()
            except PowerLoss:
                self._power_cut()

    def _power_cut(self) -> None:
        """A flash write was torn: boot again from what the flash holds."""
        self.faults.powerloss_at = None  # one cut per plan
        self.stats["reboots"] += 1
        self._boot()

    # -- OS group --------------------------------------------------------------------------
    def _os_echo(self, body: dict) -> dict:
        return {"r": str(body.get("d", ""))}

    def _os_reset(self, body: dict) -> dict:
        # Zephyr answers first and resets after the reply is sent: _dispatch calls _reboot once it is queued.
        self._reboot_pending = True
        return {}

    def _reboot(self) -> None:
        """Reset: apply MCUboot's swap/revert rules to the image slots, then boot."""
        self.images.reset()
        self.stats["reboots"] += 1
        self._boot()
        self.line.tx += _BOOT_BANNER

    def _os_params(self, body: dict) -> dict:
        return {"buf_size": self.buf_size, "buf_count": self.buf_count}


def describe(sim: Simulator) -> dict[str, Any]:
    """The ``--json`` object announcing a running simulator (``edgert device simulate``)."""
    return {
        "port": sim.port,
        "pts": sim.pts,
        "target": sim.target.name,
        "baudrate": sim.baudrate,
        "flash": str(sim.flash_path),
        "slot_size": sim.slot_size,
        "ram": sim.ram,
        "sign": sim.require_signature,
    }
