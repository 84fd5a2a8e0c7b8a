"""Does a model fit a target? Size, RAM, ops, shapes, types, latency and energy.

:func:`check_fit` works on any ``.tflite`` (ours or foreign) and a
:class:`~edgert.targets.Target`. It never runs the model on the target; it
reads the flatbuffer, plans the tensor arena (:mod:`edgert.model.memory`),
and on microcontroller targets also asks the real TensorFlow Lite Micro (when
installed) what arena it allocates, which the RAM check then uses.

Every failed check's ``detail`` says how to fix it. Unsupported ops are
reported by name (``unsupported_ops``), never raised.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgert.errors import EdgertError, InputDataError
from edgert.units import format_bytes
from edgert.fit_ops import EDGETPU_OPS, GPU_OPS, TFLITE_CUSTOM_OPS, TFLM_CUSTOM_OPS, TFLM_OPS, XNNPACK_OPS
from edgert.progress import report as report_progress
from edgert.targets import Target, load_target

__all__ = ["Check", "FitReport", "check_fit", "fit_markdown", "parse_rate", "target_runtime", "HOST_FOR_EDGETPU"]

log = logging.getLogger("edgert.fit")

#: Profile whose CPU runs the ops the Edge TPU compiler leaves on the host (Coral USB is usually on a Pi).
HOST_FOR_EDGETPU = "raspberry-pi-4"
#: Effective USB 3 bulk throughput for streaming parameters that do not fit the Edge TPU cache (bytes/s).
_USB_STREAM_BYTES_PER_S = 300e6
_INT_TYPES = ("int8", "uint8", "int16", "int32", "int64", "bool")


@dataclass(frozen=True)
class Check:
    """One fit check.

    Attributes:
        name: ``flash``, ``loads``, ``ram``, ``ops``, ``static_shapes``, ``full_int8``, ``io_dtype``, ``rate``.
        ok: Whether the model passes.
        value: What the model needs (bytes, count, ...).
        limit: What the target allows.
        detail: One line: what was checked, and when it failed, how to fix it.
    """

    name: str
    ok: bool
    value: Any
    limit: Any
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``name, ok, value, limit, detail``)."""
        return {"name": self.name, "ok": self.ok, "value": self.value, "limit": self.limit, "detail": self.detail}


@dataclass
class FitReport:
    """The result of :func:`check_fit`; :meth:`to_dict` gives the ``edgert fit --json`` object.

    Attributes:
        target: Profile name.
        fits: True when every check passed.
        checks: All checks, in order.
        arena_bytes: Tensor arena from edgert's own planner.
        micro_arena_bytes: Arena TFLite Micro really allocated (MCU targets, when installed), else None.
        flash_bytes: Model file size.
        ram_bytes: RAM the RAM check counted.
        latency_ms: Estimated latency of one inference on the target.
        energy_uj: Estimated energy of one inference.
        unsupported_ops: ``{op name: count}`` of ops the target cannot run.
        edgetpu: Edge TPU partition prediction (``cpu_ops``, ``subgraphs``, ...), None on other targets.
        delegate: XNNPACK/GPU delegate coverage (``name``, ``delegated_ops``, ``cpu_ops``), None elsewhere.
        macs: Estimated MACs per inference.
        rate_hz: Inference rate used for power, None when not given.
        average_power_mw: Average power at ``rate_hz``.
        battery_hours: Battery life at ``rate_hz`` on the given battery.
        model: Path (or None) and sha256 of the model.
        notes: Extra remarks (estimate caveats, TFLM messages).
        warnings: Quirks of the file that one runtime refuses (``{runtime, message}``),
            whatever the target; the ``loads`` check fails only when it is the target's runtime.
    """

    target: str
    fits: bool
    checks: list[Check]
    arena_bytes: int
    micro_arena_bytes: int | None
    flash_bytes: int
    ram_bytes: int
    latency_ms: float
    energy_uj: float
    unsupported_ops: dict[str, int]
    edgetpu: dict[str, Any] | None = None
    delegate: dict[str, Any] | None = None
    macs: int = 0
    rate_hz: float | None = None
    average_power_mw: float | None = None
    battery_hours: float | None = None
    model: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def check(self, name: str) -> Check | None:
        """The check called ``name``, or None."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Contract keys (``target, fits, checks[], arena_bytes, flash_bytes, latency_ms, energy_uj,
        unsupported_ops{}``, ``edgetpu{cpu_ops{}, subgraphs}`` on Edge TPU) plus the extras."""
        out = {
            "target": self.target,
            "fits": self.fits,
            "checks": [c.to_dict() for c in self.checks],
            "arena_bytes": self.arena_bytes,
            "micro_arena_bytes": self.micro_arena_bytes,
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "latency_ms": round(self.latency_ms, 4),
            "energy_uj": round(self.energy_uj, 3),
            "unsupported_ops": dict(self.unsupported_ops),
            "macs": self.macs,
            "rate_hz": self.rate_hz,
            "average_power_mw": None if self.average_power_mw is None else round(self.average_power_mw, 6),
            "battery_hours": None if self.battery_hours is None else round(self.battery_hours, 3),
            "model": dict(self.model),
            "notes": list(self.notes),
            "warnings": [dict(w) for w in self.warnings],
        }
        if self.edgetpu is not None:
            out["edgetpu"] = dict(self.edgetpu)
        if self.delegate is not None:
            out["delegate"] = dict(self.delegate)
        return out


def parse_rate(text: str | float) -> float:
    """Inference rate in Hz from ``"5/s"``, ``"1/min"``, ``"0.2"`` or ``"2/h"``.

    Raises:
        InputDataError: unparseable or non-positive.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(?:/\s*(s|sec|min|h|hr|hour))?\s*", str(text))
        if not m:
            raise InputDataError(f"rate {text!r} is not understood", "write it like 1/s, 5/s, 10/min or 0.2")
        per = {"s": 1, "sec": 1, "min": 60, "h": 3600, "hr": 3600, "hour": 3600}[m.group(2) or "s"]
        value = float(m.group(1)) / per
    if not value > 0:
        raise InputDataError(f"rate {text!r} must be positive")
    return value


# ---- op support ---------------------------------------------------------------------------------
def _float_compute(op, tensors) -> bool:
    """True when an op computes in float (a non-constant float tensor in or out)."""
    idx = [i for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)]
    return any(tensors[i].dtype in ("float32", "float16") and not tensors[i].is_constant for i in idx)


def _dynamic_dims(t) -> list[int]:
    """Dimensions only known at run time, ignoring the batch dimension: Keras exports batch as -1
    in ``shape_signature``, and every runtime (TFLM, the Edge TPU compiler) then uses batch 1."""
    if not t.shape_signature:
        return []
    return [i for i, d in enumerate(t.shape_signature) if d < 0 and i > 0]


def _options(model, op, cls_name: str):
    import tflite

    raw = model.operator_schema(op)
    table = raw.BuiltinOptions()
    if table is None or not hasattr(tflite, cls_name):
        return None
    opt = getattr(tflite, cls_name)()
    opt.Init(table.Bytes, table.Pos)
    return opt


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


def _edgetpu_tensor_problem(op, t) -> str | None:
    """Why tensor ``t`` keeps ``op`` off the Edge TPU (None when the tensor is fine)."""
    if t.is_constant:
        if t.dtype not in _EDGETPU_CONSTANT_DTYPES:
            return f"{t.dtype} tensors (the Edge TPU runs 8-bit quantized tensors only)"
        return None
    if t.dtype not in _EDGETPU_ACTIVATION_DTYPES:
        # The int8 LSTM kernel keeps its cell state in an int16 variable tensor (TFLite's
        # quantization spec); the real compiler maps such a UNIDIRECTIONAL_SEQUENCE_LSTM from a
        # Keras LSTM (issue 13), so that state tensor is not a reason to stay on the CPU.
        if not (op.name in _LSTM_OPS and t.is_variable and t.dtype == "int16"):
            return f"{t.dtype} tensors (the Edge TPU runs 8-bit quantized tensors only)"
    if _dynamic_dims(t):
        return "dynamic tensor shape"
    if len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
        # Coral: "only the 3 innermost dimensions may have a size greater than 1".
        return f"a {len(t.shape)}-D tensor {list(t.shape)} (only the 3 innermost dimensions may exceed 1)"
    return None


def _edgetpu_resize_problem(model, op, tensors) -> str | None:
    """Scale-factor rule of RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR (see EDGETPU_MAX_RESIZE_FACTOR)."""
    src, dst = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if len(src.shape) != 4 or len(dst.shape) != 4:
        return None
    factors = [dst.shape[a] / src.shape[a] for a in (1, 2) if src.shape[a] > 0]
    worst = max(factors + [1.0 / f for f in factors if f > 0], default=1.0)
    if worst > EDGETPU_MAX_RESIZE_FACTOR:
        return (f"resize {src.shape[1]}x{src.shape[2]} -> {dst.shape[1]}x{dst.shape[2]} is a x{worst:.3g} step "
                f"(the compiler keeps steps over x{EDGETPU_MAX_RESIZE_FACTOR} on the CPU for precision)")
    return None


def _edgetpu_problem(model, op, tensors) -> str | None:
    """Why the Edge TPU compiler would not map ``op`` on its own (None when it would).

    Where in the graph the op sits is :func:`_edgetpu_placement`'s business. Evidence for each
    rule is the compiled twins in ``conformance/edgetpu/`` (google-coral/test_data).
    """
    if op.custom:
        # PosenetDecoderOp (posenet/bodypix) stays outside the edgetpu-custom-op in both twins.
        return "custom op"
    if op.name not in EDGETPU_OPS:
        # ARG_MAX (DeepLab, MoveNet), CAST, DEQUANTIZE, GATHER_ND, FLOOR_DIV, SQRT, DIV, UNPACK (MoveNet).
        return "not in the Edge TPU op set"
    if op.name == "QUANTIZE" and any(tensors[i].dtype.startswith("float") for i in op.inputs if 0 <= i < len(tensors)):
        # MoveNet: every float->int8 QUANTIZE (after CAST, SQRT, DIV) runs on the CPU, while its
        # int8->int8 requantize (op 104) and DeepLab's uint8->uint8 one (op 77) are mapped.
        return "float input (only 8-bit requantization runs on the Edge TPU)"
    for i in (*op.inputs, *op.outputs):
        if 0 <= i < len(tensors):
            why = _edgetpu_tensor_problem(op, tensors[i])
            if why:
                return why
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opt = _options(model, op, "Conv2DOptions" if op.name == "CONV_2D" else "DepthwiseConv2DOptions")
        if opt is not None and opt.DilationHFactor() != opt.DilationWFactor():
            return "different dilation in x and y"
    if op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        opt = _options(model, op, "Pool2DOptions" if "POOL" in op.name else "ConcatenationOptions")
        if opt is not None and opt.FusedActivationFunction() != 0:
            return "fused activation function"
    if op.name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        return _edgetpu_resize_problem(model, op, tensors)
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


def _edgetpu_reduce_rule(model, op, tensors) -> str | None:
    found = _axes(model, op, tensors)
    if found is None:
        return "reduction axes computed at run time"
    axes, rank = found
    if rank >= 2 and 0 in axes:
        return "reduction over the batch dimension"
    shape = tensors[op.inputs[0]].shape
    if op.name == "MEAN" and rank and rank - 1 in axes and shape[-1] % 4:
        # Coral: "If a z-reduction, the z-dimension must be multiple of 4."
        return f"mean over a channel axis of {shape[-1]} (a multiple of 4 is needed)"
    return None


def _edgetpu_pad_rule(model, op, tensors) -> str | None:
    pads = _const_ints(model, tensors, op.inputs[1]) if len(op.inputs) > 1 else None
    if pads is None:
        return "padding computed at run time"
    if len(pads) >= 4 and any(pads[:2]):
        return "padding in the batch dimension"
    return None


def _edgetpu_concat_rule(model, op, tensors) -> str | None:
    consts = [i for i in op.inputs if 0 <= i < len(tensors) and tensors[i].is_constant]
    if not consts:
        return None
    # Coral: a constant input is allowed only as the second of two inputs that is all zeros
    # (a zero-padding op); the compiler takes the zeros from the quantization's zero point.
    t = tensors[consts[0]]
    values = _const_ints(model, tensors, consts[0]) or []
    if len(op.inputs) != 2 or len(consts) != 1 or any(v != (t.zero_point or 0) for v in values):
        return "constant input that is not a zero padding of a two-input concatenation"
    return None


def _edgetpu_fully_connected_rule(model, op, tensors) -> str | None:
    out = tensors[op.outputs[0]]
    if sum(d > 1 for d in out.shape) > 1:
        return f"output {list(out.shape)} is not one-dimensional"
    return None


def _edgetpu_prelu_rule(model, op, tensors) -> str | None:
    alpha = tensors[op.inputs[1]]
    if any(d > 1 for d in alpha.shape[:-1]):
        return f"alpha {list(alpha.shape)} is not one-dimensional (use shared_axes=[1, 2] in Keras)"
    return None


def _edgetpu_pack_rule(model, op, tensors) -> str | None:
    opt = _options(model, op, "PackOptions")
    if opt is not None and opt.Axis() == 0 and len(tensors[op.outputs[0]].shape) >= 2:
        return "packing in the batch dimension"
    return None


def _edgetpu_split_rule(model, op, tensors) -> str | None:
    axis = _const_ints(model, tensors, op.inputs[0])
    rank = len(tensors[op.inputs[1]].shape) if len(op.inputs) > 1 else 0
    if axis is None:
        return "split axis computed at run time"
    if rank >= 2 and axis and axis[0] % rank == 0:
        return "split in the batch dimension"
    return None


def _edgetpu_softmax_rule(model, op, tensors) -> str | None:
    if tensors[op.inputs[0]].num_elements > EDGETPU_MAX_SOFTMAX_ELEMENTS:
        return f"softmax over more than {EDGETPU_MAX_SOFTMAX_ELEMENTS:,} elements"
    return None


_EDGETPU_OP_RULES = {
    "MEAN": _edgetpu_reduce_rule,
    "SUM": _edgetpu_reduce_rule,
    "REDUCE_MAX": _edgetpu_reduce_rule,
    "REDUCE_MIN": _edgetpu_reduce_rule,
    "PAD": _edgetpu_pad_rule,
    "CONCATENATION": _edgetpu_concat_rule,
    "FULLY_CONNECTED": _edgetpu_fully_connected_rule,
    "PRELU": _edgetpu_prelu_rule,
    "PACK": _edgetpu_pack_rule,
    "SPLIT": _edgetpu_split_rule,
    "SOFTMAX": _edgetpu_softmax_rule,
}


def _unsupported(model, target: Target) -> tuple[dict[str, int], list[str]]:
    """``({op: count}, [reason lines])`` of ops the target's runtime cannot execute."""
    found: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for s in range(model.num_subgraphs):
        tensors = model.tensors(s)
        for op in model.operators(s):
            why = None
            if target.op_set == "tflm":
                if target.full_int8 and _float_compute(op, tensors) and not (
                        s == 0 and op.name in ("QUANTIZE", "DEQUANTIZE")):
                    why = "computes in float (this target runs int8 kernels only)"
                if why is None and op.custom and op.name not in TFLM_CUSTOM_OPS:
                    why = "custom op without a TFLite Micro kernel"
                elif why is None and not op.custom and op.name not in TFLM_OPS:
                    why = "no TFLite Micro kernel"
                elif why is None and any(tensors[i].dtype == "uint8" and not tensors[i].is_constant
                         for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)):
                    why = "uint8 tensors (TFLite Micro has int8 kernels only)"
            elif target.op_set == "edgetpu":
                why = _edgetpu_problem(model, op, tensors)
                if why is not None and _edgetpu_boundary(model, op, tensors):
                    why = None  # float<->int conversion at the graph edge: runs on the host, no split
            else:  # tflite / xnnpack / gpu: builtin CPU kernels back every delegate
                if op.custom and op.name not in TFLITE_CUSTOM_OPS:
                    why = "custom op: register your own kernel with the interpreter"
                elif op.name.startswith("Flex") or op.name.startswith("UNKNOWN_"):
                    why = "needs the TensorFlow (Flex) delegate"
            if why:
                found[op.name] = found.get(op.name, 0) + 1
                reasons.setdefault(op.name, why)
    by_reason: dict[str, list[str]] = {}
    for name, why in sorted(reasons.items()):
        by_reason.setdefault(why, []).append(name)
    return dict(sorted(found.items())), [f"{', '.join(names)}: {why}" for why, names in by_reason.items()]


#: (substring of a reason, how to fix it): the first matches win, in this order.
_FIXES = (
    ("computes in float", "quantize to full int8: edgert convert --target {target} --calibration DATA"),
    ("tensors (the Edge TPU", "quantize to full int8: edgert convert --target {target} --calibration DATA"),
    ("uint8", "convert with int8 input/output (edgert convert --target {target} does)"),
    ("custom op", "register a kernel for the custom op with the interpreter/op resolver, or rebuild the model with builtin ops"),
    ("no TFLite Micro kernel", "replace those layers with ops TFLite Micro has, or add the kernel to your firmware"),
    ("Flex", "rebuild the model without TensorFlow (Flex) ops"),
    ("dynamic", "convert with a fixed batch size of 1 and a fixed input size"),
    ("after the first unsupported", "move or replace the first unsupported op so the Edge TPU can map the rest"),
    ("float input", "convert with int8/uint8 input so no float->int8 QUANTIZE is needed inside the graph"),
    ("step (the compiler", "upsample in steps of x{resize} or less, or resize the output on the host"),
    ("batch dimension", "keep the batch dimension out of the op (reshape so it works on height, width or channels)"),
    ("", "use ops from the target's supported list ({op_set})"),
)


def _fix_for(reasons: str, target: Target) -> str:
    """How to fix the op problems in ``reasons`` (up to two distinct suggestions)."""
    fixes = []
    for needle, text in _FIXES:
        if needle in reasons and (needle or not fixes):  # the catch-all only when nothing else matched
            fix = text.format(target=target.name, op_set=target.op_set, resize=EDGETPU_MAX_RESIZE_FACTOR)
            if fix not in fixes:
                fixes.append(fix)
    return "; ".join(fixes[:2])


def _edgetpu_boundary(model, op, tensors) -> bool:
    """A float->int QUANTIZE on a graph input or int->float DEQUANTIZE on a graph output."""
    if op.subgraph != 0:
        return False
    if op.name == "QUANTIZE" and op.inputs and op.inputs[0] in {t.index for t in model.inputs}:
        return tensors[op.inputs[0]].dtype.startswith("float")
    if op.name == "DEQUANTIZE" and op.outputs and op.outputs[0] in {t.index for t in model.outputs}:
        return True
    return False


#: Reason given to a supported op that reads a result the CPU computed from Edge TPU outputs.
_AFTER_CPU = "after the first unsupported op (reads a CPU result computed from Edge TPU outputs)"


def _edgetpu_placement(model) -> dict[int, str | None]:
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
    placement: dict[int, str | None] = {}
    # CPU ops whose result depends on Edge TPU outputs: reading one puts an op on the CPU too.
    downstream_cpu: set[int] = set()
    for op in model.operators(0):
        sources = {producer[i] for i in op.inputs if i in producer}
        after_tpu = any(placement[p] is None or p in downstream_cpu for p in sources)
        why = _AFTER_CPU if sources & downstream_cpu else _edgetpu_problem(model, op, tensors)
        placement[op.index] = why
        if why is not None and after_tpu:
            downstream_cpu.add(op.index)
        for o in op.outputs:
            producer[o] = op.index
    return placement


def _edgetpu_partition(model, placement: dict[int, str | None] | None = None) -> dict[str, Any]:
    """Predict the Edge TPU compiler's split (``fit --json``'s ``edgetpu`` object).

    ``cpu_ops`` counts every op outside the edgetpu-custom-op (graph-edge QUANTIZE/DEQUANTIZE
    included, as in the compiled twins); ``subgraphs`` is 1 when anything is mapped: the
    placement rule keeps the mapped ops in one edgetpu-custom-op.
    """
    if placement is None:
        placement = _edgetpu_placement(model)
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
        if why == _AFTER_CPU or _edgetpu_boundary(model, op, tensors):
            continue
        entry = {"index": op.index, "op": op.name, "reason": why}
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
        "compiler": _edgetpu_compiler_hint(model),
    }


def _edgetpu_compiler_hint(model) -> str:
    import shutil

    name = Path(model.path).name if model.path else "model.tflite"
    where = "found on PATH" if shutil.which("edgetpu_compiler") else "not installed here"
    return f"edgetpu_compiler -s {name}  ({where}; this prediction does not need it)"


# ---- latency / energy ---------------------------------------------------------------------------
def _op_costs(model):
    from edgert.model import macs as macs_mod

    return macs_mod.op_costs(model)


def _cycles(op, macs: int, family: str, tensors, target: Target) -> float:
    out_elems = sum(tensors[i].num_elements for i in op.outputs if 0 <= i < len(tensors))
    work = macs if macs > 0 else out_elems  # data movement: one unit per element written
    return (
        target.cycles_per_mac.get(family, target.cycles_per_mac["other"]) * work
        + target.cycles_per_output.get(family, 0.0) * out_elems
        + target.op_overhead_cycles
    )


def _latency_ms(model, target: Target, costs, cpu_op_ids: set[tuple[int, int]] | None = None,
                host: Target | None = None) -> float:
    total_ms = target.invoke_overhead_ms
    for cost in costs:
        op = cost.op
        tensors = model.tensors(op.subgraph)
        unit = host if (cpu_op_ids is not None and host is not None and (op.subgraph, op.index) in cpu_op_ids) else target
        total_ms += _cycles(op, cost.macs, cost.family, tensors, unit) / unit.clock_hz * 1e3
    return total_ms


# ---- the checks --------------------------------------------------------------------------------
def target_runtime(target: Target) -> str:
    """The runtime that loads models on ``target``: ``"tflm"`` on microcontrollers, else ``"litert"``
    (CPU, GPU and XNNPACK delegates, and the Edge TPU's host side all go through LiteRT)."""
    return "tflm" if target.op_set == "tflm" else "litert"


def _loads_check(model, target: Target) -> Check:
    """Whether the target's runtime accepts the file's quirks (:attr:`ModelFile.warnings`)."""
    from edgert.model.validate import RUNTIME_NAMES

    runtime = target_runtime(target)
    refused = [w for w in model.warnings if w.runtime == runtime]
    name = RUNTIME_NAMES[runtime]
    if not refused:
        others = [w for w in model.warnings if w.runtime != runtime]
        detail = f"{name} loads this file" + (
            f" (only {', '.join(sorted({RUNTIME_NAMES[w.runtime] for w in others}))} refuses it: see warnings)"
            if others else "")
        return Check("loads", True, 0, 0, detail)
    return Check("loads", False, len(refused), 0,
                 f"{name} refuses this file: " + "; ".join(w.message for w in refused)
                 + " — re-export the model with a current converter")


def _measure_micro(model, notes: list[str]) -> tuple[int | None, list[str]]:
    """Real TFLM arena, or None with a note; also returns op names TFLM refused."""
    from edgert.runtime import micro

    if not micro.micro_available():
        notes.append("tflite_micro not installed: RAM check uses edgert's arena plan only")
        return None, []
    try:
        return micro.micro_arena_bytes(model.data), []
    except EdgertError as e:
        refused = re.findall(r"(?:opcode|op for builtin opcode|Node) '?([A-Z][A-Z0-9_]+)'?", str(e))
        notes.append(f"TFLite Micro refused the model: {e.message}")
        return None, [r for r in refused if r not in ("CUSTOM",)]


def check_fit(
    model,
    target: Target | str,
    *,
    rate_hz: float | None = None,
    battery_mwh: float | None = None,
    measure_micro: bool = True,
    progress=None,
) -> FitReport:
    """Check ``model`` against ``target``.

    Args:
        model: A :class:`~edgert.model.ModelFile`, a path or the model's bytes.
        target: A :class:`~edgert.targets.Target`, a profile name or a ``.toml`` path.
        rate_hz: Inferences per second, for duty-cycled average power and battery life.
        battery_mwh: Battery energy in mWh (``mAh x V``), for battery life at ``rate_hz``.
        measure_micro: On MCU targets, also load the model in the real TFLite Micro
            (when installed) and use the arena it reports for the RAM check.
        progress: Optional ``progress(done, total, label)`` callback.

    Returns:
        The :class:`FitReport`. Unsupported ops make ``fits`` False; they never raise.

    Raises:
        TargetError: unknown or malformed target.
        InvalidModelError / InputDataError: the model cannot be read.
    """
    from edgert.model import read_model
    from edgert.model.memory import plan_arena

    target = load_target(target)
    model = read_model(model)
    steps = 4
    report_progress(progress, 0, steps, "plan arena")
    plan = plan_arena(model)
    checks: list[Check] = []
    notes: list[str] = []

    # flash / storage
    size = model.size_bytes
    checks.append(Check(
        "flash", size <= target.flash_bytes, size, target.flash_bytes,
        f"model file {size:,} B of {target.flash_bytes:,} B"
        + ("" if size <= target.flash_bytes else
           " — too big: quantize to int8 (edgert convert), prune or shrink the model, or pick a target with more flash"),
    ))

    checks.append(_loads_check(model, target))

    # ops
    report_progress(progress, 1, steps, "op support")
    unsupported, reasons = _unsupported(model, target)
    micro_arena = None
    if target.arena and measure_micro:
        report_progress(progress, 2, steps, "TFLite Micro arena")
        micro_arena, refused = _measure_micro(model, notes)
        for name in refused:
            if name not in unsupported and name in model.ops:
                unsupported[name] = model.ops[name]
                reasons.append(f"{name}: TFLite Micro refused it (see notes)")
    edgetpu_placement = _edgetpu_placement(model) if target.op_set == "edgetpu" else {}
    edgetpu = _edgetpu_partition(model, edgetpu_placement) if target.op_set == "edgetpu" else None
    delegate = None
    n_ops = sum(model.ops.values())
    if unsupported:
        fix = _fix_for(" ".join(reasons), target)
        detail = f"{sum(unsupported.values())} of {n_ops} ops cannot run on {target.op_set}: " + "; ".join(reasons) + f" — {fix}"
    else:
        detail = f"all {n_ops} ops run on {target.op_set}"
    if target.op_set in ("xnnpack", "gpu"):
        table = XNNPACK_OPS if target.op_set == "xnnpack" else GPU_OPS
        fallback = {k: v for k, v in model.ops.items() if k not in table and k not in unsupported}
        delegate = {
            "name": target.delegate,
            "delegated_ops": sum(v for k, v in model.ops.items() if k in table),
            "cpu_ops": dict(sorted(fallback.items())),
        }
        if fallback:
            detail += f"; {sum(fallback.values())} op(s) not taken by the {target.delegate} delegate run on the CPU: " + ", ".join(sorted(fallback))
    checks.append(Check("ops", not unsupported, sum(unsupported.values()), 0, detail))

    # static shapes
    if target.static_shapes:
        dynamic = [t.name for s in range(model.num_subgraphs) for t in model.tensors(s) if _dynamic_dims(t)]
        checks.append(Check(
            "static_shapes", not dynamic, len(dynamic), 0,
            "all tensor shapes are fixed" if not dynamic else
            f"{len(dynamic)} tensor(s) with dynamic dimensions (e.g. {dynamic[0]!r}) — convert with a fixed batch size of 1 and fixed input size",
        ))

    # full int8
    if target.full_int8:
        float_ops: dict[str, int] = {}
        for s in range(model.num_subgraphs):
            tensors = model.tensors(s)
            for op in model.operators(s):
                if op.name in ("QUANTIZE", "DEQUANTIZE") and s == 0 and (
                    target.op_set != "edgetpu" or _edgetpu_boundary(model, op, tensors)):
                    continue  # float<->int conversion at the edge of the graph is allowed
                if _float_compute(op, tensors):
                    float_ops[op.name] = float_ops.get(op.name, 0) + 1
        checks.append(Check(
            "full_int8", not float_ops, sum(float_ops.values()), 0,
            "every op computes in integer" if not float_ops else
            f"{sum(float_ops.values())} op(s) compute in float ({', '.join(sorted(float_ops))}) — convert with full-integer "
            "int8 quantization and a representative dataset (edgert convert --target "
            f"{target.name} --calibration DATA)",
        ))

    # I/O dtypes
    io = list(model.inputs) + list(model.outputs)
    bad_io = [t for t in io if target.op_set == "tflm" and t.dtype == "uint8"]
    wanted = {target.input_dtype, target.output_dtype}
    differs = [t for t in io if t.dtype not in wanted]
    checks.append(Check(
        "io_dtype", not bad_io, sorted({t.dtype for t in io}), sorted(wanted),
        f"uint8 input/output cannot run on TFLite Micro — convert with {target.input_dtype} input/output" if bad_io else
        (f"input/output are {', '.join(sorted({t.dtype for t in differs}))}; {target.name} prefers "
         f"{'/'.join(sorted(wanted))} (the runtime converts at the edges)" if differs else
         f"input/output dtypes match ({'/'.join(sorted(wanted))})"),
    ))

    # RAM
    report_progress(progress, 3, steps, "RAM and latency")
    io_bytes = sum(t.nbytes for t in io)
    if target.arena:
        arena_used = micro_arena if micro_arena is not None else plan.total_bytes
        ram = arena_used
        source = "TFLite Micro's real arena" if micro_arena is not None else "edgert's arena plan"
        ram_detail = (f"tensor arena {arena_used:,} B ({source}; input/output tensors live inside it; "
                      f"edgert plan {plan.total_bytes:,} B)")
        ram_fix = " — too big: shrink activations (fewer channels, smaller input, stride earlier) or pick a target with more RAM"
    elif target.kind == "edgetpu":
        ram = edgetpu["param_bytes"] if edgetpu else 0
        ram_detail = f"{ram:,} B of parameters mapped to the Edge TPU's {target.param_cache_bytes or target.ram_bytes:,} B on-chip cache"
        ram_fix = " — parameters beyond the cache stream over USB on every inference: shrink the model or pipeline it over several Edge TPUs"
    else:
        ram = size + plan.head_bytes + io_bytes
        ram_detail = f"model {size:,} B + activations {plan.head_bytes:,} B + I/O {io_bytes:,} B"
        ram_fix = " — too big: quantize to int8 or use a smaller model"
    limit = target.param_cache_bytes if target.kind == "edgetpu" and target.param_cache_bytes else target.ram_bytes
    ram_ok = ram <= limit
    if target.kind == "edgetpu" and not ram_ok:
        # Over the cache the model still runs (parameters stream from the host): a warning, not a failure.
        notes.append(f"Edge TPU parameter cache exceeded by {ram - limit:,} B: expect slower inference")
        ram_ok = True
    checks.append(Check("ram", ram_ok, ram, limit, ram_detail + ("" if ram <= limit else ram_fix)))

    # latency and energy
    costs = _op_costs(model)
    if target.kind == "edgetpu" and edgetpu is not None:
        host = load_target(HOST_FOR_EDGETPU)
        cpu_ids = {(0, i) for i, why in edgetpu_placement.items() if why is not None}
        cpu_ids |= {(s, op.index) for s in range(1, model.num_subgraphs) for op in model.operators(s)}
        latency = _latency_ms(model, target, costs, cpu_ids, host)
        over = max(0, edgetpu["param_bytes"] - (target.param_cache_bytes or 0))
        latency += over / _USB_STREAM_BYTES_PER_S * 1e3
        cpu_ms = _latency_ms(model, host, [c for c in costs if (c.op.subgraph, c.op.index) in cpu_ids]) - host.invoke_overhead_ms
        energy = target.active_power_mw * latency + host.active_power_mw * cpu_ms
        edgetpu["cpu_latency_ms"] = round(cpu_ms, 4)
        if edgetpu["cpu_ops"]:
            notes.append(f"ops left on the CPU are costed on the {HOST_FOR_EDGETPU} profile")
    else:
        latency = _latency_ms(model, target, costs)
        energy = target.active_power_mw * latency  # mW x ms = uJ
    if target.arena and any(c.family != "other" and c.op.name not in TFLM_OPS for c in costs):
        notes.append("latency of ops TFLite Micro lacks is a guess")

    avg_power = battery_hours = None
    if rate_hz is not None:
        rate_hz = parse_rate(rate_hz)
        duty = latency / 1e3 * rate_hz
        checks.append(Check(
            "rate", duty <= 1.0, round(duty, 6), 1.0,
            f"{rate_hz:g} inferences/s keep the device busy {duty:.1%} of the time" if duty <= 1 else
            f"{rate_hz:g} inferences/s need {duty:.2f}x the time available — lower the rate or use a faster target",
        ))
        avg_power = energy * rate_hz / 1e3 + target.idle_power_mw * max(0.0, 1.0 - duty)
        if battery_mwh is not None:
            if not battery_mwh > 0:
                raise InputDataError(f"battery energy {battery_mwh} mWh must be positive")
            battery_hours = battery_mwh / avg_power if avg_power > 0 else float("inf")
    elif battery_mwh is not None:
        notes.append("battery life needs a rate (--rate)")

    report_progress(progress, 4, steps, "done")
    result = FitReport(
        target=target.name,
        fits=all(c.ok for c in checks),
        checks=checks,
        arena_bytes=plan.total_bytes,
        micro_arena_bytes=micro_arena,
        flash_bytes=size,
        ram_bytes=ram,
        latency_ms=latency,
        energy_uj=energy,
        unsupported_ops=unsupported,
        edgetpu=edgetpu,
        delegate=delegate,
        macs=model.macs,
        rate_hz=rate_hz,
        average_power_mw=avg_power,
        battery_hours=battery_hours,
        model={"path": model.path, "sha256": model.sha256},
        notes=notes,
        warnings=[w.to_dict() for w in model.warnings],
    )
    log.debug("fit %s on %s: fits=%s", model.path, target.name, result.fits)
    return result


def fit_markdown(report: FitReport | dict[str, Any]) -> str:
    """A human Markdown summary of a fit report (checks table, then estimates).

    Args:
        report: A :class:`FitReport` or its :meth:`~FitReport.to_dict`.
    """
    d = report.to_dict() if isinstance(report, FitReport) else report
    lines = [
        f"### Fit on `{d['target']}`: {'fits' if d['fits'] else 'does NOT fit'}",
        "",
        "| check | ok | value | limit | detail |",
        "|---|---|---|---|---|",
    ]
    for c in d["checks"]:
        fmt = format_bytes if c["name"] in ("flash", "ram") else str
        detail = str(c["detail"]).replace("|", "\\|")
        lines.append(f"| {c['name']} | {'yes' if c['ok'] else '**no**'} | {fmt(c['value'])} | {fmt(c['limit'])} | {detail} |")
    lines += ["", f"- tensor arena (edgert plan): {format_bytes(d['arena_bytes'])}"]
    if d.get("micro_arena_bytes") is not None:
        lines.append(f"- tensor arena (TFLite Micro, measured): {format_bytes(d['micro_arena_bytes'])}")
    lines.append(f"- model file: {format_bytes(d['flash_bytes'])}, {d.get('macs', 0):,} MACs")
    lines.append(f"- latency (estimate): {d['latency_ms']:.3g} ms, energy: {d['energy_uj']:.4g} µJ per inference")
    if d.get("rate_hz"):
        lines.append(f"- at {d['rate_hz']:g}/s: average power {d['average_power_mw']:.4g} mW")
        if d.get("battery_hours") is not None:
            lines.append(f"- battery life: {d['battery_hours']:.4g} h ({d['battery_hours'] / 24:.3g} days)")
    if d["unsupported_ops"]:
        lines.append("- unsupported ops: " + ", ".join(f"{k}×{v}" for k, v in d["unsupported_ops"].items()))
    tpu = d.get("edgetpu")
    if tpu:
        cpu = ", ".join(f"{k}×{v}" for k, v in tpu["cpu_ops"].items()) or "none"
        lines.append(f"- Edge TPU: {tpu['mapped_ops']} op(s) mapped in {tpu['subgraphs']} subgraph(s); on the CPU: {cpu}")
        if tpu.get("first_unsupported"):
            f = tpu["first_unsupported"]
            lines.append(f"  - mapping stops at op {f['index']} {f['op']}: {f['reason']}")
        lines.append(f"  - compile: `{tpu['compiler']}`")
    dlg = d.get("delegate")
    if dlg:
        cpu = ", ".join(f"{k}×{v}" for k, v in dlg["cpu_ops"].items()) or "none"
        lines.append(f"- {dlg['name']} delegate: {dlg['delegated_ops']} op(s) delegated; on the CPU: {cpu}")
    for n in d.get("notes", []):
        lines.append(f"- note: {n}")
    for w in d.get("warnings", []):
        lines.append(f"- warning: {w['message']}")
    return "\n".join(lines) + "\n"
