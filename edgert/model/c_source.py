"""Write a .tflite model as C++ source for firmware that compiles the model in.

One implementation shared by ``edgert convert`` (microcontroller targets) and
``firmware_tools`` ``export-c``. :func:`write_c_source` writes two files:

``<name>.h``
    ``extern`` declarations of the model array and its length, constants for
    the tensor arena to reserve (the measured/planned arena plus a safety
    margin, rounded up to the alignment), and the declaration of a function
    that registers exactly the operators the model uses on a
    ``tflite::MicroMutableOpResolver<N>``::

        #include "model_data.h"
        alignas(16) static uint8_t arena[kModelDataArenaBytes];
        static model_data_resolver_t resolver;
        model_data_register_ops(resolver);
        const tflite::Model* model = tflite::GetModel(model_data);
        tflite::MicroInterpreter interp(model, resolver, arena, sizeof arena);

    (the constants' prefix is ``name`` in CamelCase: ``kModelData...`` for ``model_data``).

``<name>.cc``
    The flatbuffer as an ``alignas(alignment)`` byte array (TFLite Micro reads
    the flatbuffer in place, and its tables need the alignment) and the
    registration function: one ``AddXxx()`` call per distinct operator.

Both files are replaced atomically (written to a temporary file in the same
directory, then renamed), so firmware never builds against a half-written
array. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgert.errors import ConversionError, InputDataError
from edgert.files import atomic_write

__all__ = [
    "ARENA_MARGIN",
    "TFLM_OP_METHODS",
    "c_identifier_ok",
    "reserved_arena_bytes",
    "resolver_methods",
    "write_c_source",
]

#: Extra fraction of the arena reserved on top of the measured size: TFLM's
#: arena grows with the kernel build (CMSIS-NN scratch buffers, debug logging)
#: compared with the host reference kernels it was measured on.
ARENA_MARGIN = 0.25

#: TFLite builtin (or custom) operator name -> ``MicroMutableOpResolver`` method.
#: Names follow tensorflow/lite/micro/micro_mutable_op_resolver.h.
TFLM_OP_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
    # Custom operators TFLM ships kernels for.
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BYTES_PER_LINE = 12
_HEX = [f"0x{i:02x}" for i in range(256)]


def c_identifier_ok(name: str) -> bool:
    """True when ``name`` can be used as a C/C++ identifier."""
    return bool(_IDENT.match(name))


def reserved_arena_bytes(arena_bytes: int, *, margin: float = ARENA_MARGIN, alignment: int = 16) -> int:
    """The arena to reserve for a measured arena: plus ``margin``, rounded up to ``alignment``."""
    wanted = int(arena_bytes * (1.0 + margin) + 0.999999)
    return -(-wanted // alignment) * alignment


def resolver_methods(ops: dict[str, int] | list[str]) -> list[str]:
    """``MicroMutableOpResolver`` methods for ``ops``, one per distinct operator, sorted.

    Raises:
        ConversionError: An operator has no TFLite Micro kernel (names them all).
    """
    names = sorted(set(ops))
    missing = [n for n in names if n not in TFLM_OP_METHODS]
    if missing:
        raise ConversionError(
            f"TFLite Micro has no kernel for operator(s) {', '.join(missing)}",
            "convert the model for a microcontroller target so only TFLM operators are used",
        )
    return sorted({TFLM_OP_METHODS[n] for n in names})


def _byte_lines(data: bytes) -> str:
    hexes = [_HEX[b] for b in data]
    return "\n".join(
        "    " + ", ".join(hexes[i : i + _BYTES_PER_LINE]) + "," for i in range(0, len(hexes), _BYTES_PER_LINE)
    )


def write_c_source(
    data: bytes,
    out_dir: str | Path,
    *,
    name: str = "model_data",
    arena_bytes: int | None = None,
    ops: dict[str, int] | None = None,
    alignment: int = 16,
    margin: float = ARENA_MARGIN,
) -> tuple[Path, Path]:
    """Write ``<name>.h`` and ``<name>.cc`` holding the model for TFLite Micro firmware.

    Args:
        data: The .tflite flatbuffer.
        out_dir: Directory to write into (created when missing).
        name: Base name of the files and of the C symbols (``<name>``,
            ``<name>_len``, ``<name>_register_ops``); must be a C identifier.
        arena_bytes: Tensor arena the model needs (TFLM's measured arena, or the
            planner's); the header reserves it plus ``margin``. None omits the
            arena constants.
        ops: Operator name -> count (``ModelFile.ops``). None reads them from ``data``.
        alignment: Byte alignment of the array (``alignas``); a power of two >= 4.
        margin: Fraction added on top of ``arena_bytes``.

    Returns:
        ``(header_path, source_path)``.

    Raises:
        InputDataError: ``name`` is not a C identifier or ``alignment`` is not a power of two.
        ConversionError: The model uses an operator TFLite Micro has no kernel for.
    """
    if not c_identifier_ok(name):
        raise InputDataError(f"C symbol name {name!r} is not a valid identifier", "use letters, digits and _")
    if alignment < 4 or alignment & (alignment - 1):
        raise InputDataError(f"alignment {alignment} is not a power of two >= 4")
    if ops is None:
        from edgert.model.reader import read_model

        ops = read_model(bytes(data)).ops
    methods = resolver_methods(ops)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    guard = f"EDGERT_{name.upper()}_H_"
    camel = "".join(part.capitalize() for part in name.split("_") if part)
    n_ops = max(len(methods), 1)  # MicroMutableOpResolver<0> is not a valid instantiation
    # No figure at all rather than a low one: fit says the arena on this target is unknown (a core or
    # an op without an arena model), so the firmware author measures it on the device.
    arena_lines = ("// Tensor arena: unknown for this target (see edgert fit's warnings); measure it on the\n"
                   "// device with MicroInterpreter::arena_used_bytes() after AllocateTensors().\n")
    if arena_bytes is not None:
        reserve = reserved_arena_bytes(int(arena_bytes), margin=margin, alignment=alignment)
        arena_lines = (
            f"// Tensor arena the model was measured/planned to need: {int(arena_bytes)} bytes.\n"
            f"constexpr size_t k{camel}ArenaMeasuredBytes = {int(arena_bytes)};\n"
            f"// Reserve this much (+{margin:.0%} for kernel scratch buffers, rounded to {alignment}).\n"
            f"constexpr size_t k{camel}ArenaBytes = {reserve};\n"
        )
    header = f"""// Generated by edgert; do not edit. Model: {len(data)} bytes.
#ifndef {guard}
#define {guard}

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

// The .tflite flatbuffer, aligned to {alignment} bytes so TFLite Micro can use it in place.
extern const unsigned char {name}[];
extern const unsigned int {name}_len;
constexpr unsigned int k{camel}Len = {len(data)};
constexpr size_t k{camel}Alignment = {alignment};
{arena_lines}
// Exactly the {len(methods)} operator(s) the model uses.
constexpr int k{camel}OpCount = {n_ops};
using {name}_resolver_t = tflite::MicroMutableOpResolver<k{camel}OpCount>;

// Registers every operator the model needs; returns kTfLiteError when one fails.
TfLiteStatus {name}_register_ops({name}_resolver_t& resolver);

#endif  // {guard}
"""
    calls = "\n".join(f"  if (resolver.{m}() != kTfLiteOk) return kTfLiteError;" for m in methods)
    source = f"""// Generated by edgert; do not edit.
#include "{name}.h"

alignas({alignment}) const unsigned char {name}[] = {{
{_byte_lines(bytes(data))}
}};
const unsigned int {name}_len = {len(data)};

TfLiteStatus {name}_register_ops({name}_resolver_t& resolver) {{
{calls}
  return kTfLiteOk;
}}
"""
    h_path = atomic_write(out / f"{name}.h", header)
    cc_path = atomic_write(out / f"{name}.cc", source)
    return h_path, cc_path
