"""The real firmware: TFLite Micro + CMSIS-NN on emulated Cortex-M boards (QEMU), reached over a pty.

The firmware is built once per session per board (``firmware_tools.firmware``
caches the TFLM library, so a second session only links). Each test boots
QEMU on its own flash image, talks to it over the pty with our host
(``firmware_tools.flash`` / ``validate``), smpclient or raw SMP frames, and
asserts what must hold: bit-identical int8 outputs to the tflite-micro wheel,
error replies to malformed requests, the old or new model after a power cut.
No wall-clock assertions: every wait is on a banner, a reply or a process.

Without the Arm toolchain or QEMU these tests skip with one line, and fail
under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CONFORMANCE, require_conformance

serial = pytest.importorskip("serial")
cbor2 = pytest.importorskip("cbor2")

from edgert.errors import EdgertError  # noqa: E402
from firmware_tools.framing import FrameDecoder, encode_frame  # noqa: E402
from firmware_tools.protocol import (  # noqa: E402
    CMD_ACTIVATE,
    CMD_INVOKE,
    CMD_TENSOR_READ,
    CMD_TENSOR_WRITE,
    ERR_NO_MODEL,
    FILE_UPLOAD,
    GROUP_EDGERT,
    GROUP_FILE,
    GROUP_OS,
    OP_READ,
    OP_WRITE,
    OS_ECHO,
    STAGED_NAME,
)

ROOT = Path(__file__).resolve().parents[2]
MODELS = CONFORMANCE / "models"
STAGED = STAGED_NAME
EDGERT_GROUP = GROUP_EDGERT
#: The three boards and the profiles that run on them (firmware_tools.firmware.PROFILE_BOARDS).
TARGETS = ("cortex-m4-256k", "cortex-m7-stm32h7", "cortex-m55")
#: Per board, the int8 conformance models validated, and how each reaches the board: uploaded over SMP, or
#: programmed into the flash image before boot (as a debug probe would). VWW has an input larger than one SMP
#: packet; its 333 KB would take 30 s over the emulated UART, and the uploads here already test that path.
VALIDATE = {
    "cortex-m4-256k": (("tflm__hello_world_int8", "upload"), ("keyword_spotting__kws_ref_model", "upload"),
                       ("visual_wake_words__vww_96_int8", "program")),
    "cortex-m7-stm32h7": (("keyword_spotting__kws_ref_model", "upload"),
                          ("image_classification__pretrainedResnet_quant", "program")),
    "cortex-m55": (("keyword_spotting__kws_ref_model", "program"), ("tflm__micro_speech_quantized", "upload")),
}
#: Generous: QEMU with -icount on a busy 2-core machine.
REPLY_TIMEOUT_S = 60.0


@pytest.fixture
def board(firmware, tmp_path):
    """``board(target, flash=None)`` -> a started Emulator (stopped at the end of the test)."""
    from firmware_tools.emulate import Emulator

    started = []

    def start(target: str, flash: Path | None = None, model: bytes | None = None):
        em = Emulator(firmware(target), flash or tmp_path / f"{target}-flash.bin")
        started.append(em)
        if model is not None:
            em.program(model)
        em.start()
        return em

    yield start
    for em in started:
        em.stop()


def _model(stem: str) -> Path:
    return require_conformance(MODELS / f"{stem}.tflite")


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class RawSmp:
    """SMP requests as raw frames over the pty, to send what a well-behaved host never would."""

    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, 115200, timeout=0.5)
        self.port.reset_input_buffer()
        self.decoder = FrameDecoder()
        self.seq = 0
        self.received = b""  # everything the firmware sent, to catch fault messages or a reboot banner

    def close(self) -> None:
        self.port.close()

    def packet(self, op: int, group: int, cmd: int, payload: bytes) -> bytes:
        self.seq = (self.seq + 1) % 256
        return bytes([op | 0x08, 0]) + len(payload).to_bytes(2, "big") + group.to_bytes(2, "big") + \
            bytes([self.seq, cmd]) + payload

    def send_packet(self, packet: bytes) -> dict:
        self.port.write(encode_frame(packet))
        return self.reply(packet[6])

    def request(self, op: int, group: int, cmd: int, body) -> dict:
        return self.send_packet(self.packet(op, group, cmd, cbor2.dumps(body)))

    def reply(self, seq: int) -> dict:
        import time

        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            chunk = self.port.read(4096)
            self.received += chunk
            for pkt in self.decoder.feed(chunk):
                if pkt[6] == seq and pkt[0] & 0x07 in (1, 3):
                    return cbor2.loads(pkt[8:])
        raise TimeoutError(f"no reply to sequence {seq} within {REPLY_TIMEOUT_S}s")

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def echo(self, text: str) -> str:
        return self.request(OP_WRITE, GROUP_OS, OS_ECHO, {"d": text})["r"]


# ---- boot --------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_firmware_boots_and_offers_invoke(board, firmware, target):
    from firmware_tools.flash import device_info

    em = board(target)
    assert b"kernels cmsis-nn" in em.boot_log and target.encode() in em.boot_log
    info = device_info(em.port)
    fw = firmware(target)
    assert info.invoke is True and info.tensor_io is True and info.kernels == "cmsis-nn"
    assert info.target == target and info.ram == fw.arena_bytes
    assert info.active is None and info.slot_size >= (fw.flash_bytes - 2 * 4096) // 2 - 4096


# ---- flash with our host, validate bit-exact against the tflite-micro wheel ---------------------

@pytest.mark.parametrize("target,stem,how", [(t, s, how) for t in TARGETS for s, how in VALIDATE[t]])
def test_flash_and_invoke_bit_exact(board, target, stem, how):
    from edgert.model import read_model
    from firmware_tools.flash import device_info, flash_model
    from firmware_tools.flash_image import PRELOADED_NAME
    from firmware_tools.validate import validate_on_device

    path = _model(stem)
    model = read_model(path)
    if how == "program":
        em = board(target, model=model.data)
        assert device_info(em.port).active == {"name": PRELOADED_NAME, "size": model.size_bytes, "sha256": model.sha256}
    else:
        em = board(target)
        result = flash_model(em.port, path)
        assert result.ok, result.error
    spec = model.inputs[0]
    rng = np.random.default_rng(12)
    first = rng.integers(-128, 128, size=tuple(spec.shape), dtype=np.int8)
    second = rng.integers(-128, 128, size=tuple(spec.shape), dtype=np.int8)
    samples = np.stack([first, second, first])  # the repeat shows the instruction count is deterministic
    report = validate_on_device(em.port, path, samples)
    assert report["bit_exact"] is True, report
    assert report["flashed"] is False  # uploaded above or programmed: the board already runs it
    assert report["ok"] is True and report["top1_agreement"] == 1.0
    counts = [s["instructions"] for s in report["per_sample"]]
    assert all(isinstance(c, int) and c > 0 for c in counts) and counts[0] == counts[2]
    info = device_info(em.port)
    assert info.active["sha256"] == model.sha256 and 0 < info.arena_used <= info.ram


def test_flash_through_the_cli(board, tmp_path):
    """``edgert flash --port`` against the emulated board, as a user types it."""
    path = _model("keyword_spotting__kws_ref_model")
    em = board("cortex-m4-256k")
    run = subprocess.run([sys.executable, "-m", "edgert", "flash", str(path), "--port", em.port, "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["ok"] and out["ports"][0]["sha256"] == out["sha256"]


# ---- malformed and oversized requests ---------------------------------------------------------

def test_malformed_and_oversized_requests_get_error_replies(board):
    em = board("cortex-m4-256k")
    smp = RawSmp(em.port)
    try:
        rng = np.random.default_rng(7)
        noise = [
            b"boot text \x00\xff\x06 \x04 between frames\r\n",
            rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
            b"\x06\x09!!notbase64!!\n",
            b"\x06\x09" + b"QUFB" * 60 + b"\n",  # a line longer than 127 bytes
            b"\x06\x09/////w==\n",  # announces 65535 bytes: more than the buffer, dropped
            b"\x04\x14QUFB\n",  # continuation without a start
        ]
        for junk in noise:
            smp.write(junk)
            assert smp.echo("still here") == "still here"
        # Bad CBOR and wrong types: an SMP error reply, never silence or a fault.
        for payload in (b"\xff", b"\xa1\x61d", b"\xa1\x61d\x7a\xff\xff\xff\xff", b"\xa1\x61d" + b"\x81" * 1200,
                        b"\xa1\x61d\x18\x05"):
            reply = smp.send_packet(smp.packet(OP_WRITE, GROUP_OS, OS_ECHO, payload))
            assert reply.get("rc", 0) != 0 or "err" in reply, reply
        # The edgert group without a model, with nonsense fields, and past any tensor.
        assert smp.request(OP_WRITE, EDGERT_GROUP, CMD_INVOKE, {"inputs": [b"\x00" * 10]})["err"]["rc"] == ERR_NO_MODEL
        assert smp.request(OP_WRITE, EDGERT_GROUP, CMD_TENSOR_WRITE, {"index": 99, "off": 2 ** 31, "data": b"x"}).get("err")
        assert smp.request(OP_READ, EDGERT_GROUP, CMD_TENSOR_READ, {"index": 0, "off": 0}).get("err")
        assert smp.request(OP_WRITE, EDGERT_GROUP, 99, {}).get("rc", 0) != 0  # no such command
        # An upload announcing more than the slot: ENOMEM, nothing stored.
        big = smp.request(OP_WRITE, GROUP_FILE, FILE_UPLOAD, {"off": 0, "len": 2 ** 31, "data": b"x", "name": STAGED})
        assert big.get("rc") == 2, big
        # A model that is not a flatbuffer, activated: the runner refuses it, INVOKE says so.
        junk_model = bytes(range(256)) * 8
        assert smp.request(OP_WRITE, GROUP_FILE, FILE_UPLOAD, {"off": 0, "len": len(junk_model), "data": junk_model[:1024],
                                             "name": STAGED})["off"] == 1024
        rest = {"off": 1024, "data": junk_model[1024:], "name": STAGED}
        assert smp.request(OP_WRITE, GROUP_FILE, FILE_UPLOAD, rest)["off"] == 2048
        smp.request(OP_WRITE, EDGERT_GROUP, CMD_ACTIVATE, {"name": STAGED, "sha": _sha(junk_model)})
        rc = smp.request(OP_WRITE, EDGERT_GROUP, CMD_INVOKE, {"inputs": [b"\x00"]}).get("err", {}).get("rc")
        assert rc in (2, 6), rc  # NO_MODEL or INVOKE_FAILED: the device would not run it
        assert smp.echo("alive") == "alive"
    finally:
        smp.close()
    assert em.running()
    # Never a fault, never a reboot: the firmware would say so on the line (and print its banner again).
    assert b"fault" not in smp.received and b"edgert firmware: ready" not in smp.received


# ---- power loss ------------------------------------------------------------------------------

def test_power_loss_mid_upload_keeps_a_complete_model(board, tmp_path):
    from edgert.model import read_model
    from firmware_tools.emulate import Emulator
    from firmware_tools.flash import device_info, flash_model
    from firmware_tools.validate import validate_on_device

    old, new = _model("tflm__hello_world_int8"), _model("tflm__micro_speech_quantized")
    flash = tmp_path / "flash.bin"
    em = board("cortex-m4-256k", flash)
    assert flash_model(em.port, old).ok
    size = new.stat().st_size

    # Early in the upload, with nearly all of it written, and with all of it acknowledged but not yet activated.
    for cut_at in (size // 3, size - 1024, size):
        def cut(done, total, label, _at=cut_at, _em=em):
            if done >= _at:
                _em.kill()  # power cut: QEMU dies, the flash image keeps what was written

        try:  # the host reports the lost board as an error, raised or in its result
            assert not flash_model(em.port, new, progress=cut).ok
        except (EdgertError, OSError, serial.SerialException):
            pass
        assert not em.running()
        em = board("cortex-m4-256k", flash)  # power back on, same flash image
        info = device_info(em.port)
        assert info.active["sha256"] == read_model(old).sha256
        report = validate_on_device(em.port, old, np.zeros((1, 1, 1), dtype=np.int8))
        assert report["bit_exact"] is True and report["flashed"] is False

    # Cut right after ACTIVATE was answered: the new model stays, the old one is its previous.
    assert flash_model(em.port, new).ok
    em.kill()
    em = board("cortex-m4-256k", flash)
    info = device_info(em.port)
    assert info.active["sha256"] == read_model(new).sha256 and info.previous["sha256"] == read_model(old).sha256
    assert isinstance(em, Emulator)


# ---- smpclient ------------------------------------------------------------------------------

def test_smpclient_uploads_to_the_emulated_board(board):
    pytest.importorskip("smpclient")
    from smpclient import SMPClient
    from smpclient.requests.file_management import FileHashChecksum
    from smpclient.transport.serial import SMPSerialTransport

    from firmware_tools.flash import device_info

    data = _model("keyword_spotting__kws_ref_model").read_bytes()
    em = board("cortex-m4-256k")

    async def session(port: str):
        client = SMPClient(SMPSerialTransport(), port, timeout_s=REPLY_TIMEOUT_S)
        await client.connect()
        try:
            offsets = [off async for off in client.upload_file(data, STAGED)]
            digest = await client.request(FileHashChecksum(name=STAGED, type="sha256"))
            return offsets, digest
        finally:
            await client.disconnect()

    offsets, digest = asyncio.run(session(em.port))
    assert offsets[-1] == len(data) and digest.output == _sha(data)
    smp = RawSmp(em.port)
    try:
        active = smp.request(OP_WRITE, EDGERT_GROUP, CMD_ACTIVATE, {"name": STAGED, "sha": _sha(data)})["active"]
    finally:
        smp.close()
    assert active["sha"] == _sha(data)
    assert device_info(em.port).arena_used > 0


# ---- the CLI --------------------------------------------------------------------------------

def test_cli_firmware_and_emulate(firmware, tmp_path):
    firmware("cortex-m4-256k")  # the library is built (and cached) before the CLI links
    run = subprocess.run([sys.executable, "-m", "edgert", "device", "firmware", "--target", "cortex-m4-256k",
                          "-o", str(tmp_path / "fw"), "--json"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["board"] == "mps2-an386" and out["library_cached"] is True
    assert all(Path(out[k]).is_file() for k in ("elf", "bin", "map"))
    assert sorted(p.name for p in (tmp_path / "fw").iterdir()) == [Path(out[k]).name for k in ("bin", "elf", "map")]

    model = _model("keyword_spotting__kws_ref_model")
    proc = subprocess.Popen([sys.executable, "-m", "edgert", "device", "emulate", "--target", "cortex-m4-256k",
                             "--flash-image", str(tmp_path / "flash.bin"), "--model", str(model), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()  # printed once the firmware's banner was seen
        info = json.loads(line)
        assert info["board"] == "mps2-an386" and os.path.exists(info["port"])
        from edgert.model import read_model
        from firmware_tools.flash import device_info

        device = device_info(info["port"])
        assert device.invoke is True and device.active["sha256"] == read_model(model).sha256  # programmed before boot
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    assert rc == 0, proc.stderr.read()
    assert proc.stdout.read() == ""  # exactly one JSON object


def test_two_builds_of_one_target_at_once_both_succeed(firmware, tmp_path):
    """Two processes (or test workers) linking the same firmware into one folder: each links privately and
    replaces the outputs atomically, so both succeed and the folder holds one complete ELF, bin and map."""
    firmware("cortex-m4-256k")  # the library is cached first: the two only link
    cmd = [sys.executable, "-m", "edgert", "device", "firmware", "--target", "cortex-m4-256k", "-o", str(tmp_path),
           "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    elf = Path(json.loads(outs[0][0])["elf"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(elf.with_suffix(s).name for s in (".bin", ".elf", ".map"))
    assert elf.read_bytes()[:4] == b"\x7fELF"


def test_emulate_refuses_a_model_that_is_not_tflite_in_one_line(tmp_path):
    """``device emulate --model`` reads the model before building or booting anything; the flash image is untouched."""
    bad = tmp_path / "notes.tflite"
    bad.write_text("not a flatbuffer")
    flash = tmp_path / "flash.bin"
    flash.write_bytes(b"kept")
    run = subprocess.run([sys.executable, "-m", "edgert", "device", "emulate", "--model", str(bad),
                          "--flash-image", str(flash)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "notes.tflite" in run.stderr
    assert flash.read_bytes() == b"kept"


# ---- without the toolchain ---------------------------------------------------------------------

def test_missing_toolchain_is_one_line_naming_the_apt_command(tmp_path, monkeypatch):
    """Runs everywhere: with an empty PATH the build and the emulator say what to install (exit 2)."""
    from firmware_tools.emulate import find_qemu
    from firmware_tools.firmware import ToolchainMissingError, build_firmware

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissingError, match="apt-get install -y gcc-arm-none-eabi"):
        build_firmware("cortex-m4-256k", tmp_path / "fw", progress=None)
    with pytest.raises(ToolchainMissingError, match="qemu-system-arm"):
        find_qemu()
    run = subprocess.run([sys.executable, "-m", "edgert", "device", "firmware", "--target", "cortex-m4-256k",
                          "-o", str(tmp_path / "fw")], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PATH": str(tmp_path)})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "apt-get install" in run.stderr


def test_profiles_map_to_boards_from_data():
    """Every shipped MCU profile with a board maps through the one table; others are refused in one line."""
    from firmware_tools.firmware import BOARDS, PROFILE_BOARDS, FirmwareBuildError, board_for_target

    for profile, machine in PROFILE_BOARDS.items():
        assert board_for_target(profile) is BOARDS[machine]
    with pytest.raises(FirmwareBuildError, match="no emulated Cortex-M board"):
        board_for_target("raspberry-pi-4")
