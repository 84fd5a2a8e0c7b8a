"""Against the real TensorFlow Lite Micro: arena accuracy, fits/doesn't fit, run_micro, op table, typed errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite_micro")

from edgert.errors import InputDataError
from edgert.fit import check_fit
from edgert.model import read_model
from edgert.model.memory import plan_arena
from edgert.runtime.micro import MicroError, micro_arena_bytes, run_micro, run_micro_many
from edgert.targets.tflm import TFLM_OPS
from tests.conftest import CONFORMANCE, require_conformance
from tests.targets.conftest import int8_conformance_models

M4_RAM = 256 * 1024


@pytest.mark.parametrize("path", int8_conformance_models())
def test_plan_within_2_percent_of_real_tflm_arena(path, real_arenas):
    path = require_conformance(path)
    real = real_arenas(path)
    planned = plan_arena(read_model(path)).total_bytes
    assert abs(planned - real) <= 0.02 * real, (planned, real)


@pytest.mark.parametrize("path", int8_conformance_models())
def test_fits_256k_matches_real_arena(path, real_arenas):
    path = require_conformance(path)
    report = check_fit(path, "cortex-m4-256k")
    real = real_arenas(path)
    assert report.micro_arena_bytes == real  # the 64-bit wheel ran: it checks the plan of its own build ...
    on_target = plan_arena(read_model(path), "cortex-m4").total_bytes
    # ... while the RAM check and arena_bytes are the 32-bit Cortex-M4 + CMSIS-NN arena
    assert report.arena_bytes == report.arena_plan_bytes == on_target and report.arena_source == "planned"
    assert report.check("ram").value == on_target and report.check("ram").ok == (on_target <= M4_RAM)
    assert report.fits == (on_target <= M4_RAM and report.flash_bytes <= 2**20)


def test_too_small_budget_does_not_fit(tmp_path, real_arenas):
    path = require_conformance(CONFORMANCE / "models" / "visual_wake_words__vww_96_int8.tflite")
    board = tmp_path / "tiny.toml"
    board.write_text('inherits = "cortex-m4-256k"\nname = "tiny"\nram_bytes = 65536\n')
    report = check_fit(path, board)
    assert not report.fits and not report.check("ram").ok
    assert report.check("ram").value == report.arena_bytes > 65536
    assert report.micro_arena_bytes == real_arenas(path)


def test_run_micro_matches_the_tflite_interpreter():
    path = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite")
    data = path.read_bytes()
    from ai_edge_litert.interpreter import Interpreter

    x = np.array([[-100]], dtype=np.int8)
    lite = Interpreter(model_content=data)
    lite.allocate_tensors()
    lite.set_tensor(lite.get_input_details()[0]["index"], x)
    lite.invoke()
    expected = lite.get_tensor(lite.get_output_details()[0]["index"])
    (got,) = run_micro(data, [x])
    assert got.dtype == np.int8 and got.shape == expected.shape
    assert abs(int(got[0, 0]) - int(expected[0, 0])) <= 1


def test_run_micro_rejects_wrong_inputs():
    data = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite").read_bytes()
    with pytest.raises(InputDataError, match="int8"):
        run_micro(data, [np.zeros((1, 1), np.float32)])
    with pytest.raises(InputDataError, match="1 input"):
        run_micro(data, [])


def _edited(data: bytes, edit) -> bytes:
    """Rebuild a model through tflite_micro's generated object API after ``edit(model_t)``."""
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime

    m = runtime.convert_bytearray_to_object(bytearray(data))
    edit(m, runtime.schema_fb)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_uint8_model_is_a_typed_error():
    data = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite").read_bytes()

    def to_uint8(m, fb):
        sg = m.subgraphs[0]
        sg.tensors[sg.inputs[0]].type = fb.TensorType.UINT8

    with pytest.raises(MicroError, match="uint8"):
        micro_arena_bytes(_edited(data, to_uint8))


def test_custom_op_is_reported_by_name_not_raised():
    data = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite").read_bytes()

    def add_custom(m, fb):
        code = fb.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        code.customCode, code.version = "MyAccelOp", 1
        m.operatorCodes.append(code)
        op = m.subgraphs[0].operators[1]
        op.opcodeIndex, op.builtinOptions, op.builtinOptionsType = len(m.operatorCodes) - 1, None, 0

    report = check_fit(_edited(data, add_custom), "cortex-m4-256k")
    assert not report.fits and report.unsupported_ops == {"MyAccelOp": 1}
    assert "MyAccelOp" in report.check("ops").detail
    assert any("TFLite Micro refused" in n for n in report.notes)  # the real TFLM agreed


def test_tflm_op_table_matches_the_installed_kernels():
    # The Python package exposes no resolver list; its native library names every kernel it registers.
    import tflite_micro

    lib = next(Path(tflite_micro.__file__).parent.rglob("_runtime*.so"))
    symbols = set(re.findall(rb"Register_([A-Z0-9_]+)E", lib.read_bytes()))
    registered = {s.decode() for s in symbols}
    assert TFLM_OPS <= registered, sorted(TFLM_OPS - registered)
    assert "LSTM" not in TFLM_OPS  # the non-sequence LSTM op has no TFLM kernel


def test_run_micro_too_small_arena_is_a_typed_error():
    data = require_conformance(CONFORMANCE / "models" / "keyword_spotting__kws_ref_model.tflite").read_bytes()
    with pytest.raises(MicroError, match="arena"):
        run_micro(data, [np.zeros((1, 49, 10, 1), np.int8)], arena_size=2048)


def test_run_micro_many_keeps_one_interpreter():
    data = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite").read_bytes()
    xs = [np.array([[v]], np.int8) for v in (-128, -60, 0, 60, 127)]
    many = run_micro_many(data, [[x] for x in xs])
    assert len(many) == 5 and all(len(o) == 1 for o in many)
    assert [int(o[0][0, 0]) for o in many[:1]] == [int(run_micro(data, [xs[0]])[0][0, 0])]
    assert len({int(o[0][0, 0]) for o in many}) > 1  # a sine: different inputs, different outputs


def test_float_vww_is_over_256k_by_the_real_arena(real_arenas):
    path = require_conformance(CONFORMANCE / "models" / "visual_wake_words__vww_96_float.tflite")
    report = check_fit(path, "cortex-m4-256k")
    real = real_arenas(path)
    assert real > M4_RAM and report.micro_arena_bytes == real
    assert report.arena_bytes == plan_arena(read_model(path), "cortex-m4").total_bytes > M4_RAM
    assert not report.check("ram").ok and report.check("ram").value == report.arena_bytes and not report.fits
