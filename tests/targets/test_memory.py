"""edgert's own tensor-arena planner (no TFLite Micro needed; the comparison with TFLM is in test_micro.py)."""

from __future__ import annotations

import pytest

from edgert.model import read_model
from edgert.model.memory import BUFFER_ALIGNMENT, greedy_plan, plan_arena
from tests.conftest import require_conformance
from tests.targets.conftest import int8_conformance_models

pytestmark = pytest.mark.runtime


def test_greedy_reuses_memory_of_dead_buffers():
    # a (0-1) and c (2-3) never live together: c reuses a's place; b (1-2) overlaps both.
    offsets = greedy_plan([(64, 0, 1), (32, 1, 2), (64, 2, 3)])
    assert offsets[1] == 64  # b goes above a
    assert offsets[2] == 0  # c reuses a's memory
    # all alive at once: nothing can share
    offsets = greedy_plan([(16, 0, 3), (16, 0, 3), (48, 0, 3)])
    spans = sorted((o, o + s) for o, s in zip(offsets, (16, 16, 48)))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert max(e for _, e in spans) == 80


def test_greedy_fills_gaps_largest_first():
    # the large buffer goes first at 0; the small one fits into the gap left by a dead buffer
    offsets = greedy_plan([(100, 0, 0), (100, 1, 1), (40, 0, 1)])
    assert offsets[0] == offsets[1] == 0
    assert offsets[2] == 100


@pytest.mark.parametrize("path", int8_conformance_models())
def test_plan_is_consistent(path):
    model = read_model(require_conformance(path))
    plan = plan_arena(model)
    assert plan.total_bytes == plan.head_bytes + plan.tail_bytes
    assert plan.head_bytes % BUFFER_ALIGNMENT == 0 and plan.tail_bytes % BUFFER_ALIGNMENT == 0
    # no two buffers alive at the same time overlap in memory
    bufs = plan.buffers
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    # the head is at least the largest op's live input + output
    need = max(
        sum(-(-model.tensors()[t].nbytes // 16) * 16 for t in (*op.inputs, *op.outputs)
            if t >= 0 and not model.tensors()[t].is_constant)
        for op in model.operators()
    )
    assert plan.head_bytes >= need
