"""TensorFlow Lite Micro: microcontrollers that run the model from a tensor arena.

Ops are those TFLite Micro's op resolver registers (:data:`TFLM_OPS`); RAM is
the tensor arena (input and output tensors live inside it), measured with the
real TFLite Micro when the ``tflite-micro`` wheel is installed and planned by
:mod:`edgert.model.memory` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from edgert.targets.base import (
    FORMAT_TEXT,
    OpAssessment,
    RamUse,
    Runtime,
    Target,
    computes_in_float,
    latency_ms,
    register,
)
from edgert.targets.problems import Code, Problem

__all__ = ["TFLM_OPS", "TFLM_CUSTOM_OPS", "TFLiteMicro"]

#: Builtin ops registered by TFLite Micro's op resolver (tflite-micro wheel, 2025-2026 builds).
#: The Python package does not expose its resolver's list: ``tests/targets`` checks this table
#: against the ``Register_*`` symbols of the installed ``_runtime`` library.
TFLM_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL",
    "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CONCATENATION",
    "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV",
    "EMBEDDING_LOOKUP", "ELU", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD",
    "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF",
    "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOG_SOFTMAX",
    "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE",
    "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND",
    "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE", "WHILE", "ZEROS_LIKE",
})
#: Custom ops TFLite Micro registers by name.
TFLM_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "ETHOSU"})


@register
class TFLiteMicro(Runtime):
    """TensorFlow Lite Micro on a microcontroller (int8 kernels, tensor arena, firmware-linked model)."""

    name = "tflm"
    title = "TFLite Micro"
    op_sets = ("tflm",)
    kinds = ("mcu",)
    interpreter = "tflm"
    formats = ("int8", "int16x8")
    integer_only = True
    arena = True
    c_source = True
    prefer = "size"
    refused_io_dtypes = ("uint8",)

    def format_refusal(self, mode: str, target: Target) -> str:
        """Float16 and dynamic-range models keep float kernels an MCU build does not budget for."""
        return f"{FORMAT_TEXT[mode]} keeps float kernels; TFLite Micro on {target.name} runs integer models"

    def op_problem(self, model, op, tensors, target: Target) -> Problem | None:
        """Float compute (on full-int8 profiles), missing kernels, and uint8 tensors."""
        if target.full_int8 and computes_in_float(op, tensors) and not (
                op.subgraph == 0 and op.name in ("QUANTIZE", "DEQUANTIZE")):
            return Problem(Code.FLOAT_COMPUTE, "computes in float (this target runs int8 kernels only)")
        if op.custom:
            if op.name not in TFLM_CUSTOM_OPS:
                return Problem(Code.CUSTOM_OP, "custom op without a TFLite Micro kernel")
        elif op.name not in TFLM_OPS:
            return Problem(Code.NO_KERNEL, "no TFLite Micro kernel")
        if any(tensors[i].dtype == "uint8" and not tensors[i].is_constant
               for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)):
            return Problem(Code.UINT8_TENSOR, "uint8 tensors (TFLite Micro has int8 kernels only)")
        return None

    def assess(self, model, target: Target, *, notes: list[str], measure: bool = True,
               step: Callable[[str], None] | None = None) -> OpAssessment:
        """The op table's verdict, then the real TFLite Micro's: its arena, and any op it refused."""
        found = super().assess(model, target, notes=notes)
        if not measure:
            return found
        if step is not None:
            step("TFLite Micro arena")
        from edgert.errors import EdgertError
        from edgert.runtime import micro

        if not micro.micro_available():
            notes.append("tflite_micro not installed: RAM check uses edgert's arena plan only")
            return found
        try:
            found.measured_arena = micro.micro_arena_bytes(model.data)
        except EdgertError as e:
            notes.append(f"TFLite Micro refused the model: {e.message}")
            # Ops TFLite Micro named when it refused the model, beyond what the op table predicted.
            refused = e.refused_ops if isinstance(e, micro.MicroError) else ()
            for name in refused:
                if name not in found.unsupported and name in model.ops:
                    found.unsupported[name] = model.ops[name]
                    found.problems[name] = Problem(Code.TFLM_REFUSED, "TFLite Micro refused it (see notes)")
        return found

    def ram(self, model, target: Target, plan, ops: OpAssessment) -> RamUse:
        """The tensor arena: TFLite Micro's real figure when measured, else edgert's plan."""
        used = ops.measured_arena if ops.measured_arena is not None else plan.total_bytes
        source = "TFLite Micro's real arena" if ops.measured_arena is not None else "edgert's arena plan"
        return RamUse(used, target.ram_bytes,
                      f"tensor arena {used:,} B ({source}; input/output tensors live inside it; "
                      f"edgert plan {plan.total_bytes:,} B)", Code.RAM_ARENA)

    def latency_energy(self, model, target: Target, costs, ops: OpAssessment,
                       notes: list[str]) -> tuple[float, float]:
        """The profile's cost model; ops without a TFLite Micro kernel have no calibrated cost."""
        if any(c.family != "other" and c.op.name not in TFLM_OPS for c in costs):
            notes.append("latency of ops TFLite Micro lacks is a guess")
        latency = latency_ms(model, target, costs)
        return latency, target.active_power_mw * latency
