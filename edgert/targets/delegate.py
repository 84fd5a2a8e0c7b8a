"""LiteRT on a CPU, with the XNNPACK or GPU delegate: phones, single-board computers, desktops.

TFLite's builtin CPU kernels run every builtin op, so only custom and
TensorFlow (Flex) ops cannot run; a delegate takes over the ops in its table
(:data:`XNNPACK_OPS`, :data:`GPU_OPS`) and leaves the rest to those kernels,
which ``fit`` reports as delegate coverage. RAM holds the model file, the
activations and the input/output tensors.
"""

from __future__ import annotations

from collections.abc import Callable

from edgert.targets.base import OpAssessment, RamUse, Runtime, Target, register
from edgert.targets.problems import Code, Problem

__all__ = ["XNNPACK_OPS", "GPU_OPS", "TFLITE_CUSTOM_OPS", "DELEGATE_OPS", "CpuDelegate"]

#: Ops the XNNPACK delegate takes over (TFLite's xnnpack delegate, float and int8 paths).
XNNPACK_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CEIL", "CONCATENATION", "CONV_2D", "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "FLOOR", "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU",
    "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU", "QUANTIZE", "RELU",
    "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "ROUND", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV", "EXPAND_DIMS", "SQUEEZE",
})

#: Ops the TFLite GPU delegate (OpenCL/OpenGL) takes over.
GPU_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "COS", "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "EXP", "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU",
    "LOG", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU", "QUANTIZE",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SIN",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE",
    "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "REDUCE_MAX", "REDUCE_MIN", "EXPAND_DIMS", "SQUEEZE",
})

#: Custom ops the standard TFLite interpreter registers (everything else custom needs your own kernel).
TFLITE_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "AudioSpectrogram", "Mfcc"})

#: Op set -> the ops its delegate takes over (``tflite``: no delegate, builtin kernels only).
DELEGATE_OPS = {"xnnpack": XNNPACK_OPS, "gpu": GPU_OPS}


@register
class CpuDelegate(Runtime):
    """LiteRT's builtin CPU kernels, optionally behind the XNNPACK or GPU delegate."""

    name = "delegate"
    title = "CPU/GPU delegate"
    op_sets = ("xnnpack", "gpu", "tflite")
    kinds = ("cpu", "gpu")

    def op_problem(self, model, op, tensors, target: Target) -> Problem | None:
        """Builtin CPU kernels back every delegate: only custom and Flex ops cannot run."""
        if op.custom and op.name not in TFLITE_CUSTOM_OPS:
            return Problem(Code.CUSTOM_OP, "custom op: register your own kernel with the interpreter")
        if op.name.startswith("Flex") or op.name.startswith("UNKNOWN_"):
            return Problem(Code.FLEX_OP, "needs the TensorFlow (Flex) delegate")
        return None

    def assess(self, model, target: Target, *, notes: list[str], measure: bool = True,
               step: Callable[[str], None] | None = None) -> OpAssessment:
        """The ops that cannot run, and which runnable ops the delegate leaves to the CPU kernels."""
        found = super().assess(model, target, notes=notes)
        table = DELEGATE_OPS.get(target.op_set)
        if table is not None:
            fallback = {k: v for k, v in model.ops.items() if k not in table and k not in found.unsupported}
            found.delegate = {
                "name": target.delegate,
                "delegated_ops": sum(v for k, v in model.ops.items() if k in table),
                "cpu_ops": dict(sorted(fallback.items())),
            }
        return found

    def ram(self, model, target: Target, plan, ops: OpAssessment) -> RamUse:
        """The model file, the activations and the input/output tensors, all in the process's RAM."""
        io_bytes = sum(t.nbytes for t in (*model.inputs, *model.outputs))
        used = model.size_bytes + plan.head_bytes + io_bytes
        return RamUse(used, target.ram_bytes,
                      f"model {model.size_bytes:,} B + activations {plan.head_bytes:,} B + I/O {io_bytes:,} B",
                      Code.RAM_MODEL)
