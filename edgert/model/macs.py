"""Multiply-accumulate estimates per operator, and the kernel family each op belongs to.

Conventions (the usual ones for MCU model cards, e.g. MLPerf Tiny):

* **conv** -- ``CONV_2D``: output elements x KH x KW x Cin-per-group;
  ``CONV_3D``: output elements x KD x KH x KW x Cin; ``TRANSPOSE_CONV`` /
  ``CONV_3D_TRANSPOSE``: input elements x kernel volume x Cout (every input
  element is scattered through the whole kernel).
* **depthwise** -- ``DEPTHWISE_CONV_2D``: output elements x KH x KW.
* **fully_connected** -- ``FULLY_CONNECTED``: output elements x input depth;
  ``BATCH_MATMUL``: output elements x the contracted dimension; recurrent cells
  (``LSTM``, ``UNIDIRECTIONAL_SEQUENCE_LSTM``, ``BIDIRECTIONAL_SEQUENCE_LSTM``,
  ``RNN``, ``UNIDIRECTIONAL_SEQUENCE_RNN``, ``SVDF``) count their gate
  matrix-vector products per time step (peepholes and layer norm ignored).
* **pool** -- ``AVERAGE_POOL_2D`` / ``MAX_POOL_2D`` / ``L2_POOL_2D``: output
  elements x window; reductions (``MEAN``, ``SUM``, ``REDUCE_*``): input elements.
* **elementwise** -- arithmetic (``ADD``, ``SUB``, ``MUL``, ``DIV``, ...),
  activations (``LOGISTIC``, ``TANH``, ``SOFTMAX``, ``HARD_SWISH``, ...),
  ``QUANTIZE``/``DEQUANTIZE``, resizes: one per output element.
* **other** -- data movement (``RESHAPE``, ``CONCATENATION``, ``PAD``,
  ``GATHER``, ...) and custom ops: 0 MACs (their cost is memory traffic).

Activations fused into a conv/FC are not counted separately. Estimates read
only shapes (and, for pooling and batch matmul, the op's options), so they work
on any validated model without running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from edgert.model.schema import OperatorInfo, TensorSpec, builtin_options

__all__ = [
    "KERNEL_FAMILIES",
    "ModelGraph",
    "OpCost",
    "estimate_macs",
    "kernel_family",
    "macs_by_family",
    "op_costs",
    "op_macs",
]

#: Every value :func:`kernel_family` can return.
KERNEL_FAMILIES = ("conv", "depthwise", "fully_connected", "pool", "elementwise", "other")

_CONV = {"CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "CONV_3D_TRANSPOSE"}
_DEPTHWISE = {"DEPTHWISE_CONV_2D"}
_RECURRENT = {
    "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM",
    "RNN", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF",
}
_FULLY_CONNECTED = {"FULLY_CONNECTED", "BATCH_MATMUL"} | _RECURRENT
_WINDOW_POOL = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
_REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"}
_POOL = _WINDOW_POOL | _REDUCE
_ELEMENTWISE = {
    # arithmetic
    "ADD", "SUB", "MUL", "DIV", "FLOOR_DIV", "FLOOR_MOD", "POW", "SQUARED_DIFFERENCE",
    "MAXIMUM", "MINIMUM", "ADD_N", "ABS", "NEG", "SQRT", "RSQRT", "SQUARE", "EXP", "LOG",
    "SIN", "COS", "FLOOR", "CEIL", "ROUND", "SIGN",
    # activations
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "PRELU", "ELU", "GELU",
    "HARD_SWISH", "LOGISTIC", "TANH", "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION",
    "LOCAL_RESPONSE_NORMALIZATION",
    # number format and interpolation
    "QUANTIZE", "DEQUANTIZE", "CAST", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    # comparisons and selection
    "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "SELECT", "SELECT_V2",
    "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT",
}


class ModelGraph(Protocol):
    """What the estimates read from a model: the graph part of :class:`~edgert.model.ModelFile`.

    A protocol rather than the class itself because the reader imports this module
    (``ModelFile.macs``); importing the reader back would make a cycle.
    """

    @property
    def num_subgraphs(self) -> int: ...

    def tensors(self, subgraph: int = 0) -> Sequence[TensorSpec]: ...

    def operators(self, subgraph: int = 0) -> Sequence[OperatorInfo]: ...

    def operator_schema(self, op: OperatorInfo) -> Any: ...


class OpCost(NamedTuple):
    """The estimated cost of one operator.

    Attributes:
        op: The operator.
        macs: Estimated multiply-accumulates for one inference.
        family: Its kernel family (see :func:`kernel_family`).
    """

    op: OperatorInfo
    macs: int
    family: str


def kernel_family(op_name: str) -> str:
    """The kernel family an op runs in, for per-family latency models.

    Args:
        op_name: Builtin op name (``"CONV_2D"``) or a custom op's code.

    Returns:
        One of :data:`KERNEL_FAMILIES`: ``"conv"`` (regular and transposed
        2-D/3-D convolutions), ``"depthwise"``, ``"fully_connected"`` (FC,
        batch matmul and recurrent cells: matrix-vector work), ``"pool"``
        (window pooling and reductions), ``"elementwise"`` (arithmetic,
        activations, softmax, (de)quantize, resize, comparisons) or ``"other"``
        (data movement and custom ops).
    """
    if op_name in _CONV:
        return "conv"
    if op_name in _DEPTHWISE:
        return "depthwise"
    if op_name in _FULLY_CONNECTED:
        return "fully_connected"
    if op_name in _POOL:
        return "pool"
    if op_name in _ELEMENTWISE:
        return "elementwise"
    return "other"


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= max(int(d), 0)
    return n


class _Shapes:
    """Safe shape look-ups for one operator (absent optional inputs read as None)."""

    def __init__(self, tensors, op) -> None:
        self.tensors, self.op = tensors, op

    def shape(self, which: str, k: int) -> tuple[int, ...] | None:
        idx = self.op.inputs if which == "in" else self.op.outputs
        if k >= len(idx) or not 0 <= idx[k] < len(self.tensors):
            return None
        return self.tensors[idx[k]].shape

    def numel(self, which: str, k: int) -> int:
        s = self.shape(which, k)
        return 0 if s is None else _prod(s)


def _recurrent_macs(name: str, s: _Shapes) -> int:
    x = s.shape("in", 0)
    if not x:
        return 0
    steps = _prod(x[:-1])  # batch x time (either major order)
    if name == "SVDF":
        wf, wt = s.shape("in", 1), s.shape("in", 2)  # [filters, input], [filters, memory]
        return steps * ((_prod(wf) if wf else 0) + (_prod(wt) if wt else 0))
    if name in ("RNN", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"):
        w, r = s.shape("in", 1), s.shape("in", 2)  # [units, input], [units, units]
        per_step = (_prod(w) if w else 0) + (_prod(r) if r else 0)
        return steps * per_step * (2 if name.startswith("BIDIRECTIONAL") else 1)
    # LSTM family: inputs 1-4 input->gate [H, I] (1 absent with CIFG), 5-8 recurrent->gate [H, R],
    # 16 projection [P, H]; the bidirectional op repeats the set for the backward cell.
    per_step = 0
    for k in (1, 2, 3, 4, 5, 6, 7, 8, 16):
        w = s.shape("in", k)
        if w and len(w) == 2:
            per_step += _prod(w)
    return steps * per_step * (2 if name.startswith("BIDIRECTIONAL") else 1)


def op_macs(model: ModelGraph, op: OperatorInfo) -> int:
    """Estimated MACs of one operator (conventions in the module docstring).

    Args:
        model: The validated model the operator belongs to.
        op: One of ``model.operators(subgraph)``.

    Returns:
        A non-negative integer; 0 for data-movement and unknown/custom ops.
    """
    s = _Shapes(model.tensors(op.subgraph), op)
    name = op.name
    out = s.numel("out", 0)
    w = s.shape("in", 1)
    if name == "CONV_2D":
        return out * _prod(w[1:]) if w and len(w) == 4 else 0  # [O, KH, KW, I/groups]
    if name == "DEPTHWISE_CONV_2D":
        return out * _prod(w[1:3]) if w and len(w) == 4 else 0  # [1, KH, KW, O]
    if name == "CONV_3D":
        return out * _prod(w[:4]) if w and len(w) == 5 else 0  # [KD, KH, KW, I, O]
    if name in ("TRANSPOSE_CONV", "CONV_3D_TRANSPOSE"):
        # inputs: output_shape, filter, input; filter [O, KH, KW, I] / [KD, KH, KW, O, I].
        x = s.numel("in", 2)
        if name == "TRANSPOSE_CONV":
            return x * _prod(w[:3]) if w and len(w) == 4 else 0
        return x * _prod(w[:4]) if w and len(w) == 5 else 0
    if name == "FULLY_CONNECTED":
        return out * int(w[-1]) if w else 0  # [O, I]
    if name == "BATCH_MATMUL":
        a = s.shape("in", 0)
        if not a or len(a) < 2:
            return 0
        opts = builtin_options(model.operator_schema(op), "BatchMatMulOptions")
        adj_x = bool(opts.AdjX()) if opts is not None else False
        return out * int(a[-2] if adj_x else a[-1])
    if name in _RECURRENT:
        return _recurrent_macs(name, s)
    if name in _WINDOW_POOL:
        opts = builtin_options(model.operator_schema(op), "Pool2DOptions")
        if opts is None:
            return out
        return out * max(opts.FilterHeight(), 0) * max(opts.FilterWidth(), 0)
    if name in _REDUCE:
        return s.numel("in", 0)
    if name in _ELEMENTWISE:
        return out
    return 0


def op_costs(model: ModelGraph, subgraph: int | None = None) -> list[OpCost]:
    """MACs and kernel family of every operator, in execution order.

    Args:
        model: A validated :class:`~edgert.model.ModelFile`.
        subgraph: One subgraph, or None for all of them (subgraph by subgraph).

    Returns:
        One :class:`OpCost` per operator.
    """
    subgraphs = range(model.num_subgraphs) if subgraph is None else (subgraph,)
    return [OpCost(op, op_macs(model, op), kernel_family(op.name)) for s in subgraphs for op in model.operators(s)]


def macs_by_family(model: ModelGraph) -> dict[str, int]:
    """Total MACs per kernel family (every family of :data:`KERNEL_FAMILIES` present, 0 when unused)."""
    totals = dict.fromkeys(KERNEL_FAMILIES, 0)
    for cost in op_costs(model):
        totals[cost.family] += cost.macs
    return totals


def estimate_macs(model: ModelGraph) -> int:
    """Estimated MACs for one inference of ``model`` over all subgraphs.

    Control-flow bodies (``WHILE``) are counted once: the trip count is only known at run time.
    """
    return sum(c.macs for c in op_costs(model))
