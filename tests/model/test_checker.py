"""The structural validator against truncation, random corruption and CVE-shaped files.

Crafted files are made from real conformance models by locating a field through
the schema accessors (:func:`edgert.model.checker.schema_fields` records each
field's vtable slot from the generated ``tflite`` code) and patching its value,
never by guessing offsets.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys

import numpy as np
import pytest
import tflite

from edgert.errors import InvalidModelError
from edgert.model import read_model, validate_model_bytes
from edgert.model.checker import MAX_TENSOR_ELEMENTS, schema_fields
from edgert.model.macs import op_costs
from tests.conftest import conformance_models
from tests.model.conftest import edit_model

pytestmark = pytest.mark.runtime

KWS = "keyword_spotting__kws_ref_model.tflite"  # int8, conv + depthwise + FC, 35 tensors, 37 buffers
HELLO = "tflm__hello_world_int8.tflite"  # has a signature def


# ---- locating fields through the schema accessors ---------------------------------------------


def _field(obj, name: str):
    return next(f for f in schema_fields(type(obj)) if f.name == name)


def field_pos(obj, name: str) -> int:
    """Absolute file position of a present field of a ``tflite`` table object."""
    o = obj._tab.Offset(_field(obj, name).slot)
    assert o, f"{type(obj).__name__}.{name} is absent in this file"
    return obj._tab.Pos + o


def vector_pos(obj, name: str) -> int:
    """Absolute position of a vector field's first element (its length is the u32 before it)."""
    o = obj._tab.Offset(_field(obj, name).slot)
    assert o, f"{type(obj).__name__}.{name} is absent in this file"
    return obj._tab.Vector(o)


def patch(data: bytes, pos: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, pos, value)
    return bytes(out)


def root(data: bytes):
    return tflite.Model.GetRootAs(data, 0)


def first_op(m, name: str, sg: int = 0) -> tuple[int, object]:
    """(index, tflite.Operator) of the first operator with builtin ``name``."""
    model = read_model(bytes(m._tab.Bytes))
    op = next(o for o in model.operators(sg) if o.name == name)
    return op.index, m.Subgraphs(sg).Operators(op.index)


def walk_everything(model) -> dict:
    """Everything a user-facing command reads from a model; must only ever succeed."""
    info = model.to_dict()
    json.dumps(info)
    for s in range(model.num_subgraphs):
        for t in model.tensors(s):
            t.to_dict(), t.nbytes, t.is_dynamic
            model.tensor_data(t)
        for op in model.operators(s):
            model.operator_schema(op)
    op_costs(model)
    model.metadata_names()
    return info


# ---- the schema probe itself ----------------------------------------------------------------


def test_schema_fields_are_recorded_from_the_accessors():
    tensor = {f.name: f for f in schema_fields(tflite.Tensor)}
    assert (tensor["shape"].kind, tensor["shape"].element, tensor["shape"].size) == ("vector", "scalar", 4)
    assert (tensor["type"].kind, tensor["type"].size) == ("scalar", 1)
    assert tensor["quantization"].table is tflite.QuantizationParameters
    assert tensor["name"].kind == "string"
    model = {f.name: f for f in schema_fields(tflite.Model)}
    assert model["subgraphs"].table is tflite.SubGraph and model["subgraphs"].element == "table"
    assert {f.name: f.size for f in schema_fields(tflite.QuantizationParameters)}["zero_point"] == 8
    assert {f.name: f.kind for f in schema_fields(tflite.Operator)}["builtin_options"] == "union"
    # Slots are distinct and follow vtable layout (4, 6, 8, ...).
    slots = [f.slot for f in schema_fields(tflite.Operator)]
    assert slots == sorted(set(slots)) and all(s % 2 == 0 and s >= 4 for s in slots)


# ---- truncation and random corruption --------------------------------------------------------


@pytest.mark.parametrize("model_path", conformance_models())
def test_every_conformance_model_validates(model_path, model_bytes):
    if model_path is None:
        pytest.skip("corpus absent")
    validate_model_bytes(model_bytes[model_path.name], model_path.name)


def test_truncation_at_every_kib_boundary_is_invalid(model_bytes):
    cases = 0
    for data in model_bytes.values():
        for cut in list(range(0, len(data), 1024)) + [len(data) - 1]:
            with pytest.raises(InvalidModelError) as e:
                read_model(data[:cut])
            assert "\n" not in str(e.value)
            cases += 1
    assert cases > 3000


def _structure_positions(data: bytes) -> np.ndarray:
    """Byte positions that belong to the flatbuffer structure, not to weight data."""
    model = read_model(data)
    mask = np.ones(len(data), bool)
    for i in range(model.schema.BuffersLength()):
        start, size = model.buffer_span(i)
        mask[start:start + size] = False
    return np.flatnonzero(mask)


@pytest.mark.parametrize("seed", range(6))
def test_random_byte_flips_never_escape_invalid_model_error(model_bytes, seed):
    """3000 seeded corruptions aimed at the structure: InvalidModelError or a model that walks cleanly."""
    rng = random.Random(seed)
    names = sorted(model_bytes)
    positions = {n: _structure_positions(model_bytes[n]) for n in names}
    outcome = {"invalid": 0, "valid": 0}
    for case in range(500):
        name = names[case % len(names)]
        data = bytearray(model_bytes[name])
        where = positions[name]
        for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
            pos = int(where[rng.randrange(len(where))]) if rng.random() < 0.9 else rng.randrange(len(data))
            data[pos] = rng.randrange(256) if rng.random() < 0.7 else data[pos] ^ (1 << rng.randrange(8))
        try:
            model = read_model(bytes(data))
        except InvalidModelError as e:
            assert "\n" not in str(e), f"seed {seed} case {case}: multi-line message"
            outcome["invalid"] += 1
            continue
        walk_everything(model)  # any non-EdgertError here fails the test with the seed in the traceback
        outcome["valid"] += 1
    # Both branches are exercised: corruption is caught, and harmless flips (names, scales) still read.
    assert outcome["invalid"] > 100 and outcome["valid"] > 50, outcome


# ---- CVE-shaped files ---------------------------------------------------------------------------


def _kws_cases(data: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (crafted bytes, fragment the one-line error must contain)."""
    m = root(data)
    sg = m.Subgraphs(0)
    n_tensors, n_buffers = sg.TensorsLength(), m.BuffersLength()
    model = read_model(data)
    fc_index, fc = first_op(m, "FULLY_CONNECTED")
    weights = model.operators()[fc_index].inputs[1]
    w_tensor = sg.Tensors(weights)
    input_tensor = sg.Tensors(int(sg.Inputs(0)))
    conv_index, conv = first_op(m, "DEPTHWISE_CONV_2D")
    cases = {}
    # CVE-2020-15211-style: negative tensor index where only an optional *input* may be -1.
    cases["op_output_minus_one"] = (patch(data, vector_pos(fc, "outputs"), "<i", -1),
                                    f"operator {fc_index} of subgraph 0 output refers to tensor -1")
    cases["subgraph_input_minus_one"] = (patch(data, vector_pos(sg, "inputs"), "<i", -1),
                                         "subgraph 0 input refers to tensor -1")
    cases["op_input_out_of_range"] = (patch(data, vector_pos(fc, "inputs"), "<i", n_tensors + 7),
                                      f"refers to tensor {n_tensors + 7} but the subgraph has {n_tensors} tensors")
    cases["buffer_999"] = (patch(data, field_pos(w_tensor, "buffer"), "<I", 999),
                           f"tensor {weights} of subgraph 0 refers to buffer 999 but the model has {n_buffers} buffers")
    dims = input_tensor.ShapeLength()
    huge = data
    for j in range(dims):
        huge = patch(huge, vector_pos(input_tensor, "shape") + 4 * j, "<i", 2**31 - 1)
    cases["huge_dims"] = (huge, f"(limit {MAX_TENSOR_ELEMENTS})")
    cases["negative_dim"] = (patch(data, vector_pos(input_tensor, "shape") + 4, "<i", -3), "negative dimension")
    cases["vector_longer_than_file"] = (patch(data, vector_pos(input_tensor, "shape") - 4, "<I", 0x3FFFFFFF),
                                        "runs past the end of the file")
    cases["root_offset_out_of_range"] = (patch(data, 0, "<I", len(data) + 64), "past the end of the file")
    cases["vtable_out_of_range"] = (patch(data, m._tab.Pos, "<i", -len(data) * 2), "vtable at offset")
    # A table whose vtable is itself (soffset 0): the classic self-referencing offset.
    cases["self_referencing_table"] = (patch(data, w_tensor._tab.Pos, "<i", 0), "impossible size")
    # The first subgraph entry points back at its own slot.
    cases["self_referencing_vector_entry"] = (patch(data, vector_pos(m, "subgraphs"), "<I", 0), "subgraphs[0]: vtable")
    w_shape = vector_pos(w_tensor, "shape")
    cases["buffer_size_inconsistent"] = (patch(data, w_shape, "<i", w_tensor.Shape(0) + 1), "bytes but buffer")
    cases["opcode_out_of_range"] = (patch(data, field_pos(conv, "opcode_index"), "<I", 77),
                                    f"operator {conv_index} of subgraph 0 uses opcode 77")
    cases["metadata_buffer_out_of_range"] = (patch(data, field_pos(m.Metadata(0), "buffer"), "<I", 10**6),
                                             f"metadata entry 0 refers to buffer 1000000 but the model has {n_buffers}")
    cases["unknown_tensor_type"] = (patch(data, field_pos(w_tensor, "type"), "<B", 99), "unknown type code 99")
    name_pos = w_tensor._tab.Offset(_field(w_tensor, "name").slot) + w_tensor._tab.Pos
    name_start = name_pos + struct.unpack_from("<I", data, name_pos)[0]
    name_len = struct.unpack_from("<I", data, name_start)[0]
    cases["string_not_terminated"] = (patch(data, name_start + 4 + name_len, "<B", ord("x")), "not NUL-terminated")
    # vtable entry of Tensor.buffer pointing far outside the 'object'.
    vt = w_tensor._tab.Pos - struct.unpack_from("<i", data, w_tensor._tab.Pos)[0]
    cases["field_outside_table"] = (patch(data, vt + _field(w_tensor, "buffer").slot, "<H", 0xFFF0), "outside its")
    return cases


def _crafted(model_bytes) -> dict[str, tuple[bytes, str]]:
    cases = _kws_cases(model_bytes[KWS])
    data = model_bytes[HELLO]
    sig = root(data).SignatureDefs(0)
    cases["signature_tensor_out_of_range"] = (patch(data, field_pos(sig.Outputs(0), "tensor_index"), "<I", 4242),
                                              "signature 0 output 0 refers to tensor 4242")
    # Every Buffer entry re-pointed at the largest buffer table: each is small, together they make
    # a reader touch the same weights over and over (shared/overlapping structure).
    vww = model_bytes["visual_wake_words__vww_96_int8.tflite"]
    m = root(vww)
    big = max(range(m.BuffersLength()), key=lambda i: m.Buffers(i).DataLength())
    base = vector_pos(m, "buffers")
    target = base + 4 * big + struct.unpack_from("<I", vww, base + 4 * big)[0]
    shared = bytearray(vww)
    for i in range(m.BuffersLength()):
        struct.pack_into("<I", shared, base + 4 * i, target - (base + 4 * i))
    cases["shared_tables_exceed_budget"] = (bytes(shared), "references more than")
    return cases


CASE_NAMES = [
    "op_output_minus_one", "subgraph_input_minus_one", "op_input_out_of_range", "buffer_999", "huge_dims",
    "negative_dim", "vector_longer_than_file", "root_offset_out_of_range", "vtable_out_of_range",
    "self_referencing_table", "self_referencing_vector_entry", "buffer_size_inconsistent", "opcode_out_of_range",
    "metadata_buffer_out_of_range", "unknown_tensor_type", "string_not_terminated", "field_outside_table",
    "signature_tensor_out_of_range", "shared_tables_exceed_budget",
]


@pytest.fixture(scope="module")
def crafted(model_bytes):
    cases = _crafted(model_bytes)
    assert sorted(cases) == sorted(CASE_NAMES)
    return cases


@pytest.mark.parametrize("case", CASE_NAMES)
def test_cve_shaped_file_is_rejected_with_one_line(crafted, case):
    data, fragment = crafted[case]
    with pytest.raises(InvalidModelError) as e:
        read_model(data)
    msg = str(e.value)
    assert fragment in msg, msg
    assert "\n" not in msg


def test_optional_input_minus_one_is_accepted(model_bytes):
    """-1 is how TFLite marks an absent optional input (e.g. a bias): valid, and read back as -1."""
    data = model_bytes[KWS]
    m = root(data)
    fc_index, fc = first_op(m, "FULLY_CONNECTED")
    out = patch(data, vector_pos(fc, "inputs") + 8, "<i", -1)  # the bias
    model = read_model(out)
    assert model.operators()[fc_index].inputs[2] == -1
    assert walk_everything(model)["macs"] == read_model(data).macs


def test_cli_inspect_on_crafted_files_exits_2_with_one_line(crafted, model_bytes, tmp_path):
    cases = {k: crafted[k][0] for k in ("buffer_999", "huge_dims", "op_output_minus_one")}
    cases["truncated"] = model_bytes[KWS][:20000]
    for name, data in cases.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(data)
        r = subprocess.run([sys.executable, "-m", "edgert", "inspect", "--json", str(path)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (name, r.stderr)
        assert "Traceback" not in r.stderr and str(path) in lines[0]
        assert r.stdout.strip() == ""


def test_cli_inspect_json_on_a_valid_model(model_bytes, tmp_path):
    path = tmp_path / KWS
    path.write_bytes(model_bytes[KWS])
    r = subprocess.run([sys.executable, "-m", "edgert", "inspect", "--json", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["inputs"][0]["shape"] == [1, 49, 10, 1] and info["macs"] == read_model(path).macs


# ---- large-model extension: buffers stored after the flatbuffer -------------------------------


def _externalize(data: bytes) -> bytes:
    """Move every weight buffer after the flatbuffer, as converters do for models over 2 GB."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    chunks = {}
    for i, b in enumerate(model.buffers):
        if b.data is not None and len(b.data):
            chunks[i] = bytes(b.data.tobytes())
            b.data, b.offset, b.size = None, 1, len(chunks[i])  # placeholder keeps the field present

    def pack():
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    head = pack()
    pos = (len(head) + 15) // 16 * 16
    tail = bytearray(pos - len(head))
    for i, chunk in chunks.items():
        model.buffers[i].offset = len(head) + len(tail)
        tail += chunk + bytes(-len(chunk) % 16)
    out = pack()
    assert len(out) == len(head)
    return out + bytes(tail)


def test_large_model_extension_reads_and_rejects_out_of_file_buffers(model_bytes):
    data = model_bytes[KWS]
    ext = _externalize(data)
    before, after = read_model(data), read_model(ext)
    assert after.schema.Buffers(1).DataLength() == 0  # really external now
    for t_old, t_new in zip(before.tensors(), after.tensors(), strict=True):
        assert t_old.buffer_bytes == t_new.buffer_bytes
        if t_old.is_constant:
            np.testing.assert_array_equal(before.tensor_data(t_old), after.tensor_data(t_new))
    assert after.macs == before.macs and after.parameters == before.parameters

    # Same file with the tail cut off: buffers now point past the end.
    cut = ext[: len(ext) - 4096]
    with pytest.raises(InvalidModelError, match=r"buffer \d+ points at bytes .* but the file has"):
        read_model(cut)


def test_embed_metadata_keeps_external_buffers(model_bytes):
    from edgert.model import embed_metadata

    ext = _externalize(model_bytes[KWS])
    out = embed_metadata(ext, {"task": "classification"})
    a, b = read_model(ext), read_model(out)
    assert b.metadata == {"task": "classification"}
    for t_old, t_new in zip(a.tensors(), b.tensors(), strict=True):
        if t_old.is_constant:
            np.testing.assert_array_equal(a.tensor_data(t_old), b.tensor_data(t_new))
            assert b.buffer_span(t_new.buffer)[0] % 16 == 0


# ---- edits through the object API (host schema) -------------------------------------------------


_edit = edit_model


def test_object_api_round_trip_still_validates(model_bytes):
    """Control for the edits below: repacking without a change gives a valid, equivalent model."""
    data = model_bytes[KWS]
    same = read_model(_edit(data, lambda m, s: None))
    assert same.to_dict()["macs"] == read_model(data).macs


def test_control_flow_subgraph_index_out_of_range(model_bytes):
    def add_while(model, schema):
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = schema.BuiltinOperator.WHILE, 127, 1
        model.operatorCodes.append(oc)
        op = schema.OperatorT()
        op.opcodeIndex = len(model.operatorCodes) - 1
        op.inputs, op.outputs = [0], [0]
        op.builtinOptionsType = schema.BuiltinOptions.WhileOptions
        op.builtinOptions = schema.WhileOptionsT()
        op.builtinOptions.condSubgraphIndex, op.builtinOptions.bodySubgraphIndex = 0, 7
        model.subgraphs[0].operators.append(op)

    with pytest.raises(InvalidModelError, match="body subgraph index is 7 but the model has 1 subgraphs"):
        read_model(_edit(model_bytes[KWS], add_while))


def test_per_channel_quantization_must_match_the_shape(model_bytes):
    def wrong_axis(model, schema):
        t = next(t for t in model.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale is not None
                 and len(t.quantization.scale) > 1 and len(t.shape) == 4)  # a per-channel conv filter
        channels = len(t.quantization.scale)
        t.quantization.quantizedDimension = next(a for a, d in enumerate(t.shape) if d != channels)

    with pytest.raises(InvalidModelError, match="scales but dimension"):
        read_model(_edit(model_bytes["visual_wake_words__vww_96_int8.tflite"], wrong_axis))


def test_legacy_metadata_buffer_and_empty_model(model_bytes):
    def legacy(model, schema):
        model.metadataBuffer = [999]

    with pytest.raises(InvalidModelError, match="metadata_buffer refers to buffer 999"):
        read_model(_edit(model_bytes[KWS], legacy))

    def no_subgraphs(model, schema):
        model.subgraphs = []

    with pytest.raises(InvalidModelError, match="no subgraphs"):
        read_model(_edit(model_bytes[KWS], no_subgraphs))


def test_read_model_sources_and_size_limit(model_bytes, tmp_path, monkeypatch):
    import edgert.model.checker as validate
    import edgert.model.reader as reader

    data = model_bytes[HELLO]
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    digests = {read_model(src).sha256 for src in (data, bytearray(data), memoryview(data), path, str(path))}
    assert len(digests) == 1
    monkeypatch.setattr(reader, "MAX_MODEL_BYTES", 1000)
    monkeypatch.setattr(validate, "MAX_MODEL_BYTES", 1000)
    for src in (data, path):
        with pytest.raises(InvalidModelError, match="1000-byte"):
            read_model(src)
    with pytest.raises(InvalidModelError, match="model size limit"):
        validate_model_bytes(data)
