"""The C reference device (firmware_tools/device/), compiled with the system C compiler and driven over real ptys.

Independent clients talk to it: ``smpclient`` (the maintained SMP client,
with the edgert group defined here as smpclient request types), the
``smpmgr`` CLI when installed, edgert's own host (``firmware_tools.flash``),
and a small raw client in this module built on ``smp.packet`` + ``cbor2`` that
can also send broken frames. The device is a real process with file-backed NOR flash; power loss is
a real abrupt exit in the middle of a flash write.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import random
import selectors
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

termios = pytest.importorskip("termios")  # POSIX ptys
cbor2 = pytest.importorskip("cbor2")
serial = pytest.importorskip("serial")
smppacket = pytest.importorskip("smp.packet")
pytest.importorskip("smpclient")

from smp import error as smperror  # noqa: E402
from smp import message as smpmessage  # noqa: E402
from smpclient import SMPClient  # noqa: E402
from smpclient.generics import error, success  # noqa: E402
from smpclient.requests.file_management import FileHashChecksum, FileStatus  # noqa: E402
from smpclient.requests.os_management import EchoWrite, MCUMgrParametersRead  # noqa: E402
from smpclient.transport.serial import SMPSerialTransport  # noqa: E402

# The error codes are the protocol's one table; everything else here is defined independently of the host.
from firmware_tools.protocol import EdgertErr  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEVICE_SRC = ROOT / "firmware_tools" / "device"
#: A runner with known tensors that checks the core's side of edgert_runner.h (see the file).
CONTRACT_RUNNER = Path(__file__).resolve().parent / "c" / "runner_contract.c"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

STAGED = "/edgert/staged.tflite"
ACTIVE = "/edgert/active.tflite"
EDGERT = 64
OP_READ, OP_WRITE = 0, 2
#: rc values the device answers with (smp.error.MGMT_ERR and the edgert group's codes, PROTOCOL.md).
EINVAL, ENOMEM, ENOTSUP = smperror.MGMT_ERR.EINVAL, smperror.MGMT_ERR.ENOMEM, smperror.MGMT_ERR.ENOTSUP
#: edgert group command ids (PROTOCOL.md section 4).
INVOKE, TENSOR_WRITE, TENSOR_READ = 3, 4, 5
#: hal_posix.c exits with this status when --power-loss-at cuts the power.
EXIT_POWER_LOSS = 75
#: The device's reassembly buffer (SMP_SERIAL_BUF_SIZE), advertised as MCUmgr buf_size.
BUF_SIZE = 2048
FLASH_SIZE = 1024 * 1024
SECTOR = 4096


# ---- the edgert group as smpclient request types (PROTOCOL.md section 4), defined independently of the host ----

NO_MODEL, HASH_MISMATCH, BAD_INPUT, INVOKE_FAILED, NO_PREVIOUS, NOT_SUPPORTED = (
    EdgertErr.NO_MODEL, EdgertErr.HASH_MISMATCH, EdgertErr.BAD_INPUT, EdgertErr.INVOKE_FAILED, EdgertErr.NO_PREVIOUS,
    EdgertErr.NOT_SUPPORTED)


class _EdgertErrorV1(smperror.ErrorV1):
    _GROUP_ID = EDGERT


class _EdgertErrorV2(smperror.ErrorV2[EdgertErr]):
    _GROUP_ID = EDGERT


class _EdgertBase:
    _ErrorV1 = _EdgertErrorV1
    _ErrorV2 = _EdgertErrorV2


class _InfoResponse(smpmessage.ReadResponse):
    _GROUP_ID = EDGERT
    _COMMAND_ID = 0
    active: dict | None
    previous: dict | None
    slot_size: int
    ram: int
    target: str
    invoke: bool
    sign: bool
    tensor_io: bool
    arena_used: int
    kernels: str | None = None


class _ActiveResponse(smpmessage.WriteResponse):
    _GROUP_ID = EDGERT
    _COMMAND_ID = 1
    active: dict


class EdgertInfo(smpmessage.ReadRequest, _EdgertBase):
    """INFO through smpclient."""

    _GROUP_ID = EDGERT
    _COMMAND_ID = 0
    _Response = _InfoResponse


class EdgertActivate(smpmessage.WriteRequest, _EdgertBase):
    """ACTIVATE through smpclient."""

    _GROUP_ID = EDGERT
    _COMMAND_ID = 1
    _Response = _ActiveResponse
    name: str
    sha: bytes


# ---- building -----------------------------------------------------------------------------

def _build(out_dir: Path, sanitize: bool, runner: Path | None = None) -> Path:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None or shutil.which("make") is None:
        if IN_CI:
            pytest.fail("CI=true but no C compiler/make to build the reference device")
        pytest.skip("no C compiler/make to build the reference device")
    cmd = ["make", "-s", "-C", str(DEVICE_SRC), f"O={out_dir}", f"CC={cc}"]
    if sanitize:
        cmd.append("SANITIZE=1")
    if runner is not None:
        cmd.append(f"RUNNER_SRCS={runner}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        if sanitize:
            pytest.skip(f"the C compiler cannot build with -fsanitize=address,undefined: {proc.stderr[-400:]}")
        pytest.fail(f"reference device does not compile warning-free:\n{proc.stdout}\n{proc.stderr}")
    return out_dir / "edgert-device"


@pytest.fixture(scope="module")
def device_binary(tmp_path_factory) -> Path:
    """The device built with -std=c99 -Wall -Wextra -Werror -pedantic -O2 into a temp dir."""
    return _build(tmp_path_factory.mktemp("c-device"), sanitize=False)


@pytest.fixture(scope="module")
def asan_binary(tmp_path_factory) -> Path:
    """The device built with AddressSanitizer + UBSan, aborting on the first finding."""
    return _build(tmp_path_factory.mktemp("c-device-asan"), sanitize=True)


@pytest.fixture(scope="module")
def contract_binary(tmp_path_factory) -> Path:
    """The device with the contract-test runner (tests/firmware/c/runner_contract.c), under ASan + UBSan."""
    return _build(tmp_path_factory.mktemp("c-device-contract"), sanitize=True, runner=CONTRACT_RUNNER)


# ---- the device process -------------------------------------------------------------------

class Device:
    """One run of the device on a fresh pty; flash persists in ``flash`` across runs (reboots)."""

    def __init__(self, binary: Path, flash: Path, *args: str, flash_size: int = FLASH_SIZE) -> None:
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
        self.proc = subprocess.Popen(
            [str(binary), "--flash", str(flash), "--flash-size", str(flash_size), "--sector-size", str(SECTOR),
             "--ram", "1M", "--target", "posix-test", "--pty", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=20)
        sel.close()
        line = self.proc.stdout.readline().decode() if ready else ""
        self.stderr = ""
        if not line.startswith("PTY "):
            self.stop()
            raise AssertionError(f"device did not start: {line!r} {self.stderr}")
        self.port = line.split()[1]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 20) -> int:
        """Wait for the process to end on its own (power loss); returns its exit status."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._collect()

    def stop(self) -> str:
        """Terminate the device if it still runs; returns everything it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        finally:
            self._collect()
        return self.stderr

    def _collect(self) -> None:
        if not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
            self.proc.stdout.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- a raw SMP client (smp.packet framing + cbor2), able to send anything -------------------

class RawSmp:
    """Minimal independent SMP serial client: frames with ``smp.packet``, bodies with ``cbor2``."""

    def __init__(self, port: str, timeout: float = 5.0) -> None:
        self.ser = serial.Serial(port, 115200, timeout=0.02)
        self.timeout = timeout
        self.buf = bytearray()
        self.seq = 0

    def close(self) -> None:
        self.ser.close()

    def __enter__(self) -> RawSmp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        self.ser.write(data)
        self.ser.flush()

    def _line(self, deadline: float) -> bytes | None:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[: nl + 1])
                del self.buf[: nl + 1]
                return line
            if time.monotonic() > deadline:
                return None
            chunk = self.ser.read(max(1, self.ser.in_waiting))  # returns at the first byte, not at the timeout
            if chunk:
                self.buf += chunk

    def read_packet(self, timeout: float | None = None) -> bytes | None:
        """Next SMP packet from the device (noise skipped), or None when none arrives in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        decoder = None
        while True:
            line = self._line(deadline)
            if line is None:
                return None
            if line.startswith(smppacket.START_DELIMITER):
                decoder = smppacket.decode()
                next(decoder)
            elif not (line.startswith(smppacket.CONTINUE_DELIMITER) and decoder is not None):
                continue  # boot banner or other text between frames
            try:
                decoder.send(line)
            except StopIteration as done:
                return bytes(done.value)

    @staticmethod
    def packet(op: int, group: int, cmd: int, seq: int, payload: bytes, version: int = 1,
               length: int | None = None) -> bytes:
        n = len(payload) if length is None else length
        header = bytes([(version << 3) | op, 0]) + n.to_bytes(2, "big") + group.to_bytes(2, "big") + bytes([seq, cmd])
        return header + payload

    def send_packet(self, packet: bytes) -> None:
        self.write(b"".join(smppacket.encode(packet, line_length=127)))

    def exchange(self, op: int, group: int, cmd: int, payload: bytes, *, version: int = 1,
                 length: int | None = None) -> tuple[bytes, dict]:
        """Send one request (raw CBOR payload) and return (reply header, reply body)."""
        self.seq = (self.seq + 1) & 0xFF
        self.send_packet(self.packet(op, group, cmd, self.seq, payload, version, length))
        while True:
            reply = self.read_packet()
            if reply is None:
                raise TimeoutError(f"no reply to group {group} id {cmd}")
            if reply[6] == self.seq:
                return reply[:8], cbor2.loads(reply[8:])

    def request(self, op: int, group: int, cmd: int, body: dict) -> dict:
        return self.exchange(op, group, cmd, cbor2.dumps(body))[1]

    def echo(self, text: str) -> str:
        return self.request(OP_WRITE, 0, 0, {"d": text})["r"]

    def info(self) -> dict:
        return self.request(OP_READ, EDGERT, 0, {})

    def upload(self, data: bytes, chunk: int = 1024, start: int = 0) -> None:
        off = start
        while off < len(data):
            body = {"off": off, "data": data[off:off + chunk], "name": STAGED}
            if off == 0:
                body["len"] = len(data)
            reply = self.request(OP_WRITE, 8, 0, body)
            assert "off" in reply, reply
            off = reply["off"]

    def activate(self, sha: bytes, name: str = STAGED) -> dict:
        return self.request(OP_WRITE, EDGERT, 1, {"name": name, "sha": sha})

    def file_sha(self, name: str) -> bytes:
        return self.request(OP_READ, 8, 2, {"name": name, "type": "sha256"})["output"]


def _err(body: dict) -> tuple[int, int] | None:
    if "err" in body:
        return body["err"]["group"], body["err"]["rc"]
    if body.get("rc"):
        return 0, body["rc"]
    return None


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@pytest.fixture(scope="module")
def models(conformance_dir) -> dict[str, bytes]:
    """Real public models of different sizes (kws 53936 B, micro_speech 18800 B, hello_world 2704/3164 B)."""
    names = {
        "kws": "keyword_spotting__kws_ref_model.tflite",
        "speech": "tflm__micro_speech_quantized.tflite",
        "hello": "tflm__hello_world_int8.tflite",
        "hello_f": "tflm__hello_world_float.tflite",
    }
    return {k: (conformance_dir / "models" / v).read_bytes() for k, v in names.items()}


def _flash_with(binary: Path, flash: Path, *payloads: bytes) -> None:
    """Make ``payloads`` active one after the other (the last ends active, the one before previous)."""
    with Device(binary, flash) as dev, RawSmp(dev.port) as smp:
        for data in payloads:
            smp.upload(data)
            assert smp.activate(_sha(data))["active"]["sha"] == _sha(data)


# ---- smpclient: the independent, maintained client ------------------------------------------

def test_smpclient_echo_upload_and_file_hash(device_binary, tmp_path, models):
    data = models["kws"]

    async def session(port: str) -> dict:
        client = SMPClient(SMPSerialTransport(), port, timeout_s=10)
        await client.connect()
        try:
            out = {"echo": await client.request(EchoWrite(d="hello from smpclient")),
                   "params": await client.request(MCUMgrParametersRead())}
            offsets = [off async for off in client.upload_file(data, STAGED)]
            out["offsets"] = offsets
            out["status"] = await client.request(FileStatus(name=STAGED))
            out["sha"] = await client.request(FileHashChecksum(name=STAGED, type="sha256"))
            out["crc"] = await client.request(FileHashChecksum(name=STAGED, type="crc32"))
            out["missing"] = await client.request(FileStatus(name="/edgert/nope.bin"))
            out["wrong"] = await client.request(EdgertActivate(name=STAGED, sha=_sha(data[:-1])))
            out["activate"] = await client.request(EdgertActivate(name=STAGED, sha=_sha(data)))
            out["info"] = await client.request(EdgertInfo())
            return out
        finally:
            await client.disconnect()

    with Device(device_binary, tmp_path / "flash.bin") as dev:
        out = asyncio.run(session(dev.port))
        assert dev.alive()
    assert success(out["echo"]) and out["echo"].r == "hello from smpclient"
    assert success(out["params"]) and out["params"].buf_size == BUF_SIZE
    # smpclient filled the advertised buffer: a 54 kB model takes few, large chunks.
    assert out["offsets"][-1] == len(data) and len(out["offsets"]) < len(data) // 1500 + 2
    assert success(out["status"]) and out["status"].len == len(data)
    assert success(out["sha"]) and out["sha"].output == _sha(data) and out["sha"].len == len(data)
    assert success(out["crc"]) and out["crc"].output == zlib.crc32(data)
    assert error(out["missing"]) and out["missing"].err.rc == 2  # FILE_INVALID_NAME
    # The edgert group through smpclient's own request machinery: a wrong SHA-256 changes nothing.
    assert error(out["wrong"]) and out["wrong"].err.rc == EdgertErr.HASH_MISMATCH
    assert success(out["activate"]) and out["activate"].active["sha"] == _sha(data)
    info = out["info"]
    assert success(info) and info.active == {"name": STAGED, "size": len(data), "sha": _sha(data)}
    assert info.previous is None and info.invoke is False and info.slot_size >= len(data)


def test_smpmgr_cli_uploads_to_the_device(device_binary, tmp_path, models):
    """smpmgr (the mcumgr CLI built on smpclient) when installed; EDGERT_SMPMGR may point at it."""
    # The dev extra installs smpmgr into the venv next to this interpreter, which may not be on PATH.
    beside = Path(sys.executable).with_name("smpmgr")
    smpmgr = os.environ.get("EDGERT_SMPMGR") or (str(beside) if beside.exists() else shutil.which("smpmgr"))
    if smpmgr is None:
        pytest.skip("smpmgr is not installed (pip install smpmgr, or set EDGERT_SMPMGR)")
    data = models["kws"]
    src = tmp_path / "model.tflite"
    src.write_bytes(data)
    with Device(device_binary, tmp_path / "flash.bin") as dev:
        def run(*args: str) -> str:
            proc = subprocess.run([smpmgr, "--port", dev.port, "--timeout", "10", *args],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout

        assert "r='edgert'" in run("os", "echo", "edgert")
        run("file", "upload", str(src), STAGED)
        assert run("file", "read-size", STAGED).split()[-1] == str(len(data))
        with RawSmp(dev.port) as smp:
            assert smp.file_sha(STAGED) == _sha(data)


def test_device_serves_a_tty_path_given_on_the_command_line(device_binary, tmp_path):
    """--port PATH: the device opens an existing tty (here the slave of a pty the test owns), as on a UART."""
    pty = pytest.importorskip("pty")
    # Keep our slave fd open: with no slave open at all, reads on the master fail (EIO) until the device opens it.
    master, slave = pty.openpty()
    slave_path = os.ttyname(slave)
    proc = subprocess.Popen([str(device_binary), "--flash", str(tmp_path / "flash.bin"), "--flash-size", "64K",
                             "--port", slave_path], stderr=subprocess.PIPE)
    received = bytearray()

    def read_until(done) -> None:
        deadline = time.monotonic() + 10
        with selectors.DefaultSelector() as sel:
            sel.register(master, selectors.EVENT_READ)
            while not done() and time.monotonic() < deadline:
                if sel.select(timeout=0.5):
                    received.extend(os.read(master, 4096))

    try:
        # The boot banner says the device has opened the tty and made it raw: only then talk to it.
        read_until(lambda: b"edgert reference device" in received)
        assert b"edgert reference device" in received, "no boot banner on the tty"
        del received[:]
        request = RawSmp.packet(OP_WRITE, 0, 0, 7, cbor2.dumps({"d": "over a tty"}))
        os.write(master, b"".join(smppacket.encode(request, line_length=127)))
        read_until(lambda: received.endswith(b"\n"))
        assert received.startswith(smppacket.START_DELIMITER), bytes(received)
        decoder = smppacket.decode()
        next(decoder)
        with pytest.raises(StopIteration) as done:
            decoder.send(bytes(received))
        reply = bytes(done.value.value)
        assert reply[6] == 7 and cbor2.loads(reply[8:]) == {"r": "over a tty"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()
        os.close(master)
        os.close(slave)


# ---- edgert's host (firmware_tools.flash) -------------------------------------------------

def test_host_flashes_and_activates_conformance_models(device_binary, tmp_path, models):
    flash = pytest.importorskip("firmware_tools.flash")
    first, second = models["kws"], models["speech"]
    flash_file = tmp_path / "flash.bin"
    with Device(device_binary, flash_file) as dev:
        before = flash.device_info(dev.port)
        assert before.active is None and before.invoke is False and before.target == "posix-test"
        assert before.params_reported and before.buf_size == BUF_SIZE

        seen = []
        result = flash.flash_model(dev.port, first, progress=lambda d, t, _l: seen.append((d, t)))
        assert result.ok and result.sha256 == hashlib.sha256(first).hexdigest()
        assert seen[-1] == (len(first), len(first))
        info = flash.device_info(dev.port)
        assert info.active["sha256"] == hashlib.sha256(first).hexdigest() and info.active["size"] == len(first)

        assert flash.flash_model(dev.port, second).ok
        with RawSmp(dev.port) as smp:
            info = smp.info()
            # The device's own hash of what is now active is the model's: the bytes really are there.
            assert smp.file_sha(ACTIVE) == _sha(second) == info["active"]["sha"]
            assert info["previous"]["sha"] == _sha(first)

        # ROLLBACK swaps active and previous, and the previous bytes are intact.
        assert flash.rollback(dev.port)["sha256"] == hashlib.sha256(first).hexdigest()
        with RawSmp(dev.port) as smp:
            assert smp.file_sha(ACTIVE) == _sha(first)
            assert smp.info()["previous"]["sha"] == _sha(second)

    # A reboot keeps the state: it lives in flash, not RAM.
    with Device(device_binary, flash_file) as dev:
        info = flash.device_info(dev.port)
        assert info.active["sha256"] == hashlib.sha256(first).hexdigest()
        assert info.previous["sha256"] == hashlib.sha256(second).hexdigest()


def test_host_resumes_after_the_device_link_drops_mid_upload(device_binary, tmp_path, models):
    flash = pytest.importorskip("firmware_tools.flash")
    data = models["kws"]
    link = tmp_path / "ttyEDGERT"  # a stable name, like /dev/serial/by-id/..., following the re-plugged pty
    with Device(device_binary, tmp_path / "flash.bin", "--link", str(link), "--disconnect-at", "30000") as dev:
        result = flash.flash_model(str(link), data)
        assert result.ok and result.resumed_from is not None
        # Resumed from what the device had acknowledged, not from 0; at most one chunk went twice.
        assert 0 < result.resumed_from < len(data)
        assert result.resent_bytes <= result.chunk_bytes
        info = flash.device_info(str(link))
        assert info.active["sha256"] == hashlib.sha256(data).hexdigest()
    assert "DISCONNECT after 30000 received bytes" in dev.stderr


def test_host_refuses_model_larger_than_slot_before_sending(device_binary, tmp_path, models):
    flash = pytest.importorskip("firmware_tools.flash")
    errors = pytest.importorskip("firmware_tools.errors")
    small = 64 * 1024  # slots of 28 KiB: the 54 kB kws model cannot fit
    with Device(device_binary, tmp_path / "flash.bin", flash_size=small) as dev:
        with pytest.raises(errors.ModelTooLargeError):
            flash.flash_model(dev.port, models["kws"])
        with RawSmp(dev.port) as smp:
            assert smp.request(OP_READ, 8, 1, {"name": STAGED}) == {"len": 0}  # not a byte was staged
            # The device refuses it on its own too (a host that skips the check).
            body = smp.request(OP_WRITE, 8, 0, {"off": 0, "len": len(models["kws"]), "data": b"x", "name": STAGED})
            assert _err(body) == (0, ENOMEM)
            assert smp.info()["slot_size"] == (small - 2 * SECTOR) // 2 // SECTOR * SECTOR


# ---- the edgert group: ACTIVATE / ROLLBACK / INVOKE / errors --------------------------------

def test_activate_wrong_sha_is_hash_mismatch_and_old_model_stays(device_binary, tmp_path, models):
    old, new = models["hello"], models["speech"]
    flash_file = tmp_path / "flash.bin"
    _flash_with(device_binary, flash_file, old)
    with Device(device_binary, flash_file) as dev, RawSmp(dev.port) as smp:
        smp.upload(new)
        wrong = bytearray(_sha(new))
        wrong[0] ^= 1
        assert _err(smp.activate(bytes(wrong))) == (EDGERT, HASH_MISMATCH)
        info = smp.info()
        assert info["active"]["sha"] == _sha(old) and smp.file_sha(ACTIVE) == _sha(old)
        # A corrupted staged byte is caught the same way: the device hashes what it stored.
        with open(flash_file, "r+b") as f:
            where = 2 * SECTOR + _slot_of(f, new, info["slot_size"]) * info["slot_size"] + 100
            f.seek(where)
            byte = f.read(1)[0]
            f.seek(where)
            f.write(bytes([byte ^ 0xFF]))
        assert _err(smp.activate(_sha(new))) == (EDGERT, HASH_MISMATCH)
        assert smp.info()["active"]["sha"] == _sha(old)
    with Device(device_binary, flash_file) as dev, RawSmp(dev.port) as smp:
        assert smp.info()["active"]["sha"] == _sha(old)  # also after a reboot
        assert _err(smp.activate(_sha(new))) == (EDGERT, NO_MODEL)  # nothing staged since boot


def _slot_of(f, data: bytes, slot_size: int) -> int:
    """Which slot of the flash file holds ``data`` (test helper reading the raw flash image)."""
    for slot in (0, 1):
        f.seek(2 * SECTOR + slot * slot_size)
        if f.read(len(data)) == data:
            return slot
    raise AssertionError("model not found in either slot")


def test_rollback_invoke_and_errors_of_the_edgert_group(device_binary, tmp_path, models):
    with Device(device_binary, tmp_path / "flash.bin") as dev, RawSmp(dev.port) as smp:
        info = smp.info()
        assert info["active"] is None and info["previous"] is None
        assert info["invoke"] is False and info["sign"] is False and info["ram"] == 1024 * 1024
        assert _err(smp.request(OP_WRITE, EDGERT, 2, {})) == (EDGERT, NO_PREVIOUS)
        assert _err(smp.activate(_sha(b"x"))) == (EDGERT, NO_MODEL)
        assert _err(smp.request(OP_WRITE, EDGERT, 3, {"inputs": [b"\0" * 4]})) == (EDGERT, NOT_SUPPORTED)
        assert _err(smp.activate(_sha(b"x"), name="img:1")) == (EDGERT, NOT_SUPPORTED)
        assert _err(smp.request(OP_WRITE, EDGERT, 1, {"name": STAGED, "sha": b"short"}))[1] == 5  # BAD_INPUT

        a, b, c = models["hello"], models["hello_f"], models["speech"]
        for data in (a, b):
            smp.upload(data)
            assert smp.activate(_sha(data))["active"]["sha"] == _sha(data)
        assert smp.request(OP_WRITE, EDGERT, 2, {})["active"]["sha"] == _sha(a)
        assert smp.request(OP_WRITE, EDGERT, 2, {})["active"]["sha"] == _sha(b)
        # Starting an upload overwrites the slot the previous model lives in: it is forgotten first.
        smp.upload(c[:1000])
        assert smp.info()["previous"] is None
        assert _err(smp.request(OP_WRITE, EDGERT, 2, {})) == (EDGERT, NO_PREVIOUS)
        assert smp.info()["active"]["sha"] == _sha(b)


def test_upload_resumes_after_disconnect_from_the_offset_the_device_holds(device_binary, tmp_path, models):
    data = models["speech"]
    with Device(device_binary, tmp_path / "flash.bin") as dev:
        with RawSmp(dev.port) as smp:
            body = smp.request(OP_WRITE, 8, 0, {"off": 0, "len": len(data), "data": data[:1500], "name": STAGED})
            assert body == {"off": 1500}
            # A request larger than the device's buffer is dropped unanswered (and does not harm the upload).
            smp.send_packet(smp.packet(OP_WRITE, 8, 0, 99, cbor2.dumps({"off": 1500, "data": data[1500:5000],
                                                                        "name": STAGED})))
            assert smp.read_packet(timeout=0.5) is None
            body = smp.request(OP_WRITE, 8, 0, {"off": 1500, "data": data[1500:3000], "name": STAGED})
            assert body == {"off": 3000}
            assert smp.request(OP_WRITE, 8, 0, {"off": 3000, "data": data[3000:4500], "name": STAGED}) == {"off": 4500}
        # The host went away (cable pulled); on reconnect the device still holds the first 4500 bytes.
        with RawSmp(dev.port) as smp:
            assert smp.request(OP_READ, 8, 1, {"name": STAGED}) == {"len": 4500}
            # A chunk at the wrong offset stores nothing and tells the host where to continue.
            assert smp.request(OP_WRITE, 8, 0, {"off": 7000, "data": data[7000:8000], "name": STAGED}) == {"off": 4500}
            ranged = smp.request(OP_READ, 8, 2, {"name": STAGED, "type": "sha256", "off": 0, "len": 4500})
            assert ranged["output"] == _sha(data[:4500]) and ranged["len"] == 4500
            smp.upload(data, start=4500)
            assert smp.file_sha(STAGED) == _sha(data)
            # Data beyond the announced length is refused.
            body = smp.request(OP_WRITE, 8, 0, {"off": len(data), "data": b"extra", "name": STAGED})
            assert _err(body) == (0, EINVAL)
            assert smp.activate(_sha(data))["active"]["size"] == len(data)
            # OS reset: RAM state (the staging) is gone, the flash records are not.
            assert smp.request(OP_WRITE, 0, 5, {}) == {}
            assert smp.request(OP_READ, 8, 1, {"name": STAGED}) == {"len": 0}
            assert smp.info()["active"]["sha"] == _sha(data)


def test_file_hash_ranges_match_hashlib_across_sha256_block_boundaries(device_binary, tmp_path, models):
    data = models["speech"]
    with Device(device_binary, tmp_path / "flash.bin") as dev, RawSmp(dev.port) as smp:
        smp.upload(data)
        # Every length around the 55/56/64-byte padding edges, and odd offsets into flash reads (256-byte blocks).
        for off, length in [(0, n) for n in range(0, 130)] + [(255, 2), (250, 300), (1, len(data) - 1)]:
            body = smp.request(OP_READ, 8, 2, {"name": STAGED, "type": "sha256", "off": off, "len": length})
            if length == 0:
                assert _err(body) == (8, 16)  # FILE_EMPTY
                continue
            assert body["output"] == _sha(data[off:off + length]) and body["len"] == length, (off, length)
            crc = smp.request(OP_READ, 8, 2, {"name": STAGED, "type": "crc32", "off": off, "len": length})
            assert crc["output"] == zlib.crc32(data[off:off + length])
        # A range running past the end is cut at the end; an offset past it is an error.
        body = smp.request(OP_READ, 8, 2, {"name": STAGED, "off": len(data) - 10, "len": 1000})
        assert body["len"] == 10 and body["output"] == _sha(data[-10:]) and body["type"] == "sha256"
        assert _err(smp.request(OP_READ, 8, 2, {"name": STAGED, "off": len(data) + 1})) == (8, 12)
        assert _err(smp.request(OP_READ, 8, 2, {"name": STAGED, "type": "md5"})) == (8, 13)


# ---- a flash image programmed on the host (firmware_tools.flash_image) -----------------------

def test_a_flash_image_programmed_on_the_host_boots_with_the_model_active(device_binary, tmp_path, models):
    """What ``edgert device emulate --model`` writes is what the device's model store reads at boot, and the
    store carries on from it: the next upload goes to the other slot and the programmed model becomes previous."""
    from firmware_tools.errors import ModelTooLargeError
    from firmware_tools.flash_image import PRELOADED_NAME, program_model, slot_bytes

    flash = tmp_path / "flash.bin"
    flash.write_bytes(b"an older image: replaced whole")
    program_model(flash, models["kws"], flash_bytes=FLASH_SIZE)
    assert flash.stat().st_size == FLASH_SIZE and [p.name for p in tmp_path.iterdir()] == ["flash.bin"]
    with Device(device_binary, flash) as dev, RawSmp(dev.port) as smp:
        info = smp.info()
        assert info["active"] == {"name": PRELOADED_NAME, "size": len(models["kws"]), "sha": _sha(models["kws"])}
        assert info["previous"] is None and info["slot_size"] == slot_bytes(FLASH_SIZE)
        assert smp.file_sha(ACTIVE) == _sha(models["kws"])
        smp.upload(models["hello"])
        assert smp.activate(_sha(models["hello"]))["active"]["sha"] == _sha(models["hello"])
        info = smp.info()
        assert info["previous"] == {"name": PRELOADED_NAME, "size": len(models["kws"]), "sha": _sha(models["kws"])}
    with pytest.raises(ModelTooLargeError, match="larger than a model slot"):
        program_model(flash, bytes(slot_bytes(64 * SECTOR) + 1), flash_bytes=64 * SECTOR)
    with Device(device_binary, flash) as dev, RawSmp(dev.port) as smp:  # the refused write left the image as it was
        assert smp.info()["active"]["sha"] == _sha(models["hello"])


# ---- power loss -------------------------------------------------------------------------

def _activation_run(binary: Path, flash_file: Path, data: bytes, cut_at: int) -> tuple[int, str]:
    """Upload + ACTIVATE ``data`` with the power cut at flash step ``cut_at``; returns (exit status, stderr)."""
    with Device(binary, flash_file, "--power-loss-at", str(cut_at)) as dev:
        try:
            with RawSmp(dev.port, timeout=3) as smp:
                smp.upload(data, chunk=1500)
                smp.activate(_sha(data))
                smp.echo("done")
        except (serial.SerialException, OSError, TimeoutError, termios.error):
            # The device died under us: that is the point (the pty hangs up before the exit completes).
            status = dev.wait()
            return status, dev.stderr
        return 0, dev.stop()


def test_power_loss_at_every_flash_step_leaves_complete_old_or_new_model(device_binary, tmp_path, models):
    previous, old, new = models["hello_f"], models["hello"], models["speech"]
    base = tmp_path / "base.bin"
    _flash_with(device_binary, base, previous, old)  # active old, previous in the slot the upload will reuse
    outcomes = []
    for step in range(1, 200):
        flash_file = tmp_path / f"cut{step}.bin"
        shutil.copyfile(base, flash_file)
        status, log = _activation_run(device_binary, flash_file, new, step)
        with Device(device_binary, flash_file) as dev, RawSmp(dev.port) as smp:
            info = smp.info()
            active = info["active"]["sha"]
            assert active in (_sha(old), _sha(new)), f"step {step}: active model is neither old nor new"
            # Complete, not just named: the device's hash of the active slot's bytes is that model's.
            assert smp.file_sha(ACTIVE) == active, f"step {step}: active slot is torn"
            if active == _sha(new):
                assert info["previous"]["sha"] == _sha(old) and info["active"]["size"] == len(new)
            elif info["previous"] is not None:
                assert smp.request(OP_READ, 8, 2, {"name": "/edgert/previous.tflite"})["output"] == _sha(previous)
        outcomes.append((status, active == _sha(new), log))
        flash_file.unlink()
        if status != EXIT_POWER_LOSS:
            break  # this run had fewer flash steps than ``step``: every step has been cut once
    else:
        pytest.fail("activation never completed")
    cut = [(is_new, log) for status, is_new, log in outcomes if status == EXIT_POWER_LOSS]
    # upload (sector erases + chunk writes), forgetting previous, and the record: well over a dozen steps.
    assert len(cut) > 12
    # The last two steps are the new record's erase and its (torn) write, in the area not in force:
    # cutting them keeps the old model, which is what makes the switch atomic.
    assert "erase off=" in cut[-2][1] and "len=4096" in cut[-2][1]
    assert "write off=" in cut[-1][1] and "len=192" in cut[-1][1]
    assert not any(is_new for is_new, _ in cut)
    assert outcomes[-1][:2] == (0, True)  # the uncut run switched to the new model


def test_power_loss_during_rollback_leaves_one_complete_model(device_binary, tmp_path, models):
    first, second = models["hello"], models["speech"]
    base = tmp_path / "base.bin"
    _flash_with(device_binary, base, first, second)  # active second, previous first
    results = []
    for step in (1, 2, 3):  # the record's erase, its torn write, then beyond: the uncut rollback
        flash_file = tmp_path / f"rb{step}.bin"
        shutil.copyfile(base, flash_file)
        with Device(device_binary, flash_file, "--power-loss-at", str(step)) as dev:
            try:
                with RawSmp(dev.port, timeout=3) as smp:
                    assert smp.request(OP_WRITE, EDGERT, 2, {})["active"]["sha"] == _sha(first)
                dev.stop()
                status = 0
            except (serial.SerialException, OSError, TimeoutError, termios.error):
                status = dev.wait()
        with Device(device_binary, flash_file) as dev, RawSmp(dev.port) as smp:
            info = smp.info()
            assert smp.file_sha(ACTIVE) == info["active"]["sha"]
            assert smp.file_sha("/edgert/previous.tflite") == info["previous"]["sha"]
            results.append((status, info["active"]["sha"]))
    assert results == [(EXIT_POWER_LOSS, _sha(second)), (EXIT_POWER_LOSS, _sha(second)), (0, _sha(first))]


# ---- malformed input -------------------------------------------------------------------------

def _bad_cbor_payloads() -> list[bytes]:
    return [
        b"\xff",                                  # break outside an indefinite item
        b"\xbf\x61d\x61x\xff",                    # indefinite map (not accepted)
        b"\xa1\x61d",                             # map missing its value
        b"\xa1\x61d\x7a\xff\xff\xff\xff",         # tstr claiming 4 GiB
        b"\xa1\x61d\x7b" + b"\xff" * 8,           # tstr claiming 2^64-1 bytes
        b"\xbb" + b"\xff" * 8,                    # map claiming 2^64-1 pairs
        b"\xa1\x61d" + b"\x81" * 1500,            # nesting far deeper than the limit
        b"\xa1\x61d\x61x\x00",                    # trailing byte after the map
        b"\xa1\x61d\x18\x05",                     # "d" is a uint, not text
        b"\xa1\x61d\xf8\x01",                     # invalid two-byte simple value
        b"\xa1\x61d\x1c",                         # reserved additional info
        b"\x61d",                                 # not a map
        b"\xa1\x61d\xc1",                         # tag with no content
    ]


def _exercise_malformed(dev: Device) -> None:
    """Throw broken frames, garbage CBOR and mutated requests at a running device; it must still run after."""
    try:
        _send_malformed(dev.port)
    except (AssertionError, TimeoutError, OSError, serial.SerialException, cbor2.CBORDecodeError) as e:
        # Show why the device stopped answering (a sanitizer report, a crash) rather than just the symptom.
        raise AssertionError(f"device failed: {e}\n--- device stderr ---\n{dev.stop()[-3000:]}") from e
    assert dev.alive()


def _send_malformed(port: str) -> None:
    rng = random.Random(20261125)
    with RawSmp(port, timeout=5) as smp:
        good = smp.packet(OP_WRITE, 0, 0, 1, cbor2.dumps({"d": "x"}))
        frame = b"".join(smppacket.encode(good, line_length=127))
        noise = [
            b"boot: garbage \x00\xff\x06\x04 text\r\n",
            bytes(rng.randrange(256) for _ in range(3000)),            # line noise, markers included at random
            b"\x06\x09!!notbase64!!\n",
            b"\x06\x09" + b"QUFB" * 60 + b"\n",                        # a line longer than 127 bytes
            b"\x06\x09/////w==\n",                                     # length 65535: more than the buffer
            b"\x06\x09AAA=\n",                                         # length too small for a header
            frame[: len(frame) // 2] + frame,                          # torn frame, then a whole one
            b"\x04\x14QUFB\n",                                         # continuation without a start
        ]
        for junk in noise:
            smp.write(junk)
            assert smp.echo("still here") == "still here"
        # A frame whose CRC is wrong is dropped: no reply, the request is not executed.
        def one_line_frame(text: str, crc_xor: int) -> bytes:
            packet = smp.packet(OP_WRITE, 0, 0, 200, cbor2.dumps({"d": text}))
            crc = binascii.crc_hqx(packet, 0) ^ crc_xor
            body = (len(packet) + 2).to_bytes(2, "big") + packet + crc.to_bytes(2, "big")
            return smppacket.START_DELIMITER + base64.b64encode(body) + b"\n"

        smp.write(one_line_frame("must not echo", 1))
        assert smp.read_packet(timeout=0.3) is None
        smp.write(one_line_frame("same frame, right crc", 0))
        assert cbor2.loads(smp.read_packet()[8:]) == {"r": "same frame, right crc"}
        for payload in _bad_cbor_payloads():
            for group, cmd, op in ((0, 0, OP_WRITE), (8, 0, OP_WRITE), (8, 2, OP_READ), (EDGERT, 1, OP_WRITE)):
                head, body = smp.exchange(op, group, cmd, payload)
                assert head[0] & 0x07 == op + 1
                assert _err(body) is not None, (group, cmd, payload[:8], body)
        # Header length disagreeing with the frame; unknown group/command; wrong op; SMP v1 request.
        assert _err(smp.exchange(OP_WRITE, 0, 0, cbor2.dumps({"d": "x"}), length=200)[1]) == (0, EINVAL)
        assert _err(smp.exchange(OP_READ, 77, 0, b"\xa0")[1]) == (0, ENOTSUP)
        assert _err(smp.exchange(OP_READ, 0, 0, cbor2.dumps({"d": "x"}))[1]) == (0, ENOTSUP)
        head, body = smp.exchange(OP_READ, EDGERT, 3, b"\xa0", version=0)
        assert head[0] >> 3 & 3 == 0 and body == {"rc": ENOTSUP}
        # Random mutations of valid requests: every one is answered, none crashes the device.
        bases = [
            (OP_WRITE, 8, 0, {"off": 0, "len": 300, "data": bytes(range(200)), "name": STAGED}),
            (OP_READ, 8, 2, {"name": STAGED, "type": "sha256", "off": 0, "len": 100}),
            (OP_WRITE, EDGERT, 1, {"name": STAGED, "sha": bytes(32)}),
            (OP_WRITE, 0, 0, {"d": "mutate me", "extra": [1, {"n": None, "b": True}, -5, 1.5]}),
        ]
        for i in range(400):
            op, group, cmd, body = bases[i % len(bases)]
            payload = bytearray(cbor2.dumps(body))
            for _ in range(rng.randint(1, 3)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
            head, _reply = smp.exchange(op, group, cmd, bytes(payload))
            assert head[4:6] == group.to_bytes(2, "big")
        assert smp.echo("survived") == "survived"
        long_text = "é✓ multi-line frame " * 60  # valid UTF-8, ~1.5 kB: a request and a reply of many lines
        assert smp.echo(long_text) == long_text


def test_malformed_frames_and_garbage_cbor_keep_the_device_answering(device_binary, tmp_path):
    with Device(device_binary, tmp_path / "flash.bin") as dev:
        _exercise_malformed(dev)


def test_malformed_input_under_address_and_undefined_sanitizers(asan_binary, tmp_path, models):
    flash_file = tmp_path / "flash.bin"
    _flash_with(asan_binary, flash_file, models["hello"])  # so ACTIVATE/hash paths have real data to chew on
    with Device(asan_binary, flash_file) as dev:
        _exercise_malformed(dev)
        stderr = dev.stop()
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr, stderr[-2000:]


# ---- tensor I/O: INVOKE inline and staged, TENSOR_WRITE / TENSOR_READ (PROTOCOL.md section 4) ----------

def test_tensor_commands_answer_not_supported_without_a_runner(device_binary, tmp_path, models):
    """The POSIX build carries no interpreter: INVOKE and the tensor commands exist but refuse, model or not."""
    with Device(device_binary, tmp_path / "flash.bin") as dev, RawSmp(dev.port) as smp:
        for _ in range(2):
            info = smp.info()
            assert info["invoke"] is False and info["tensor_io"] is True and info["arena_used"] == 0
            assert "kernels" not in info
            assert _err(smp.request(OP_WRITE, EDGERT, INVOKE, {})) == (EDGERT, NOT_SUPPORTED)
            assert _err(smp.request(OP_WRITE, EDGERT, TENSOR_WRITE, {"index": 0, "off": 0, "data": b"x"})) == \
                (EDGERT, NOT_SUPPORTED)
            assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 0, "off": 0})) == (EDGERT, NOT_SUPPORTED)
            smp.upload(models["hello"])
            assert smp.activate(_sha(models["hello"]))["active"]["sha"] == _sha(models["hello"])


def _contract_sizes(model: bytes) -> tuple[int, int]:
    """Input/output 0 and input 1 sizes of runner_contract.c for ``model``."""
    return min(len(model) // 2, 3000), 7


def _contract_expect(model: bytes, in0: bytes, in1: bytes) -> list[bytes]:
    """What runner_contract.c computes: in0 ^ in1 (cycled), then CRC32 of the model and the input byte sum."""
    out0 = bytes(a ^ in1[i % len(in1)] for i, a in enumerate(in0))
    out1 = zlib.crc32(model).to_bytes(4, "little") + ((sum(in0) + sum(in1)) & 0xFFFFFFFF).to_bytes(4, "little")
    return [out0, out1]


def _write_tensor(smp: RawSmp, index: int, data: bytes, chunk: int) -> None:
    off = 0
    while off < len(data):
        reply = smp.request(OP_WRITE, EDGERT, TENSOR_WRITE, {"index": index, "off": off, "data": data[off:off + chunk]})
        assert reply == {"off": min(off + chunk, len(data))}, reply
        off = reply["off"]


def _read_tensor(smp: RawSmp, index: int) -> bytes:
    out = b""
    while True:
        reply = smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": index, "off": len(out)})
        assert reply["off"] == len(out), reply
        out += reply["data"]
        if len(out) == reply["len"]:
            return out
        assert reply["data"], "TENSOR_READ made no progress"


def test_staged_and_inline_invoke_through_the_core(contract_binary, tmp_path, models):
    """The core stages inputs by offset, answers sizes, reads outputs in chunks, runs the active slot's bytes."""
    big, small = models["kws"], models["hello"]  # input 0 of 3000 bytes (larger than the buffer), and of 1352
    rng = random.Random(12)
    flash_file = tmp_path / "flash.bin"
    with Device(contract_binary, flash_file) as dev, RawSmp(dev.port) as smp:
        # No model yet: every tensor command says so.
        assert smp.info()["invoke"] is True and smp.info()["arena_used"] == 0
        assert _err(smp.request(OP_WRITE, EDGERT, INVOKE, {})) == (EDGERT, NO_MODEL)
        assert _err(smp.request(OP_WRITE, EDGERT, TENSOR_WRITE, {"index": 0, "off": 0, "data": b"x"})) == (EDGERT, NO_MODEL)
        assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 0, "off": 0})) == (EDGERT, NO_MODEL)

        smp.upload(big)
        smp.activate(_sha(big))
        n0, n1 = _contract_sizes(big)
        info = smp.info()
        assert info["kernels"] == "contract-test" and info["arena_used"] == 2 * n0 + n1 + 8
        in0, in1 = bytes(rng.randrange(256) for _ in range(n0)), bytes(rng.randrange(256) for _ in range(n1))
        # Nothing run yet: no output to read.
        assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 0, "off": 0})) == (EDGERT, BAD_INPUT)
        # Incomplete inputs are refused, and the counters start over afterwards (a stale input is never reused).
        _write_tensor(smp, 0, in0[:1000], 1000)
        assert _err(smp.request(OP_WRITE, EDGERT, INVOKE, {})) == (EDGERT, BAD_INPUT)
        assert smp.request(OP_WRITE, EDGERT, TENSOR_WRITE, {"index": 0, "off": 1000, "data": in0[1000:1010]}) == {"off": 0}

        _write_tensor(smp, 0, in0, 1500)
        _write_tensor(smp, 1, in1, 3)
        reply = smp.request(OP_WRITE, EDGERT, INVOKE, {})
        # 3000 output bytes do not fit a 2 KiB reply: sizes only, the host reads them.
        assert "outputs" not in reply and reply["sizes"] == [n0, 8]
        assert reply["us"] == 1 and reply["insns"] == 3 * n0
        assert [_read_tensor(smp, 0), _read_tensor(smp, 1)] == _contract_expect(big, in0, in1)
        # A read at the very end is empty; past the end, or a bad index, is BAD_INPUT.
        assert smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 1, "off": 8}) == {"off": 8, "len": 8, "data": b""}
        assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 1, "off": 9})) == (EDGERT, BAD_INPUT)
        assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 2, "off": 0})) == (EDGERT, BAD_INPUT)
        assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"off": 0})) == (EDGERT, BAD_INPUT)

        # ACTIVATE another model: staged inputs and outputs are gone, the runner runs the new slot's bytes.
        smp.upload(small)
        smp.activate(_sha(small))
        assert _err(smp.request(OP_READ, EDGERT, TENSOR_READ, {"index": 0, "off": 0})) == (EDGERT, BAD_INPUT)
        n0, n1 = _contract_sizes(small)
        in0, in1 = bytes(rng.randrange(256) for _ in range(n0)), bytes(rng.randrange(256) for _ in range(n1))
        reply = smp.request(OP_WRITE, EDGERT, INVOKE, {"inputs": [in0, in1]})
        assert reply["sizes"] == [n0, 8] and reply["outputs"] == _contract_expect(small, in0, in1)
        # Inline inputs of the wrong count, size or type change nothing.
        for bad in ([in0], [in0, in1, in1], [in0[:-1], in1], [in0, in1 + b"x"], [in0, "text"], [in0, 5]):
            assert _err(smp.request(OP_WRITE, EDGERT, INVOKE, {"inputs": bad})) == (EDGERT, BAD_INPUT), bad

        # ROLLBACK and a reboot load the model now active (its CRC is what the runner saw mapped).
        assert smp.request(OP_WRITE, EDGERT, 2, {})["active"]["sha"] == _sha(big)
        n0, _ = _contract_sizes(big)
        _write_tensor(smp, 0, in0[:n0].ljust(n0, b"\1"), 2000)
        _write_tensor(smp, 1, in1, 7)
        assert smp.request(OP_WRITE, EDGERT, INVOKE, {})["sizes"] == [n0, 8]
        assert _read_tensor(smp, 1)[:4] == zlib.crc32(big).to_bytes(4, "little")
    with Device(contract_binary, flash_file) as dev, RawSmp(dev.port) as smp:
        _write_tensor(smp, 0, bytes(n0), 2000)
        _write_tensor(smp, 1, bytes(7), 7)
        assert smp.request(OP_WRITE, EDGERT, INVOKE, {})["sizes"] == [n0, 8]
        assert _read_tensor(smp, 1) == _contract_expect(big, bytes(n0), bytes(7))[1]
        stderr = dev.stop()
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr, stderr[-2000:]


def test_tensor_write_error_paths(contract_binary, tmp_path, models):
    """Bad index, offset mismatch (resume), data past the end, malformed fields: an error reply, nothing stored."""
    model = models["kws"]
    n0, _ = _contract_sizes(model)
    with Device(contract_binary, tmp_path / "flash.bin") as dev, RawSmp(dev.port) as smp:
        smp.upload(model)
        smp.activate(_sha(model))

        def write(body: dict) -> dict:
            return smp.request(OP_WRITE, EDGERT, TENSOR_WRITE, body)

        for index in (2, 15, 16, 2**32, 2**63):
            assert _err(write({"index": index, "off": 0, "data": b"x"})) == (EDGERT, BAD_INPUT), index
        for body in ({"off": 0, "data": b"x"}, {"index": 0, "data": b"x"}, {"index": 0, "off": 0},
                     {"index": -1, "off": 0, "data": b"x"}, {"index": 0, "off": 0, "data": "text"}):
            assert _err(write(body)) == (EDGERT, BAD_INPUT), body
        assert write({"index": 0, "off": 0, "data": b"a" * 100}) == {"off": 100}
        # Another offset stores nothing and answers what is held: the host resumes from there.
        for off in (50, 101, 2**40):
            assert write({"index": 0, "off": off, "data": b"b" * 10}) == {"off": 100}, off
        assert write({"index": 0, "off": 100, "data": b"c" * 10}) == {"off": 110}
        for off in range(110, n0 - 50, 1000):
            end = min(off + 1000, n0 - 50)
            assert write({"index": 0, "off": off, "data": b"d" * (end - off)}) == {"off": end}
        # Data past the tensor's end is refused whole; what was held stays.
        assert _err(write({"index": 0, "off": n0 - 50, "data": b"d" * 51})) == (EDGERT, BAD_INPUT)
        assert _err(write({"index": 1, "off": 0, "data": b"e" * 8})) == (EDGERT, BAD_INPUT)
        assert write({"index": 0, "off": n0 - 50, "data": b"d" * 50}) == {"off": n0}
        # Offset 0 restarts an input.
        assert write({"index": 0, "off": 0, "data": b""}) == {"off": 0}
        assert _err(smp.request(OP_WRITE, EDGERT, INVOKE, {})) == (EDGERT, BAD_INPUT)

        # A model the runner refuses (shorter than it accepts): INVOKE_FAILED, not a crash.
        tiny = b"\x00" * 40
        smp.upload(tiny)
        smp.activate(_sha(tiny))
        assert smp.info()["arena_used"] == 0
        assert _err(smp.request(OP_WRITE, EDGERT, INVOKE, {})) == (EDGERT, INVOKE_FAILED)
        assert _err(write({"index": 0, "off": 0, "data": b"x"})) == (EDGERT, INVOKE_FAILED)
        stderr = dev.stop()
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr, stderr[-2000:]


def test_mutated_tensor_requests_never_crash_the_core(contract_binary, tmp_path, models):
    """Random byte mutations of INVOKE / TENSOR_WRITE / TENSOR_READ under ASan + UBSan: always an answer."""
    rng = random.Random(20261203)
    model = models["hello"]
    n0, n1 = _contract_sizes(model)
    with Device(contract_binary, tmp_path / "flash.bin") as dev:
        try:
            with RawSmp(dev.port) as smp:
                smp.upload(model)
                smp.activate(_sha(model))
                smp.request(OP_WRITE, EDGERT, INVOKE, {"inputs": [bytes(n0), bytes(n1)]})
                bases = [
                    (OP_WRITE, INVOKE, {"inputs": [bytes(range(256)) * (n0 // 256) + bytes(n0 % 256), bytes(n1)]}),
                    (OP_WRITE, INVOKE, {}),
                    (OP_WRITE, TENSOR_WRITE, {"index": 0, "off": 0, "data": bytes(300)}),
                    (OP_WRITE, TENSOR_WRITE, {"index": 1, "off": 3, "data": bytes(4)}),
                    (OP_READ, TENSOR_READ, {"index": 0, "off": 1000}),
                    (OP_READ, TENSOR_READ, {"index": 1, "off": 0}),
                ]
                for i in range(600):
                    op, cmd, body = bases[i % len(bases)]
                    payload = bytearray(cbor2.dumps(body))
                    for _ in range(rng.randint(1, 3)):
                        payload[rng.randrange(len(payload))] = rng.randrange(256)
                    head, _reply = smp.exchange(op, EDGERT, cmd, bytes(payload))
                    assert head[0] & 0x07 == op + 1
                for payload in _bad_cbor_payloads():
                    for op, cmd in ((OP_WRITE, INVOKE), (OP_WRITE, TENSOR_WRITE), (OP_READ, TENSOR_READ)):
                        assert _err(smp.exchange(op, EDGERT, cmd, payload)[1]) is not None
                assert smp.echo("survived") == "survived"
        except (AssertionError, TimeoutError, OSError, serial.SerialException, cbor2.CBORDecodeError) as e:
            raise AssertionError(f"device failed: {e}\n--- device stderr ---\n{dev.stop()[-3000:]}") from e
        stderr = dev.stop()
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr, stderr[-2000:]


def test_validate_refuses_a_device_without_an_interpreter_before_flashing(device_binary, tmp_path, models):
    """`edgert device validate` on the POSIX build (INFO invoke: false): exit 2, one line, nothing uploaded."""
    import numpy as np

    model = tmp_path / "hello.tflite"
    model.write_bytes(models["hello"])
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 1, 1), dtype=np.int8))
    with Device(device_binary, tmp_path / "flash.bin") as dev:
        proc = subprocess.run([sys.executable, "-m", "edgert", "device", "validate", str(model), "--port", dev.port,
                               "--data", str(tmp_path / "x.npz"), "--json"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        with RawSmp(dev.port) as smp:
            assert smp.request(OP_READ, 8, 1, {"name": STAGED}) == {"len": 0}
            assert smp.info()["active"] is None
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not support INVOKE" in lines[0], proc.stderr
