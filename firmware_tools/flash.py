"""Put a model on a device over SMP serial: upload, resume, verify on the device, activate.

The flow (PROTOCOL.md has the wire details):

1. INFO (edgert group) and MCUmgr params (OS group): what the device holds and
   how big a request it takes. A model the device cannot hold (slot size, RAM,
   the ``--target`` profile) is refused here, before a byte of it is sent.
2. Upload with the File group to ``/edgert/staged.tflite`` in chunks that fill
   the device's buffer, keeping up to ``buf_count`` requests on the line so it
   never idles. A chunk the device did not take (damaged, dropped) is answered
   with the offset the device holds and re-sent from there; after a disconnect
   the host reopens the port, asks File status and resumes — only
   unacknowledged data is sent again.
3. File hash: the device's SHA-256 of what it stored must equal the host's.
4. ACTIVATE with the SHA-256: the device hashes the staged model again and
   switches atomically. Success is reported only when the device confirms the
   new active model's SHA-256 (and INFO agrees).

With ``sign_key`` the model is wrapped as a signed MCUboot image (imgtool) and
sent through the Image group to image slot 1 instead; ACTIVATE names ``img:1``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smp import file_management as smpfs
from smp import image_management as smpimg
from smp import os_management as smpos

from edgert.errors import EdgertError
from edgert.progress import report
from firmware_tools.errors import (
    DeviceRejectedError,
    DeviceSilentError,
    HashMismatchError,
    ModelTooLargeError,
    ProtocolError,
    SignatureError,
    TensorTooLargeError,
)
from firmware_tools.framing import encoded_size
from firmware_tools.link import DEFAULT_BAUDRATE, PortLost, SmpLink, Timeouts
from firmware_tools.protocol import (
    ERR_HASH_MISMATCH,
    ERR_SIGNATURE_INVALID,
    ERR_TOO_LARGE,
    GROUP_EDGERT,
    IMAGE_STAGED_NAME,
    OP_READ_RSP,
    OP_WRITE_RSP,
    STAGED_NAME,
    ActivateRequest,
    InfoRequest,
    InvokeRequest,
    RollbackRequest,
    TensorReadRequest,
    TensorWriteRequest,
    parse_packet,
    raise_for_error,
)

__all__ = [
    "DEFAULT_BUF_SIZE",
    "DEFAULT_BUF_COUNT",
    "MAX_WINDOW",
    "DeviceInfo",
    "FlashResult",
    "flash_model",
    "flash_many",
    "device_info",
    "read_info",
    "invoke",
    "InvokeResult",
    "invoke_request_size",
    "invoke_transfer",
    "INLINE",
    "STAGED",
    "INVOKE_SECONDS",
    "rollback",
    "connect",
    "device_arena",
]

log = logging.getLogger("edgert.firmware.flash")

#: Zephyr's default CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE when the device does not report MCUmgr params.
DEFAULT_BUF_SIZE = 384
#: Buffers assumed when the device does not report them: one request at a time.
DEFAULT_BUF_COUNT = 1
#: Most requests kept on the line at once. Two are enough to hide the reply round trip
#: and keep what a disconnect can lose to about one chunk.
MAX_WINDOW = 2
#: The next chunk is written this fraction of a chunk's wire time (plus PIPELINE_SLACK_S) after
#: the previous one has left the UART by the baud-rate estimate: the device's line may run a
#: little faster or slower than nominal, and a chunk queued too early is lost with the previous
#: one when the line drops (re-sent bytes stay within one chunk).
PIPELINE_MARGIN = 0.05
PIPELINE_SLACK_S = 0.001
#: Frame overhead inside the device buffer: 2-byte length + 2-byte CRC16.
_FRAME_OVERHEAD = 4
#: Spare bytes per chunk for CBOR integer growth (off/len up to 32 bits).
_CBOR_SLACK = 8


@dataclass(frozen=True)
class DeviceInfo:
    """What a device reports about itself (edgert INFO + MCUmgr params).

    Attributes:
        active: ``{"name", "size", "sha256"}`` of the running model, or None.
        previous: Same for the model ROLLBACK returns to, or None.
        slot_size: Largest model the device can store (bytes).
        ram: Bytes available for the tensor arena.
        target: The device's target profile name.
        invoke: Whether INVOKE is supported.
        sign: Whether the device requires signed images.
        buf_size: SMP buffer size (decoded frame) the device accepts.
        buf_count: SMP buffers the device has (requests it can queue).
        params_reported: Whether buf_size/buf_count came from the device (else defaults).
        tensor_io: Whether the device takes tensors in chunks (TENSOR_WRITE/TENSOR_READ), so an INVOKE
            larger than ``buf_size`` can be sent.
        kernels: The device's kernel set (``"cmsis-nn"``, ``"reference"``), or None when not reported.
        arena_used: Tensor arena bytes the active model really uses on the device, or None when not reported.
    """

    active: dict[str, Any] | None
    previous: dict[str, Any] | None
    slot_size: int
    ram: int
    target: str
    invoke: bool
    sign: bool
    buf_size: int = DEFAULT_BUF_SIZE
    buf_count: int = DEFAULT_BUF_COUNT
    params_reported: bool = False
    tensor_io: bool = False
    kernels: str | None = None
    arena_used: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "tensor_io": self.tensor_io,
            "kernels": self.kernels,
            "arena_used": self.arena_used,
            "active": self.active,
            "previous": self.previous,
            "slot_size": self.slot_size,
            "ram": self.ram,
            "target": self.target,
            "invoke": self.invoke,
            "sign": self.sign,
            "buf_size": self.buf_size,
            "buf_count": self.buf_count,
            "params_reported": self.params_reported,
        }


@dataclass
class FlashResult:
    """Outcome of flashing one port (the CLI's per-port ``--json`` entry).

    Attributes:
        port: The port URL.
        ok: True only when the device confirmed the new model's SHA-256 as active.
        bytes: Size of what was delivered (the model, or the signed image).
        seconds: Wall time of the whole flash.
        resumed_from: Offset the upload resumed from after an interruption (None if it never resumed).
        sha256: Hex SHA-256 of the model.
        sent_bytes: Payload bytes sent in this run (``bytes`` + ``resent_bytes`` - resumed-over bytes).
        resent_bytes: Payload bytes sent more than once (unacknowledged data re-sent).
        chunk_bytes: Payload bytes per upload request.
        window: Requests kept on the line at once.
        retries: Recoveries (timeouts, re-syncs, reconnects) during the upload.
        already_active: The device already ran this model; nothing was sent.
        signed: The model went as a signed MCUboot image.
        error: One line saying what failed (``ok`` False), else None.
    """

    port: str
    ok: bool = False
    bytes: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    sha256: str = ""
    sent_bytes: int = 0
    resent_bytes: int = 0
    chunk_bytes: int = 0
    window: int = 1
    retries: int = 0
    already_active: bool = False
    signed: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


def _summary(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    sha = entry.get("sha", b"")
    return {"name": entry.get("name"), "size": entry.get("size"), "sha256": bytes(sha).hex() if sha else None}


def connect(port: str | Any, *, baudrate: int = DEFAULT_BAUDRATE, timeouts: Timeouts | None = None) -> SmpLink:
    """Open an SMP link to ``port`` (a pyserial URL/path or an open port object)."""
    return SmpLink(port, baudrate=baudrate, timeouts=timeouts)


def read_info(link: SmpLink) -> DeviceInfo:
    """INFO + MCUmgr params over an open link.

    Raises:
        DeviceSilentError: The device does not answer.
        ProtocolError: The INFO reply lacks required fields.
    """
    try:
        body = link.request(lambda s: InfoRequest(sequence=s).BYTES, "INFO", reply_wire=300)
    except DeviceRejectedError as e:
        raise DeviceRejectedError(f"device on {link.url} does not implement edgert INFO ({e})",
                                  "flash firmware with the edgert SMP group (firmware_tools/PROTOCOL.md)",
                                  group=e.group, rc=e.rc) from None
    try:
        slot_size, ram = int(body["slot_size"]), int(body["ram"])
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(f"INFO reply from {link.url} lacks slot_size/ram: {sorted(body)}",
                            "the device firmware does not implement the edgert group (PROTOCOL.md)") from None
    params = link.request(lambda s: smpos.MCUMgrParametersReadRequest(sequence=s).BYTES, "MCUmgr params",
                          retries=1, check=False)
    reported = isinstance(params.get("buf_size"), int) and params["buf_size"] > 64
    return DeviceInfo(
        active=_summary(body.get("active")),
        previous=_summary(body.get("previous")),
        slot_size=slot_size,
        ram=ram,
        target=str(body.get("target", "")),
        invoke=bool(body.get("invoke", False)),
        sign=bool(body.get("sign", False)),
        buf_size=int(params["buf_size"]) if reported else DEFAULT_BUF_SIZE,
        buf_count=max(1, int(params.get("buf_count", 1))) if reported else DEFAULT_BUF_COUNT,
        params_reported=reported,
        tensor_io=body.get("tensor_io") is True,
        kernels=body["kernels"] if isinstance(body.get("kernels"), str) else None,
        arena_used=body["arena_used"] if isinstance(body.get("arena_used"), int) else None,
    )


def device_info(port: str | Any, *, baudrate: int = DEFAULT_BAUDRATE, timeouts: Timeouts | None = None) -> DeviceInfo:
    """Ask a device what it holds (opens and closes the port)."""
    with connect(port, baudrate=baudrate, timeouts=timeouts) as link:
        return read_info(link)


def _model_bytes(model: bytes | str | Path | Any) -> bytes:
    from edgert.model import read_model

    if hasattr(model, "data") and hasattr(model, "sha256"):
        return bytes(model.data)
    return bytes(read_model(model).data)


def device_arena(data: bytes, info: DeviceInfo) -> tuple[int | None, str]:
    """The tensor arena the model takes on this device, and where the figure comes from.

    The device names its target profile in INFO: the arena is planned for that profile's core and
    kernels (:func:`edgert.targets.tflm.target_arena`; a 64-bit host plan is too low on a Cortex-M55,
    whose CMSIS-NN kernels take Helium scratch buffers). A profile this host does not know falls back
    to the plan of the 64-bit ``tflite-micro`` build; a core or op without an arena model gives None
    (the check is skipped rather than decided on a low number).
    """
    from edgert.errors import TargetError
    from edgert.model import read_model
    from edgert.model.memory import plan_arena
    from edgert.targets import load_target

    model = read_model(data)
    try:
        profile = load_target(info.target) if info.target else None
    except TargetError:
        profile = None
    if profile is None or profile.runtime.interpreter != "tflm":
        return plan_arena(model).total_bytes, "planned for the 64-bit tflite-micro build"
    from edgert.targets.tflm import target_arena

    arena = target_arena(model, profile)
    if arena.bytes is None:
        log.warning("the tensor arena of this model on %s is unknown: the device's RAM check is skipped", profile.name)
    return arena.bytes, f"{arena.source} for {profile.name}"


def check_capacity(data: bytes, info: DeviceInfo, *, target: str | Any | None = None, payload_size: int | None = None) -> None:
    """Refuse a model the device cannot hold, before anything is sent.

    Args:
        data: The .tflite bytes.
        info: The device's INFO.
        target: Optional target profile name/path; the model must fit it (``edgert.fit.check_fit``).
        payload_size: Bytes that will land in the slot (a signed image is larger than the model).

    Raises:
        ModelTooLargeError: Larger than the slot, an arena larger than the device RAM, or not fitting the target.
    """
    size = len(data) if payload_size is None else payload_size
    if size > info.slot_size:
        raise ModelTooLargeError(
            f"model is {size} bytes but the device's model slot holds {info.slot_size}",
            "shrink the model (edgert optimize / convert for this target) or use a board with more flash",
            group=GROUP_EDGERT, rc=ERR_TOO_LARGE)
    if info.ram > 0:  # a device that does not run models may report 0
        arena, where = device_arena(data, info)
        if arena is not None and arena > info.ram:
            raise ModelTooLargeError(
                f"model needs a {arena}-byte tensor arena ({where}) but the device has {info.ram} bytes of RAM for it",
                "use a smaller model or a board with more RAM", group=GROUP_EDGERT, rc=ERR_TOO_LARGE)
    if target is not None:
        from edgert.fit import check_fit

        fit = check_fit(data, target)
        if not fit.fits:
            failed = ", ".join(c.name for c in fit.checks if not c.ok)
            name = getattr(target, "name", target)
            raise ModelTooLargeError(f"model does not fit target {name}: {failed}",
                                     f"see: edgert fit MODEL --target {name}", group=GROUP_EDGERT, rc=ERR_TOO_LARGE)


# ---- the upload engine ---------------------------------------------------------------------

@dataclass
class _Inflight:
    seq: int
    off: int
    end: int
    deadline: float
    wire: int


@dataclass
class _UploadStats:
    sent: int = 0
    resent: int = 0
    retries: int = 0
    resumed_from: int | None = None
    high_water: int = 0


def _upload(link: SmpLink, data: bytes, *, start: int, chunk: int, window: int,
            build: Callable[[int, int, bytes], bytes], resync: Callable[[], int],
            progress=None, label: str = "flash", what: str = "upload") -> _UploadStats:
    """Send ``data[start:]`` with a sliding window of up to ``window`` chunks.

    ``build(seq, off, chunk_bytes)`` makes a request; the device answers each with
    ``{"off": bytes it now holds}``. ``resync()`` asks the device what it holds
    after a timeout or a reconnect. ``what`` names the transfer in messages.
    Used for File and Image uploads and for TENSOR_WRITE, which share these offset rules.
    """
    total = len(data)
    stats = _UploadStats(high_water=start)
    acked = next_off = start
    inflight: deque[_Inflight] = deque()
    failures = 0
    t = link.timeouts
    report(progress, acked, total, label)

    def recover(reason: str, reconnect: bool) -> None:
        nonlocal acked, next_off, failures
        failures += 1
        stats.retries += 1
        if failures > t.retries:
            raise DeviceSilentError(f"{what} to {link.url} stalled at byte {acked} of {total}: {reason}",
                                    "check the cable/baud rate; run the command again to resume")
        log.info("%s: %s at byte %d; re-syncing", link.url, reason, acked)
        inflight.clear()
        if reconnect:
            link.reconnect()
        held = resync()
        if held > total:
            raise ProtocolError(f"device reports {held} bytes stored, more than the {total} sent")
        if reconnect and stats.resumed_from is None:
            stats.resumed_from = held
        acked = next_off = held

    margin = PIPELINE_SLACK_S + PIPELINE_MARGIN * link.wire_seconds(encoded_size(chunk + 64))
    while acked < total:
        try:
            now = time.monotonic()
            while (len(inflight) < window and next_off < total
                   and (not inflight or now >= link.tx_idle_at + margin)):
                n = min(chunk, total - next_off)
                seq = link.next_seq()
                wire = link.send(build(seq, next_off, data[next_off:next_off + n]))
                stats.sent += n
                if next_off < stats.high_water:
                    stats.resent += min(n, stats.high_water - next_off)
                stats.high_water = max(stats.high_water, next_off + n)
                deadline = link.tx_idle_at + link.response_timeout(wire, write_bytes=n)
                inflight.append(_Inflight(seq, next_off, next_off + n, deadline, wire))
                next_off += n
                now = time.monotonic()
            if not inflight:
                continue
            wake = inflight[0].deadline
            if len(inflight) < window and next_off < total:
                wake = min(wake, link.tx_idle_at + margin)
            packet = link.poll(max(0.0, wake - time.monotonic()))
            if packet is None:
                if time.monotonic() >= inflight[0].deadline:
                    recover("no reply", reconnect=False)
                continue
            try:
                head, body = parse_packet(packet)
            except ProtocolError:
                continue
            entry = next((e for e in inflight if e.seq == head["seq"]), None)
            if entry is None or head["op"] not in (OP_READ_RSP, OP_WRITE_RSP):
                continue  # a reply to a chunk already given up on
            raise_for_error(body, what)
            off = body.get("off")
            if not isinstance(off, int):
                raise ProtocolError(f"{what} reply from {link.url} has no offset")
            if off == entry.end:
                while inflight and inflight[0].seq != entry.seq:
                    inflight.popleft()
                inflight.popleft()
                link.drained(sum(e.wire for e in inflight))
                acked = off
                failures = 0
                report(progress, acked, total, label)
            else:
                # The device holds something else (a chunk was damaged or lost): continue from there.
                if off > total:
                    raise ProtocolError(f"device reports offset {off} beyond the {total}-byte upload")
                failures += 1
                stats.retries += 1
                if failures > t.retries:
                    raise DeviceSilentError(f"{what} to {link.url} keeps failing at byte {off}",
                                            "the line is too noisy; lower the baud rate or check the cable")
                inflight.clear()
                acked = next_off = off
        except PortLost as e:
            recover(f"port lost ({e})", reconnect=True)
    return stats


def _file_resync(link: SmpLink, name: str) -> int:
    body = link.request(lambda s: smpfs.FileStatusRequest(name=name, sequence=s).BYTES, "File status", check=False)
    held = body.get("len")
    return held if isinstance(held, int) and body.get("err") is None and not body.get("rc") else 0


def _file_prefix_ok(link: SmpLink, name: str, data: bytes, held: int) -> bool:
    """Whether the device's partial staged file is the start of ``data`` (resume across runs)."""
    body = link.request(lambda s: smpfs.FileHashChecksumRequest(name=name, type="sha256", off=0, len=held, sequence=s).BYTES,
                        "File hash", hash_bytes=held, check=False)
    out = body.get("output")
    return isinstance(out, bytes) and out == hashlib.sha256(data[:held]).digest()


def _chunk_size(info: DeviceInfo, probe: bytes) -> int:
    room = info.buf_size - _FRAME_OVERHEAD - len(probe) - _CBOR_SLACK
    if room < 16:
        raise ProtocolError(f"device buffer of {info.buf_size} bytes is too small for uploads")
    return room


def _upload_file(
    link: SmpLink, info: DeviceInfo, data: bytes, name: str, window: int, progress, label: str, result: FlashResult
) -> None:
    total = len(data)

    def build(seq: int, off: int, chunk: bytes) -> bytes:
        if off == 0:
            return smpfs.FileUploadRequest(off=0, data=chunk, name=name, len=total, sequence=seq).BYTES
        return smpfs.FileUploadRequest(off=off, data=chunk, name=name, sequence=seq).BYTES

    chunk = _chunk_size(info, build(0, 0, b""))
    held = _file_resync(link, name)
    start = 0
    if 0 < held <= total and _file_prefix_ok(link, name, data, held):
        start = held
        result.resumed_from = held
        log.info("%s: resuming an earlier upload at byte %d", link.url, held)
    result.chunk_bytes, result.window = chunk, window
    stats = _upload(link, data, start=start, chunk=chunk, window=window, build=build,
                    resync=lambda: _file_resync(link, name), progress=progress, label=label)
    _record(result, stats)
    # The device's own SHA-256 of the stored file must be ours before anything is activated.
    body = link.request(lambda s: smpfs.FileHashChecksumRequest(name=name, type="sha256", sequence=s).BYTES,
                        "File hash", hash_bytes=total)
    out = body.get("output")
    if not isinstance(out, bytes) or out != hashlib.sha256(data).digest() or body.get("len", total) != total:
        got = out.hex() if isinstance(out, bytes) else repr(out)
        raise HashMismatchError(f"device's SHA-256 of the upload ({got[:16]}…) is not the model's; nothing activated",
                                "flash again; if it repeats, the link or the device's storage corrupts data",
                                group=GROUP_EDGERT, rc=ERR_HASH_MISMATCH)


def _upload_image(link: SmpLink, info: DeviceInfo, image: bytes, window: int, progress, label: str, result: FlashResult) -> None:
    total = len(image)
    sha = hashlib.sha256(image).digest()

    def build(seq: int, off: int, chunk: bytes) -> bytes:
        if off == 0:
            return smpimg.ImageUploadWriteRequest(off=0, data=chunk, image=0, len=total, sha=sha, sequence=seq).BYTES
        return smpimg.ImageUploadWriteRequest(off=off, data=chunk, sequence=seq).BYTES

    def resync() -> int:
        # The Image group has no status command; an empty chunk at our offset makes the device say what it holds.
        # Offset ``total`` never restarts an upload; the reply carries the device's offset.
        body = link.request(lambda s: smpimg.ImageUploadWriteRequest(off=total, data=b"", sequence=s).BYTES,
                            "Image upload", check=False)
        off = body.get("off")
        return off if isinstance(off, int) else 0

    chunk = _chunk_size(info, build(0, 0, b""))
    result.chunk_bytes, result.window = chunk, window
    stats = _upload(link, image, start=0, chunk=chunk, window=window, build=build, resync=resync,
                    progress=progress, label=label)
    _record(result, stats)


def _record(result: FlashResult, stats: _UploadStats) -> None:
    result.sent_bytes = stats.sent
    result.resent_bytes = stats.resent
    result.retries = stats.retries
    if stats.resumed_from is not None and result.resumed_from is None:
        result.resumed_from = stats.resumed_from


def _activate(link: SmpLink, name: str, model_sha: bytes, size: int) -> dict[str, Any]:
    body = link.request(lambda s: ActivateRequest(name=name, sha=model_sha, sequence=s).BYTES, "ACTIVATE",
                        reply_wire=300, write_bytes=size if name == IMAGE_STAGED_NAME else 0,
                        hash_bytes=2 * size, retries=link.timeouts.retries)
    active = body.get("active")
    if not isinstance(active, dict) or bytes(active.get("sha", b"")) != model_sha:
        got = bytes(active.get("sha", b"")).hex() if isinstance(active, dict) else "nothing"
        raise HashMismatchError(f"device reports active model {got[:16]}…, not the one flashed",
                                "flash again; the device did not switch to the new model", group=GROUP_EDGERT,
                                rc=ERR_HASH_MISMATCH)
    return active


def flash_model(port: str | Any, model: bytes | str | Path, *, progress=None, name: str = STAGED_NAME,
                sign_key: str | Path | None = None, target: str | Any | None = None, baudrate: int = DEFAULT_BAUDRATE,
                timeouts: Timeouts | None = None, window: int | None = None, force: bool = False,
                label: str | None = None) -> FlashResult:
    """Flash one model to the device on ``port`` and make it the active model.

    Args:
        port: pyserial URL or path (``/dev/ttyACM0``, ``socket://h:p``, ``spy://...``) or an open port object.
        model: The .tflite bytes, or a path to it.
        progress: ``progress(done, total, label)`` callback (bytes acknowledged).
        name: Staging file name on the device.
        sign_key: imgtool PEM private key: send a signed MCUboot image through the Image group.
        target: Target profile the model must fit (``edgert.fit.check_fit``) before sending.
        baudrate: Line rate of the port (also sizes timeouts).
        timeouts: Retry/timeout policy (:class:`~firmware_tools.link.Timeouts`).
        window: Requests kept on the line (default: the device's buf_count, at most :data:`MAX_WINDOW`).
        force: Upload even when the device already runs this exact model.
        label: Progress label (defaults to the port).

    Returns:
        A :class:`FlashResult` with ``ok=True``: the device confirmed the new model's SHA-256 as active.

    Raises:
        PortError: The port cannot be opened / vanished for good.
        DeviceSilentError: The device stops answering (after size-scaled timeouts and retries).
        ModelTooLargeError: The device (or ``target``) cannot hold the model; nothing was sent.
        HashMismatchError: The device's SHA-256 differs; nothing was activated.
        SignatureError: The device requires a signature and the image is unsigned/invalid.
        DeviceRejectedError: Any other SMP error from the device.
        InvalidModelError: ``model`` is not a valid .tflite file.
    """
    t0 = time.monotonic()
    data = _model_bytes(model)
    digest = hashlib.sha256(data).digest()
    url = port if isinstance(port, str) else str(getattr(port, "port", None) or port)
    result = FlashResult(port=url, sha256=digest.hex(), bytes=len(data))
    label = label or f"flash {url}"
    with connect(port, baudrate=baudrate, timeouts=timeouts) as link:
        info = read_info(link)
        image = None
        if sign_key is not None:
            from firmware_tools.signing import sign_model

            image = sign_model(data, sign_key)
            result.signed = True
            result.bytes = len(image)
        elif info.sign:
            raise SignatureError(f"device on {url} requires signed models", "pass --sign key.pem (the key the device trusts)",
                                 group=GROUP_EDGERT, rc=ERR_SIGNATURE_INVALID)
        check_capacity(data, info, target=target, payload_size=len(data))
        if info.active and info.active.get("sha256") == digest.hex() and not force:
            result.ok = result.already_active = True
            result.seconds = time.monotonic() - t0
            report(progress, len(data), len(data), label)
            return result
        win = window if window is not None else min(MAX_WINDOW, info.buf_count)
        if image is not None:
            _upload_image(link, info, image, max(1, win), progress, label, result)
            _activate(link, IMAGE_STAGED_NAME, digest, len(data))
        else:
            _upload_file(link, info, data, name, max(1, win), progress, label, result)
            _activate(link, name, digest, len(data))
        after = read_info(link)
        if not after.active or after.active.get("sha256") != digest.hex():
            raise HashMismatchError(f"device on {url} does not report the flashed model as active after ACTIVATE",
                                    "flash again", group=GROUP_EDGERT, rc=ERR_HASH_MISMATCH)
    result.ok = True
    result.seconds = time.monotonic() - t0
    return result


def flash_many(ports: Sequence[str], model: bytes | str | Path, *, progress=None, **kwargs) -> list[FlashResult]:
    """Flash the same model to several ports in parallel threads; one result per port (never raises DeviceError).

    Args:
        ports: Port URLs/paths.
        model: The .tflite bytes or path.
        progress: One callback for all ports: bytes acknowledged summed over ports.
        **kwargs: Passed to :func:`flash_model`.
    """
    data = _model_bytes(model)
    lock = threading.Lock()
    done = {p: 0 for p in ports}
    totals = {p: len(data) for p in ports}

    def per_port(p: str):
        def cb(d: int, tot: int, _label: str) -> None:
            with lock:
                done[p], totals[p] = d, tot
                report(progress, sum(done.values()), sum(totals.values()), f"flash {len(ports)} port(s)")
        return cb

    def one(p: str) -> FlashResult:
        t0 = time.monotonic()
        try:
            return flash_model(p, data, progress=per_port(p), **kwargs)
        except EdgertError as e:
            return FlashResult(port=p, ok=False, bytes=len(data), seconds=time.monotonic() - t0,
                               sha256=hashlib.sha256(data).hexdigest(), error=str(e))

    if len(ports) == 1:
        return [one(ports[0])]
    with ThreadPoolExecutor(max_workers=len(ports), thread_name_prefix="edgert-flash") as pool:
        return list(pool.map(one, ports))


#: Seconds a device may compute for one INVOKE on top of the wire time (a slow MCU running a
#: large model, or the simulator starting its isolated TFLite Micro process).
INVOKE_SECONDS = 30.0
#: How an INVOKE's inputs travel (PROTOCOL.md section 4).
INLINE, STAGED = "inline", "staged"


@dataclass(frozen=True)
class InvokeResult:
    """One INVOKE on the device.

    Attributes:
        outputs: Raw output tensors, in model order.
        us: Invoke time the device measured, in microseconds.
        instructions: Instructions the device retired for the invoke (``insns``), or None when it does not say.
        transfer: ``"inline"`` (inputs inside the INVOKE request) or ``"staged"`` (TENSOR_WRITE chunks first).
        read_back: The outputs did not fit the reply and were read with TENSOR_READ.
    """

    outputs: list[bytes]
    us: int
    instructions: int | None
    transfer: str
    read_back: bool


def invoke_request_size(input_sizes: Sequence[int]) -> int:
    """Bytes an inline INVOKE with inputs of these sizes takes in the device's buffer (length + packet + CRC)."""
    return _FRAME_OVERHEAD + len(InvokeRequest(inputs=[bytes(n) for n in input_sizes], sequence=0).BYTES)


def invoke_transfer(info: DeviceInfo, input_sizes: Sequence[int], url: str = "the port") -> str:
    """How inputs of these sizes reach the device: :data:`INLINE` when the request fits ``buf_size``, else :data:`STAGED`.

    Call it before sending anything: a request the device could only drop is refused here.

    Raises:
        TensorTooLargeError: The request is larger than ``buf_size`` and the device has no ``tensor_io``.
    """
    size = invoke_request_size(input_sizes)
    if size <= info.buf_size:
        return INLINE
    if info.tensor_io:
        return STAGED
    raise TensorTooLargeError(
        f"an INVOKE with this model's input is {size:,} bytes but the device on {url} takes at most {info.buf_size:,} "
        "per SMP request and cannot take tensors in chunks (INFO has no tensor_io)",
        "update the device firmware to one with TENSOR_WRITE/TENSOR_READ (firmware_tools/PROTOCOL.md section 4) "
        f"or raise its SMP buffer (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE) to at least {size}",
        group=GROUP_EDGERT, rc=ERR_TOO_LARGE)


def _write_tensor(link: SmpLink, info: DeviceInfo, index: int, data: bytes, window: int) -> None:
    """Stage input ``index`` with TENSOR_WRITE chunks that fill ``buf_size``, resuming from what the device holds."""
    total = len(data)

    def build(seq: int, off: int, chunk: bytes) -> bytes:
        return TensorWriteRequest(index=index, off=off, data=chunk, sequence=seq).BYTES

    def resync() -> int:
        # An empty chunk at the end never restarts the input: the reply is the offset the device holds.
        body = link.request(lambda s: build(s, total, b""), f"TENSOR_WRITE {index}")
        off = body.get("off")
        return off if isinstance(off, int) else 0

    chunk = _chunk_size(info, build(0, 0, b""))
    _upload(link, data, start=0, chunk=chunk, window=window, build=build, resync=resync,
            label=f"input {index}", what=f"TENSOR_WRITE {index}")


def _read_tensor(link: SmpLink, info: DeviceInfo, index: int, size: int) -> bytes:
    """Read output ``index`` (``size`` bytes) with TENSOR_READ, as many bytes per reply as the device sends."""
    out = bytearray()
    while len(out) < size:
        # request() calls the builder (retries included) before it returns, so it always sees this pass's ``out``.
        body = link.request(lambda s: TensorReadRequest(index=index, off=len(out), sequence=s).BYTES,  # noqa: B023
                            f"TENSOR_READ {index}", reply_wire=encoded_size(info.buf_size))
        data, off, total = body.get("data"), body.get("off"), body.get("len")
        if not isinstance(data, bytes) or off != len(out) or total != size or not data:
            raise ProtocolError(f"TENSOR_READ {index} from {link.url} answered off={off!r} len={total!r} with "
                                f"{len(data) if isinstance(data, bytes) else 'no'} bytes at offset {len(out)} of {size}")
        out += data
    return bytes(out[:size])


def invoke(link: SmpLink, inputs: Sequence[bytes], *, info: DeviceInfo | None = None,
           compute_seconds: float = INVOKE_SECONDS, window: int | None = None) -> InvokeResult:
    """Run the device's active model once on raw input tensors, whatever their size.

    Inputs go inline when the whole request fits the device's ``buf_size``, else in TENSOR_WRITE chunks
    followed by an empty INVOKE; outputs that do not fit the reply are read with TENSOR_READ.
    The INVOKE itself is sent once: it is not idempotent in time, and a device that needs longer
    than ``compute_seconds`` is reported as silent rather than asked again.

    Args:
        link: An open link.
        inputs: One raw tensor per model input (its dtype, row-major).
        info: The device's INFO (read from the device when None).
        compute_seconds: Device compute time allowed on top of the wire time.
        window: Requests kept on the line while staging (default: the device's buf_count, at most MAX_WINDOW).

    Returns:
        An :class:`InvokeResult`.

    Raises:
        TensorTooLargeError: The inputs need TENSOR_WRITE and the device has no ``tensor_io`` (nothing sent).
        DeviceRejectedError: The device refused (BAD_INPUT, NO_MODEL, INVOKE_FAILED, NOT_SUPPORTED).
        ProtocolError: A reply that does not follow PROTOCOL.md.
    """
    info = info or read_info(link)
    raw = [bytes(b) for b in inputs]
    transfer = invoke_transfer(info, [len(b) for b in raw], link.url)
    if transfer == STAGED:
        win = max(1, window if window is not None else min(MAX_WINDOW, info.buf_count))
        for index, data in enumerate(raw):
            if data:
                _write_tensor(link, info, index, data, win)
    request = (lambda s: InvokeRequest(inputs=raw, sequence=s).BYTES) if transfer == INLINE else \
        (lambda s: InvokeRequest(sequence=s).BYTES)
    body = link.request(request, "INVOKE", reply_wire=encoded_size(info.buf_size), retries=1,
                        extra_seconds=compute_seconds)
    sizes, outs = body.get("sizes"), body.get("outputs")
    read_back = outs is None
    if read_back:
        if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
            raise ProtocolError(f"INVOKE reply from {link.url} has neither outputs nor their sizes")
        outs = [_read_tensor(link, info, i, n) for i, n in enumerate(sizes)]
    if not isinstance(outs, list) or not all(isinstance(o, bytes) for o in outs):
        raise ProtocolError(f"INVOKE reply from {link.url} has no outputs")
    if isinstance(sizes, list) and sizes != [len(o) for o in outs]:
        raise ProtocolError(f"INVOKE reply from {link.url} says outputs of {sizes} bytes but carries {[len(o) for o in outs]}")
    insns = body.get("insns")
    return InvokeResult(outputs=outs, us=int(body.get("us", 0)),
                        instructions=insns if isinstance(insns, int) and insns > 0 else None,
                        transfer=transfer, read_back=read_back)


def rollback(port: str | Any, *, baudrate: int = DEFAULT_BAUDRATE, timeouts: Timeouts | None = None) -> dict[str, Any] | None:
    """Make the previous model active again; returns the new active summary."""
    with connect(port, baudrate=baudrate, timeouts=timeouts) as link:
        body = link.request(lambda s: RollbackRequest(sequence=s).BYTES, "ROLLBACK", reply_wire=300)
        return _summary(body.get("active"))

