"""The Edge TPU pre-flight against what the real compiler did.

``conformance/edgetpu/`` holds public models with their ``*_edgetpu.tflite`` twins
compiled by Coral's ``edgetpu_compiler``, and ``truth.json`` (the ops it left on
the CPU, the number of Edge TPU subgraphs). ``fit --json --target coral-usb`` on the
plain model must predict exactly that. The per-rule tests build small graphs with
the maintained schema's object API, so each rule is pinned by ops, tensors and graph
position, never by a model's name.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from edgert.cli import main
from edgert.fit import check_fit
from edgert.model import read_model
from edgert.targets.edgetpu import EDGETPU_MAX_RESIZE_FACTOR
from tests.conftest import CONFORMANCE, conformance_missing_reason, require_conformance

pytestmark = pytest.mark.runtime

EDGETPU_DIR = CONFORMANCE / "edgetpu"


def _pairs() -> list:
    if conformance_missing_reason() or not (EDGETPU_DIR / "truth.json").is_file():
        return [pytest.param(None, None, id="conformance-missing")]
    truth = json.loads((EDGETPU_DIR / "truth.json").read_text())
    return [pytest.param(name, want, id=name.removesuffix(".tflite")) for name, want in truth.items()
            if not name.startswith("_")]


@pytest.mark.parametrize("name, want", _pairs())
def test_fit_json_matches_the_real_compiler(name, want, capsys):
    path = require_conformance(EDGETPU_DIR / name) if name else require_conformance(EDGETPU_DIR / "truth.json")
    code = main(["fit", str(path), "--target", "coral-usb", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert d["edgetpu"]["cpu_ops"] == want["cpu_ops"], d["edgetpu"]
    assert d["edgetpu"]["subgraphs"] == want["edgetpu_subgraphs"]
    # truth.json is what the twin shows: every op outside the edgetpu-custom-op, and how many of those.
    twin = read_model(path.with_name(path.stem + "_edgetpu.tflite"))
    twin_ops = Counter(op.name for op in twin.operators(0))
    assert twin_ops.pop("edgetpu-custom-op", 0) == want["edgetpu_subgraphs"]
    assert dict(twin_ops) == want["cpu_ops"]
    assert d["edgetpu"]["mapped_ops"] > 0
    assert set(d) >= {"target", "fits", "checks", "arena_bytes", "flash_bytes", "latency_ms", "energy_uj",
                      "unsupported_ops", "warnings"}


def _conformance_models() -> list:
    if conformance_missing_reason():
        return [pytest.param(None, id="conformance-missing")]
    return [pytest.param(p, id=p.stem) for p in sorted((CONFORMANCE / "models").glob("*.tflite"))]


@pytest.mark.parametrize("path", _conformance_models())
def test_conformance_models_keep_sane_predictions(path):
    model = read_model(require_conformance(path) if path else require_conformance(CONFORMANCE / "models"))
    r = check_fit(model, "coral-usb")
    tpu = r.edgetpu
    floating = any(t.dtype.startswith("float") for t in model.tensors(0) if not t.is_constant)
    if floating:  # float graphs: nothing maps, every op is reported on the CPU
        assert tpu["subgraphs"] == 0 and tpu["mapped_ops"] == 0
        assert sum(tpu["cpu_ops"].values()) == sum(model.ops.values())
    else:  # the MLPerf Tiny / TFLM int8 models are plain CNN/FC graphs: all on the Edge TPU
        assert tpu["subgraphs"] == 1 and tpu["cpu_ops"] == {} and tpu["mapped_ops"] == sum(model.ops.values())
        assert r.fits


# ---- per-rule graphs built with the schema's object API ---------------------------------------


class _Graph:
    """A one-subgraph TFLite model built tensor by tensor (ai_edge_litert's schema object API)."""

    def __init__(self):
        self.s = pytest.importorskip("ai_edge_litert.schema_py_generated")
        self.model = self.s.ModelT()
        self.model.version = 3
        empty = self.s.BufferT()
        self.model.buffers = [empty]
        self.sg = self.s.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []
        self.model.subgraphs = [self.sg]
        self.model.operatorCodes = []

    def tensor(self, shape, dtype="int8", data=None, variable=False) -> int:
        s = self.s
        t = s.TensorT()
        t.shape = list(shape)
        t.type = {"int8": s.TensorType.INT8, "uint8": s.TensorType.UINT8, "int16": s.TensorType.INT16,
                  "int32": s.TensorType.INT32, "float32": s.TensorType.FLOAT32}[dtype]
        t.name = f"t{len(self.sg.tensors)}".encode()
        t.isVariable = variable
        if dtype != "float32":
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [0.05], [0]
            t.quantization = q
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.asarray(data, dtype=dtype).reshape(shape).tobytes()
            self.model.buffers.append(b)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const(self, shape, dtype="int8"):
        return self.tensor(shape, dtype, data=np.ones(int(np.prod(shape)) if shape else 1))

    def op(self, name, inputs, outputs, options=None, options_type=None):
        s = self.s
        code = getattr(s.BuiltinOperator, name)
        idx = next((i for i, c in enumerate(self.model.operatorCodes) if c.builtinCode == code), None)
        if idx is None:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            self.model.operatorCodes.append(c)
            idx = len(self.model.operatorCodes) - 1
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = idx, list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options_type, options
        self.sg.operators.append(o)

    def build(self, inputs, outputs) -> bytes:
        import flatbuffers

        self.sg.inputs, self.sg.outputs = list(inputs), list(outputs)
        b = flatbuffers.Builder(1024)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def conv(self, x, c_in, c_out, hw):
        y = self.tensor((1, hw, hw, c_out))
        opt = self.s.Conv2DOptionsT()
        opt.strideH = opt.strideW = opt.dilationHFactor = opt.dilationWFactor = 1
        self.op("CONV_2D", [x, self.const((c_out, 1, 1, c_in)), self.const((c_out,), "int32")], [y],
                opt, self.s.BuiltinOptions.Conv2DOptions)
        return y

    def resize(self, x, c, hw_out):
        y = self.tensor((1, hw_out, hw_out, c))
        opt = self.s.ResizeBilinearOptionsT()
        opt.halfPixelCenters = True
        self.op("RESIZE_BILINEAR", [x, self.const((2,), "int32")], [y], opt, self.s.BuiltinOptions.ResizeBilinearOptions)
        return y


@pytest.mark.parametrize("factor", [2, 4, EDGETPU_MAX_RESIZE_FACTOR, EDGETPU_MAX_RESIZE_FACTOR * 2])
def test_resize_bilinear_maps_by_scale_factor_and_takes_what_follows_to_the_cpu(factor):
    g = _Graph()
    x = g.tensor((1, 4, 4, 8))
    y = g.conv(x, 8, 8, 4)
    z = g.resize(y, 8, 4 * factor)
    out = g.conv(z, 8, 8, 4 * factor)
    tpu = check_fit(g.build([x], [out]), "coral-usb").edgetpu
    if factor <= EDGETPU_MAX_RESIZE_FACTOR:
        assert tpu["cpu_ops"] == {} and tpu["mapped_ops"] == 3
    else:  # DeepLab's rule: the resize and everything reading it stay on the CPU
        assert tpu["cpu_ops"] == {"RESIZE_BILINEAR": 1, "CONV_2D": 1} and tpu["mapped_ops"] == 1
        assert tpu["first_unsupported"]["op"] == "RESIZE_BILINEAR"
    assert tpu["subgraphs"] == 1


def test_branch_that_does_not_read_a_cpu_result_stays_on_the_edge_tpu():
    """MoveNet's shape: an ARG_MAX head goes to the CPU, a sibling conv branch does not."""
    g = _Graph()
    x = g.tensor((1, 4, 4, 8))
    trunk = g.conv(x, 8, 8, 4)
    idx = g.tensor((1, 4, 4), "int32")
    g.op("ARG_MAX", [trunk, g.const((), "int32")], [idx])
    after = g.tensor((1, 4, 4), "int32")
    g.op("MUL", [idx, g.const((), "int32")], [after])  # reads the CPU result: CPU as well
    branch = g.conv(trunk, 8, 4, 4)  # sibling of ARG_MAX: still mapped
    tpu = check_fit(g.build([x], [after, branch]), "coral-usb").edgetpu
    assert tpu["cpu_ops"] == {"ARG_MAX": 1, "MUL": 1}
    assert tpu["mapped_ops"] == 2 and tpu["subgraphs"] == 1
    assert tpu["first_unsupported"]["op"] == "ARG_MAX"


def test_leading_cpu_ops_and_requantize():
    """MoveNet's input: CAST and float QUANTIZE on the CPU, the int8 graph after them mapped;
    an int8->int8 QUANTIZE (requantize) maps, DEQUANTIZE does not; TILE maps (DeepLab)."""
    g = _Graph()
    x = g.tensor((1, 4, 4, 8), "uint8")
    f = g.tensor((1, 4, 4, 8), "float32")
    g.op("CAST", [x], [f])
    q = g.tensor((1, 4, 4, 8))
    g.op("QUANTIZE", [f], [q])
    y = g.conv(q, 8, 8, 4)
    rq = g.tensor((1, 4, 4, 8))
    g.op("QUANTIZE", [y], [rq])
    pooled = g.tensor((1, 1, 1, 8))
    g.op("MEAN", [rq, g.const((2,), "int32")], [pooled])
    tiled = g.tensor((1, 4, 4, 8))
    g.op("TILE", [pooled, g.const((4,), "int32")], [tiled])
    out = g.tensor((1, 4, 4, 8), "float32")
    g.op("DEQUANTIZE", [tiled], [out])
    r = check_fit(g.build([x], [out]), "coral-usb")
    assert r.edgetpu["cpu_ops"] == {"CAST": 1, "DEQUANTIZE": 1, "QUANTIZE": 1}
    assert r.edgetpu["mapped_ops"] == 4 and r.edgetpu["subgraphs"] == 1
    assert "float input" in json.dumps(r.to_dict())


def test_rank_and_dtype_rules():
    g = _Graph()
    x = g.tensor((2, 3, 4, 8))  # a batch of 2: only the 3 innermost dimensions may exceed 1
    y = g.tensor((2, 3, 4, 8))
    g.op("RELU", [x], [y])
    tpu = check_fit(g.build([x], [y]), "coral-usb").edgetpu
    assert tpu["cpu_ops"] == {"RELU": 1} and "innermost" in tpu["first_unsupported"]["reason"]
    g = _Graph()
    x = g.tensor((1, 4, 8), "int16")
    y = g.tensor((1, 4, 8), "int16")
    g.op("RELU", [x], [y])
    tpu = check_fit(g.build([x], [y]), "coral-usb").edgetpu
    assert tpu["cpu_ops"] == {"RELU": 1} and "int16" in tpu["first_unsupported"]["reason"]


def _int8_lstm() -> bytes:
    """A UNIDIRECTIONAL_SEQUENCE_LSTM laid out as TF 2.21 writes a full-int8 Keras LSTM(6) on (1, 8, 4):
    int8 weights, int32 gate biases, an int8 output-state and an int16 cell-state variable."""
    g = _Graph()
    x = g.tensor((1, 8, 4))
    w_in = [g.const((6, 4)) for _ in range(4)]
    w_rec = [g.const((6, 6)) for _ in range(4)]
    bias = [g.const((6,), "int32") for _ in range(4)]
    h = g.tensor((1, 6), variable=True)
    c = g.tensor((1, 6), "int16", variable=True)
    seq = g.tensor((1, 8, 6))
    opt = g.s.UnidirectionalSequenceLSTMOptionsT()
    opt.cellClip, opt.projClip = 10.0, 0.0
    inputs = [x, *w_in, *w_rec, -1, -1, -1, *bias, -1, -1, h, c, -1, -1, -1, -1]
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [seq], opt, g.s.BuiltinOptions.UnidirectionalSequenceLSTMOptions)
    last = g.tensor((1, 6))
    g.op("STRIDED_SLICE", [seq, g.const((3,), "int32"), g.const((3,), "int32"), g.const((3,), "int32")], [last])
    out = g.tensor((1, 3))
    g.op("FULLY_CONNECTED", [last, g.const((3, 6)), -1], [out])
    return g.build([x], [out])


def test_keras_int8_lstm_maps_like_the_real_compiler():
    r = check_fit(_int8_lstm(), "coral-usb")
    assert r.edgetpu["cpu_ops"] == {} and r.edgetpu["mapped_ops"] == 3 and r.edgetpu["subgraphs"] == 1
    assert r.unsupported_ops == {}


def _single_op(name, in_shape, out_shape, operands=(), options=None, options_type=None) -> dict:
    """fit's Edge TPU prediction for a graph of one op between an int8 input and output."""
    g = _Graph()
    x = g.tensor(in_shape)
    y = g.tensor(out_shape)
    extra = [g.tensor(shape, dtype, data=np.asarray(values).reshape(shape)) for shape, dtype, values in operands]
    if options_type is not None:
        options = options(g.s)
        options_type = getattr(g.s.BuiltinOptions, options_type)
    g.op(name, [x, *extra], [y], options, options_type)
    return check_fit(g.build([x], [y]), "coral-usb").edgetpu


def _pack_options(axis):
    def make(s):
        opt = s.PackOptionsT()
        opt.axis, opt.valuesCount = axis, 1
        return opt
    return make


# (case, op, input shape, output shape, constant operands (shape, dtype, values), options, maps?)
DOCUMENTED_RULES = [
    ("mean_hw", "MEAN", (1, 4, 4, 6), (1, 1, 1, 6), [((2,), "int32", [1, 2])], None, None, True),
    ("mean_batch", "MEAN", (1, 4, 4, 8), (4, 4, 8), [((1,), "int32", [0])], None, None, False),
    ("mean_z_multiple_of_4", "MEAN", (1, 4, 4, 8), (1, 4, 4, 1), [((1,), "int32", [-1])], None, None, True),
    ("mean_z_of_6", "MEAN", (1, 4, 4, 6), (1, 4, 4, 1), [((1,), "int32", [3])], None, None, False),
    ("pad_hw", "PAD", (1, 4, 4, 8), (1, 6, 6, 8), [((4, 2), "int32", [0, 0, 1, 1, 1, 1, 0, 0])], None, None, True),
    ("pad_batch", "PAD", (1, 4, 8), (3, 4, 8), [((3, 2), "int32", [1, 1, 0, 0, 0, 0])], None, None, False),
    ("fc_1d", "FULLY_CONNECTED", (1, 6), (1, 3), [((3, 6), "int8", np.ones(18))], None, None, True),
    ("fc_sequence", "FULLY_CONNECTED", (1, 8, 6), (1, 8, 3), [((3, 6), "int8", np.ones(18))], None, None, False),
    ("prelu_channel_alpha", "PRELU", (1, 4, 4, 8), (1, 4, 4, 8), [((1, 1, 8), "int8", np.ones(8))], None, None, True),
    ("prelu_spatial_alpha", "PRELU", (1, 4, 4, 8), (1, 4, 4, 8), [((4, 4, 8), "int8", np.ones(128))], None, None,
     False),
    ("pack_inner", "PACK", (1, 17), (1, 17, 1), [], _pack_options(2), "PackOptions", True),
    ("pack_batch", "PACK", (1, 17), (1, 1, 17), [], _pack_options(0), "PackOptions", False),
]


@pytest.mark.parametrize("case, name, in_shape, out_shape, operands, options, options_type, maps", DOCUMENTED_RULES,
                         ids=[r[0] for r in DOCUMENTED_RULES])
def test_documented_per_op_constraints(case, name, in_shape, out_shape, operands, options, options_type, maps):
    tpu = _single_op(name, in_shape, out_shape, operands, options, options_type)
    assert (tpu["cpu_ops"] == {}) is maps, tpu
    assert tpu["subgraphs"] == (1 if maps else 0)
    if not maps:  # refused by the op's own rule, not by the generic rank/dtype rules
        assert "innermost" not in tpu["first_unsupported"]["reason"] and "tensors" not in tpu["first_unsupported"]["reason"]
