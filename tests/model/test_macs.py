"""MAC estimates and kernel families for ops the conformance corpus does not contain.

Each model is a real, valid flatbuffer built with the maintained schema's object API
(it passes the validator); expected MACs are worked out by hand from the shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgert.model import read_model
from edgert.model.macs import KERNEL_FAMILIES, kernel_family, macs_by_family, op_costs, op_macs

pytestmark = pytest.mark.runtime


def build_model(tensors: dict, ops: list) -> bytes:
    """A one-subgraph .tflite.

    Args:
        tensors: ``{name: (shape, constant)}``; constant tensors get zero float32 data of the right size.
        ops: ``[(OP_NAME, [input names or None], [output names], options or None)]``, options being
            ``(OptionsClassName, {field: value})``.
    """
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    import flatbuffers

    names = list(tensors)
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []
    for name in names:
        shape, constant = tensors[name]
        t = schema.TensorT()
        t.name, t.shape, t.type = name.encode(), list(shape), schema.TensorType.FLOAT32
        t.buffer = 0
        if constant:
            b = schema.BufferT()
            b.data = np.zeros(int(np.prod(shape)) * 4, np.uint8)
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
        sg.tensors.append(t)
    codes, sg.operators = [], []
    for op_name, ins, outs, options in ops:
        if op_name not in codes:
            codes.append(op_name)
        op = schema.OperatorT()
        op.opcodeIndex = codes.index(op_name)
        op.inputs = [-1 if i is None else names.index(i) for i in ins]
        op.outputs = [names.index(o) for o in outs]
        if options:
            cls_name, fields = options
            opts = getattr(schema, cls_name + "T")()
            for k, v in fields.items():
                setattr(opts, k, v)
            op.builtinOptionsType = getattr(schema.BuiltinOptions, cls_name)
            op.builtinOptions = opts
        sg.operators.append(op)
    model.operatorCodes = []
    for op_name in codes:
        oc = schema.OperatorCodeT()
        code = getattr(schema.BuiltinOperator, op_name)
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        model.operatorCodes.append(oc)
    produced = {o for _, _, outs, _ in ops for o in outs}
    sg.inputs = [i for i, n in enumerate(names) if not tensors[n][1] and n not in produced][:1]
    sg.outputs = [names.index(ops[-1][2][0])]
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def macs_of(tensors, ops) -> list[int]:
    model = read_model(build_model(tensors, ops))
    return [op_macs(model, op) for op in model.operators()]


def test_transpose_conv_counts_every_input_through_the_kernel():
    t = {"shape": ([4], True), "w": ([8, 3, 3, 4], True), "x": ([1, 5, 5, 4], False), "y": ([1, 10, 10, 8], False)}
    ops = [("TRANSPOSE_CONV", ["shape", "w", "x"], ["y"], ("TransposeConvOptions", {"strideH": 2, "strideW": 2}))]
    assert macs_of(t, ops) == [5 * 5 * 4 * 3 * 3 * 8]


def test_conv_3d():
    t = {"x": ([1, 4, 4, 4, 2], False), "w": ([3, 3, 3, 2, 6], True), "y": ([1, 4, 4, 4, 6], False)}
    assert macs_of(t, [("CONV_3D", ["x", "w", None], ["y"], None)]) == [4 * 4 * 4 * 6 * 3 * 3 * 3 * 2]


@pytest.mark.parametrize("adj_x", [False, True])
def test_batch_matmul_contracts_the_right_dimension(adj_x):
    a = [2, 4, 3] if adj_x else [2, 3, 4]  # K = 4 either way
    t = {"a": (a, False), "b": ([2, 4, 5], False), "y": ([2, 3, 5], False)}
    ops = [("BATCH_MATMUL", ["a", "b"], ["y"], ("BatchMatMulOptions", {"adjX": adj_x}))]
    assert macs_of(t, ops) == [2 * 3 * 5 * 4]


def test_pooling_uses_the_window_from_the_options():
    t = {"x": ([1, 8, 8, 4], False), "y": ([1, 4, 4, 4], False), "z": ([1, 2, 2, 4], False)}
    ops = [
        ("AVERAGE_POOL_2D", ["x"], ["y"], ("Pool2DOptions", {"filterHeight": 2, "filterWidth": 2, "strideH": 2, "strideW": 2})),
        ("MAX_POOL_2D", ["y"], ["z"], ("Pool2DOptions", {"filterHeight": 3, "filterWidth": 3, "strideH": 2, "strideW": 2})),
    ]
    assert macs_of(t, ops) == [4 * 4 * 4 * 4, 2 * 2 * 4 * 9]


def test_unidirectional_sequence_lstm_counts_gate_matmuls_per_step():
    batch, time, inp, units = 1, 5, 3, 4
    t = {"x": ([batch, time, inp], False)}
    for g in ("i", "f", "c", "o"):
        t[f"w{g}"] = ([units, inp], True)
    for g in ("i", "f", "c", "o"):
        t[f"r{g}"] = ([units, units], True)
    for g in ("i", "f", "c", "o"):
        t[f"b{g}"] = ([units], True)
    t["h"], t["c"], t["y"] = ([batch, units], False), ([batch, units], False), ([batch, time, units], False)
    ins = ["x", "wi", "wf", "wc", "wo", "ri", "rf", "rc", "ro", None, None, None, "bi", "bf", "bc", "bo",
           None, None, "h", "c"]
    (macs,) = macs_of(t, [("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, ["y"], None)])
    assert macs == batch * time * 4 * units * (inp + units)


def test_svdf():
    t = {"x": ([2, 6], False), "wf": ([8, 6], True), "wt": ([8, 10], True), "b": ([4], True),
         "s": ([2, 80], False), "y": ([2, 4], False)}
    assert macs_of(t, [("SVDF", ["x", "wf", "wt", "b", "s"], ["y"], ("SVDFOptions", {"rank": 2}))]) == [2 * (48 + 80)]


def test_elementwise_reduction_and_data_movement():
    t = {"x": ([1, 4, 4, 8], False), "axes": ([2], True), "m": ([1, 1, 1, 8], False), "a": ([1, 1, 1, 8], False),
         "s": ([1, 1, 1, 8], False), "r": ([1, 8], False), "rs": ([2], True)}
    ops = [
        ("MEAN", ["x", "axes"], ["m"], None),
        ("ADD", ["m", "m"], ["a"], None),
        ("LOGISTIC", ["a"], ["s"], None),
        ("RESHAPE", ["s", "rs"], ["r"], None),
    ]
    model = read_model(build_model(t, ops))
    costs = op_costs(model)
    assert [c.macs for c in costs] == [128, 8, 8, 0]
    assert [c.family for c in costs] == ["pool", "elementwise", "elementwise", "other"]
    fam = macs_by_family(model)
    assert fam["pool"] == 128 and fam["elementwise"] == 16 and model.macs == 144


def test_kernel_family_names():
    assert kernel_family("CONV_2D") == kernel_family("TRANSPOSE_CONV") == "conv"
    assert kernel_family("DEPTHWISE_CONV_2D") == "depthwise"
    assert kernel_family("FULLY_CONNECTED") == kernel_family("UNIDIRECTIONAL_SEQUENCE_LSTM") == "fully_connected"
    assert kernel_family("AVERAGE_POOL_2D") == kernel_family("MEAN") == "pool"
    assert kernel_family("SOFTMAX") == kernel_family("ADD") == "elementwise"
    assert kernel_family("RESHAPE") == kernel_family("TFLite_Detection_PostProcess") == "other"
    assert set(map(kernel_family, ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MUL", "PAD"])) \
        == set(KERNEL_FAMILIES)


def test_malformed_weight_ranks_give_zero_not_an_error():
    """A validated but odd model (rank-2 conv filter) must still inspect: MACs fall back to 0."""
    t = {"x": ([1, 4, 4, 2], False), "w": ([3, 2], True), "y": ([1, 4, 4, 3], False)}
    assert macs_of(t, [("CONV_2D", ["x", "w", None], ["y"], None)]) == [0]
