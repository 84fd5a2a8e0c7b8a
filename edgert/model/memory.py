"""Tensor-arena memory plan: how many bytes TFLite Micro allocates, per target, without running it.

TFLite Micro (TFLM) takes one arena and fills it from both ends
(``tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc``):

* the **head** (non-persistent): every activation tensor and every kernel
  scratch buffer, packed by ``GreedyMemoryPlanner``. We replay that planner:
  lifetimes from the op order exactly as ``AllocationInfoBuilder``
  (``micro_allocation_info.cc``) marks them (subgraph inputs/outputs live from
  scope 0, op ``i`` is scope ``i + 1``, a scratch buffer lives during its op),
  sizes rounded up to the 16-byte ``MicroArenaBufferAlignment()``, tensors in
  index order then scratch buffers in request order, placed largest first
  into the first time-compatible gap.
* the **tail** (persistent): a bump allocator growing down, where every
  allocation is aligned to its own type (``AllocatePersistentBuffer(sizeof(T),
  alignof(T))``) except what kernels ask for through the context (OpData,
  per-channel multiplier/shift arrays, kernel sums, LUTs), which is aligned
  to 16. Padding therefore depends on the order, so :func:`plan_arena` replays
  the exact sequence of ``MicroAllocator::Create``,
  ``MicroInterpreter::AllocateTensors`` (``micro_interpreter.cc``) and each
  kernel's ``Init``/``Prepare``.

What differs between targets is captured by an :class:`ArenaConfig`:

* the ABI: struct sizes and alignments on a 32-bit Arm EABI core (4-byte
  pointers, *short enums*: ``TfLiteFullyConnectedParams`` is 5 bytes there,
  16 on x86-64) or the 64-bit host the ``tflite-micro`` wheel is built for.
  The tables below were read off the TFLM + CMSIS-NN tree of
  ``third_party/tflm`` by compiling ``sizeof``/``alignof`` probes with
  ``arm-none-eabi-g++ -mcpu=cortex-m4`` and host ``g++`` (x86-64), kernel
  structs by including the kernel ``.cc`` that defines them;
* the kernel set: TFLM's reference kernels (the wheel) or CMSIS-NN, whose
  OpData is larger and which request scratch buffers (``*_get_buffer_size``)
  that depend on the core's extension: DSP (Cortex-M4/M7) or Helium/MVE
  (Cortex-M55, which also keeps per-layer kernel sums for fully connected
  layers in the tail);
* the allocator: the wheel runs ``RecordingMicroAllocator`` (bigger allocator
  objects), firmware the plain ``MicroAllocator``.

An op whose allocations the planner does not model makes the plan
*incomplete* (:attr:`ArenaPlan.complete` False, the op in
:attr:`ArenaPlan.unknown_ops`): its total is then a lower bound that callers
must not present as the arena.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ArenaConfig",
    "ArenaPlan",
    "PlannedBuffer",
    "ARENA_CONFIGS",
    "HOST_CONFIG",
    "BUFFER_ALIGNMENT",
    "arena_config",
    "greedy_plan",
    "plan_arena",
]

#: TFLM's ``MicroArenaBufferAlignment()`` (``micro_arena_constants.h``): head buffers and kernel allocations.
BUFFER_ALIGNMENT = 16

# ---- ABIs: (sizeof, alignof) of every struct TFLM puts in the arena ----------------------------------
# Read off third_party/tflm (tflite-micro 90b983c2, CMSIS-NN 4ab83cc3) with TF_LITE_STATIC_MEMORY, the
# flag both the wheel and firmware build with. "eabi32": arm-none-eabi-g++ 12.2 -mcpu=cortex-m4 (the
# same layout on M7/M55: the EABI, not the core, fixes it); "lp64": g++ on x86-64 (the wheel's build).
#: ``{struct: ((sizeof, alignof) on the 32-bit Arm EABI, (sizeof, alignof) on x86-64 or None)}``.
_STRUCTS: dict[str, tuple[tuple[int, int], tuple[int, int] | None]] = {
    # allocator objects: micro/arena_allocator/*.h, memory_planner/greedy_memory_planner.h,
    # micro_allocator.h, recording_micro_allocator.h (MicroBuiltinDataAllocator: micro_allocator.cc)
    "SingleArenaBufferAllocator": ((36, 4), (72, 8)),
    "RecordingSingleArenaBufferAllocator": ((52, 4), (104, 8)),
    "GreedyMemoryPlanner": ((44, 4), (72, 8)),
    "MicroAllocator": ((36, 4), (72, 8)),
    "RecordingMicroAllocator": ((124, 4), (248, 8)),
    "MicroBuiltinDataAllocator": ((8, 4), (16, 8)),
    # per tensor / per op runtime structs: micro_allocator.h, c/common.h (TF_LITE_STATIC_MEMORY layout)
    "SubgraphAllocations": ((8, 4), (16, 8)),
    "TfLiteEvalTensor": ((12, 4), (24, 8)),
    "NodeAndRegistration": ((32, 4), (64, 8)),
    "TfLiteTensor": ((32, 4), (64, 8)),
    "TfLiteAffineQuantization": ((12, 4), (24, 8)),
    "ScratchBufferHandle": ((4, 4), (8, 8)),
    "TfLiteIntArray": ((4, 4), (4, 4)),
    # builtin option structs: core/c/builtin_op_data.h (short enums shrink several on the EABI)
    "TfLiteConvParams": ((28, 4), (28, 4)),
    "TfLiteDepthwiseConvParams": ((28, 4), (28, 4)),
    "TfLiteFullyConnectedParams": ((5, 1), (16, 4)),
    "TfLitePoolParams": ((40, 4), (40, 4)),
    "TfLiteReshapeParams": ((36, 4), (36, 4)),
    "TfLiteSoftmaxParams": ((4, 4), (4, 4)),
    "TfLiteAddParams": ((2, 1), (8, 4)),
    "TfLiteSubParams": ((2, 1), (8, 4)),
    "TfLiteMulParams": ((1, 1), (4, 4)),
    "TfLiteConcatenationParams": ((8, 4), (8, 4)),
    "TfLiteStridedSliceParams": ((24, 4), (24, 4)),
    "TfLiteUnidirectionalSequenceLSTMParams": ((16, 4), (16, 4)),
    "TfLiteTransposeConvParams": ((16, 4), (20, 4)),
    "TfLitePackParams": ((8, 4), (8, 4)),
    "TfLiteUnpackParams": ((8, 4), (8, 4)),
    "TfLiteReducerParams": ((1, 1), (1, 1)),
    "TfLiteSqueezeParams": ((36, 4), (36, 4)),
    "TfLiteLeakyReluParams": ((4, 4), (4, 4)),
    "TfLiteShapeParams": ((1, 1), (4, 4)),
    "TfLiteSplitParams": ((4, 4), (4, 4)),
    # reference kernels' OpData: micro/kernels/*.h and *.cc
    "OpDataConv": ((56, 4), (72, 8)),
    "OpDataFullyConnected": ((48, 4), (64, 8)),
    "OpDataPooling": ((32, 4), (32, 4)),
    "SoftmaxParams": ((56, 8), (80, 8)),
    "OpDataAdd": ((60, 4), (60, 4)),
    "OpDataSub": ((52, 4), (52, 4)),
    "OpDataMul": ((36, 4), (36, 4)),
    "ReluOpData": ((28, 4), (28, 4)),
    "Relu6OpData": ((8, 4), (8, 4)),
    "OpDataLogistic": ((16, 4), (16, 4)),
    "TanhOpData": ((16, 4), (16, 4)),
    "DequantizeOpData": ((32, 8), (32, 8)),
    "OpDataQuantizeReference": ((32, 8), (32, 8)),
    "PadOpData": ((56, 4), (56, 4)),
    "OpDataReduce": ((44, 4), (44, 4)),
    "LeakyReluOpData": ((24, 4), (24, 4)),
    "OpDataLSTM": ((688, 8), (688, 8)),
    "HardSwishParams": ((20, 4), (20, 4)),
    "StridedSliceParams": ((84, 4), (84, 4)),
    "ConcatenationOpData": ((24, 4), (40, 8)),
    # CMSIS-NN kernels' OpData: micro/kernels/cmsis_nn/*.cc (never built for a 64-bit host: None there)
    "CmsisConvOpData": ((60, 4), None),
    "CmsisDepthwiseConvOpData": ((60, 4), None),
    "CmsisFullyConnectedOpData": ((72, 4), None),
    "CmsisPoolingOpData": ((36, 4), None),
    "CMSISNNSoftmaxParams": ((64, 8), None),
    "CmsisAddOpData": ((60, 4), None),
    "CmsisLstmOpData": ((912, 8), None),
    "CmsisPadOpData": ((56, 4), None),
}
_COMMON_EABI32: dict[str, tuple[int, int]] = {k: v[0] for k, v in _STRUCTS.items()}
_COMMON_LP64: dict[str, tuple[int, int]] = {k: v[1] for k, v in _STRUCTS.items() if v[1] is not None}

#: The tflite-micro wheel is a newer TFLM than third_party/tflm: its ``OpDataConv`` and
#: ``OpDataFullyConnected`` carry one more pointer-sized member, its fully-connected options take 32
#: bytes, its reshape options 40 and its recording allocator 32 more. Read off the wheel's own ``print_allocations()``
#: categories ('Persistent buffer data' requested bytes per op; the tail left after the recorded
#: categories) on the conformance models; everything else is as in the tree.
_WHEEL_LP64: dict[str, tuple[int, int]] = {
    **_COMMON_LP64,
    "OpDataConv": (80, 8), "OpDataFullyConnected": (72, 8),
    "TfLiteFullyConnectedParams": (32, 4), "TfLiteReshapeParams": (40, 4), "RecordingMicroAllocator": (280, 8),
}


@dataclass(frozen=True)
class ArenaConfig:
    """What the arena of one TFLM build depends on.

    Attributes:
        name: Short id (``"cortex-m4"``, ``"tflm-host-64bit"``).
        word_bytes: Pointer size (4 on Cortex-M, 8 on the 64-bit host wheel).
        structs: ``{struct: (sizeof, alignof)}`` of this ABI.
        kernels: ``"reference"`` (TFLM's portable kernels) or ``"cmsis-nn"``.
        isa: CMSIS-NN's code path: ``"dsp"`` (``ARM_MATH_DSP``: M4, M7), ``"mve"``
            (``ARM_MATH_MVEI``: M55) or ``"none"``.
        recording: True for the wheel's ``RecordingMicroAllocator`` (larger allocator objects).
        description: One line for reports.
    """

    name: str
    word_bytes: int
    structs: Mapping[str, tuple[int, int]]
    kernels: str = "reference"
    isa: str = "none"
    recording: bool = False
    description: str = ""


#: The tflite-micro wheel: 64-bit host, reference kernels, recording allocator (what print_allocations reports).
HOST_CONFIG = ArenaConfig("tflm-host-64bit", 8, _WHEEL_LP64, "reference", "none", True,
                          "TFLite Micro wheel on the 64-bit host, reference kernels")
#: Builds the planner knows. Cortex-M: TFLM's cortex_m_generic build with CMSIS-NN (firmware_tools' firmware).
ARENA_CONFIGS: dict[str, ArenaConfig] = {
    HOST_CONFIG.name: HOST_CONFIG,
    "cortex-m4": ArenaConfig("cortex-m4", 4, _COMMON_EABI32, "cmsis-nn", "dsp", False,
                             "32-bit Cortex-M4, TFLite Micro + CMSIS-NN (DSP)"),
    "cortex-m7": ArenaConfig("cortex-m7", 4, _COMMON_EABI32, "cmsis-nn", "dsp", False,
                             "32-bit Cortex-M7, TFLite Micro + CMSIS-NN (DSP)"),
    "cortex-m55": ArenaConfig("cortex-m55", 4, _COMMON_EABI32, "cmsis-nn", "mve", False,
                              "32-bit Cortex-M55, TFLite Micro + CMSIS-NN (Helium/MVE)"),
    "cortex-m-reference": ArenaConfig("cortex-m-reference", 4, _COMMON_EABI32, "reference", "none", False,
                                      "32-bit Cortex-M, TFLite Micro reference kernels"),
}


def arena_config(name: str | ArenaConfig | None) -> ArenaConfig:
    """The :class:`ArenaConfig` called ``name`` (None: the host wheel's)."""
    if name is None:
        return HOST_CONFIG
    if isinstance(name, ArenaConfig):
        return name
    try:
        return ARENA_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown arena config {name!r} (known: {', '.join(ARENA_CONFIGS)})") from None


def _align(n: int, a: int = BUFFER_ALIGNMENT) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class PlannedBuffer:
    """One buffer placed in the arena head.

    Attributes:
        tensor: Tensor index in subgraph 0, or -1 for a kernel scratch buffer.
        name: Tensor name (``"scratch:OP#i"`` for scratch buffers).
        size: Bytes reserved (rounded up to :data:`BUFFER_ALIGNMENT`).
        offset: Offset from the start of the head.
        first: First allocation scope that needs it (0 = before the first op).
        last: Last allocation scope that reads it.
    """

    tensor: int
    name: str
    size: int
    offset: int
    first: int
    last: int


@dataclass(frozen=True)
class ArenaPlan:
    """The planned TFLite Micro tensor arena of one model for one :class:`ArenaConfig`.

    Attributes:
        total_bytes: Head + tail: what ``arena_used_bytes()`` reports (a lower bound when not ``complete``).
        head_bytes: Non-persistent part (activations and scratch buffers placed by the greedy planner).
        tail_bytes: Persistent part (runtime structs, kernel data, variables), alignment padding included.
        buffers: The placed head buffers.
        breakdown: Tail bytes by category (before inter-allocation padding), plus ``scratch`` (head).
        peak_scope: Allocation scope (op index + 1) at which the head is fullest.
        config: Name of the :class:`ArenaConfig` planned for.
        complete: False when an op's allocations are not modelled (see ``unknown_ops``).
        unknown_ops: ``{op name: count}`` of ops the planner does not model for this config.
    """

    total_bytes: int
    head_bytes: int
    tail_bytes: int
    buffers: tuple[PlannedBuffer, ...] = ()
    breakdown: dict[str, int] = field(default_factory=dict)
    peak_scope: int = 0
    config: str = HOST_CONFIG.name
    complete: bool = True
    unknown_ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the per-buffer list)."""
        return {
            "total_bytes": self.total_bytes,
            "head_bytes": self.head_bytes,
            "tail_bytes": self.tail_bytes,
            "breakdown": dict(self.breakdown),
            "peak_scope": self.peak_scope,
            "buffers": len(self.buffers),
            "config": self.config,
            "complete": self.complete,
            "unknown_ops": dict(self.unknown_ops),
        }


def greedy_plan(requests: list[tuple[int, int, int]]) -> list[int]:
    """TFLM's greedy placement of ``(size, first, last)`` requests; returns offsets.

    Largest buffer first; TFLM fills its sort array from the back and then runs
    a stable ``ReverseSortInPlace``, so equal sizes go in reverse request order.
    Each buffer goes into the lowest gap between buffers that are alive at the
    same time and is big enough, else after the last of them.
    """
    order = sorted(reversed(range(len(requests))), key=lambda i: -requests[i][0])
    offsets = [0] * len(requests)
    placed: list[int] = []  # request ids, kept sorted by offset (insertion after equal offsets)
    for rid in order:
        size, first, last = requests[rid]
        candidate = 0
        for pid in placed:
            p_size, p_first, p_last = requests[pid]
            if p_first > last or first > p_last:
                continue  # not alive at the same time
            if offsets[pid] - candidate >= size:
                break  # the gap before this buffer is big enough
            candidate = max(candidate, offsets[pid] + p_size)
        offsets[rid] = candidate
        pos = len(placed)
        for k, pid in enumerate(placed):
            if offsets[pid] > candidate:
                pos = k
                break
        placed.insert(pos, rid)
    return offsets


def _lifetimes(model) -> dict[int, list[int]]:
    """``{tensor: [first, last]}`` for subgraph 0, as TFLM's AllocationInfoBuilder marks them."""
    sg = model.schema.Subgraphs(0)
    life: dict[int, list[int]] = {}

    def created(t: int, scope: int) -> None:
        # TFLM overwrites: a subgraph output marked at scope 0 is re-marked by its producer.
        life[t] = [scope, scope]

    def used(t: int, scope: int) -> None:
        if t in life:
            life[t][1] = max(life[t][1], scope)

    ins = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outs = [int(i) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    for t in ins + outs:
        created(t, 0)
    scope = 0
    for op in model.operators(0):
        scope += 1
        for t in op.outputs:
            created(t, scope)
        for t in op.inputs:
            if t >= 0:
                used(t, scope)
        for t in op.outputs:
            used(t, scope)
    for t in outs:
        used(t, scope)
    return life


# ---- the tail: a replay of TFLM's persistent allocations ------------------------------------------
class _Tail:
    """``PersistentArenaBufferAllocator``/``SingleArenaBufferAllocator::AllocatePersistentBuffer``:
    the tail grows down from a 16-byte-aligned end, each allocation aligned down to its alignment."""

    def __init__(self, structs: Mapping[str, tuple[int, int]]) -> None:
        self.structs = structs
        self.used = 0
        self.by_category: dict[str, int] = {}

    def alloc(self, size: int, alignment: int, category: str) -> None:
        self.used = _align(self.used + size, alignment)  # top - used stays aligned: the top is 16-aligned
        self.by_category[category] = self.by_category.get(category, 0) + size

    def struct(self, name: str, category: str, count: int = 1) -> None:
        size, alignment = self.structs[name]
        self.alloc(size * count, alignment, category)

    def kernel(self, size: int, category: str = "kernels") -> None:
        """``MicroContext::AllocatePersistentBuffer``: what kernels ask for, 16-byte aligned."""
        self.alloc(size, BUFFER_ALIGNMENT, category)


class _OpContext:
    """What one kernel's Init/Prepare sees: its tensors and options; collects tail and scratch requests."""

    def __init__(self, model, op, tensors, cfg: ArenaConfig, tail: _Tail) -> None:
        self.model, self.op, self.tensors, self.cfg, self.tail = model, op, tensors, cfg, tail
        self.scratch: list[int] = []

    def t(self, i: int):
        """Input/output tensor spec by op-local index (``inputs`` then use ``out`` for outputs)."""
        idx = self.op.inputs[i] if i < len(self.op.inputs) else -1
        return self.tensors[idx] if idx >= 0 else None

    def out(self, i: int = 0):
        return self.tensors[self.op.outputs[i]]

    def options(self, cls_name: str):
        import tflite

        table = self.model.operator_schema(self.op).BuiltinOptions()
        if table is None or not hasattr(tflite, cls_name):
            return None
        opt = getattr(tflite, cls_name)()
        opt.Init(table.Bytes, table.Pos)
        return opt

    def opdata(self, struct: str) -> None:
        self.tail.kernel(self.cfg.structs[struct][0])

    def request_scratch(self, nbytes: int) -> None:
        """``RequestScratchBufferInArena``: planned in the head, alive during this op."""
        if nbytes > 0:
            self.scratch.append(int(nbytes))


def _padding(in_size: int, filter_size: int, stride: int, dilation: int, same: bool) -> int:
    """TFLite's ``ComputePaddingWithOffset`` (kernels/padding.h): the leading padding of one axis."""
    if not same:
        return 0
    effective = (filter_size - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2


def _int_activation(t) -> bool:
    return t is not None and t.dtype in ("int8", "int16")


# -- CMSIS-NN scratch sizes (third_party/cmsis_nn/Source/*/arm_*_get_buffer_sizes_s8.c), GCC build --------
def _cmsis_conv_s8_buffer(isa: str, in_c: int, k_h: int, k_w: int, in_h: int, stride_w: int, stride_h: int,
                          pad_w: int, pad_h: int, dil_w: int, dil_h: int, out_w: int, in_w: int) -> int:
    """``arm_convolve_wrapper_s8_get_buffer_size`` for the core's extension."""
    is_1x1 = pad_w == 0 and pad_h == 0 and k_w == 1 and k_h == 1 and dil_w == 1 and dil_h == 1
    if is_1x1:
        # arm_convolve_1x1_s8_fast_get_buffer_size: 0 with GCC on DSP (the 2*c*int16 buffer is an
        # armclang-only path, __ARMCC_VERSION) and on MVE; the non-fast 1x1 needs none either.
        return 0
    is_1_x_n = in_h == 1 and dil_w == 1 and k_h == 1 and (stride_w * in_c) % 4 == 0
    if isa == "mve":
        def generic() -> int:  # arm_convolve_s8_get_buffer_size_mve: 4 im2col columns of 16-lane blocks
            return 4 * ((in_c * k_w * k_h + 15) // 16) * 16
        if is_1_x_n:  # arm_convolve_1_x_n_s8_get_buffer_size_mve
            total_pad = (out_w - 1) * stride_w + k_w - in_w
            asym = total_pad % 2
            right = max(1, (pad_w + asym + stride_w - 1) // stride_w) if pad_w + asym != 0 else 0
            left = max(1, (pad_w + stride_w - 1) // stride_w) if pad_w != 0 else 0
            no_pad = max(out_w - (right + left), 0)
            if right + no_pad + left != out_w:
                return generic()
            pad_left = pad_w * in_c
            pad_right = right * in_c if asym else pad_left
            left_elems = k_w * in_c
            return max(left_elems + pad_left, left_elems - in_c + pad_right)
        return generic()
    if isa == "dsp" or isa == "none":
        # arm_convolve_s8_get_buffer_size (DSP or plain C): two im2col columns of int16, 4-aligned
        cols = k_w * k_h * in_c
        cols = cols + (4 - cols % 4) % 4
        return 2 * cols * 2
    return 0


def _cmsis_depthwise_s8_buffer(isa: str, in_c: int, out_c: int, k_h: int, k_w: int, pad_h: int, pad_w: int,
                               dil_h: int, dil_w: int, batches: int, conv: dict[str, int]) -> int:
    """``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (arm_depthwise_conv_get_buffer_sizes_s8.c).

    ``conv`` holds what the one-input-channel MVE path needs: ``in_h, in_w, stride_h, stride_w, out_w``.
    """
    if isa == "mve" and in_c == 1 and out_c > 1:
        # CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD is 1 with GCC: the depthwise runs
        # as a conv (arm_deptwise_conv_s8_one_in_ch_get_buffer_size_mve): the conv's buffer for a filter of
        # out_c x k_h x k_w x 1, plus the reordered weights (out_c * k_h * k_w int8).
        size = _cmsis_conv_s8_buffer(isa, 1, k_h, k_w, conv["in_h"], conv["stride_w"], conv["stride_h"], pad_w, pad_h,
                                     dil_w, dil_h, conv["out_w"], conv["in_w"])
        return size + out_c * k_h * k_w
    if in_c == out_c and batches == 1 and dil_w == 1 and dil_h == 1:
        if isa == "mve":
            return 4 * 124 * k_w * k_h  # arm_depthwise_conv_s8_opt_get_buffer_size_mve, CH_IN_BLOCK_MVE = 124
        if k_w == 3 and k_h == 3 and pad_h <= 1 and pad_w <= 1:
            return 0  # arm_depthwise_conv_3x3_s8 needs no buffer
        if isa == "dsp":
            return in_c * k_w * k_h * 2  # arm_depthwise_conv_s8_opt_get_buffer_size_dsp
        return 0
    return 0


# -- kernels: each replays Init (OpData) and Prepare (tail allocations, scratch requests) --------------
def _per_channel_arrays(ctx: _OpContext, channels: int) -> None:
    # per_channel_output_multiplier + per_channel_output_shift: int32 each (conv_common.cc,
    # depthwise_conv_common.cc, fully_connected_common.cc, cmsis_nn/conv.cc, cmsis_nn/depthwise_conv.cc)
    ctx.tail.kernel(4 * channels)
    ctx.tail.kernel(4 * channels)


def _window(ctx: _OpContext, options: str) -> tuple[int, int, int, int, int, int]:
    """(stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w) of a conv/depthwise, as Prepare computes them."""
    opt = ctx.options(options)
    sh, sw = (opt.StrideH(), opt.StrideW()) if opt else (1, 1)
    dh, dw = (opt.DilationHFactor(), opt.DilationWFactor()) if opt else (1, 1)
    same = bool(opt and opt.Padding() == 0)
    _, ih, iw, _ = ctx.t(0).shape
    _, kh, kw, _ = ctx.t(1).shape
    return sh, sw, dh, dw, _padding(ih, kh, sh, dh, same), _padding(iw, kw, sw, dw, same)


def _conv_init_prepare(ctx: _OpContext, cmsis_opdata: str, channel_axis: int) -> bool:
    """OpData, then the per-channel arrays: the reference Prepare (conv_common.cc,
    depthwise_conv_common.cc) allocates them for every type, CMSIS-NN's for int8/int16 only.
    Returns whether the kernel is CMSIS-NN's."""
    cmsis = ctx.cfg.kernels == "cmsis-nn"
    ctx.opdata(cmsis_opdata if cmsis else "OpDataConv")
    if not cmsis or _int_activation(ctx.t(0)):
        _per_channel_arrays(ctx, ctx.t(1).shape[channel_axis])
    return cmsis


def _conv(ctx: _OpContext) -> bool:
    inp, filt, out = ctx.t(0), ctx.t(1), ctx.out()
    cmsis = _conv_init_prepare(ctx, "CmsisConvOpData", 0)  # kConvQuantizedDimension
    if cmsis and inp.dtype == "int8" and filt.dtype == "int8":
        sh, sw, dh, dw, ph, pw = _window(ctx, "Conv2DOptions")
        _, ih, iw, ic = inp.shape
        _, kh, kw, _ = filt.shape
        ctx.request_scratch(_cmsis_conv_s8_buffer(ctx.cfg.isa, ic, kh, kw, ih, sw, sh, pw, ph, dw, dh,
                                                  out.shape[2], iw))
    elif cmsis and inp.dtype == "int16" and filt.dtype == "int8":
        bias = ctx.t(2)
        if bias is None or bias.dtype == "int64":  # CMSIS-NN s16 path; int32 bias falls back to reference
            cols = inp.shape[3] * filt.shape[1] * filt.shape[2]
            if ctx.cfg.isa == "mve":  # arm_convolve_s16_get_buffer_size_mve
                ctx.request_scratch(4 * ((cols + 7) // 8) * 8 * 2)
            else:  # arm_convolve_s16_get_buffer_size: two int16 im2col columns
                ctx.request_scratch(2 * cols * 2)
    elif cmsis and inp.dtype != "float32":
        return False  # int4 weights (arm_convolve_wrapper_s4) not modelled
    return True


def _depthwise(ctx: _OpContext) -> bool:
    inp, filt, out = ctx.t(0), ctx.t(1), ctx.out()
    cmsis = _conv_init_prepare(ctx, "CmsisDepthwiseConvOpData", 3)  # kDepthwiseConvQuantizedDimension
    if cmsis and inp.dtype == "int8" and filt.dtype == "int8":
        sh, sw, dh, dw, ph, pw = _window(ctx, "DepthwiseConv2DOptions")
        n, ih, iw, ic = inp.shape
        _, kh, kw, _ = filt.shape
        conv = {"in_h": ih, "in_w": iw, "stride_h": sh, "stride_w": sw, "out_w": out.shape[2]}
        ctx.request_scratch(_cmsis_depthwise_s8_buffer(ctx.cfg.isa, ic, out.shape[3], kh, kw, ph, pw, dh, dw, n, conv))
    elif cmsis and not (inp.dtype in ("float32", "int16") and filt.dtype in ("float32", "int8")):
        return False  # int4 weights not modelled; int16 requests no scratch in cmsis_nn/depthwise_conv.cc Prepare
    return True


def _fully_connected(ctx: _OpContext) -> bool:
    inp, filt, out = ctx.t(0), ctx.t(1), ctx.out()
    cmsis = ctx.cfg.kernels == "cmsis-nn"
    ctx.opdata("CmsisFullyConnectedOpData" if cmsis else "OpDataFullyConnected")
    per_channel = bool(filt.scales and len(filt.scales) > 1)
    if per_channel:  # CalculateOpDataFullyConnected (fully_connected_common.cc)
        _per_channel_arrays(ctx, len(filt.scales))
    if not cmsis:
        return True
    if inp.dtype == "int16":
        return True  # arm_fully_connected_s16_get_buffer_size is 0 on every core
    if inp.dtype == "int8" and filt.dtype == "int8":
        accum_depth = filt.shape[-1]
        out_depth = out.shape[-1]
        if len(out.shape) > 2 and accum_depth % 4 == 0:
            # the 1x1-conv path (cmsis_nn/fully_connected.cc): requantization arrays as scratch
            if not per_channel:
                ctx.request_scratch(out_depth * 4 * 2)
            # arm_convolve_1x1_s8_fast_get_buffer_size: 0 with GCC
        elif ctx.cfg.isa == "mve":
            # arm_fully_connected_s8_get_buffer_size_mve = output depth * int32; with
            # KERNELS_OPTIMIZED_FOR_SPEED and constant weights it becomes persistent kernel sums.
            size = out_depth * 4
            bias = ctx.t(2)
            if filt.is_constant and (bias is None or bias.is_constant):
                ctx.tail.kernel(size)
            else:
                ctx.request_scratch(size)
    return True


def _pool(ctx: _OpContext, average: bool) -> bool:
    cmsis = ctx.cfg.kernels == "cmsis-nn"
    ctx.opdata("CmsisPoolingOpData" if cmsis else "OpDataPooling")
    inp, out = ctx.t(0), ctx.out()
    if cmsis and average and inp.dtype in ("int8", "int16") and ctx.cfg.isa == "dsp":
        # arm_avgpool_s8/s16_get_buffer_size_dsp: channels * int32 (0 on MVE)
        ctx.request_scratch(out.shape[3] * 4)
    return True


def _softmax(ctx: _OpContext) -> bool:
    ctx.opdata("CMSISNNSoftmaxParams" if ctx.cfg.kernels == "cmsis-nn" else "SoftmaxParams")
    if ctx.t(0).dtype == "int16":
        # InitializeLutForInt16 (softmax_common.cc): exp and 1/(1+x) LUTs of LUTSize<int16_t>() = 513 int16
        ctx.tail.kernel(513 * 2)
        ctx.tail.kernel(513 * 2)
    return True


def _lstm(ctx: _OpContext) -> bool:
    inp = ctx.t(0)
    cell = ctx.t(19)  # kLstmCellStateTensor
    if cell is None or cell.dtype not in ("int16", "float32") or len(inp.shape) < 2:
        return False
    out = ctx.out()
    opt = ctx.options("UnidirectionalSequenceLSTMOptions")
    time_major = bool(opt and opt.TimeMajor())
    batch = inp.shape[1] if time_major else inp.shape[0]
    state = out.shape[-1]
    elem = 2 if cell.dtype == "int16" else 4
    if ctx.cfg.kernels == "cmsis-nn":
        ctx.opdata("CmsisLstmOpData")
        if inp.dtype in ("int8", "int16") and cell.dtype == "int16":
            # CMSIS_NN_PortOpData: 8 effective-bias (kernel sum) vectors of int32 (int8) or int64 (int16)
            for _ in range(8):
                ctx.tail.kernel(state * (4 if inp.dtype == "int8" else 8))
            buffers = 3
        else:
            buffers = 4
    else:
        ctx.opdata("OpDataLSTM")  # unidirectional_sequence_lstm.cc: 4 gate/state scratch buffers
        buffers = 4
    for _ in range(buffers):
        ctx.request_scratch(batch * state * elem)
    return True


def _opdata_only(struct: str | None) -> Callable[[_OpContext], bool]:
    def kernel(ctx: _OpContext) -> bool:
        if struct:
            ctx.opdata(struct)
        return True

    return kernel


def _cmsis_or_ref(cmsis: str, ref: str) -> Callable[[_OpContext], bool]:
    def kernel(ctx: _OpContext) -> bool:
        ctx.opdata(cmsis if ctx.cfg.kernels == "cmsis-nn" else ref)
        return True

    return kernel


#: Builtin op -> Init/Prepare replay. Ops not here are reported as unknown.
_KERNELS: dict[str, Callable[[_OpContext], bool]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": lambda ctx: _pool(ctx, True),
    "MAX_POOL_2D": lambda ctx: _pool(ctx, False),
    "SOFTMAX": _softmax,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
    "ADD": _cmsis_or_ref("CmsisAddOpData", "OpDataAdd"),
    "SUB": _opdata_only("OpDataSub"),
    "MUL": _opdata_only("OpDataMul"),  # cmsis_nn/mul.cc keeps OpDataMul
    "PAD": _cmsis_or_ref("CmsisPadOpData", "PadOpData"),
    "RELU": _opdata_only("ReluOpData"),
    "RELU6": _opdata_only("Relu6OpData"),
    "LOGISTIC": _opdata_only("OpDataLogistic"),
    "TANH": _opdata_only("TanhOpData"),
    "QUANTIZE": _opdata_only("OpDataQuantizeReference"),
    "DEQUANTIZE": _opdata_only("DequantizeOpData"),
    "CONCATENATION": _opdata_only("ConcatenationOpData"),
    "STRIDED_SLICE": _opdata_only("StridedSliceParams"),
    "HARD_SWISH": _opdata_only("HardSwishParams"),
    "LEAKY_RELU": _opdata_only("LeakyReluOpData"),
    # registered with a null Init and a Prepare that allocates nothing (reshape.cc, squeeze.cc, ...)
    "RESHAPE": _opdata_only(None),
    "SQUEEZE": _opdata_only(None),
    "EXPAND_DIMS": _opdata_only(None),
    "SHAPE": _opdata_only(None),
    "SPLIT": _opdata_only(None),
    "PACK": _opdata_only(None),
    "UNPACK": _opdata_only(None),
}

#: The option struct each builtin's parser allocates (core/api/flatbuffer_conversions.cc, Parse*):
#: ``SafeBuiltinDataAllocator::Allocate<T>()`` = ``(sizeof(T), alignof(T))`` in the tail. None: the
#: parser allocates nothing (ParseQuantize, ParseLogistic, ParseRelu, ...).
_BUILTIN_PARAMS: dict[str, str | None] = {
    "CONV_2D": "TfLiteConvParams", "DEPTHWISE_CONV_2D": "TfLiteDepthwiseConvParams",
    "FULLY_CONNECTED": "TfLiteFullyConnectedParams", "AVERAGE_POOL_2D": "TfLitePoolParams",
    "MAX_POOL_2D": "TfLitePoolParams", "RESHAPE": "TfLiteReshapeParams", "SOFTMAX": "TfLiteSoftmaxParams",
    "ADD": "TfLiteAddParams", "SUB": "TfLiteSubParams", "MUL": "TfLiteMulParams",
    "CONCATENATION": "TfLiteConcatenationParams", "STRIDED_SLICE": "TfLiteStridedSliceParams",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "TfLiteUnidirectionalSequenceLSTMParams",
    "PACK": "TfLitePackParams", "UNPACK": "TfLiteUnpackParams", "SQUEEZE": "TfLiteSqueezeParams",
    "LEAKY_RELU": "TfLiteLeakyReluParams", "SHAPE": "TfLiteShapeParams", "SPLIT": "TfLiteSplitParams",
    "PAD": None, "QUANTIZE": None, "DEQUANTIZE": None, "LOGISTIC": None, "TANH": None, "RELU": None,
    "RELU6": None, "HARD_SWISH": None, "EXPAND_DIMS": None,
}


def plan_arena(model, config: str | ArenaConfig | None = None) -> ArenaPlan:
    """Plan the TFLite Micro tensor arena of ``model`` for one build.

    Args:
        model: A :class:`~edgert.model.ModelFile` (or anything :func:`~edgert.model.read_model` takes).
        config: An :class:`ArenaConfig` or a name in :data:`ARENA_CONFIGS`; None plans for the
            ``tflite-micro`` wheel (64-bit host, reference kernels), whose ``print_allocations()``
            the tests compare with.

    Returns:
        The :class:`ArenaPlan`; ``total_bytes`` is what ``MicroInterpreter::arena_used_bytes()``
        reports after ``AllocateTensors()`` when ``complete`` is True, a lower bound otherwise.
    """
    from edgert.model.reader import read_model

    cfg = arena_config(config)
    model = read_model(model)
    tail = _Tail(cfg.structs)
    n_sub = model.num_subgraphs
    unknown: dict[str, int] = {}
    if "OfflineMemoryAllocation" in model.metadata_names():
        # Offline-planned offsets (micro_allocation_info.cc GetOfflinePlannedOffsets) replace the greedy
        # plan of the head; not replayed here.
        unknown["OfflineMemoryAllocation"] = 1

    # MicroAllocator::Create (micro_allocator.cc) / RecordingMicroAllocator::Create: the arena allocator
    # object, the GreedyMemoryPlanner and the MicroAllocator itself live at the top of the tail.
    tail.struct("RecordingSingleArenaBufferAllocator" if cfg.recording else "SingleArenaBufferAllocator", "runtime")
    tail.struct("GreedyMemoryPlanner", "runtime")
    tail.struct("RecordingMicroAllocator" if cfg.recording else "MicroAllocator", "runtime")
    # StartModelAllocation: builtin-data allocator, SubgraphAllocations[], then per subgraph the
    # TfLiteEvalTensor[] and, after all of them, the NodeAndRegistration[] arrays.
    tail.struct("MicroBuiltinDataAllocator", "runtime")
    tail.struct("SubgraphAllocations", "runtime", n_sub)
    for s in range(n_sub):
        tail.struct("TfLiteEvalTensor", "eval_tensors", len(model.tensors(s)))
    for s in range(n_sub):
        tail.struct("NodeAndRegistration", "nodes", len(model.operators(s)))
    # PrepareNodeAndRegistrationDataFromFlatbuffer: every builtin's parsed options.
    for s in range(n_sub):
        for op in model.operators(s):
            if op.custom:
                continue  # custom options stay in the flatbuffer
            if op.name not in _BUILTIN_PARAMS:
                unknown[op.name] = unknown.get(op.name, 0) + 1
                continue
            params = _BUILTIN_PARAMS[op.name]
            if params:
                tail.struct(params, "builtin_data")
    # InitSubgraphs then PrepareSubgraphs, op by op. Init and Prepare of one op are replayed together:
    # all Inits come first in TFLM, but kernel allocations are all 16-aligned, so the order among them
    # does not change the padding.
    scratch_by_op: list[tuple[int, list[int]]] = []
    for s in range(n_sub):
        tensors = model.tensors(s)
        for op in model.operators(s):
            kernel = None if op.custom else _KERNELS.get(op.name)
            if kernel is None:
                if op.custom or op.name in _BUILTIN_PARAMS:
                    unknown[op.name] = unknown.get(op.name, 0) + 1
                continue
            ctx = _OpContext(model, op, tensors, cfg, tail)
            try:
                known = kernel(ctx)
            except (KeyError, IndexError, ValueError):
                known = False  # a struct or shape this config has no figure for
            if not known:
                unknown[op.name] = unknown.get(op.name, 0) + 1
            if s == 0:
                scratch_by_op.append((op.index, ctx.scratch))
            elif ctx.scratch:
                unknown[op.name] = unknown.get(op.name, 0) + 1  # scratch in control-flow subgraphs: not planned
    # FinishModelAllocation: scratch-buffer handles, then variable tensors (AllocateVariables, 16-aligned).
    n_scratch = sum(len(sizes) for _, sizes in scratch_by_op)
    if n_scratch:
        tail.struct("ScratchBufferHandle", "scratch_handles", n_scratch)
    for s in range(n_sub):
        for t in model.tensors(s):
            if t.is_variable:
                tail.kernel(t.nbytes, "variables")
    # AllocateTensors: TfLiteTensor* arrays (16-aligned) and a persistent TfLiteTensor (+ quantization)
    # per input, then the same for outputs.
    for io in (model.inputs, model.outputs):
        tail.kernel(cfg.word_bytes * len(io), "io_tensors")
        for t in io:
            tail.struct("TfLiteTensor", "io_tensors")
            if t.quantized:
                tail.struct("TfLiteAffineQuantization", "io_tensors")
                size, alignment = cfg.structs["TfLiteIntArray"]
                tail.alloc(size + 4 * len(t.scales or (0,)), alignment, "io_tensors")

    # ---- head: tensors in index order, then scratch buffers in request order ----
    tensors = model.tensors(0)
    life = _lifetimes(model)
    entries: list[tuple[int, str]] = []
    requests: list[tuple[int, int, int]] = []
    for t in tensors:
        nbytes = t.nbytes
        if t.is_variable or t.is_constant or nbytes == 0 or t.index not in life:
            continue
        first, last = life[t.index]
        entries.append((t.index, t.name))
        requests.append((_align(nbytes), first, last))
    scratch_total = 0
    for op_index, sizes in scratch_by_op:
        for k, size in enumerate(sizes):
            entries.append((-1, f"scratch:{model.operators(0)[op_index].name}#{op_index}.{k}"))
            requests.append((_align(size), op_index + 1, op_index + 1))
            scratch_total += _align(size)
    offsets = greedy_plan(requests)
    buffers = tuple(
        PlannedBuffer(tid, name, size, off, first, last)
        for (tid, name), (size, first, last), off in zip(entries, requests, offsets, strict=True)
    )
    head = max((b.offset + b.size for b in buffers), default=0)
    peak_scope, peak = 0, -1
    for sc in range(max((b.last for b in buffers), default=0) + 1):
        top = max((b.offset + b.size for b in buffers if b.first <= sc <= b.last), default=0)
        if top > peak:
            peak_scope, peak = sc, top

    breakdown = dict(tail.by_category)
    breakdown["scratch"] = scratch_total
    head = _align(head)
    return ArenaPlan(
        total_bytes=head + tail.used,
        head_bytes=head,
        tail_bytes=tail.used,
        buffers=buffers,
        breakdown=breakdown,
        peak_scope=peak_scope,
        config=cfg.name,
        complete=not unknown,
        unknown_ops=dict(sorted(unknown.items())),
    )
