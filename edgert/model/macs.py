"""Multiply-accumulate estimates per operator."""

from __future__ import annotations

__all__ = ["estimate_macs"]


def estimate_macs(model) -> int:
    """Estimated MACs for one inference of ``model`` (a :class:`~edgert.model.ModelFile`)."""
    total = 0
    for s in range(model.num_subgraphs):
        tensors = model.tensors(s)
        for op in model.operators(s):
            total += op_macs(op, tensors)
    return total


def op_macs(op, tensors) -> int:
    """MACs of one operator from its tensor shapes."""
    def numel(i):
        n = 1
        for d in tensors[i].shape:
            n *= max(int(d), 1)
        return n

    if op.name in ("CONV_2D",) and len(op.inputs) >= 2:
        w = tensors[op.inputs[1]].shape  # [O, KH, KW, I]
        return numel(op.outputs[0]) * (w[1] * w[2] * w[3] if len(w) == 4 else 1)
    if op.name == "DEPTHWISE_CONV_2D" and len(op.inputs) >= 2:
        w = tensors[op.inputs[1]].shape  # [1, KH, KW, O]
        return numel(op.outputs[0]) * (w[1] * w[2] if len(w) == 4 else 1)
    if op.name == "FULLY_CONNECTED" and len(op.inputs) >= 2:
        w = tensors[op.inputs[1]].shape  # [O, I]
        return numel(op.outputs[0]) * (w[-1] if w else 1)
    return 0
