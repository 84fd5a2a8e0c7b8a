"""Why a model does not fit, as codes, and how to fix each one, keyed by code.

Every reason a fit check or a runtime family gives is a :class:`Problem`: a
:class:`Code` plus the line a human reads. The fix shown to the user is looked
up by code in :data:`FIXES`, never by matching the reason's text, so a reworded
reason cannot lose its fix, and a code added without a fix fails a test.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any, NamedTuple

__all__ = ["Code", "Fix", "Problem", "FIXES", "fixes_for"]


class Code(str, Enum):
    """Failure codes. Op-level codes first, in the order their fixes are offered."""

    # -- ops a runtime cannot run (the ``ops`` check) --
    FLOAT_COMPUTE = "float_compute"          # an op computes in float on an integer-only runtime
    NOT_8BIT = "not_8bit"                    # a tensor the Edge TPU cannot hold (not 8-bit)
    UINT8_TENSOR = "uint8_tensor"            # TFLite Micro has int8 kernels, no uint8
    CUSTOM_OP = "custom_op"                  # a custom op the runtime has no kernel for
    NO_KERNEL = "no_kernel"                  # a builtin op TFLite Micro's resolver lacks
    FLEX_OP = "flex_op"                      # a TensorFlow (Flex) op
    DYNAMIC_SHAPE = "dynamic_shape"          # a tensor whose shape is known only at run time
    AFTER_CPU = "after_cpu"                  # reads a CPU result computed from Edge TPU outputs
    FLOAT_INPUT = "float_input"              # a float->int8 QUANTIZE inside the graph (Edge TPU)
    RESIZE_STEP = "resize_step"              # a resize step larger than the Edge TPU compiler maps
    BATCH_DIMENSION = "batch_dimension"      # the op works on the batch dimension (Edge TPU)
    # Edge TPU constraints with no specific fix: the generic one is offered when nothing else applies.
    NOT_IN_OP_SET = "not_in_op_set"
    TFLM_REFUSED = "tflm_refused"            # the real TFLite Micro refused the op
    TENSOR_RANK = "tensor_rank"
    DILATION = "dilation"
    FUSED_ACTIVATION = "fused_activation"
    RUNTIME_OPERAND = "runtime_operand"      # axes, paddings or split axis computed at run time
    MEAN_CHANNELS = "mean_channels"
    CONSTANT_CONCAT = "constant_concat"
    FC_OUTPUT = "fc_output"
    PRELU_ALPHA = "prelu_alpha"
    SOFTMAX_SIZE = "softmax_size"
    # -- whole-model checks --
    FLASH = "flash"                          # the file is larger than the target's flash
    LOADS = "loads"                          # the target's interpreter refuses the file
    STATIC_SHAPES = "static_shapes"          # dynamic tensors on a static-shape target
    FULL_INT8 = "full_int8"                  # float ops on an integer-only target
    IO_UINT8 = "io_uint8"                    # uint8 input/output on TFLite Micro
    RAM_ARENA = "ram_arena"                  # the tensor arena is larger than the MCU's RAM
    RAM_PARAM_CACHE = "ram_param_cache"      # Edge TPU parameters beyond its on-chip cache
    RAM_MODEL = "ram_model"                  # model + activations + I/O larger than the RAM
    RATE = "rate"                            # the requested inference rate is not reachable


class Fix(NamedTuple):
    """How to fix one code.

    Attributes:
        text: A template; ``{target}``, ``{op_set}`` and family parameters (``{resize}``) are filled in.
        fallback: Offered only when no other code of the same report has a fix of its own.
    """

    text: str
    fallback: bool = False


class Problem(NamedTuple):
    """One reason something does not fit: its code and the human line."""

    code: Code
    text: str


_INT8 = "quantize to full int8: edgert convert --target {target} --calibration DATA"
_GENERIC_OPS = Fix("use ops from the target's supported list ({op_set})", fallback=True)

#: Fix per code. For op problems the order here is the order fixes are offered (two at most).
FIXES: dict[Code, Fix] = {
    Code.FLOAT_COMPUTE: Fix(_INT8),
    Code.NOT_8BIT: Fix(_INT8),
    Code.UINT8_TENSOR: Fix("convert with int8 input/output (edgert convert --target {target} does)"),
    Code.CUSTOM_OP: Fix("register a kernel for the custom op with the interpreter/op resolver, "
                        "or rebuild the model with builtin ops"),
    Code.NO_KERNEL: Fix("replace those layers with ops TFLite Micro has, or add the kernel to your firmware"),
    Code.FLEX_OP: Fix("rebuild the model without TensorFlow (Flex) ops"),
    Code.DYNAMIC_SHAPE: Fix("convert with a fixed batch size of 1 and a fixed input size"),
    Code.AFTER_CPU: Fix("move or replace the first unsupported op so the Edge TPU can map the rest"),
    Code.FLOAT_INPUT: Fix("convert with int8/uint8 input so no float->int8 QUANTIZE is needed inside the graph"),
    Code.RESIZE_STEP: Fix("upsample in steps of x{resize} or less, or resize the output on the host"),
    Code.BATCH_DIMENSION: Fix("keep the batch dimension out of the op (reshape so it works on height, width or channels)"),
    Code.NOT_IN_OP_SET: _GENERIC_OPS,
    Code.TFLM_REFUSED: _GENERIC_OPS,
    Code.TENSOR_RANK: _GENERIC_OPS,
    Code.DILATION: _GENERIC_OPS,
    Code.FUSED_ACTIVATION: _GENERIC_OPS,
    Code.RUNTIME_OPERAND: _GENERIC_OPS,
    Code.MEAN_CHANNELS: _GENERIC_OPS,
    Code.CONSTANT_CONCAT: _GENERIC_OPS,
    Code.FC_OUTPUT: _GENERIC_OPS,
    Code.PRELU_ALPHA: _GENERIC_OPS,
    Code.SOFTMAX_SIZE: _GENERIC_OPS,
    Code.FLASH: Fix("too big: quantize to int8 (edgert convert), prune or shrink the model, "
                    "or pick a target with more flash"),
    Code.LOADS: Fix("re-export the model with a current converter"),
    Code.STATIC_SHAPES: Fix("convert with a fixed batch size of 1 and fixed input size"),
    Code.FULL_INT8: Fix("convert with full-integer int8 quantization and a representative dataset "
                        "(edgert convert --target {target} --calibration DATA)"),
    Code.IO_UINT8: Fix("convert with {input_dtype} input/output"),
    Code.RAM_ARENA: Fix("too big: shrink activations (fewer channels, smaller input, stride earlier) "
                        "or pick a target with more RAM"),
    Code.RAM_PARAM_CACHE: Fix("parameters beyond the cache stream over USB on every inference: "
                              "shrink the model or pipeline it over several Edge TPUs"),
    Code.RAM_MODEL: Fix("too big: quantize to int8 or use a smaller model"),
    Code.RATE: Fix("lower the rate or use a faster target"),
}


def fixes_for(codes: Iterable[Code], limit: int = 2, **params: Any) -> str:
    """How to fix the problems ``codes`` name: up to ``limit`` distinct fixes, ``"; "``-joined.

    Fixes come in :data:`FIXES` order; a fallback fix only when no code has its own.

    Args:
        codes: The codes of one report (repeats are fine).
        limit: Most fixes to offer.
        **params: Template values (``target``, ``op_set``, family parameters such as ``resize``).
    """
    present = set(codes)
    ordered = [FIXES[c] for c in FIXES if c in present]
    chosen = [f for f in ordered if not f.fallback] or ordered[:1]
    texts: list[str] = []
    for fix in chosen:
        text = fix.text.format(**params)
        if text not in texts:
            texts.append(text)
    return "; ".join(texts[:limit])
