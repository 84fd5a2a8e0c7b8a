"""fit's arena is the target's: planned for the profile's core, measured on the target when given,
unknown (no number) where the planner cannot say; the 64-bit wheel's figure stays beside it."""

from __future__ import annotations

import pytest

from edgert.fit import TargetMeasurement, check_fit, fit_markdown
from edgert.model import read_model
from edgert.model.memory import plan_arena
from edgert.targets import load_target
from edgert.targets.tflm import target_arena
from tests.conftest import CONFORMANCE, require_conformance

KWS = "keyword_spotting__kws_ref_model.tflite"


def _model(name: str):
    return require_conformance(CONFORMANCE / "models" / name)


@pytest.mark.parametrize("target,core", [("cortex-m4-256k", "cortex-m4"), ("cortex-m7-stm32h7", "cortex-m7"),
                                         ("cortex-m55", "cortex-m55")])
def test_cortex_m_arena_is_the_plan_for_its_core(target, core):
    report = check_fit(_model(KWS), target, measure_micro=False)
    d = report.to_dict()
    assert load_target(target).core == core
    assert d["arena_source"] == "planned" and d["arena"]["config"] == core
    assert d["arena_bytes"] == d["arena_plan_bytes"] == plan_arena(_model(KWS), core).total_bytes
    assert report.check("ram").value == d["arena_bytes"]
    for key in ("target", "fits", "checks", "arena_bytes", "micro_arena_bytes", "flash_bytes", "latency_ms",
                "energy_uj", "unsupported_ops", "warnings"):
        assert key in d


def test_a_measurement_on_the_target_is_the_arena_and_the_plan_stays_beside_it():
    measured = TargetMeasurement(arena_bytes=23_000, instructions=7_698_000, board="mps2-an386 (cortex-m4)")
    report = check_fit(_model(KWS), "cortex-m4-256k", measure_micro=False, measured=measured)
    d = report.to_dict()
    assert d["arena_bytes"] == 23_000 and d["arena_source"] == "measured-target"
    assert d["arena_plan_bytes"] == plan_arena(_model(KWS), "cortex-m4").total_bytes
    assert d["instructions"] == 7_698_000 and d["measured_on"] == "mps2-an386 (cortex-m4)"
    assert report.check("ram").value == 23_000
    text = fit_markdown(report)
    assert "7,698,000 instructions" in text and "not cycles" in text and "measured-target" in text


def test_a_core_without_an_arena_model_says_unknown_instead_of_a_low_number():
    report = check_fit(_model(KWS), "esp32-s3", measure_micro=False)
    d = report.to_dict()
    assert d["arena_bytes"] is None and d["arena_source"] == "unknown"
    assert any("esp32-s3" in w["message"] for w in d["warnings"])
    assert "unknown" in report.check("ram").detail
    assert "unknown" in fit_markdown(report)


def test_an_op_the_planner_does_not_model_gives_no_arena(tmp_path):
    tflite_micro = pytest.importorskip("tflite_micro")
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime

    m = runtime.convert_bytearray_to_object(bytearray(_model("tflm__hello_world_int8.tflite").read_bytes()))
    fb = runtime.schema_fb
    code = fb.OperatorCodeT()
    code.builtinCode = fb.BuiltinOperator.GELU  # a TFLite op without an arena model
    code.deprecatedBuiltinCode = fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
    code.version = 1
    m.operatorCodes.append(code)
    m.subgraphs[0].operators[1].opcodeIndex = len(m.operatorCodes) - 1
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    assert tflite_micro
    report = check_fit(bytes(b.Output()), "cortex-m4-256k", measure_micro=False)
    assert report.arena_bytes is None and report.arena_source == "unknown"
    assert report.arena["unknown_ops"] == {"GELU": 1}
    assert any("GELU" in w["message"] for w in report.warnings)


def test_a_wheel_figure_above_the_plan_of_its_build_corrects_the_target_plan():
    model = read_model(_model(KWS))
    target = load_target("cortex-m4-256k")
    host_plan = plan_arena(model).total_bytes
    exact = target_arena(model, target, host_measured=host_plan)
    assert exact.source == "planned" and exact.bytes == plan_arena(model, "cortex-m4").total_bytes
    missed = target_arena(model, target, host_measured=host_plan + 4096)
    assert missed.source == "planned-corrected" and missed.bytes == exact.bytes + 4096 and missed.warnings


def test_offline_planned_models_are_not_given_a_greedy_plan():
    pytest.importorskip("tflite_micro")
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime

    m = runtime.convert_bytearray_to_object(bytearray(_model("tflm__hello_world_int8.tflite").read_bytes()))
    fb = runtime.schema_fb
    buf = fb.BufferT()
    buf.data = bytes(16)
    m.buffers.append(buf)
    meta = fb.MetadataT()
    meta.name, meta.buffer = "OfflineMemoryAllocation", len(m.buffers) - 1
    m.metadata = [*(m.metadata or []), meta]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    plan = plan_arena(bytes(b.Output()), "cortex-m4")
    assert not plan.complete and "OfflineMemoryAllocation" in plan.unknown_ops
