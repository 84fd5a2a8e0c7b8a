"""edgert's host against the simulator, over real pseudo-terminals (issue 6 must-holds).

Every test opens the simulator's port with pyserial exactly like a user's
``/dev/ttyACM0``; faults are injected on the simulated device side of the line.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("smp")
pytest.importorskip("smpclient")
pytest.importorskip("cbor2")

from edgert.errors import InvalidModelError
from firmware_tools import errors as fw_errors
from firmware_tools.flash import device_info, flash_many, flash_model, rollback
from firmware_tools.link import Timeouts
from firmware_tools.protocol import STAGED_NAME
from firmware_tools.sim import Faults, Simulator
from firmware_tools.sim_store import RECORD_AREA, FlashStore, decode_record

ROOT = Path(__file__).resolve().parents[2]
#: Short waits so fault tests finish quickly; the policy (base + size-scaled) is the production one.
FAST = Timeouts(response_base=0.4, write_per_kib=0.01, hash_per_kib=0.01, retries=4, reconnect=3.0, open=1.0)
TARGET = "cortex-m4-256k"


@pytest.fixture(scope="module")
def host_hello(conformance_dir) -> bytes:
    return (conformance_dir / "models" / "tflm__hello_world_int8.tflite").read_bytes()  # 2.7 kB: two chunks


@pytest.fixture(scope="module")
def host_speech(conformance_dir) -> bytes:
    return (conformance_dir / "models" / "tflm__micro_speech_quantized.tflite").read_bytes()  # 18.8 kB: ten chunks


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sim(tmp_path, *, faults=(), baudrate=None, **kw) -> Simulator:
    return Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=baudrate, faults=Faults.parse(list(faults)), **kw)


def _active_on_flash(tmp_path, slot_size: int) -> tuple[str | None, bool]:
    """Read the flash file like a bootloader would: (active sha256, its slot hashes to it)."""
    store = FlashStore(tmp_path / "flash.bin", slot_size, slot_size + 4096)
    try:
        rec = store.record
        if rec.active is None:
            return None, True
        return rec.active.sha.hex(), store.entry_ok(rec.active)
    finally:
        store.close()


# ---- the plain path ----------------------------------------------------------------------------

def test_host_uploads_verifies_and_activates(tmp_path, host_hello, host_speech):
    with _sim(tmp_path, baudrate=921600) as sim:
        assert device_info(sim.port).active is None
        seen = []
        r = flash_model(sim.port, host_speech, progress=lambda d, t, _l: seen.append((d, t)))
        assert r.ok and r.sha256 == _sha(host_speech) and r.bytes == len(host_speech)
        assert r.resent_bytes == 0 and r.resumed_from is None and r.window == 2
        assert seen[-1] == (len(host_speech), len(host_speech)) and len(seen) > 5
        info = device_info(sim.port)
        assert info.active["sha256"] == _sha(host_speech) and info.buf_size == sim.buf_size

        # Flashing the same model again is a no-op; another model keeps the first as "previous".
        assert flash_model(sim.port, host_speech).already_active
        assert flash_model(sim.port, host_hello).ok
        info = device_info(sim.port)
        assert info.active["sha256"] == _sha(host_hello) and info.previous["sha256"] == _sha(host_speech)
        assert rollback(sim.port)["sha256"] == _sha(host_speech)
        assert device_info(sim.port).previous["sha256"] == _sha(host_hello)
    assert _active_on_flash(tmp_path, sim.slot_size) == (_sha(host_speech), True)


def test_stop_removes_the_simulators_own_files(tmp_path):
    kept = tmp_path / "flash.bin"
    with Simulator(TARGET, baudrate=None) as temporary, Simulator(TARGET, flash_path=kept, baudrate=None) as persistent:
        own = [Path(temporary.port).parent, Path(persistent.port).parent]
        assert temporary.flash_path.parent == own[0] and all(d.is_dir() for d in own)
    assert not any(d.exists() for d in own)  # port symlinks and the temporary flash are gone
    assert kept.is_file()  # a flash file the caller named outlives the board, like real flash


def test_host_accepts_url_and_open_port_object(tmp_path, host_hello):
    import serial

    with _sim(tmp_path) as sim:
        # spy:// wraps the real port and logs the traffic: the same serial_for_url path users take.
        assert flash_model(f"spy://{sim.port}?file={tmp_path / 'spy.txt'}", host_hello).ok
        assert "TX" in (tmp_path / "spy.txt").read_text()
        with serial.Serial(sim.port, 115200, timeout=0.01) as port:
            assert device_info(port).active["sha256"] == _sha(host_hello)


def test_invalid_model_is_refused_before_touching_the_port(tmp_path):
    with pytest.raises(InvalidModelError):
        flash_model("/dev/does-not-exist", b"not a flatbuffer at all")


def test_loopback_url_echo_is_never_taken_for_a_reply(host_hello):
    # loop:// returns our own request frames: valid SMP with a matching sequence, but requests, not replies.
    with pytest.raises(fw_errors.DeviceSilentError):
        flash_model("loop://", host_hello, timeouts=FAST)


def test_unreachable_port_is_a_port_error():
    with pytest.raises(fw_errors.PortError):
        device_info("/dev/edgert-no-such-port", timeouts=FAST)


def test_smpclient_uploads_a_file_to_the_simulator(tmp_path, host_speech):
    from smpclient import SMPClient
    from smpclient.generics import success
    from smpclient.requests.file_management import FileHashChecksum, FileStatus
    from smpclient.requests.os_management import EchoWrite
    from smpclient.transport.serial import SMPSerialTransport

    async def upload(port: str):
        async with SMPClient(SMPSerialTransport(), port, timeout_s=5.0) as client:
            echo = await client.request(EchoWrite(d="edgert"))
            offsets = [off async for off in client.upload_file(host_speech, STAGED_NAME)]
            status = await client.request(FileStatus(name=STAGED_NAME))
            digest = await client.request(FileHashChecksum(name=STAGED_NAME, type="sha256"))
            return echo, offsets, status, digest

    with _sim(tmp_path, baudrate=921600) as sim:
        echo, offsets, status, digest = asyncio.run(upload(sim.port))
        assert success(echo) and echo.r == "edgert"
        # smpclient read MCUmgr params and filled the 2 kB buffer: few, large chunks.
        assert offsets[-1] == len(host_speech) and len(offsets) <= len(host_speech) // 1500 + 2
        assert success(status) and status.len == len(host_speech)
        assert success(digest) and digest.output == hashlib.sha256(host_speech).digest()
        # What smpclient staged, edgert's ACTIVATE takes (our host resumes: nothing left to send).
        r = flash_model(sim.port, host_speech)
        assert r.ok and r.resumed_from == len(host_speech) and r.sent_bytes == 0


def test_smpmgr_cli_uploads_a_file_to_the_simulator(tmp_path, host_hello):
    # The dev extra installs smpmgr next to this interpreter (not necessarily on PATH); EDGERT_SMPMGR overrides.
    beside = Path(sys.executable).with_name("smpmgr")
    smpmgr = os.environ.get("EDGERT_SMPMGR") or (str(beside) if beside.exists() else shutil.which("smpmgr"))
    if not smpmgr:
        pytest.skip("smpmgr is not installed (pip install smpmgr, or set EDGERT_SMPMGR)")
    model = tmp_path / "m.tflite"
    model.write_bytes(host_hello)
    with _sim(tmp_path) as sim:
        proc = subprocess.run([smpmgr, "--port", sim.port, "--timeout", "10", "file", "upload", str(model), STAGED_NAME],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert flash_model(sim.port, host_hello).sent_bytes == 0


# ---- line faults -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["flip@3000", "drop-frame@4", "dup-frame@4", "drop@5000:300", "dup@2500:40"])
def test_damaged_lost_or_repeated_data_is_resent_and_verified(tmp_path, host_speech, fault):
    with _sim(tmp_path, faults=[fault]) as sim:
        # A repeated frame needs no timeout to recover: the default policy, so a loaded machine adds no retry.
        r = flash_model(sim.port, host_speech, timeouts=None if fault.startswith("dup-frame") else FAST)
        assert r.ok and device_info(sim.port).active["sha256"] == _sha(host_speech)
        if fault.startswith("dup-frame"):
            assert r.resent_bytes == 0  # a repeated chunk is answered and ignored by the host
        else:
            assert r.retries >= 1 and 0 < r.resent_bytes <= 2 * r.chunk_bytes
        if not fault.startswith(("drop-frame", "dup-frame")):
            assert sim.stats["bad_frames"] >= 1  # the device saw a damaged frame and dropped it


def test_disconnect_at_a_random_byte_resumes_sending_only_unacknowledged_data(tmp_path, host_speech):
    cut = random.Random(os.getpid()).randrange(3000, 20000)
    with _sim(tmp_path, faults=[f"disconnect@{cut}"], baudrate=921600) as sim:
        r = flash_model(sim.port, host_speech)  # a port error needs no timeout: the default policy
        assert r.ok and sim.stats["disconnects"] == 1, cut
        assert r.resumed_from is not None and 0 < r.resumed_from < len(host_speech)
        # Only what the device had not acknowledged went again: at most one chunk.
        assert r.resent_bytes <= r.chunk_bytes
        assert r.sent_bytes == len(host_speech) + r.resent_bytes
        assert device_info(sim.port).active["sha256"] == _sha(host_speech)


def test_next_run_resumes_a_partial_upload_after_checking_its_hash(tmp_path, host_speech, host_hello):
    with _sim(tmp_path, faults=["silent@9000"]) as sim:
        with pytest.raises(fw_errors.DeviceSilentError):
            flash_model(sim.port, host_speech, timeouts=FAST.scaled(0.5))
        held = sim.models.staged.held
        assert 0 < held < len(host_speech)
        sim.faults.silent_at = None
        r = flash_model(sim.port, host_speech)
        assert r.ok and r.resumed_from == held and r.sent_bytes == len(host_speech) - held
        # A different model never resumes on top of someone else's bytes.
        sim.faults.silent_at = sim.stats["rx_bytes"] + 1500
        with pytest.raises(fw_errors.DeviceSilentError):
            flash_model(sim.port, host_hello, timeouts=FAST.scaled(0.5))
        sim.faults.silent_at = None
        r = flash_model(sim.port, host_speech, force=True)
        assert r.ok and r.resumed_from is None


def test_silent_device_is_a_typed_error_not_a_hang(tmp_path, host_hello):
    with _sim(tmp_path, faults=["silent@0"]) as sim:
        with pytest.raises(fw_errors.DeviceSilentError) as e:
            flash_model(sim.port, host_hello, timeouts=FAST)
        assert "did not answer INFO" in str(e.value)
        # The CLI: exit 2, one line on stderr; the subprocess timeout only guards against a hang.
        proc = subprocess.run([sys.executable, "-m", "edgert", "device", "info", "--port", sim.port],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "did not answer" in proc.stderr and "Traceback" not in proc.stderr


def test_device_going_silent_mid_upload_fails_typed(tmp_path, host_speech):
    with _sim(tmp_path, faults=["silent@8000"]) as sim:
        with pytest.raises(fw_errors.DeviceSilentError) as e:
            flash_model(sim.port, host_speech, timeouts=FAST.scaled(0.5))
        assert "stalled" in str(e.value) or "did not answer" in str(e.value)
        assert sim.store.record.active is None and 0 < sim.models.staged.held < len(host_speech)


def test_boot_noise_before_and_between_frames(tmp_path, host_speech):
    with _sim(tmp_path, faults=["noise"]) as sim:
        # Boot text is already waiting in the port before the host's first frame.
        r = flash_model(sim.port, host_speech)
        assert r.ok and r.retries == 0 and r.resent_bytes == 0


def test_wrong_hash_from_the_device_is_never_success(tmp_path, host_hello, host_speech):
    flash_model_ok = None
    with _sim(tmp_path) as sim:
        assert flash_model(sim.port, host_hello).ok
        sim.faults.wrong_hash = True
        with pytest.raises(fw_errors.HashMismatchError):
            flash_model_ok = flash_model(sim.port, host_speech, timeouts=FAST)
        assert flash_model_ok is None
        # Nothing was activated: the old model still runs, its bytes intact.
        assert device_info(sim.port).active["sha256"] == _sha(host_hello)
    assert _active_on_flash(tmp_path, sim.slot_size) == (_sha(host_hello), True)


@pytest.mark.parametrize("route", ["file", "signed-image"])
def test_power_loss_at_every_write_step_leaves_old_or_new_model(tmp_path, host_hello, host_speech, host_keys, route):
    old, new = host_hello, host_speech
    base = tmp_path / "base.bin"
    kw = {"require_signature": True, "trust_keys": [host_keys["ed25519.pub"]]} if route == "signed-image" else {}
    sign = {"sign_key": host_keys["ed25519"]} if kw else {}
    with Simulator(TARGET, flash_path=base, baudrate=None, **kw) as sim:
        assert flash_model(sim.port, old, **sign).ok
        steps_before = sim.store.steps
        assert flash_model(sim.port, new, **sign).ok
        steps = sim.store.steps - steps_before
        slot_size = sim.slot_size
    assert steps >= 7  # the chunk writes (and the payload copy) plus the record commit
    # Start from "old active" every time, cut the power at write step k of flashing "new".
    with Simulator(TARGET, flash_path=base, baudrate=None, **kw) as sim:
        assert rollback(sim.port)["sha256"] == _sha(old)
    pristine = base.read_bytes()
    outcomes = set()
    for k in range(1, steps + 1):
        case = tmp_path / f"k{k}"
        case.mkdir()
        (case / "flash.bin").write_bytes(pristine)
        with Simulator(TARGET, flash_path=case / "flash.bin", baudrate=None, faults=Faults(powerloss_at=k), **kw) as sim:
            try:
                r = flash_model(sim.port, new, timeouts=FAST.scaled(0.5), **sign)
                reported = r.ok
            except fw_errors.DeviceError:
                reported = False
            assert sim.stats["reboots"] == 1
            # Right after the cut the board boots the complete old model (the new record is only valid once
            # completely written), verified by hashing its slot.
            assert sim.boots[1]["active"] == _sha(old) and sim.boots[1]["intact"], (k, sim.boots)
        # Power on again from the flash file alone: a complete old or new model, its SHA-256 verified.
        active, intact = _active_on_flash(case, slot_size)
        assert intact and active in (_sha(old), _sha(new)), k
        if reported:
            assert active == _sha(new)
        with Simulator(TARGET, flash_path=case / "flash.bin", baudrate=None, **kw) as sim:
            assert device_info(sim.port).active["sha256"] == active
        outcomes.add(active)
    assert outcomes <= {_sha(old), _sha(new)}


def test_record_written_alternately_and_torn_record_ignored(tmp_path, host_hello, host_speech):
    with _sim(tmp_path) as sim:
        flash_model(sim.port, host_hello)
        flash_model(sim.port, host_speech)
        areas = [decode_record(sim.store.read(i * RECORD_AREA, RECORD_AREA)) for i in (0, 1)]
        assert sorted(r.seq for r in areas) == [1, 2]
        newest = max(areas, key=lambda r: r.seq)
        assert newest.active.sha.hex() == _sha(host_speech) and newest.previous.sha.hex() == _sha(host_hello)


# ---- capacity -----------------------------------------------------------------------------------

def test_model_larger_than_the_slot_is_refused_before_sending(tmp_path, host_speech):
    with _sim(tmp_path, slot_size=16 * 1024) as sim:
        with pytest.raises(fw_errors.ModelTooLargeError) as e:
            flash_model(sim.port, host_speech)
        assert "slot holds 16384" in str(e.value)
        # Only INFO and MCUmgr params crossed the line: not one upload frame.
        assert sim.stats["frames"] == 2 and sim.models.staged is None
        model = tmp_path / "speech.tflite"
        model.write_bytes(host_speech)
        proc = subprocess.run([sys.executable, "-m", "edgert", "flash", str(model),
                               "--port", sim.port, "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "slot holds" in proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["ports"][0]["ok"] is False and out["ports"][0]["sent_bytes"] == 0


def test_model_larger_than_the_device_ram_is_refused(tmp_path, host_speech):
    with _sim(tmp_path, ram=1024) as sim:
        with pytest.raises(fw_errors.ModelTooLargeError, match="arena"):
            flash_model(sim.port, host_speech)
        assert sim.stats["frames"] == 2


def test_ram_check_uses_the_arena_of_the_devices_own_core(tmp_path, conformance_dir):
    """A Cortex-M55 takes Helium scratch buffers: KWS needs 27,348 B there (measured on the emulated board),
    more than the 64-bit wheel's 24,272 B. A device with RAM between the two must refuse it."""
    kws = (conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite").read_bytes()
    with Simulator("cortex-m55", flash_path=tmp_path / "flash.bin", baudrate=None, ram=26_000) as sim:
        with pytest.raises(fw_errors.ModelTooLargeError, match=r"27348-byte tensor arena \(planned for cortex-m55\)"):
            flash_model(sim.port, kws)
        assert sim.stats["frames"] == 2 and sim.models.staged is None


def test_model_that_does_not_fit_the_target_profile_is_refused_before_sending(tmp_path, conformance_dir, host_hello):
    float_kws = (conformance_dir / "models" / "keyword_spotting__kws_ref_model_float32.tflite").read_bytes()
    with _sim(tmp_path) as sim:
        with pytest.raises(fw_errors.ModelTooLargeError, match="does not fit target cortex-m4-256k: .*full_int8"):
            flash_model(sim.port, float_kws, target=TARGET)
        assert sim.stats["frames"] == 2 and sim.models.staged is None
        assert flash_model(sim.port, host_hello, target=TARGET).ok  # an int8 model that fits goes through


# ---- signatures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_keys(tmp_path_factory):
    from imgtool import keys

    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name, cls in (("ed25519", keys.Ed25519), ("ecdsa", keys.ECDSA256P1), ("other", keys.Ed25519)):
        k = cls.generate()
        k.export_private(str(d / f"{name}.pem"))
        k.export_public(str(d / f"{name}.pub.pem"))
        out[name] = d / f"{name}.pem"
        out[name + ".pub"] = d / f"{name}.pub.pem"
    return out


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_signed_image_is_accepted_through_the_image_group(tmp_path, host_hello, host_keys, kind):
    with _sim(tmp_path, require_signature=True, trust_keys=[host_keys[kind + ".pub"]]) as sim:
        assert device_info(sim.port).sign
        r = flash_model(sim.port, host_hello, sign_key=host_keys[kind])
        assert r.ok and r.signed and r.bytes > len(host_hello)
        assert device_info(sim.port).active["sha256"] == _sha(host_hello)
    assert _active_on_flash(tmp_path, sim.slot_size) == (_sha(host_hello), True)


def test_unsigned_wrong_key_and_tampered_images_are_rejected(tmp_path, host_hello, host_keys, monkeypatch):
    from firmware_tools import flash as flash_mod
    from firmware_tools import signing

    with _sim(tmp_path, require_signature=True, trust_keys=[host_keys["ed25519.pub"]]) as sim:
        # Unsigned: the host refuses before sending, and a host that skips the check is refused by the device.
        with pytest.raises(fw_errors.SignatureError):
            flash_model(sim.port, host_hello)
        monkeypatch.setattr(flash_mod, "read_info", _pretend_unsigned(flash_mod.read_info))
        with pytest.raises(fw_errors.SignatureError):
            flash_model(sim.port, host_hello, timeouts=FAST)
        monkeypatch.undo()
        # Signed with a key the device does not trust.
        with pytest.raises(fw_errors.SignatureError):
            flash_model(sim.port, host_hello, sign_key=host_keys["other"], timeouts=FAST)
        # Tampered after signing (one payload byte changed; the hash TLV no longer matches).
        real_sign = signing.sign_model

        def tampered(data, key, **kw):
            img = bytearray(real_sign(data, key, **kw))
            img[32 + 100] ^= 0x01
            return bytes(img)

        monkeypatch.setattr(signing, "sign_model", tampered)
        with pytest.raises(fw_errors.DeviceRejectedError):
            flash_model(sim.port, host_hello, sign_key=host_keys["ed25519"], timeouts=FAST)
        monkeypatch.undo()
        assert device_info(sim.port).active is None  # nothing ever became active
        assert flash_model(sim.port, host_hello, sign_key=host_keys["ed25519"]).ok


def _pretend_unsigned(real):
    from dataclasses import replace

    return lambda link: replace(real(link), sign=False)


def test_image_group_state_test_confirm_and_revert(tmp_path, host_hello, host_keys):
    from firmware_tools.flash import FlashResult, _upload_image, read_info
    from firmware_tools.link import SmpLink
    from firmware_tools.protocol import make_packet
    from firmware_tools.signing import image_hash, sign_model

    image = sign_model(host_hello, host_keys["ed25519"])
    digest = image_hash(image)
    with _sim(tmp_path) as sim, SmpLink(sim.port, timeouts=FAST) as link:
        _upload_image(link, read_info(link), image, 2, None, "img", FlashResult(port=sim.port))
        state = link.request(lambda s: make_packet(0, 1, 0, s, {}), "state")["images"]
        assert [i["slot"] for i in state] == [0, 1] and state[1]["hash"] == digest and not state[1]["pending"]
        state = link.request(lambda s: make_packet(2, 1, 0, s, {"hash": digest, "confirm": False}), "test")["images"]
        assert state[1]["pending"]
        link.request(lambda s: make_packet(2, 0, 5, s, {}), "reset")
        state = link.request(lambda s: make_packet(0, 1, 0, s, {}), "state")["images"]
        assert state[0]["hash"] == digest and not state[0]["confirmed"]  # swapped, on trial
        link.request(lambda s: make_packet(2, 0, 5, s, {}), "reset")  # not confirmed: MCUboot reverts
        state = link.request(lambda s: make_packet(0, 1, 0, s, {}), "state")["images"]
        assert state[1]["hash"] == digest and state[0]["confirmed"]


# ---- several ports, validate, CLI ------------------------------------------------------------

def test_several_ports_flash_in_parallel_with_one_summary(tmp_path, host_speech):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with _sim(tmp_path / "a", baudrate=921600) as a, _sim(tmp_path / "b", baudrate=921600) as b:
        calls = []
        results = flash_many([a.port, b.port, "/dev/edgert-missing"], host_speech,
                             progress=lambda d, t, _label: calls.append((d, t)), timeouts=FAST)
        assert [r.ok for r in results] == [True, True, False]
        assert "cannot open" in results[2].error
        assert calls[-1][0] >= 2 * len(host_speech)
        assert device_info(a.port).active["sha256"] == device_info(b.port).active["sha256"] == _sha(host_speech)


def test_device_validate_kws_agrees_with_host(tmp_path, conformance_dir):
    import json

    import numpy as np

    model = conformance_dir / "models" / "keyword_spotting__kws_ref_model.tflite"
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(3, 1, 49, 10, 1), dtype=np.int8)
    np.savez(tmp_path / "samples.npz", x=x)
    with _sim(tmp_path, baudrate=921600) as sim:
        proc = subprocess.run([sys.executable, "-m", "edgert", "device", "validate", str(model), "--port", sim.port,
                               "--data", str(tmp_path / "samples.npz"), "--json"],
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["samples"] == 3 and out["top1_equal"] and out["flashed"]
        # Reported, and small: TFLM and the host interpreter use different int8 softmax approximations,
        # so a few output LSBs (scale 1/256) may differ on inputs far from speech features.
        assert 0 <= out["max_abs_error"] < 0.1
        assert all(s["host_top1"] == s["device_top1"] for s in out["per_sample"])
        assert sim.stats["invokes"] == 3


def test_cli_info_and_flash_json_contract(tmp_path, host_hello):
    import json

    path = tmp_path / "m.tflite"
    path.write_bytes(host_hello)
    with _sim(tmp_path) as sim:
        proc = subprocess.run([sys.executable, "-m", "edgert", "flash", str(path), "--port", sim.port, "--json"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        port = out["ports"][0]
        assert out["ok"] and {"ok", "bytes", "seconds", "resumed_from", "sha256"} <= set(port)
        assert port["sha256"] == _sha(host_hello) and port["bytes"] == len(host_hello)
        proc = subprocess.run([sys.executable, "-m", "edgert", "device", "info", "--port", sim.port, "--json"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        info = json.loads(proc.stdout)
        assert proc.returncode == 0 and info["active"]["sha256"] == _sha(host_hello) and info["target"] == TARGET


@pytest.mark.parametrize("entry", [["edgert", "device", "simulate"], ["firmware_tools.sim"]], ids=["edgert", "module"])
def test_cli_simulate_prints_a_port_a_host_can_use(tmp_path, host_hello, entry):
    import json
    import signal

    proc = subprocess.Popen([sys.executable, "-m", *entry, "--target", TARGET,
                             "--flash", str(tmp_path / "f.bin"), "--baud", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        announced = json.loads(proc.stdout.readline())
        assert os.path.realpath(announced["port"]).startswith("/dev/pts/")
        assert flash_model(announced["port"], host_hello).ok
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_cli_export_c_writes_the_model_bytes_as_an_aligned_array(tmp_path, host_hello):
    import json
    import re

    path = tmp_path / "m.tflite"
    path.write_bytes(host_hello)
    proc = subprocess.run([sys.executable, "-m", "edgert", "export-c", str(path), "-o", str(tmp_path / "src"), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    source = Path(out["source"]).read_text()
    assert "alignas(16)" in source and Path(out["header"]).is_file() and out["arena_bytes"] > 0
    array = source[source.index("{"):source.index("};")]
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", array)) == host_hello


def test_edgert_group_error_codes_and_malformed_requests(tmp_path, host_hello):
    from firmware_tools.flash import invoke
    from firmware_tools.link import SmpLink
    from firmware_tools.protocol import (
        CMD_ACTIVATE,
        CMD_INVOKE,
        CMD_ROLLBACK,
        ERR_BAD_INPUT,
        ERR_NO_MODEL,
        ERR_NO_PREVIOUS,
        ERR_NOT_SUPPORTED,
        FILE_HASH,
        GROUP_EDGERT,
        GROUP_FILE,
        GROUP_OS,
        OP_READ,
        OP_WRITE,
        OS_ECHO,
        make_packet,
        response_error,
    )

    unknown_command = 9  # no edgert command has this id

    def ask(link, op, group, cmd, body):
        return link.request(lambda s: make_packet(op, group, cmd, s, body), "raw", check=False)

    with _sim(tmp_path) as sim, SmpLink(sim.port, timeouts=FAST) as link:
        no_model = ask(link, OP_WRITE, GROUP_EDGERT, CMD_INVOKE, {"inputs": [b"\0"]})
        assert response_error(no_model) == (GROUP_EDGERT, ERR_NO_MODEL)
        assert response_error(ask(link, OP_WRITE, GROUP_EDGERT, CMD_ROLLBACK, {})) == (GROUP_EDGERT, ERR_NO_PREVIOUS)
        unknown = ask(link, OP_WRITE, GROUP_EDGERT, unknown_command, {})
        assert response_error(unknown) == (GROUP_EDGERT, ERR_NOT_SUPPORTED)
        short_sha = {"name": STAGED_NAME, "sha": b"short"}
        assert response_error(ask(link, OP_WRITE, GROUP_EDGERT, CMD_ACTIVATE, short_sha)) == (GROUP_EDGERT, ERR_BAD_INPUT)
        # wrong type: EINVAL, no crash
        assert response_error(ask(link, OP_READ, GROUP_FILE, FILE_HASH, {"name": STAGED_NAME, "off": "zero"})) is not None
        assert ask(link, OP_WRITE, GROUP_OS, OS_ECHO, {"d": "still alive"}) == {"r": "still alive"}
        assert flash_model(link.port, host_hello).ok
        with pytest.raises(fw_errors.DeviceRejectedError) as e:
            invoke(link, [b"\0\0"])  # the hello-world model takes one int8 value
        assert e.value.rc == ERR_BAD_INPUT


def test_bad_simulator_options_are_one_line_errors(tmp_path):
    for extra in (["--fault", "meltdown@3"], ["--require-signature"]):
        proc = subprocess.run([sys.executable, "-m", "edgert", "device", "simulate", "--flash", str(tmp_path / "f.bin"), *extra],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
