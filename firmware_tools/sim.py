"""An emulated Zephyr board on a real pseudo-terminal, speaking SMP serial (``python -m firmware_tools.sim``).

The simulator owns the master side of a pty; hosts open the slave (through a
stable symlink, :attr:`Simulator.port`) with pyserial like any
``/dev/ttyACM0``. Bytes are paced at the configured line rate in both
directions (a token bucket per direction, full duplex), so throughput and
timeouts behave like a real UART. Handlers implement the OS, Image and File
groups and the edgert group (PROTOCOL.md) on a file-backed flash
(:mod:`firmware_tools.sim_store`); INVOKE runs the real TFLite Micro
interpreter (``edgert.runtime.micro.run_micro``) under the profile's RAM, on
inline inputs or on inputs staged with TENSOR_WRITE, and outputs too large for
one reply are read with TENSOR_READ (PROTOCOL.md section 4).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import logging
import os
import pty
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgert.errors import EdgertError
from firmware_tools.cli import add_simulator_arguments
from firmware_tools.errors import SignatureError
from firmware_tools.framing import FrameDecoder, encode_frame
from firmware_tools.protocol import (
    CMD_ACTIVATE,
    CMD_INFO,
    CMD_INVOKE,
    CMD_ROLLBACK,
    CMD_TENSOR_READ,
    CMD_TENSOR_WRITE,
    ERR_BAD_INPUT,
    ERR_HASH_MISMATCH,
    ERR_INVOKE_FAILED,
    ERR_NO_MODEL,
    ERR_NO_PREVIOUS,
    ERR_NOT_SUPPORTED,
    ERR_SIGNATURE_INVALID,
    ERR_TOO_LARGE,
    FILE_HASH,
    FILE_STATUS,
    FILE_UPLOAD,
    FS_ERR,
    GROUP_EDGERT,
    GROUP_FILE,
    GROUP_IMAGE,
    GROUP_OS,
    IMAGE_ERASE,
    IMAGE_STAGED_NAME,
    IMAGE_STATE,
    IMAGE_UPLOAD,
    MGMT_ERR,
    OP_READ,
    OP_READ_RSP,
    OP_WRITE,
    OP_WRITE_RSP,
    OS_ECHO,
    OS_MCUMGR_PARAMS,
    OS_RESET,
    STAGED_NAME,
    make_packet,
    parse_packet,
)
from firmware_tools.sim_store import RECORD_AREA, Entry, FlashStore, PowerLoss

__all__ = ["Faults", "Simulator", "DEFAULT_BUF_SIZE", "DEFAULT_BUF_COUNT", "IMAGE_OVERHEAD", "describe", "run", "main"]

log = logging.getLogger("edgert.firmware.sim")

#: The simulated CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE / _COUNT.
DEFAULT_BUF_SIZE = 2048
DEFAULT_BUF_COUNT = 4
#: Room for the MCUboot header and TLVs in an image slot on top of a model slot.
IMAGE_OVERHEAD = 4096
#: Most bytes a direction may move at once after being idle (a UART FIFO plus scheduler slack), in seconds of line time.
_BURST_SECONDS = 0.01
_BOOT_BANNER = b"*** Booting Zephyr OS build v3.7.0 ***\r\n[00:00:00.000,000] <inf> edgert_sim: SMP server ready\r\n"
#: The interpreter INVOKE runs: the tflite-micro wheel, TFLM with its reference kernels (INFO "kernels").
KERNELS = "reference"
#: SMP serial frame bytes around a packet in the device buffer: 2-byte length + 2-byte CRC16.
_FRAME_OVERHEAD = 4


@dataclass
class Faults:
    """Fault injection plan (PROTOCOL.md section 7). Byte positions count received bytes from 0."""

    flip: list[int] = field(default_factory=list)
    drop: list[tuple[int, int]] = field(default_factory=list)
    dup: list[tuple[int, int]] = field(default_factory=list)
    drop_frame: set[int] = field(default_factory=set)
    dup_frame: set[int] = field(default_factory=set)
    silent_at: int | None = None
    disconnect_at: list[int] = field(default_factory=list)
    powerloss_at: int | None = None
    wrong_hash: bool = False
    noise: bool = False

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...]) -> "Faults":
        """Build a plan from ``--fault`` strings (``flip@N``, ``drop@N:L``, ``powerloss@N``, ``wrong-hash``...).

        Raises:
            InputDataError: A spec that is not understood.
        """
        from edgert.errors import InputDataError

        f = cls()
        for spec in specs:
            kind, _, arg = spec.partition("@")
            try:
                n, _, length = arg.partition(":")
                if kind == "flip":
                    f.flip.append(int(n))
                elif kind in ("drop", "dup"):
                    getattr(f, kind).append((int(n), int(length or 1)))
                elif kind == "drop-frame":
                    f.drop_frame.add(int(n))
                elif kind == "dup-frame":
                    f.dup_frame.add(int(n))
                elif kind == "silent":
                    f.silent_at = int(n or 0)
                elif kind == "disconnect":
                    f.disconnect_at.append(int(n))
                elif kind == "powerloss":
                    f.powerloss_at = int(n)
                elif kind == "wrong-hash":
                    f.wrong_hash = True
                elif kind == "noise":
                    f.noise = True
                else:
                    raise ValueError(kind)
            except ValueError:
                raise InputDataError(f"unknown fault {spec!r}",
                                     "use flip@N, drop@N:L, dup@N:L, drop-frame@K, dup-frame@K, silent@N, "
                                     "disconnect@N, powerloss@N, wrong-hash or noise") from None
        return f


@dataclass
class _Upload:
    held: int = 0
    total: int = 0


@dataclass
class _Loaded:
    """The active model as the simulated runner holds it, with its staged inputs and last outputs.

    RAM state: ACTIVATE, ROLLBACK and a reboot drop it, so a stale tensor is never reused.
    """

    sha: bytes
    data: bytes
    model: Any
    inputs: list[bytearray]
    held: list[int]
    outputs: list[bytes] | None = None
    _arena: int | None = None
    _measuring: bool = False

    @classmethod
    def load(cls, sha: bytes, data: bytes) -> "_Loaded":
        """Read the model's tensors (raises InvalidModelError for a file that is not a model)."""
        from edgert.model import read_model

        model = read_model(data)
        return cls(sha, data, model, [bytearray(t.nbytes) for t in model.inputs], [0] * len(model.inputs))

    def reset(self) -> None:
        """After any INVOKE the staged-byte counters start over and old outputs are gone."""
        self.held = [0] * len(self.inputs)
        self.outputs = None

    def measure_arena(self) -> None:
        """Measure in the background the arena TFLite Micro really allocates (0 when TFLM cannot load the model).

        Started at the model's first INVOKE: a child process per INFO would stall the line, and a model
        that is never run costs nothing. Until it is known, INFO leaves ``arena_used`` out.
        """
        if self._arena is not None or self._measuring:
            return
        self._measuring = True

        def measure() -> None:
            from edgert.runtime.micro import micro_arena_bytes

            try:
                self._arena = micro_arena_bytes(self.data)
            except EdgertError as e:
                log.info("sim: no arena figure for the active model: %s", e)
                self._arena = 0

        threading.Thread(target=measure, name="edgert-sim-arena", daemon=True).start()

    @property
    def arena_used(self) -> int | None:
        """The measured arena in bytes, None while unknown."""
        return self._arena


def _uint(value: Any) -> bool:
    """A CBOR unsigned integer (cbor2 decodes true/false as bool, an int subclass)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _upload_request(body: dict, limit: int) -> tuple[int, bytes, int | None] | dict:
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
            from edgert.errors import InputDataError

            raise InputDataError("--require-signature needs at least one --trust-key", "pass the public key PEM the device trusts")
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
        self._store: FlashStore | None = None
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        try:
            self._boot()
        except BaseException:
            self._remove_tmp()
            raise

    # -- lifecycle --------------------------------------------------------------------
    def _boot(self) -> None:
        """Power on: read flash, forget RAM state."""
        if self._store is not None:
            self._store.close()
        self._store = FlashStore(self.flash_path, self.slot_size, self.slot_size + IMAGE_OVERHEAD,
                                 powerloss_at=self.faults.powerloss_at)
        if self._store.fresh:
            self._factory_image()
        self.faults.powerloss_at = self._store.powerloss_at
        self._staged: _Upload | None = None
        self._staged_slot = 0
        self._reboot_pending = False
        self._img_upload: _Upload | None = None
        self._decoder = FrameDecoder()
        self._model_cache: _Loaded | None = None
        rec = self._store.record
        # A record naming a slot whose bytes do not hash to it cannot happen with the write order used;
        # checking anyway means a simulated flash that was tampered with never runs a wrong model.
        self._active_ok = rec.active is None or self._store.entry_ok(rec.active)
        self.boots.append({"active": rec.active.sha.hex() if rec.active else None, "intact": self._active_ok,
                           "seq": rec.seq})

    def _factory_image(self) -> None:
        """A fresh board ships with a (tiny, unsigned) firmware image in image slot 0, like any MCUboot device."""
        from firmware_tools.signing import make_image

        image = make_image(b"edgert simulated firmware " + self.target.name.encode())
        powerloss, self._store.powerloss_at = self._store.powerloss_at, None  # factory programming, not a step
        self._store.write(self._store.image_offsets[0], image)
        self._store.steps, self._store.powerloss_at = 0, powerloss

    def _open_pty(self) -> None:
        self._master, self._slave = pty.openpty()
        # Raw mode on our own slave handle too: until a host opens the port the line discipline must not echo/cook.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self.port)  # atomic: a host reopening the path never sees it missing

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    @property
    def pts(self) -> str:
        """The current pseudo-terminal device the :attr:`port` symlink points to."""
        return os.path.realpath(self.port)

    @property
    def store(self) -> FlashStore:
        """The flash."""
        assert self._store is not None
        return self._store

    def start(self) -> "Simulator":
        """Open the pty and serve it in a background thread."""
        self._open_pty()
        self._tx = bytearray(_BOOT_BANNER if self.faults.noise else b"")
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="edgert-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the pty and the flash file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_pty()
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

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        """The INFO reply's content (also used by the CLI's ``--json``)."""
        rec = self.store.record
        active = rec.active if self._active_ok else None
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
            loaded = self._model_cache
            if active is None:
                body["arena_used"] = 0
            elif loaded is not None and loaded.sha == active.sha and loaded.arena_used is not None:
                body["arena_used"] = loaded.arena_used
        return body

    # -- the line ---------------------------------------------------------------------
    def _serve(self) -> None:
        rate = self.baudrate / 10.0
        burst = max(64.0, rate * _BURST_SECONDS)
        rx_tokens = tx_tokens = burst
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if rate:
                rx_tokens = min(burst, rx_tokens + (now - last) * rate)
                tx_tokens = min(burst, tx_tokens + (now - last) * rate)
            last = now
            if self._tx and (not rate or tx_tokens >= 1):
                n = len(self._tx) if not rate else min(len(self._tx), int(tx_tokens))
                try:
                    written = os.write(self._master, bytes(self._tx[:n]))
                except BlockingIOError:
                    written = 0
                except OSError:
                    written = n  # nobody reads the port: the bytes are lost, as on a real UART
                del self._tx[:written]
                self.stats["tx_bytes"] += written
                tx_tokens -= written
            want = 65536 if not rate else int(rx_tokens)
            if want >= 1:
                timeout = 0.05 if not self._tx else (0.001 if rate else 0.0)
                try:
                    ready, _, _ = select.select([self._master], [], [], timeout)
                except (OSError, ValueError):
                    ready = []
                if ready:
                    try:
                        data = os.read(self._master, want)
                    except BlockingIOError:
                        data = b""
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if data:
                        rx_tokens -= len(data)
                        self._receive(data)
            else:
                time.sleep(max(0.0002, (1 - rx_tokens) / rate))

    def _receive(self, data: bytes) -> None:
        f = self.faults
        start = self.stats["rx_bytes"]
        end = start + len(data)
        self.stats["rx_bytes"] = end
        cut = next((n for n in f.disconnect_at if start <= n < end), None)
        if cut is not None:
            data = data[: cut - start]
        data = self._byte_faults(data, start)
        if f.silent_at is not None and end > f.silent_at:
            data = data[: max(0, f.silent_at - start)]
        for packet in self._decoder.feed(data):
            index = self.stats["frames"]
            self.stats["frames"] += 1
            if index in f.drop_frame:
                continue
            for _ in range(2 if index in f.dup_frame else 1):
                self._dispatch(packet)
        self.stats["bad_frames"] = self._decoder.errors
        if cut is not None:
            f.disconnect_at.remove(cut)
            self._disconnect()

    def _byte_faults(self, data: bytes, start: int) -> bytes:
        f = self.faults
        if not (f.flip or f.drop or f.dup):
            return data
        out = bytearray()
        for i, b in enumerate(data):
            pos = start + i
            if pos in f.flip:
                b ^= 0x01
            if any(n <= pos < n + length for n, length in f.drop):
                continue
            out.append(b)
            for n, length in f.dup:
                if pos == n + length - 1:
                    out += data[max(0, n - start): i + 1]
        return bytes(out)

    def _disconnect(self) -> None:
        """Hang up like a USB CDC device re-enumerating: the host's port fails, the path comes back."""
        log.info("sim: disconnect at byte %d", self.stats["rx_bytes"])
        self.stats["disconnects"] += 1
        self._close_pty()
        self._tx = bytearray()
        self._decoder.reset()
        time.sleep(0.05)
        self._open_pty()

    def _dispatch(self, packet: bytes) -> None:
        if self.faults.silent_at is not None and self.stats["rx_bytes"] > self.faults.silent_at:
            return
        try:
            head, body = parse_packet(packet)
        except EdgertError:
            self.stats["bad_frames"] += 1
            return
        if head["op"] not in (OP_READ, OP_WRITE) or len(packet) + _FRAME_OVERHEAD > self.buf_size:
            return  # not a request / larger than the device's buffer: a real board drops it
        try:
            reply = self._handle(head, body)
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            # A request with fields of the wrong type: firmware answers EINVAL, it does not crash.
            log.info("sim: malformed request (group %d id %d): %s", head["group"], head["id"], e)
            reply = {"rc": MGMT_ERR.EINVAL}
        except PowerLoss as e:
            log.info("sim: %s; rebooting", e)
            self.faults.powerloss_at = None  # one cut per plan
            self.stats["reboots"] += 1
            self._boot()
            self._tx = bytearray(_BOOT_BANNER)  # what was queued died with the power
            return
        if reply is None:
            return
        out = make_packet(head["op"] + 1, head["group"], head["id"], head["seq"], reply, version=head["version"])
        if self.faults.noise:
            self._tx += f"[{time.monotonic():012.6f}] <dbg> smp: group {head['group']} id {head['id']}\r\n".encode()
        self._tx += encode_frame(out)
        if self._reboot_pending:
            self._reboot_pending = False
            try:
                self._reboot()
            except PowerLoss:
                self.faults.powerloss_at = None
                self.stats["reboots"] += 1
                self._boot()

    # -- handlers --------------------------------------------------------------------------
    def _handle(self, head: dict, body: dict) -> dict | None:
        group, cmd, write = head["group"], head["id"], head["op"] == OP_WRITE
        routes = {
            (GROUP_OS, OS_ECHO, True): self._os_echo,
            (GROUP_OS, OS_RESET, True): self._os_reset,
            (GROUP_OS, OS_MCUMGR_PARAMS, False): self._os_params,
            (GROUP_FILE, FILE_UPLOAD, True): self._file_upload,
            (GROUP_FILE, FILE_STATUS, False): self._file_status,
            (GROUP_FILE, FILE_HASH, False): self._file_hash,
            (GROUP_IMAGE, IMAGE_STATE, False): self._image_state,
            (GROUP_IMAGE, IMAGE_STATE, True): self._image_state_write,
            (GROUP_IMAGE, IMAGE_UPLOAD, True): self._image_upload,
            (GROUP_IMAGE, IMAGE_ERASE, True): self._image_erase,
            (GROUP_EDGERT, CMD_INFO, False): lambda b: self.info(),
            (GROUP_EDGERT, CMD_ACTIVATE, True): self._activate,
            (GROUP_EDGERT, CMD_ROLLBACK, True): self._rollback,
            (GROUP_EDGERT, CMD_INVOKE, True): self._invoke,
        }
        if self.tensor_io:
            routes[(GROUP_EDGERT, CMD_TENSOR_WRITE, True)] = self._tensor_write
            routes[(GROUP_EDGERT, CMD_TENSOR_READ, False)] = self._tensor_read
        handler = routes.get((group, cmd, write))
        if handler is None:
            # Unknown edgert command: the group's NOT_SUPPORTED; anything else: SMP's generic ENOTSUP.
            return self._err(GROUP_EDGERT, ERR_NOT_SUPPORTED) if group == GROUP_EDGERT else {"rc": MGMT_ERR.ENOTSUP}
        return handler(body)

    @staticmethod
    def _err(group: int, rc: int) -> dict:
        return {"err": {"group": group, "rc": rc}}

    # OS
    def _os_echo(self, body: dict) -> dict:
        return {"r": str(body.get("d", ""))}

    def _os_reset(self, body: dict) -> dict:
        # Zephyr answers first and resets after the reply is sent: _dispatch calls _reboot once it is queued.
        self._reboot_pending = True
        return {}

    def _reboot(self) -> None:
        """Reset: apply MCUboot's swap/revert rules to the image slots, then boot."""
        state = self.store.image_state()
        if state.get("pending"):
            self._swap_images()
            state = {"pending": False, "permanent": state.get("permanent", False),
                     "confirmed": state.get("permanent", False), "swapped": not state.get("permanent", False)}
            self.store.set_image_state(state)
        elif state.get("swapped") and not state.get("confirmed"):
            self._swap_images()  # the test image was not confirmed: MCUboot reverts
            self.store.set_image_state({"pending": False, "permanent": False, "confirmed": True, "swapped": False})
        self.stats["reboots"] += 1
        self._boot()
        self._tx += _BOOT_BANNER

    def _os_params(self, body: dict) -> dict:
        return {"buf_size": self.buf_size, "buf_count": self.buf_count}

    # File
    def _file_upload(self, body: dict) -> dict:
        if body.get("name") != STAGED_NAME:
            return self._err(GROUP_FILE, FS_ERR.FILE_INVALID_NAME)  # this board stores models only
        request = _upload_request(body, self.slot_size)
        if isinstance(request, dict):
            return request
        off, data, total = request
        if total is not None:
            rec = self.store.record
            slot = 1 - rec.active.slot if rec.active else 0
            if rec.previous is not None and rec.previous.slot == slot:
                # The previous model is about to be overwritten: forget it durably first.
                self.store.commit(rec.active, None)
            self._staged = _Upload(0, total)
            self._staged_slot = slot
        return self._upload_chunk(self._staged, self.store.slot_offsets[self._staged_slot], off, data)

    def _upload_chunk(self, up: _Upload | None, base: int, off: int, data: bytes) -> dict:
        """Store one chunk of an upload at ``base + off``; a chunk not at the held offset gets it back to re-sync."""
        if up is None or off != up.held:
            return {"off": up.held if up else 0}
        if up.held + len(data) > up.total:
            return {"rc": MGMT_ERR.EINVAL}
        self.store.write(base + off, data)
        up.held += len(data)
        return {"off": up.held}

    def _file_status(self, body: dict) -> dict:
        if body.get("name") != STAGED_NAME:
            return self._err(GROUP_FILE, FS_ERR.FILE_NOT_FOUND)
        return {"len": self._staged.held if self._staged else 0}

    def _staged_bytes(self, off: int = 0, n: int | None = None) -> bytes:
        held = self._staged.held if self._staged else 0
        n = held - off if n is None else min(n, held - off)
        return self.store.read(self.store.slot_offsets[self._staged_slot] + off, max(0, n)) if held else b""

    def _file_hash(self, body: dict) -> dict:
        if body.get("name") != STAGED_NAME or self._staged is None:
            return self._err(GROUP_FILE, FS_ERR.FILE_NOT_FOUND)
        if body.get("type", "sha256") != "sha256":
            return self._err(GROUP_FILE, FS_ERR.CHECKSUM_HASH_NOT_FOUND)
        off = int(body.get("off", 0) or 0)
        data = self._staged_bytes(off, body.get("len"))
        digest = hashlib.sha256(data).digest()
        if self.faults.wrong_hash:
            digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
        return {"type": "sha256", "off": off, "len": len(data), "output": digest}

    # edgert group
    def _activate(self, body: dict) -> dict:
        name, sha = body.get("name"), body.get("sha")
        if not isinstance(sha, bytes) or len(sha) != 32:
            return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
        if name == IMAGE_STAGED_NAME:
            return self._activate_image(sha)
        if name != STAGED_NAME or self._staged is None:
            return self._err(GROUP_EDGERT, ERR_NO_MODEL)
        if self.require_signature:
            return self._err(GROUP_EDGERT, ERR_SIGNATURE_INVALID)
        data = self._staged_bytes()
        if self._staged.held != self._staged.total or not self._hash_ok(data, sha):
            return self._err(GROUP_EDGERT, ERR_HASH_MISMATCH)
        entry = Entry(self._staged_slot, len(data), sha, os.path.basename(name))
        return self._switch(entry)

    def _hash_ok(self, data: bytes, sha: bytes) -> bool:
        digest = hashlib.sha256(data).digest()
        if self.faults.wrong_hash:
            digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
        return digest == sha

    def _switch(self, entry: Entry) -> dict:
        rec = self.store.record
        self.store.commit(entry, rec.active if self._active_ok else None)
        self._staged = None
        self._active_ok = True
        self._model_cache = None
        return {"active": entry.summary()}

    def _activate_image(self, sha: bytes) -> dict:
        from firmware_tools.signing import image_payload, verify_image

        up = self._img_upload
        if up is None or up.held != up.total:
            return self._err(GROUP_EDGERT, ERR_NO_MODEL)
        image = self.store.read(self.store.image_offsets[1], up.total)
        try:
            payload = verify_image(image, self.trust_keys) if self.require_signature else image_payload(image)
        except SignatureError:
            return self._err(GROUP_EDGERT, ERR_SIGNATURE_INVALID)
        if len(payload) > self.slot_size:
            return self._err(GROUP_EDGERT, ERR_TOO_LARGE)
        if not self._hash_ok(payload, sha):
            return self._err(GROUP_EDGERT, ERR_HASH_MISMATCH)
        rec = self.store.record
        slot = 1 - rec.active.slot if rec.active else 0
        if rec.previous is not None and rec.previous.slot == slot:
            self.store.commit(rec.active, None)
        self.store.write(self.store.slot_offsets[slot], payload)
        self._staged_slot = slot
        return self._switch(Entry(slot, len(payload), sha, IMAGE_STAGED_NAME))

    def _rollback(self, body: dict) -> dict:
        rec = self.store.record
        if rec.previous is None or not self.store.entry_ok(rec.previous):
            return self._err(GROUP_EDGERT, ERR_NO_PREVIOUS)
        self.store.commit(rec.previous, rec.active)
        self._staged = None
        self._model_cache = None
        return {"active": rec.previous.summary()}

    def _loaded(self) -> "_Loaded | dict":
        """The active model loaded for INVOKE, or the error reply (NO_MODEL, INVOKE_FAILED)."""
        rec = self.store.record
        if rec.active is None or not self._active_ok:
            return self._err(GROUP_EDGERT, ERR_NO_MODEL)
        if self._model_cache is None or self._model_cache.sha != rec.active.sha:
            try:
                self._model_cache = _Loaded.load(rec.active.sha, self.store.slot_data(rec.active.slot, rec.active.size))
            except EdgertError:
                return self._err(GROUP_EDGERT, ERR_INVOKE_FAILED)
        return self._model_cache

    def _fits(self, reply: dict) -> bool:
        """Whether a reply (header + CBOR) fits the device's SMP buffer."""
        return _FRAME_OVERHEAD + len(make_packet(OP_WRITE_RSP, GROUP_EDGERT, CMD_INVOKE, 0, reply)) <= self.buf_size

    def _invoke(self, body: dict) -> dict:
        import numpy as np

        from edgert.runtime.micro import run_micro

        loaded = self._loaded()
        if isinstance(loaded, dict):
            return loaded
        raw = body.get("inputs")
        staged = raw is None and self.tensor_io
        held, inputs = loaded.held, [bytes(b) for b in loaded.inputs]
        loaded.reset()  # success or not, the next INVOKE starts from fresh inputs
        if staged:
            if held != [len(b) for b in inputs]:
                return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
            raw = inputs
        if not isinstance(raw, list) or len(raw) != len(loaded.model.inputs):
            return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
        arrays = []
        for spec, b in zip(loaded.model.inputs, raw):
            if not isinstance(b, bytes) or len(b) != spec.nbytes:
                return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
            arrays.append(np.frombuffer(b, dtype=spec.dtype).reshape(spec.shape))
        t0 = time.perf_counter()
        try:
            outputs = run_micro(loaded.data, arrays, arena_size=self.ram)
        except EdgertError as e:
            log.info("sim: INVOKE failed: %s", e)
            return self._err(GROUP_EDGERT, ERR_INVOKE_FAILED)
        us = int((time.perf_counter() - t0) * 1e6)
        self.stats["invokes"] += 1
        loaded.measure_arena()
        loaded.outputs = [np.ascontiguousarray(o).tobytes() for o in outputs]
        if not self.tensor_io:
            return {"outputs": loaded.outputs, "us": us}
        # The simulator counts no instructions: "insns" is left out, as PROTOCOL.md allows.
        reply = {"us": us, "sizes": [len(o) for o in loaded.outputs], "outputs": loaded.outputs}
        if not self._fits(reply):
            del reply["outputs"]  # the host reads them with TENSOR_READ
        return reply

    def _tensor_write(self, body: dict) -> dict:
        loaded = self._loaded()
        if isinstance(loaded, dict):
            return loaded
        index, off, data = body.get("index"), body.get("off"), body.get("data")
        if not (_uint(index) and _uint(off) and isinstance(data, bytes)) or index >= len(loaded.inputs):
            return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
        if off == 0:
            loaded.held[index] = 0  # offset 0 restarts this input
        elif off != loaded.held[index]:
            return {"off": loaded.held[index]}  # store nothing: the host re-syncs from here
        tensor = loaded.inputs[index]
        if len(data) > len(tensor) - off:
            return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
        tensor[off:off + len(data)] = data
        loaded.held[index] = off + len(data)
        return {"off": loaded.held[index]}

    def _tensor_read(self, body: dict) -> dict:
        loaded = self._loaded()
        if isinstance(loaded, dict):
            return loaded
        index, off = body.get("index"), body.get("off", 0)
        if (not (_uint(index) and _uint(off)) or loaded.outputs is None or index >= len(loaded.outputs)
                or off > len(loaded.outputs[index])):
            return self._err(GROUP_EDGERT, ERR_BAD_INPUT)
        tensor = loaded.outputs[index]
        room = self.buf_size - _FRAME_OVERHEAD - len(make_packet(OP_READ_RSP, GROUP_EDGERT, CMD_TENSOR_READ, 0,
                                                                 {"off": off, "len": len(tensor), "data": b""}))
        room -= 4  # the data's CBOR length head grows from 1 byte to at most 5
        return {"off": off, "len": len(tensor), "data": tensor[off:off + max(0, room)]}

    # Image group
    def _image_entries(self) -> list[dict]:
        from firmware_tools.signing import image_hash

        state = self.store.image_state()
        out = []
        for slot in (0, 1):
            if slot == 1 and self._img_upload is not None and self._img_upload.held != self._img_upload.total:
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

    def _image_state(self, body: dict) -> dict:
        return {"images": self._image_entries(), "splitStatus": 0}

    def _image_state_write(self, body: dict) -> dict:
        digest, confirm = body.get("hash"), bool(body.get("confirm", False))
        state = self.store.image_state()
        entries = {e["hash"]: e for e in self._image_entries()}
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
        return self._image_state({})

    def _image_len(self, slot: int) -> int:
        from firmware_tools.signing import image_size

        return image_size(self.store.image_data(slot))

    def _swap_images(self) -> None:
        a, b = self.store.image_data(0), self.store.image_data(1)
        self.store.write(self.store.image_offsets[0], b)
        self.store.write(self.store.image_offsets[1], a)

    def _image_upload(self, body: dict) -> dict:
        request = _upload_request(body, self.store.image_slot_size)
        if isinstance(request, dict):
            return request
        off, data, total = request
        if total is not None:
            self._img_upload = _Upload(0, total)
            state = self.store.image_state()
            if state.get("pending"):
                state["pending"] = state["permanent"] = False
                self.store.set_image_state(state)
        return self._upload_chunk(self._img_upload, self.store.image_offsets[1], off, data)

    def _image_erase(self, body: dict) -> dict:
        self.store.write(self.store.image_offsets[1], b"\xff" * self.store.image_slot_size)
        self._img_upload = None
        return {}


# ---- command line (python -m firmware_tools.sim, edgert device simulate) ----------------------

def describe(sim) -> dict[str, Any]:
    """The ``--json`` object announcing a running simulator."""
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


def run(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> int:
    """Start the simulator, announce it with ``emit``, serve until SIGINT/SIGTERM."""
    sim = Simulator(args.target, flash_path=args.flash, baudrate=args.baud, faults=Faults.parse(args.fault),
                    require_signature=args.require_signature, trust_keys=args.trust_key,
                    slot_size=args.slot_size, ram=args.ram)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sim.start()
        emit(describe(sim))
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m firmware_tools.sim``."""
    import logging

    from edgert.errors import EdgertError

    p = argparse.ArgumentParser(prog="python -m firmware_tools.sim", description="An emulated SMP board on a pseudo-terminal.")
    add_simulator_arguments(p)
    p.add_argument("--json", action="store_true", help="announce the port as one JSON object on stdout")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)

    def emit(info: dict[str, Any]) -> None:
        if args.json:
            sys.stdout.write(json.dumps(info) + "\n")
        else:
            sys.stdout.write(f"{info['port']}\n")
            sys.stderr.write(f"simulating {info['target']} on {info['port']} ({info['pts']}), {info['baudrate']} baud; "
                             "Ctrl-C to stop\n")
        sys.stdout.flush()

    try:
        return run(args, emit)
    except EdgertError as e:
        sys.stderr.write(f"simulate: error: {e}\n")
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
