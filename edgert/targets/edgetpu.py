"""The Coral Edge TPU: which ops its compiler maps, where it splits the graph, its cache and its host.

Ops are Coral's "Supported operations" table (coral.ai/docs/edgetpu/models-intro)
with the constraints the flatbuffer shows, corrected where the real compiler's
output (the ``*_edgetpu.tflite`` twins in ``conformance/edgetpu/``,
google-coral/test_data) shows otherwise: one rule function per op, each with
its evidence. :func:`_placement` predicts where the compiler puts each op,
:func:`_partition` the split ``fit --json`` reports; ops left on the CPU are
costed on the host profile (:data:`HOST_FOR_EDGETPU`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgert.model.schema import builtin_options
from edgert.targets.base import (
    FORMAT_TEXT,
    OpAssessment,
    RamUse,
    Runtime,
    Target,
    dynamic_dims,
    latency_ms,
    register,
)
from edgert.targets.problems import Code, Problem
from edgert.targets.profile import load_target

__all__ = ["EDGETPU_OPS", "EDGETPU_MAX_RESIZE_FACTOR", "EDGETPU_MAX_SOFTMAX_ELEMENTS", "HOST_FOR_EDGETPU", "EdgeTPU"]

#: Profile whose CPU runs the ops the Edge TPU compiler leaves on the host (Coral USB is usually on a Pi).
HOST_FOR_EDGETPU = "raspberry-pi-4"
#: Effective USB 3 bulk throughput for streaming parameters that do not fit the Edge TPU cache (bytes/s).
_USB_STREAM_BYTES_PER_S = 300e6

#: Edge TPU ops -> the constraint Coral documents (checked below where the flatbuffer tells).
EDGETPU_OPS = {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation function",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "default weights format only",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "unidirectional only",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "unidirectional only",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation function",
    "MEAN": "no reduction in the batch dimension",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "no packing in the batch dimension",
    "PAD": "no padding in the batch dimension",
    "PRELU": "alpha must be 1-dimensional",
    "QUANTIZE": "",
    "REDUCE_MAX": "not on the batch dimension",
    "REDUCE_MIN": "not on the batch dimension",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "very large reshapes may stay on the CPU",
    "RESIZE_BILINEAR": "3-D input/output",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "1-D input, at most 16,000 elements",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "no split in the batch dimension",
    "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "",
    "SUB": "",
    "SUM": "no reduction in the batch dimension",
    "TANH": "",
    # Not in Coral's table, but mapped by the real compiler: DeepLab-EdgeTPU's TILE
    # ([1,1,1,128] -> [1,33,33,128], image-pooling branch) is inside its edgetpu-custom-op.
    "TILE": "",
    "TRANSPOSE_CONV": "",
}

#: Largest per-axis scale factor (output / input) of a RESIZE_* op the Edge TPU compiler maps.
#: Evidence: movenet_single_pose_lightning_ptq's three 2x RESIZE_BILINEAR (6->12, 12->24, 24->48)
#: and DeepLab-EdgeTPU's 33->33 one are inside its edgetpu-custom-op; DeepLab's 33->513 one
#: (x15.5, x16 with align_corners) stays on the CPU. Coral documents the op as "might not be
#: mapped depending on input/output size, to avoid loss in precision"; the bound is the largest
#: power-of-two step between the two observed factors.
EDGETPU_MAX_RESIZE_FACTOR = 8
#: Largest SOFTMAX input the Edge TPU takes (Coral's supported-operations table).
EDGETPU_MAX_SOFTMAX_ELEMENTS = 16000
#: Activation dtypes the Edge TPU computes in (Coral: "tensor parameters are 8-bit").
_EDGETPU_ACTIVATION_DTYPES = ("int8", "uint8")
#: Dtypes of constant operands it accepts: 8-bit weights, int32 biases and shape/size operands.
_EDGETPU_CONSTANT_DTYPES = ("int8", "uint8", "int32")
_LSTM_OPS = ("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM")


def _tensor_problem(op, t) -> Problem | None:
    """Why tensor ``t`` keeps ``op`` off the Edge TPU (None when the tensor is fine)."""
    if t.is_constant:
        if t.dtype not in _EDGETPU_CONSTANT_DTYPES:
            return Problem(Code.NOT_8BIT, f"{t.dtype} tensors (the Edge TPU runs 8-bit quantized tensors only)")
        return None
    if t.dtype not in _EDGETPU_ACTIVATION_DTYPES:
        # The int8 LSTM kernel keeps its cell state in an int16 variable tensor (TFLite's
        # quantization spec); the real compiler maps such a UNIDIRECTIONAL_SEQUENCE_LSTM from a
        # Keras LSTM (issue 13), so that state tensor is not a reason to stay on the CPU.
        if not (op.name in _LSTM_OPS and t.is_variable and t.dtype == "int16"):
            return Problem(Code.NOT_8BIT, f"{t.dtype} tensors (the Edge TPU runs 8-bit quantized tensors only)")
    if dynamic_dims(t):
        return Problem(Code.DYNAMIC_SHAPE, "dynamic tensor shape")
    if len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
        # Coral: "only the 3 innermost dimensions may have a size greater than 1".
        return Problem(Code.TENSOR_RANK, f"a {len(t.shape)}-D tensor {list(t.shape)} "
                                          "(only the 3 innermost dimensions may exceed 1)")
    return None


def _resize_problem(model, op, tensors) -> Problem | None:
    """Scale-factor rule of RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR (see EDGETPU_MAX_RESIZE_FACTOR)."""
    src, dst = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if len(src.shape) != 4 or len(dst.shape) != 4:
        return None
    factors = [dst.shape[a] / src.shape[a] for a in (1, 2) if src.shape[a] > 0]
    worst = max(factors + [1.0 / f for f in factors if f > 0], default=1.0)
    if worst > EDGETPU_MAX_RESIZE_FACTOR:
        return Problem(Code.RESIZE_STEP,
                       f"resize {src.shape[1]}x{src.shape[2]} -> {dst.shape[1]}x{dst.shape[2]} is a x{worst:.3g} step "
                       f"(the compiler keeps steps over x{EDGETPU_MAX_RESIZE_FACTOR} on the CPU for precision)")
    return None


def _problem(model, op, tensors) -> Problem | None:
    """Why the Edge TPU compiler would not map ``op`` on its own (None when it would).

    Where in the graph the op sits is :func:`_placement`'s business. Evidence for each
    rule is the compiled twins in ``conformance/edgetpu/`` (google-coral/test_data).
    """
    if op.custom:
        # PosenetDecoderOp (posenet/bodypix) stays outside the edgetpu-custom-op in both twins.
        return Problem(Code.CUSTOM_OP, "custom op")
    if op.name not in EDGETPU_OPS:
        # ARG_MAX (DeepLab, MoveNet), CAST, DEQUANTIZE, GATHER_ND, FLOOR_DIV, SQRT, DIV, UNPACK (MoveNet).
        return Problem(Code.NOT_IN_OP_SET, "not in the Edge TPU op set")
    if op.name == "QUANTIZE" and any(tensors[i].dtype.startswith("float") for i in op.inputs if 0 <= i < len(tensors)):
        # MoveNet: every float->int8 QUANTIZE (after CAST, SQRT, DIV) runs on the CPU, while its
        # int8->int8 requantize (op 104) and DeepLab's uint8->uint8 one (op 77) are mapped.
        return Problem(Code.FLOAT_INPUT, "float input (only 8-bit requantization runs on the Edge TPU)")
    for i in (*op.inputs, *op.outputs):
        if 0 <= i < len(tensors):
            why = _tensor_problem(op, tensors[i])
            if why:
                return why
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opt = builtin_options(model.operator_schema(op), "Conv2DOptions" if op.name == "CONV_2D" else "DepthwiseConv2DOptions")
        if opt is not None and opt.DilationHFactor() != opt.DilationWFactor():
            return Problem(Code.DILATION, "different dilation in x and y")
    if op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        opt = builtin_options(model.operator_schema(op), "Pool2DOptions" if "POOL" in op.name else "ConcatenationOptions")
        if opt is not None and opt.FusedActivationFunction() != 0:
            return Problem(Code.FUSED_ACTIVATION, "fused activation function")
    if op.name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        return _resize_problem(model, op, tensors)
    rule = _EDGETPU_OP_RULES.get(op.name)
    return rule(model, op, tensors) if rule else None


# Per-op constraints of Coral's supported-operations table that the flatbuffer shows. Each
# returns why the op stays on the CPU, or None. "Batch dimension" is axis 0 of a tensor of
# rank 2 or more (TFLite's layout); "z" is the innermost (channel) axis.
def _const_ints(model, tensors, index: int):
    """The values of a constant integer operand as a flat list, None when not constant."""
    if not 0 <= index < len(tensors) or not tensors[index].is_constant:
        return None
    data = model.tensor_data(tensors[index])
    return None if data is None else [int(v) for v in data.ravel()]


def _axes(model, op, tensors) -> tuple[list[int], int] | None:
    """(normalized reduction axes, input rank) of MEAN/SUM/REDUCE_*; None when not constant."""
    rank = len(tensors[op.inputs[0]].shape)
    axes = _const_ints(model, tensors, op.inputs[1]) if len(op.inputs) > 1 else None
    return None if axes is None else ([a % rank if rank else 0 for a in axes], rank)


def _reduce_rule(model, op, tensors) -> Problem | None:
    found = _axes(model, op, tensors)
    if found is None:
        return Problem(Code.RUNTIME_OPERAND, "reduction axes computed at run time")
    axes, rank = found
    if rank >= 2 and 0 in axes:
        return Problem(Code.BATCH_DIMENSION, "reduction over the batch dimension")
    shape = tensors[op.inputs[0]].shape
    if op.name == "MEAN" and rank and rank - 1 in axes and shape[-1] % 4:
        # Coral: "If a z-reduction, the z-dimension must be multiple of 4."
        return Problem(Code.MEAN_CHANNELS, f"mean over a channel axis of {shape[-1]} (a multiple of 4 is needed)")
    return None


def _pad_rule(model, op, tensors) -> Problem | None:
    pads = _const_ints(model, tensors, op.inputs[1]) if len(op.inputs) > 1 else None
    if pads is None:
        return Problem(Code.RUNTIME_OPERAND, "padding computed at run time")
    if len(pads) >= 4 and any(pads[:2]):
        return Problem(Code.BATCH_DIMENSION, "padding in the batch dimension")
    return None


def _concat_rule(model, op, tensors) -> Problem | None:
    consts = [i for i in op.inputs if 0 <= i < len(tensors) and tensors[i].is_constant]
    if not consts:
        return None
    # Coral: a constant input is allowed only as the second of two inputs that is all zeros
    # (a zero-padding op); the compiler takes the zeros from the quantization's zero point.
    t = tensors[consts[0]]
    values = _const_ints(model, tensors, consts[0]) or []
    if len(op.inputs) != 2 or len(consts) != 1 or any(v != (t.zero_point or 0) for v in values):
        return Problem(Code.CONSTANT_CONCAT, "constant input that is not a zero padding of a two-input concatenation")
    return None


def _fully_connected_rule(model, op, tensors) -> Problem | None:
    out = tensors[op.outputs[0]]
    if sum(d > 1 for d in out.shape) > 1:
        return Problem(Code.FC_OUTPUT, f"output {list(out.shape)} is not one-dimensional")
    return None


def _prelu_rule(model, op, tensors) -> Problem | None:
    alpha = tensors[op.inputs[1]]
    if any(d > 1 for d in alpha.shape[:-1]):
        return Problem(Code.PRELU_ALPHA,
                       f"alpha {list(alpha.shape)} is not one-dimensional (use shared_axes=[1, 2] in Keras)")
    return None


def _pack_rule(model, op, tensors) -> Problem | None:
    opt = builtin_options(model.operator_schema(op), "PackOptions")
    if opt is not None and opt.Axis() == 0 and len(tensors[op.outputs[0]].shape) >= 2:
        return Problem(Code.BATCH_DIMENSION, "packing in the batch dimension")
    return None


def _split_rule(model, op, tensors) -> Problem | None:
    axis = _const_ints(model, tensors, op.inputs[0])
    rank = len(tensors[op.inputs[1]].shape) if len(op.inputs) > 1 else 0
    if axis is None:
        return Problem(Code.RUNTIME_OPERAND, "split axis computed at run time")
    if rank >= 2 and axis and axis[0] % rank == 0:
        return Problem(Code.BATCH_DIMENSION, "split in the batch dimension")
    return None


def _softmax_rule(model, op, tensors) -> Problem | None:
    if tensors[op.inputs[0]].num_elements > EDGETPU_MAX_SOFTMAX_ELEMENTS:
        return Problem(Code.SOFTMAX_SIZE, f"softmax over more than {EDGETPU_MAX_SOFTMAX_ELEMENTS:,} elements")
    return None


_EDGETPU_OP_RULES = {
    "MEAN": _reduce_rule,
    "SUM": _reduce_rule,
    "REDUCE_MAX": _reduce_rule,
    "REDUCE_MIN": _reduce_rule,
    "PAD": _pad_rule,
    "CONCATENATION": _concat_rule,
    "FULLY_CONNECTED": _fully_connected_rule,
    "PRELU": _prelu_rule,
    "PACK": _pack_rule,
    "SPLIT": _split_rule,
    "SOFTMAX": _softmax_rule,
}


def _boundary(model, op, tensors) -> bool:
    """A float->int QUANTIZE on a graph input or int->float DEQUANTIZE on a graph output."""
    if op.subgraph != 0:
        return False
    if op.name == "QUANTIZE" and op.inputs and op.inputs[0] in {t.index for t in model.inputs}:
        return tensors[op.inputs[0]].dtype.startswith("float")
    if op.name == "DEQUANTIZE" and op.outputs and op.outputs[0] in {t.index for t in model.outputs}:
        return True
    return False


#: Reason given to a supported op that reads a result the CPU computed from Edge TPU outputs.
_AFTER_CPU = Problem(Code.AFTER_CPU, "after the first unsupported op (reads a CPU result computed from Edge TPU outputs)")


def _placement(model) -> dict[int, Problem | None]:
    """Where the Edge TPU compiler puts each op of subgraph 0: ``{op index: None (Edge TPU) or why CPU}``.

    The compiler builds one edgetpu-custom-op, so the mapped ops must be closed under "no path
    Edge TPU -> CPU -> Edge TPU": an op is mapped when it is supported and none of its inputs
    comes from a CPU op that itself depends on mapped ops. CPU ops that only feed the mapped
    part (MoveNet's leading CAST and float QUANTIZE) do not stop anything. Evidence, MoveNet:
    after ARG_MAX (op 89) goes to the CPU, everything reading its result stays there
    (FLOOR_DIV, CAST, MUL, SUB, RESHAPE, PACK, GATHER_ND...), yet the supported heatmap and
    offset branches (ops 100-111) that do not read it are inside the custom op; DeepLab: after
    the 33->513 RESIZE_BILINEAR nothing is mapped (ARG_MAX). Ops are in execution order, so
    every producer is placed before its consumers.
    """
    tensors = model.tensors(0)
    producer: dict[int, int] = {}
    placement: dict[int, Problem | None] = {}
    # CPU ops whose result depends on Edge TPU outputs: reading one puts an op on the CPU too.
    downstream_cpu: set[int] = set()
    for op in model.operators(0):
        sources = {producer[i] for i in op.inputs if i in producer}
        after_tpu = any(placement[p] is None or p in downstream_cpu for p in sources)
        why = _AFTER_CPU if sources & downstream_cpu else _problem(model, op, tensors)
        placement[op.index] = why
        if why is not None and after_tpu:
            downstream_cpu.add(op.index)
        for o in op.outputs:
            producer[o] = op.index
    return placement


def _partition(model, placement: dict[int, Problem | None] | None = None) -> dict[str, Any]:
    """Predict the Edge TPU compiler's split (``fit --json``'s ``edgetpu`` object).

    ``cpu_ops`` counts every op outside the edgetpu-custom-op (graph-edge QUANTIZE/DEQUANTIZE
    included, as in the compiled twins); ``subgraphs`` is 1 when anything is mapped: the
    placement rule keeps the mapped ops in one edgetpu-custom-op.
    """
    if placement is None:
        placement = _placement(model)
    tensors = model.tensors(0)
    mapped = 0
    cpu_ops: dict[str, int] = {}
    stop: dict[str, Any] | None = None
    leading: dict[str, Any] | None = None
    param_bytes = 0
    on_tpu_tensors: set[int] = set()
    for op in model.operators(0):
        why = placement[op.index]
        if why is None:
            mapped += 1
            param_bytes += sum(tensors[i].buffer_bytes for i in op.inputs if 0 <= i < len(tensors))
            on_tpu_tensors.update(op.outputs)
            continue
        cpu_ops[op.name] = cpu_ops.get(op.name, 0) + 1
        if why.code is Code.AFTER_CPU or _boundary(model, op, tensors):
            continue
        entry = {"index": op.index, "op": op.name, "reason": why.text}
        if on_tpu_tensors.intersection(op.inputs):
            stop = stop or entry
        else:
            leading = leading or entry
    # Where mapping stops (the first op refused while reading Edge TPU results), else the first CPU op.
    first = stop or leading
    other_sub = sum(len(model.operators(s)) for s in range(1, model.num_subgraphs))
    return {
        "mapped_ops": mapped,
        "cpu_ops": dict(sorted(cpu_ops.items())),
        "subgraphs": 1 if mapped else 0,
        "first_unsupported": first,
        "param_bytes": param_bytes,
        "ops_in_other_subgraphs": other_sub,
        "compiler": _compiler_hint(model),
    }


def _compiler_hint(model) -> str:
    import shutil

    name = Path(model.path).name if model.path else "model.tflite"
    where = "found on PATH" if shutil.which("edgetpu_compiler") else "not installed here"
    return f"edgetpu_compiler -s {name}  ({where}; this prediction does not need it)"


@register
class EdgeTPU(Runtime):
    """The Coral Edge TPU: full-int8 ops mapped into one edgetpu-custom-op, the rest on the host CPU."""

    name = "edgetpu"
    title = "Edge TPU"
    op_sets = ("edgetpu",)
    kinds = ("edgetpu",)
    formats = ("int8",)
    integer_only = True
    compiler = "edgetpu_compiler"
    prefer = "size"
    converter_note = ("Edge TPU: full-integer int8, uint8 I/O, TFLITE_BUILTINS_INT8 only and static batch-1 shapes, "
                      "which is what edgetpu_compiler maps")

    def format_refusal(self, mode: str, target: Target) -> str:
        """Anything but full int8 leaves float ops the compiler does not map."""
        return f"the Edge TPU executes only full int8 models ({FORMAT_TEXT[mode]} would fall back to the CPU)"

    def op_problem(self, model, op, tensors, target: Target) -> Problem | None:
        """Coral's per-op rules; a float<->int conversion at the graph edge runs on the host, no split."""
        problem = _problem(model, op, tensors)
        if problem is not None and _boundary(model, op, tensors):
            return None
        return problem

    def assess(self, model, target: Target, *, notes: list[str], measure: bool = True,
               step: Callable[[str], None] | None = None) -> OpAssessment:
        """The op rules, plus the predicted compiler partition (``edgetpu``) and the ops left on the host."""
        found = super().assess(model, target, notes=notes)
        placement = _placement(model)
        found.edgetpu = _partition(model, placement)
        found.host_op_ids = {(0, i) for i, why in placement.items() if why is not None}
        found.host_op_ids |= {(s, op.index) for s in range(1, model.num_subgraphs) for op in model.operators(s)}
        return found

    def converts_at_edge(self, model, op, tensors) -> bool:
        """Only a QUANTIZE of a graph input or a DEQUANTIZE of a graph output runs on the host for free."""
        return _boundary(model, op, tensors)

    def fix_params(self) -> dict[str, Any]:
        """The resize step the fix for :attr:`Code.RESIZE_STEP` names."""
        return {"resize": EDGETPU_MAX_RESIZE_FACTOR}

    def ram(self, model, target: Target, plan, ops: OpAssessment) -> RamUse:
        """Parameters mapped to the on-chip cache; over it the model still runs (parameters stream
        from the host on every inference), so exceeding it is a note, not a failure."""
        used = ops.edgetpu["param_bytes"] if ops.edgetpu else 0
        cache = target.param_cache_bytes or target.ram_bytes
        over = f"Edge TPU parameter cache exceeded by {used - cache:,} B: expect slower inference"
        return RamUse(used, cache, f"{used:,} B of parameters mapped to the Edge TPU's {cache:,} B on-chip cache",
                      Code.RAM_PARAM_CACHE, over_note=over if used > cache else None)

    def latency_energy(self, model, target: Target, costs, ops: OpAssessment,
                       notes: list[str]) -> tuple[float, float]:
        """Mapped ops on the Edge TPU, the rest on the host profile, plus streaming of uncached parameters."""
        tpu = ops.edgetpu
        if tpu is None:
            return super().latency_energy(model, target, costs, ops, notes)
        host = load_target(HOST_FOR_EDGETPU)
        latency = latency_ms(model, target, costs, ops.host_op_ids, host)
        over = max(0, tpu["param_bytes"] - (target.param_cache_bytes or 0))
        latency += over / _USB_STREAM_BYTES_PER_S * 1e3
        cpu_ms = latency_ms(model, host, [c for c in costs if (c.op.subgraph, c.op.index) in ops.host_op_ids]) \
            - host.invoke_overhead_ms
        tpu["cpu_latency_ms"] = round(cpu_ms, 4)
        if tpu["cpu_ops"]:
            notes.append(f"ops left on the CPU are costed on the {HOST_FOR_EDGETPU} profile")
        return latency, target.active_power_mw * latency + host.active_power_mw * cpu_ms
