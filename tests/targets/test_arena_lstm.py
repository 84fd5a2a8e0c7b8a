"""A fused UNIDIRECTIONAL_SEQUENCE_LSTM (what TFLite Micro's LSTM examples run) against the real
TFLite Micro wheel: OpDataLSTM, its four gate scratch buffers and the two *variable* state tensors
(hidden and cell state, kept in the tail). TF 2.21 converts a Keras 3 LSTM into a WHILE loop or an
unrolled graph, never the fused op, so the test writes the flatbuffer itself with the schema's
object API (float32, and int8 activations with an int16 cell state as TFLite's quantized LSTM)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tflite_micro")

from edgert.model import read_model
from edgert.model.memory import plan_arena
from edgert.runtime.micro import micro_arena_bytes

#: time steps, batch, input features, cells (= outputs: no projection)
T, B, NI, NC = 5, 1, 3, 4


def _fused_lstm(kind: str) -> bytes:
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime

    fb = runtime.schema_fb
    m = fb.ModelT()
    m.version, m.buffers = 3, [fb.BufferT()]
    sg = fb.SubGraphT()
    sg.tensors, rng = [], np.random.default_rng(0)
    types = {"float32": fb.TensorType.FLOAT32, "int8": fb.TensorType.INT8, "int16": fb.TensorType.INT16,
             "int32": fb.TensorType.INT32}

    def tensor(name, shape, dtype, scale=None, data=None, variable=False):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.isVariable, t.buffer = name, list(shape), types[dtype], variable, 0
        if scale is not None and kind == "int8":
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [float(scale)], [0]
        if data is not None:
            buf = fb.BufferT()
            buf.data = np.asarray(data, dtype).tobytes()
            m.buffers.append(buf)
            t.buffer = len(m.buffers) - 1
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    act, weight, acc, cell = ("float32",) * 4 if kind == "float32" else ("int8", "int8", "int32", "int16")
    inp = tensor("input", (B, T, NI), act, 0.05)
    w_in = [tensor(f"w_in_{g}", (NC, NI), weight, 0.01, rng.integers(-100, 100, (NC, NI))) for g in "ifco"]
    w_rec = [tensor(f"w_rec_{g}", (NC, NC), weight, 0.01, rng.integers(-100, 100, (NC, NC))) for g in "ifco"]
    bias = [tensor(f"bias_{g}", (NC,), acc, 0.0005, np.zeros(NC)) for g in "ifco"]
    hidden = tensor("hidden_state", (B, NC), act, 1 / 128, variable=True)
    cell_state = tensor("cell_state", (B, NC), cell, 2.0 ** -11, variable=True)  # power-of-two scale (TFLM)
    out = tensor("output", (B, T, NC), act, 1 / 128)
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    code.version = 1
    m.operatorCodes = [code]
    op = fb.OperatorT()
    # 24 inputs: input, 4+4 weights, 3 peepholes, 4 biases, projection weight+bias, 2 states, 4 layer norms
    op.opcodeIndex, op.inputs, op.outputs = 0, [inp, *w_in, *w_rec, -1, -1, -1, *bias, -1, -1, hidden, cell_state,
                                                 -1, -1, -1, -1], [out]
    op.builtinOptionsType = fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions
    op.builtinOptions = fb.UnidirectionalSequenceLSTMOptionsT()
    op.builtinOptions.fusedActivationFunction = fb.ActivationFunctionType.TANH
    sg.operators, sg.inputs, sg.outputs = [op], [inp], [out]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_fused_lstm_plan_within_2_percent_of_the_wheel(kind):
    data = _fused_lstm(kind)
    model = read_model(data)
    assert model.ops == {"UNIDIRECTIONAL_SEQUENCE_LSTM": 1} and sum(t.is_variable for t in model.tensors()) == 2
    plan = plan_arena(model)
    real = micro_arena_bytes(data)
    assert plan.complete and abs(plan.total_bytes - real) <= 0.02 * real, (plan.total_bytes, real)
    assert plan.breakdown["variables"] > 0 and plan.breakdown["scratch"] > 0


def test_int8_lstm_on_cmsis_nn_keeps_kernel_sums_and_three_buffers():
    model = read_model(_fused_lstm("int8"))
    host, m4 = plan_arena(model), plan_arena(model, "cortex-m4")
    assert m4.complete
    # cmsis_nn/unidirectional_sequence_lstm.cc: 8 int32 effective-bias vectors of NC, 3 scratch buffers
    assert m4.breakdown["kernels"] - 912 == 8 * 4 * NC  # after its 912-byte OpData
    assert len([b for b in m4.buffers if b.tensor < 0]) == 3
    assert len([b for b in host.buffers if b.tensor < 0]) == 4
