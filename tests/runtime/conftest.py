"""Runtime test fixtures: an empty verdict cache, crafted models derived from the corpus.

Everything here needs only numpy, the ``tflite`` schema package and an interpreter
backend, so it also runs in the tflite-runtime venv (``make test-tflite-runtime``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgert.model import read_model


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty verdict cache for tests that count child processes."""
    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "verdicts"


@pytest.fixture
def spawn_counter(monkeypatch):
    """Counts probe children: wraps the real ``run_isolated`` that ``edgert.runtime.safe`` calls."""
    import edgert.runtime.safe as safe

    calls = []
    real = safe.run_isolated

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(safe, "run_isolated", counting)
    return calls


def patch_tensor_type(data: bytes, tensor: int, tflite_type: int) -> bytes:
    """Return ``data`` with one tensor's type byte changed (the table stays structurally valid)."""
    import flatbuffers
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    t = model.Subgraphs(0).Tensors(tensor)
    field = flatbuffers.number_types.UOffsetTFlags.py_type(t._tab.Offset(6))  # Tensor.type
    assert field, "the tensor stores its type explicitly"
    out = bytearray(data)
    out[t._tab.Pos + field] = tflite_type
    return bytes(out)


def patch_operator_input(data: bytes, operator: int, slot: int, tensor: int) -> bytes:
    """Return ``data`` with one operator input rewired to another (in-range) tensor."""
    import flatbuffers
    import tflite

    op = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0).Operators(operator)
    vec = op._tab.Vector(flatbuffers.number_types.UOffsetTFlags.py_type(op._tab.Offset(6)))  # Operator.inputs
    out = bytearray(data)
    out[vec + 4 * slot : vec + 4 * slot + 4] = struct.pack("<i", tensor)
    return bytes(out)


@pytest.fixture(scope="session")
def micro_speech(conformance_dir) -> bytes:
    return (conformance_dir / "models" / "tflm__micro_speech_quantized.tflite").read_bytes()


@pytest.fixture(scope="session")
def crasher(micro_speech) -> bytes:
    """micro_speech with its int8 input retyped int32 (TFLite type 2).

    Structurally valid (an activation tensor has no buffer to disagree with), but the
    RESHAPE/DEPTHWISE_CONV_2D kernels then read and write past their buffers: the real
    interpreter corrupts its heap and dies (SIGABRT in ai-edge-litert 2.3,
    SIGSEGV in tflite-runtime 2.14).
    """
    spec = read_model(micro_speech).inputs[0]
    assert (spec.name, spec.dtype) == ("Reshape_1", "int8")
    data = patch_tensor_type(micro_speech, spec.index, 2)
    read_model(data)  # still passes structural validation
    return data


@pytest.fixture(scope="session")
def rejected(micro_speech) -> bytes:
    """micro_speech with RESHAPE's shape input rewired to its own output: the interpreter refuses it."""
    return patch_operator_input(micro_speech, 0, 1, 4)
