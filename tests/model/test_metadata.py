"""edgert metadata: embedding keeps the model runnable and identical; reading round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from edgert.errors import BackendError, InvalidModelError
from edgert.model import METADATA_NAME, embed_metadata, read_model
from edgert.model.metadata import WRITER_SCHEMA_MODULES, MetadataWriterError

pytestmark = pytest.mark.runtime

META = {
    "schema": "edgert.metadata/1",
    "task": "regression",
    "labels": ["sine", "ünïcode ✓"],
    "preprocessing": {"mean": 0.0, "std": 1.0},
}

# int8 models TFLM accepts, plus a float one with a different metadata layout (CONVERSION_METADATA).
EMBED_MODELS = [
    "tflm__hello_world_int8.tflite",
    "tflm__hello_world_float.tflite",
    "keyword_spotting__kws_ref_model.tflite",
    "tflm__micro_speech_quantized.tflite",
]


def _inputs(details: list[dict], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for d in details:
        dtype = np.dtype(d["dtype"])
        if dtype.kind == "f":
            out.append(rng.standard_normal(d["shape"]).astype(dtype))
        else:
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, d["shape"], endpoint=True).astype(dtype))
    return out


def _run_litert(data: bytes) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), _inputs(it.get_input_details()), strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _run_tflm(data: bytes, n_inputs: int, n_outputs: int) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(data)
    details = [it.get_input_details(i) for i in range(n_inputs)]
    for i, x in enumerate(_inputs(details)):
        it.set_input(x, i)
    it.invoke()
    return [np.array(it.get_output(i)) for i in range(n_outputs)]


def _buffer_starts(data: bytes) -> list[int]:
    """Absolute file offsets of every non-empty inline buffer's data, via the schema accessors."""
    m = read_model(data).schema
    starts = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            starts.append(b._tab.Vector(b._tab.Offset(4)))
    return starts


@pytest.mark.parametrize("name", EMBED_MODELS)
def test_embed_keeps_outputs_identical_in_litert_and_tflm(model_bytes, name):
    pytest.importorskip("ai_edge_litert.interpreter")
    pytest.importorskip("tflite_micro")
    data = model_bytes[name]
    out = embed_metadata(data, META)

    before, after = read_model(data), read_model(out)
    assert after.metadata == META
    assert before.metadata is None
    # Everything else survives: other metadata entries, tensors, ops, weights.
    assert after.metadata_names() == before.metadata_names() + [METADATA_NAME]
    assert after.ops == before.ops and after.parameters == before.parameters
    assert [t.to_dict() for t in after.inputs] == [t.to_dict() for t in before.inputs]
    for t_old, t_new in zip(before.tensors(), after.tensors(), strict=True):
        if t_old.is_constant:
            assert bytes(before.buffer_data(t_old.buffer)) == bytes(after.buffer_data(t_new.buffer))
    # The schema asks for 16-byte aligned buffer data; the rewrite honours it.
    assert all(s % 16 == 0 for s in _buffer_starts(out))

    ref = _run_litert(data)
    got = _run_litert(out)
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)
    if before.inputs[0].dtype != "uint8":
        n_in, n_out = len(before.inputs), len(before.outputs)
        micro_ref = _run_tflm(data, n_in, n_out)
        micro_got = _run_tflm(out, n_in, n_out)
        for a, b in zip(micro_ref, micro_got, strict=True):
            np.testing.assert_array_equal(a, b)


def test_embed_twice_replaces_the_entry_and_reuses_its_buffer(model_bytes):
    pytest.importorskip("ai_edge_litert.schema_py_generated")
    data = model_bytes["streaming_wakeword__str_ww_ref_model.tflite"]
    once = embed_metadata(data, META)
    second = {"schema": "edgert.metadata/1", "task": "classification", "labels": ["marvin", "other"]}
    twice = embed_metadata(once, second)
    m = read_model(twice)
    assert m.metadata == second
    assert m.metadata_names().count(METADATA_NAME) == 1
    assert "CONVERSION_METADATA" in m.metadata_names()
    # The old entry's buffer is overwritten, not leaked: same buffer count.
    assert m.schema.BuffersLength() == read_model(once).schema.BuffersLength()
    assert read_model(once).schema.BuffersLength() == read_model(data).schema.BuffersLength() + 1


def test_embed_preserves_signature_defs():
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    import flatbuffers

    # A tiny model with a signature def, built with the same object API.
    model = schema.ModelT()
    model.version = 3
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.RELU
    model.operatorCodes = [oc]
    t_in, t_out = schema.TensorT(), schema.TensorT()
    for t, n in ((t_in, b"x"), (t_out, b"y")):
        t.shape, t.type, t.buffer, t.name = [1, 4], schema.TensorType.FLOAT32, 0, n
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg = schema.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = [t_in, t_out], [0], [1], [op]
    model.subgraphs = [sg]
    model.buffers = [schema.BufferT()]
    sig = schema.SignatureDefT()
    sig.signatureKey = b"serving_default"
    ti, to = schema.TensorMapT(), schema.TensorMapT()
    ti.name, ti.tensorIndex, to.name, to.tensorIndex = b"x", 0, b"y", 1
    sig.inputs, sig.outputs = [ti], [to]
    model.signatureDefs = [sig]
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    data = bytes(b.Output())

    out = embed_metadata(data, META)
    back = schema.ModelT.InitFromPackedBuf(out, 0)
    assert back.signatureDefs[0].signatureKey == b"serving_default"
    assert [t.tensorIndex for t in back.signatureDefs[0].inputs] == [0]
    assert read_model(out).metadata == META


def test_embed_rejects_invalid_models_and_metadata(model_bytes):
    pytest.importorskip("ai_edge_litert.schema_py_generated")
    with pytest.raises(InvalidModelError):
        embed_metadata(b"not a model at all, just text", META)
    with pytest.raises(TypeError):
        embed_metadata(model_bytes["tflm__hello_world_int8.tflite"], {"x": float("nan")})
    with pytest.raises(TypeError):
        embed_metadata(model_bytes["tflm__hello_world_int8.tflite"], ["not", "a", "dict"])


def test_embed_without_writer_schema_names_the_fix(model_bytes, monkeypatch):
    import edgert.model.metadata as md

    monkeypatch.setattr(md, "WRITER_SCHEMA_MODULES", ("edgert_no_such_schema_module",))
    with pytest.raises(MetadataWriterError) as e:
        embed_metadata(model_bytes["tflm__hello_world_int8.tflite"], META)
    assert "ai-edge-litert" in str(e.value)
    assert isinstance(e.value, BackendError)
    assert WRITER_SCHEMA_MODULES[0] == "ai_edge_litert.schema_py_generated"


def test_malformed_metadata_entry_reads_as_none(model_bytes):
    pytest.importorskip("ai_edge_litert.schema_py_generated")
    data = embed_metadata(model_bytes["tflm__hello_world_int8.tflite"], {"k": "v"})
    payload = b'{"k":"v"}'
    pos = data.index(payload)
    broken = data[:pos] + b"\xff" * len(payload) + data[pos + len(payload):]
    assert read_model(broken).metadata is None
    assert read_model(data).metadata == {"k": "v"}
