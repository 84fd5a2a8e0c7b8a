"""Tensors of any size through INVOKE (issue 12): inline, TENSOR_WRITE chunks, TENSOR_READ, and the host's refusals.

The device is the simulator on a real pseudo-terminal (``edgert device simulate``
or :class:`firmware_tools.sim.Simulator`), running the tflite-micro wheel; the
host is edgert's own (``edgert device validate`` and :func:`firmware_tools.flash.invoke`).
Nothing here measures time: every wait is a reply or a process exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("smp")
pytest.importorskip("cbor2")

from firmware_tools import errors as fw_errors
from firmware_tools.flash import INLINE, INVOKE_SECONDS, STAGED, flash_model, invoke, invoke_request_size, read_info
from firmware_tools.link import SmpLink, Timeouts
from firmware_tools.protocol import (
    CMD_INFO,
    CMD_INVOKE,
    CMD_TENSOR_READ,
    CMD_TENSOR_WRITE,
    ERR_BAD_INPUT,
    ERR_NO_MODEL,
    ERR_NOT_SUPPORTED,
    GROUP_EDGERT,
    OP_READ,
    OP_WRITE,
    make_packet,
    response_error,
)
from firmware_tools.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
TARGET = "cortex-m4-256k"
#: The production policy: every wait scales with the bytes moved, and a busy machine only makes it wait longer.
POLICY = Timeouts()


def _micro_or_skip() -> None:
    from edgert.runtime.micro import micro_available

    if not micro_available():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but the tflite-micro wheel is not installed")
        pytest.skip("the tflite-micro wheel is not installed (pip install 'edgert[convert]')")


@pytest.fixture(scope="module")
def vww(conformance_dir) -> Path:
    return conformance_dir / "models" / "visual_wake_words__vww_96_int8.tflite"  # 96x96x3 int8: 27,648-byte input


@pytest.fixture(scope="module")
def speech(conformance_dir) -> bytes:
    return (conformance_dir / "models" / "tflm__micro_speech_quantized.tflite").read_bytes()  # 1960-byte input


@pytest.fixture(scope="module")
def anomaly(conformance_dir) -> bytes:
    return (conformance_dir / "models" / "anomaly_detection__ad01_int8.tflite").read_bytes()  # 640 in, 640 out


def _samples(tmp_path: Path, shape: tuple[int, ...], n: int, seed: int) -> Path:
    x = np.random.default_rng(seed).integers(-128, 128, size=(n, *shape), dtype=np.int8)
    path = tmp_path / "samples.npz"
    np.savez(path, x=x)
    return path


def _raw(link: SmpLink, op: int, cmd: int, body: dict) -> dict:
    # One attempt with the INVOKE allowance: a repeated INVOKE would find its staged inputs already consumed.
    return link.request(lambda s: make_packet(op, GROUP_EDGERT, cmd, s, body), "raw", check=False, retries=1,
                        extra_seconds=INVOKE_SECONDS)


def _validate_cli(model: Path, port: str, data: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgert", "device", "validate", str(model), "--port", port,
                           "--data", str(data), "--json", *extra],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)


@contextmanager
def _cli_simulator(tmp_path: Path, *extra: str) -> Iterator[str]:
    """``edgert device simulate ... --json`` in a child process: yields the port it announced; stops it with SIGTERM."""
    sim = subprocess.Popen([sys.executable, "-m", "edgert", "device", "simulate", "--target", TARGET,
                            "--flash", str(tmp_path / "flash.bin"), "--baud", "0", "--json", *extra],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        announced = json.loads(sim.stdout.readline())
        assert os.path.realpath(announced["port"]).startswith("/dev/pts/")
        yield announced["port"]
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=60) == 0


# ---- the must-hold: VWW (input larger than the SMP buffer) through the CLI ------------------------

def test_validate_vww_against_the_cli_simulator_is_bit_exact(tmp_path, vww):
    _micro_or_skip()
    data = _samples(tmp_path, (1, 96, 96, 3), 2, seed=1)
    with _cli_simulator(tmp_path) as port:
        proc = _validate_cli(vww, port, data)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # The keys scripts already read are all still there.
    assert {"ok", "model_sha256", "samples", "top1_equal", "top1_agreement", "max_abs_error", "mean_abs_error",
            "flashed", "device_us_mean", "per_sample"} <= set(out)
    assert out["ok"] and out["samples"] == 2 and out["flashed"]
    assert out["input_transfer"] == STAGED  # 27,648 bytes cannot go in one 2 KiB request
    assert out["bit_exact"] is True
    for s in out["per_sample"]:
        assert {"index", "host_top1", "device_top1", "max_abs_error", "device_us", "instructions", "bit_exact"} <= set(s)
        assert s["bit_exact"] is True and s["device_us"] > 0
        assert s["instructions"] is None  # the simulator counts no instructions, and says so by leaving insns out


# ---- a device that cannot take chunks ------------------------------------------------------------

def test_device_without_tensor_io_refuses_a_large_input_before_sending_anything(tmp_path, vww):
    data = _samples(tmp_path, (1, 96, 96, 3), 1, seed=2)
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None, tensor_io=False) as sim:
        proc = _validate_cli(vww, sim.port, data)
        frames = sim.stats["frames"]
        staged = sim.store.record.active
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    request = invoke_request_size([96 * 96 * 3])
    # Both sizes and the fix, in one line.
    assert f"{request:,}" in lines[0] and "2,048" in lines[0] and "tensor_io" in lines[0], lines[0]
    assert "CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE" in lines[0]
    # Only INFO and MCUmgr params went out: no model upload, no INVOKE.
    assert frames == 2 and staged is None


def test_cli_simulator_emulates_firmware_without_tensor_io(tmp_path, vww):
    data = _samples(tmp_path, (1, 96, 96, 3), 1, seed=2)
    with _cli_simulator(tmp_path, "--no-tensor-io") as port:
        info = subprocess.run([sys.executable, "-m", "edgert", "device", "info", "--port", port, "--json"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        proc = _validate_cli(vww, port, data)
    assert info.returncode == 0, info.stderr
    # INFO as firmware from before tensor I/O sends it: no tensor_io, kernels or arena_used.
    reported = json.loads(info.stdout)
    assert reported["tensor_io"] is False and reported["kernels"] is None and reported["arena_used"] is None
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "tensor_io" in proc.stderr, proc.stderr


def test_library_refusal_is_typed_and_small_inputs_still_go_inline(tmp_path, speech):
    """Without tensor_io a request that fits the buffer works as before; a larger one is TensorTooLargeError."""
    _micro_or_skip()
    inline_size = invoke_request_size([1960])
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None, tensor_io=False,
                   buf_size=inline_size) as sim, SmpLink(sim.port, timeouts=POLICY) as link:
        assert flash_model(link.port, speech).ok
        info = read_info(link)
        assert not info.tensor_io and info.buf_size == inline_size
        result = invoke(link, [bytes(1960)], info=info)
        assert result.transfer == INLINE and len(result.outputs) == 1 and len(result.outputs[0]) == 4
        frames = sim.stats["frames"]
        with pytest.raises(fw_errors.TensorTooLargeError) as e:
            invoke(link, [bytes(1961)], info=info)
        assert e.value.rc == 4 and sim.stats["frames"] == frames  # refused on the host: nothing sent


# ---- chunking: boundaries, read-back, resume --------------------------------------------------------

def test_inline_up_to_the_buffer_and_staged_one_byte_beyond(tmp_path, speech):
    _micro_or_skip()
    from edgert.runtime.micro import run_micro

    x = np.random.default_rng(3).integers(-128, 128, size=(1, 1960), dtype=np.int8)
    expected = run_micro(speech, [x])[0].tobytes()
    exact = invoke_request_size([1960])
    for buf_size, transfer in ((exact, INLINE), (exact - 1, STAGED)):
        flash = tmp_path / f"flash-{buf_size}.bin"
        with Simulator(TARGET, flash_path=flash, baudrate=None, buf_size=buf_size) as sim, \
                SmpLink(sim.port, timeouts=POLICY) as link:
            assert flash_model(link.port, speech).ok
            result = invoke(link, [x.tobytes()])
            assert result.transfer == transfer and result.outputs == [expected], buf_size
            assert not result.read_back


def test_outputs_larger_than_the_reply_are_read_back(tmp_path, anomaly):
    """640-byte input and output on a device with a 512-byte buffer: TENSOR_WRITE in, TENSOR_READ out."""
    _micro_or_skip()
    from edgert.runtime.micro import run_micro

    xs = np.random.default_rng(4).integers(-128, 128, size=(2, 1, 640), dtype=np.int8)
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None, buf_size=512) as sim, \
            SmpLink(sim.port, timeouts=POLICY) as link:
        assert flash_model(link.port, anomaly).ok
        for x in xs:
            result = invoke(link, [x.tobytes()])
            assert result.transfer == STAGED and result.read_back
            assert result.outputs == [run_micro(anomaly, [x])[0].tobytes()]


def test_a_lost_chunk_is_resent_from_the_offset_the_device_holds(tmp_path, vww):
    """A TENSOR_WRITE frame dropped on the line: the next chunk's offset mismatches, the device answers what it
    holds, the host continues from there and the invoke still sees the whole input."""
    _micro_or_skip()
    from edgert.runtime.micro import run_micro

    model = vww.read_bytes()
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 96, 96, 3), dtype=np.int8)
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None) as sim, \
            SmpLink(sim.port, timeouts=POLICY) as link:
        assert flash_model(link.port, model).ok
        info = read_info(link)
        # Frames are counted as the device receives them: drop the 3rd and 7th TENSOR_WRITE of this invoke.
        first = sim.stats["frames"]
        sim.faults.drop_frame.update({first + 2, first + 6})
        result = invoke(link, [x.tobytes()], info=info)
        assert result.transfer == STAGED
        assert result.outputs == [run_micro(model, [x])[0].tobytes()]
        assert sim.stats["frames"] > first + 27648 // info.buf_size + 2  # the lost chunks went again


def test_tensor_commands_follow_the_protocol_rules(tmp_path, speech):
    """Bad index, offset mismatch (resume point), data past the end, read before any invoke, stale inputs."""
    _micro_or_skip()
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None) as sim, \
            SmpLink(sim.port, timeouts=POLICY) as link:
        assert response_error(_raw(link, OP_WRITE, CMD_INVOKE, {})) == (GROUP_EDGERT, ERR_NO_MODEL)
        assert response_error(_raw(link, OP_WRITE, CMD_TENSOR_WRITE, {"index": 0, "off": 0, "data": b"x"})) == \
            (GROUP_EDGERT, ERR_NO_MODEL)
        assert flash_model(link.port, speech).ok
        info = read_info(link)
        assert info.tensor_io and info.kernels == "reference"

        def write(index, off, data):
            return _raw(link, OP_WRITE, CMD_TENSOR_WRITE, {"index": index, "off": off, "data": data})

        assert response_error(_raw(link, OP_READ, CMD_TENSOR_READ, {"index": 0, "off": 0})) == (GROUP_EDGERT, ERR_BAD_INPUT)
        for bad in ((1, 0, b"x"), (2**40, 0, b"x"), (0, 0, b"x" * 1961), (True, 0, b"x"), (0, -1, b"x"), (0, 0, "x")):
            assert response_error(write(*bad)) == (GROUP_EDGERT, ERR_BAD_INPUT), bad
        assert write(0, 0, b"a" * 1000) == {"off": 1000}
        assert write(0, 500, b"b" * 10) == {"off": 1000}  # another offset: nothing stored, the held count back
        assert write(0, 1000, b"c" * 960) == {"off": 1960}
        assert response_error(write(0, 1960, b"d")) == (GROUP_EDGERT, ERR_BAD_INPUT)  # past the end
        reply = _raw(link, OP_WRITE, CMD_INVOKE, {})
        assert reply.get("sizes") == [4], reply
        assert len(reply["outputs"][0]) == 4 and reply["us"] > 0
        read = _raw(link, OP_READ, CMD_TENSOR_READ, {"index": 0, "off": 0})
        assert read == {"off": 0, "len": 4, "data": reply["outputs"][0]}
        assert response_error(_raw(link, OP_READ, CMD_TENSOR_READ, {"index": 0, "off": 5})) == (GROUP_EDGERT, ERR_BAD_INPUT)
        assert response_error(_raw(link, OP_READ, CMD_TENSOR_READ, {"index": 1, "off": 0})) == (GROUP_EDGERT, ERR_BAD_INPUT)
        # The counters went back to 0: a second staged INVOKE without new inputs is refused, and the old
        # outputs are gone with it (a stale tensor is never silently reused).
        assert response_error(_raw(link, OP_WRITE, CMD_INVOKE, {})) == (GROUP_EDGERT, ERR_BAD_INPUT)
        assert response_error(_raw(link, OP_READ, CMD_TENSOR_READ, {"index": 0, "off": 0})) == (GROUP_EDGERT, ERR_BAD_INPUT)
        # ACTIVATE (a forced re-flash of the same model) drops what was staged.
        assert write(0, 0, b"a" * 100) == {"off": 100}
        assert flash_model(link.port, speech, force=True).ok
        assert write(0, 100, b"a" * 100) == {"off": 0}
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None, tensor_io=False) as old, \
            SmpLink(old.port, timeouts=POLICY) as link:
        # Firmware from before tensor I/O: the commands are unknown to it.
        assert response_error(_raw(link, OP_WRITE, CMD_TENSOR_WRITE, {"index": 0, "off": 0, "data": b"x"})) == \
            (GROUP_EDGERT, ERR_NOT_SUPPORTED)
        assert "tensor_io" not in _raw(link, OP_READ, CMD_INFO, {})


# ---- several outputs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def multi_output_model(tmp_path_factory) -> Path:
    """A tiny int8 model with three outputs (classes, a box, and a 2 KiB feature map), converted for real."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(7)
    inp = tf.keras.Input((16, 16, 3))
    features = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(inp)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(features)
    classes = tf.keras.layers.Dense(5, activation="softmax", name="classes")(pooled)
    box = tf.keras.layers.Dense(4, name="box")(pooled)
    model = tf.keras.Model(inp, [classes, box, features])
    rng = np.random.default_rng(7)

    def representative():
        for _ in range(16):
            yield [rng.random((1, 16, 16, 3), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("multi") / "multi.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_multi_output_model_validates_bit_exact(tmp_path, multi_output_model):
    _micro_or_skip()
    from edgert.model import read_model
    from firmware_tools.validate import validate_on_device

    mf = read_model(multi_output_model)
    assert len(mf.outputs) == 3 and max(o.nbytes for o in mf.outputs) == 16 * 16 * 8
    x = np.random.default_rng(8).integers(-128, 128, size=(2, 1, 16, 16, 3), dtype=np.int8)
    with Simulator(TARGET, flash_path=tmp_path / "flash.bin", baudrate=None) as sim:
        out = validate_on_device(sim.port, multi_output_model, x, timeouts=POLICY)
        assert sim.stats["invokes"] == 2
    # 768 input bytes fit one request; the 2 KiB feature map does not fit the reply and is read back.
    assert out["input_transfer"] == INLINE
    assert out["ok"] and out["bit_exact"] is True
    assert all(s["bit_exact"] for s in out["per_sample"])
