"""Tensor-arena memory plan: how many bytes TFLite Micro will need, without running it.

The arena TFLite Micro (TFLM) allocates has two parts:

* the **head** (non-persistent): every activation tensor and kernel scratch
  buffer, packed by TFLM's ``GreedyMemoryPlanner``. We replay that planner:
  lifetimes from the op order exactly as ``AllocationInfoBuilder`` marks them
  (subgraph inputs/outputs live from scope 0, op ``i`` is scope ``i + 1``),
  sizes rounded up to the 16-byte ``MicroArenaBufferAlignment()``, buffers
  placed largest first (stable order for equal sizes) into the first
  time-compatible gap of the offset-ordered list.
* the **tail** (persistent): one ``TfLiteEvalTensor`` per tensor, one
  ``NodeAndRegistration`` per op, the builtin option structs, what each kernel
  allocates in ``Init``/``Prepare`` (its ``OpData`` plus per-channel
  multiplier/shift arrays), the ``TfLiteTensor`` + quantization structs for the
  input/output tensors the application asks for, variable tensors, and the
  allocator/planner objects themselves.

The tail sizes below are those of the tflite-micro host build (x86-64, 8-byte
pointers), taken from TFLM's structs and cross-checked with the
``RecordingMicroAllocator`` breakdown that ``print_allocations()`` prints for the
MLPerf Tiny and TFLM example models (``tests/targets`` keeps the plan within 2%
of the real arena for all of them). On a 32-bit microcontroller the pointer-sized
structs shrink, so this figure is a slight upper bound there. Kernels that
request scratch buffers (CMSIS-NN, ESP-NN builds) add to the head on device;
the reference kernels measured here request none for the int8 ops below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArenaPlan", "PlannedBuffer", "plan_arena", "BUFFER_ALIGNMENT", "greedy_plan"]

#: TFLM's ``MicroArenaBufferAlignment()``: every arena buffer starts on 16 bytes.
BUFFER_ALIGNMENT = 16

# ---- persistent (tail) sizes of the tflite-micro host build --------------------------------
#: sizeof(TfLiteEvalTensor): data pointer, dims pointer, type.
EVAL_TENSOR_BYTES = 24
#: sizeof(NodeAndRegistration): TfLiteNode + TFLMRegistration pointer.
NODE_BYTES = 64
#: sizeof(TfLiteTensor) allocated persistently for each input/output the application reads.
PERSISTENT_TENSOR_BYTES = 64
#: sizeof(TfLiteAffineQuantization) (two pointers and an int, padded).
AFFINE_QUANT_BYTES = 24
#: Allocator, memory planner, builtin-data allocator, subgraph table and the two
#: interpreter-level persistent buffers every model gets (the part of the
#: RecordingMicroAllocator tail no per-tensor/per-op category accounts for).
FIXED_TAIL_BYTES = 488 + 32

#: Builtin option structs TFLM parses into the tail (sizeof the TfLite*Params struct).
BUILTIN_DATA_BYTES = {
    "CONV_2D": 28,            # TfLiteConvParams
    "DEPTHWISE_CONV_2D": 28,  # TfLiteDepthwiseConvParams
    "FULLY_CONNECTED": 32,    # TfLiteFullyConnectedParams (+ padding to the next allocation)
    "AVERAGE_POOL_2D": 40,    # TfLitePoolParams incl. computed padding
    "MAX_POOL_2D": 40,
    "RESHAPE": 36,            # TfLiteReshapeParams: int shape[8] + count
    "SOFTMAX": 4,             # TfLiteSoftmaxParams
    "ADD": 8, "SUB": 8, "MUL": 8,
    "CONCATENATION": 8,
    "TRANSPOSE_CONV": 24,
    "STRIDED_SLICE": 20,
    "PAD": 0, "QUANTIZE": 0, "DEQUANTIZE": 0, "LOGISTIC": 0, "TANH": 0, "RELU": 0, "RELU6": 0,
}
#: Kernel OpData allocated in ``Init`` (reference kernels, host build).
OP_DATA_BYTES = {
    "CONV_2D": 80,            # OpDataConv
    "DEPTHWISE_CONV_2D": 80,  # OpDataConv (shared with depthwise)
    "TRANSPOSE_CONV": 96,
    "FULLY_CONNECTED": 72,    # OpDataFullyConnected
    "SOFTMAX": 80,            # SoftmaxParams
    "AVERAGE_POOL_2D": 32,    # OpDataPooling
    "MAX_POOL_2D": 32,
    "ADD": 60, "SUB": 60,     # OpDataAdd / OpDataSub
    "MUL": 40,
    "RESHAPE": 0, "SQUEEZE": 0, "EXPAND_DIMS": 0,
    "QUANTIZE": 24, "DEQUANTIZE": 24,
    "LOGISTIC": 24, "TANH": 24,
    "CONCATENATION": 48,
    "STRIDED_SLICE": 64,
    "PAD": 24,
    "RELU": 16, "RELU6": 16,
}
#: Unknown op: a typical OpData plus option struct (keeps the estimate on the safe side).
DEFAULT_OP_BYTES = 48
#: Ops whose Prepare allocates an int32 multiplier and an int32 shift per output channel.
PER_CHANNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}


def _align(n: int, a: int = BUFFER_ALIGNMENT) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class PlannedBuffer:
    """One activation buffer placed in the arena head.

    Attributes:
        tensor: Tensor index in subgraph 0.
        name: Tensor name.
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
    """The planned TFLite Micro tensor arena of one model.

    Attributes:
        total_bytes: Head + tail: the ``kTensorArenaSize`` the model needs.
        head_bytes: Non-persistent part (activations placed by the greedy planner).
        tail_bytes: Persistent part (runtime structs, kernel data, variables).
        buffers: The placed activation buffers.
        breakdown: Tail bytes by category.
        peak_scope: Allocation scope (op index + 1) at which the head is fullest.
    """

    total_bytes: int
    head_bytes: int
    tail_bytes: int
    buffers: tuple[PlannedBuffer, ...] = ()
    breakdown: dict[str, int] = field(default_factory=dict)
    peak_scope: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the per-buffer list)."""
        return {
            "total_bytes": self.total_bytes,
            "head_bytes": self.head_bytes,
            "tail_bytes": self.tail_bytes,
            "breakdown": dict(self.breakdown),
            "peak_scope": self.peak_scope,
            "buffers": len(self.buffers),
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


def _op_tail_bytes(op, tensors) -> int:
    """Persistent bytes one op's kernel and options take (allocations rounded to 16)."""
    op_data = OP_DATA_BYTES.get(op.name, DEFAULT_OP_BYTES)
    total = _align(op_data) if op_data else 0
    if op.name in PER_CHANNEL_OPS and op.outputs:
        channels = tensors[op.outputs[0]].shape[-1] if tensors[op.outputs[0]].shape else 1
        total += 2 * _align(4 * int(channels))
    elif op.name == "FULLY_CONNECTED" and len(op.inputs) > 1:
        w = tensors[op.inputs[1]]
        if w.scales and len(w.scales) > 1:  # per-channel FC: multiplier + shift per output
            total += 2 * _align(4 * len(w.scales))
    total += BUILTIN_DATA_BYTES.get(op.name, DEFAULT_OP_BYTES if op.name not in OP_DATA_BYTES else 0)
    return total


def plan_arena(model) -> ArenaPlan:
    """Plan the TFLite Micro tensor arena of ``model``.

    Args:
        model: A :class:`~edgert.model.ModelFile` (or anything :func:`~edgert.model.read_model` takes).

    Returns:
        The :class:`ArenaPlan`; ``total_bytes`` is the arena to reserve.
    """
    from edgert.model.reader import read_model

    model = read_model(model)
    tensors = model.tensors(0)
    life = _lifetimes(model)

    ids: list[int] = []
    requests: list[tuple[int, int, int]] = []
    variable_bytes = 0
    for t in tensors:
        nbytes = t.nbytes
        if t.is_variable:
            variable_bytes += _align(nbytes)
            continue
        if t.is_constant or nbytes == 0 or t.index not in life:
            continue
        first, last = life[t.index]
        ids.append(t.index)
        requests.append((_align(nbytes), first, last))
    offsets = greedy_plan(requests)
    buffers = tuple(
        PlannedBuffer(tid, tensors[tid].name, size, off, first, last)
        for tid, (size, first, last), off in zip(ids, requests, offsets)
    )
    head = max((b.offset + b.size for b in buffers), default=0)
    peak_scope, peak = 0, -1
    for s in range(max((b.last for b in buffers), default=0) + 1):
        top = max((b.offset + b.size for b in buffers if b.first <= s <= b.last), default=0)
        if top > peak:
            peak_scope, peak = s, top

    n_tensors = sum(len(model.tensors(s)) for s in range(model.num_subgraphs))
    n_ops = sum(len(model.operators(s)) for s in range(model.num_subgraphs))
    io = list(model.inputs) + list(model.outputs)
    io_quant = sum(
        AFFINE_QUANT_BYTES + _align(4 + 4 * len(t.scales or ()), 8) for t in io if t.quantized
    )
    kernels = sum(_op_tail_bytes(op, model.tensors(s)) for s in range(model.num_subgraphs) for op in model.operators(s))
    breakdown = {
        "eval_tensors": EVAL_TENSOR_BYTES * n_tensors,
        "nodes": NODE_BYTES * n_ops,
        "io_tensors": PERSISTENT_TENSOR_BYTES * len(io) + io_quant,
        "kernels": kernels,
        "variables": variable_bytes,
        "runtime": FIXED_TAIL_BYTES,
    }
    tail = _align(sum(breakdown.values()))
    return ArenaPlan(
        total_bytes=_align(head) + tail,
        head_bytes=_align(head),
        tail_bytes=tail,
        buffers=buffers,
        breakdown=breakdown,
        peak_scope=peak_scope,
    )
