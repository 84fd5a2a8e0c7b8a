"""edgert's own tensor-arena planner (no TFLite Micro needed; the comparison with TFLM is in test_micro.py)."""

from __future__ import annotations

import itertools

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
    spans = sorted((o, o + s) for o, s in zip(offsets, (16, 16, 48), strict=True))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
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


# ---- per-target plans: the 32-bit Cortex-M cores with CMSIS-NN -----------------------------------
#: Arenas TFLite Micro + CMSIS-NN reported (``arena_used_bytes()``) on emulated cores, measured with our
#: firmware (firmware_tools, QEMU mps2-an386 / mps3-an547); the 64-bit wheel reports 24,272 / 3,984 /
#: 103,680 B for the same files. tests/targets/test_arena_emulated.py re-measures them when QEMU is here.
MEASURED_ON_TARGET = [
    ("keyword_spotting__kws_ref_model", "cortex-m4", 22_820),
    ("anomaly_detection__ad01_int8", "cortex-m4", 2_580),
    ("anomaly_detection__ad01_int8", "cortex-m55", 9_268),  # Helium: per-layer kernel sums in the tail
    ("visual_wake_words__vww_96_int8", "cortex-m4", 100_708),
    # Helium runs micro_speech's one-input-channel depthwise as a conv: its buffer + reordered weights
    ("tflm__micro_speech_quantized", "cortex-m55", 7_812),
]


@pytest.mark.parametrize("stem,config,measured", MEASURED_ON_TARGET, ids=[f"{s}-{c}" for s, c, _ in MEASURED_ON_TARGET])
def test_target_plan_within_2_percent_of_the_firmware(stem, config, measured):
    from tests.conftest import CONFORMANCE

    plan = plan_arena(require_conformance(CONFORMANCE / "models" / f"{stem}.tflite"), config)
    assert plan.complete and plan.config == config
    assert abs(plan.total_bytes - measured) <= 0.02 * measured, (plan.total_bytes, measured)


@pytest.mark.parametrize("path", int8_conformance_models())
def test_32bit_plan_differs_from_the_64bit_one_where_it_should(path):
    model = read_model(require_conformance(path))
    host, m4, m55 = plan_arena(model), plan_arena(model, "cortex-m4"), plan_arena(model, "cortex-m55")
    # 4-byte pointers and short enums shrink every runtime struct ...
    assert m4.breakdown["eval_tensors"] * 2 == host.breakdown["eval_tensors"]
    assert m4.breakdown["nodes"] * 2 == host.breakdown["nodes"]
    assert m4.tail_bytes < host.tail_bytes
    # ... while CMSIS-NN's scratch buffers and Helium kernel sums only add on the cores.
    assert host.breakdown["scratch"] == 0
    assert m55.tail_bytes >= m4.tail_bytes  # Helium keeps fully-connected kernel sums in the tail


def test_scratch_buffers_are_planned_with_their_op():
    from tests.conftest import CONFORMANCE

    model = read_model(require_conformance(CONFORMANCE / "models" / "keyword_spotting__kws_ref_model.tflite"))
    plan = plan_arena(model, "cortex-m4")
    scratch = [b for b in plan.buffers if b.tensor < 0]
    assert scratch and plan.breakdown["scratch"] == sum(b.size for b in scratch)
    for b in scratch:  # alive during its op only, and never overlapping a live tensor
        assert b.first == b.last
        for t in plan.buffers:
            if t is not b and t.first <= b.last and b.first <= t.last:
                assert t.offset + t.size <= b.offset or b.offset + b.size <= t.offset


def test_an_op_the_planner_does_not_know_makes_the_plan_incomplete():
    from tests.conftest import CONFORMANCE

    model = read_model(require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite"))
    assert plan_arena(model, "cortex-m4").complete
    # CMSIS-NN is never built for a 64-bit host: no OpData figures, so the plan must say it is incomplete
    from edgert.model.memory import _COMMON_LP64, ArenaConfig

    odd = ArenaConfig("lp64-cmsis", 8, _COMMON_LP64, "cmsis-nn", "dsp")
    plan = plan_arena(model, odd)
    assert not plan.complete and plan.unknown_ops == {"FULLY_CONNECTED": 3}


def test_unknown_config_is_refused():
    from edgert.model.memory import arena_config

    with pytest.raises(ValueError, match="cortex-m4"):
        arena_config("cortex-m3")
