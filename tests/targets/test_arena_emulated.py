"""The arena planner against the truth on the target: our firmware (TFLite Micro + CMSIS-NN) on QEMU's
Cortex-M4, M7 and M55 boards, booted with each int8 conformance model programmed into its flash,
reports ``arena_used_bytes()``; the plan for that core must be within 2 % of it, and
``fit --measure-on emulated`` must report it with the invoke's instruction count. Skipped without
the Arm toolchain / QEMU / TFLM tree (failed under CI=true)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgert.model import read_model
from edgert.model.memory import plan_arena
from tests.conftest import CONFORMANCE, ROOT, require_conformance
from tests.targets.conftest import int8_conformance_models

#: Board profiles (firmware_tools.firmware.PROFILE_BOARDS) and the arena config of their firmware.
BOARDS = {"cortex-m4-256k": "cortex-m4", "cortex-m7-stm32h7": "cortex-m7", "cortex-m55": "cortex-m55"}


@pytest.mark.parametrize("target", list(BOARDS))
@pytest.mark.parametrize("path", int8_conformance_models())
def test_plan_within_2_percent_of_the_arena_on_the_board(firmware, target, path):
    from firmware_tools.flash_image import slot_bytes
    from firmware_tools.measure import measure_on_emulated

    model = read_model(require_conformance(path))
    fw = firmware(target)
    plan = plan_arena(model, BOARDS[target])
    if model.size_bytes > slot_bytes(fw.flash_bytes) or plan.total_bytes > fw.arena_bytes:
        pytest.skip(f"{path.name} does not fit {target}'s board")
    got = measure_on_emulated(model, target)
    assert got.arena_bytes and got.instructions
    assert plan.complete
    assert abs(plan.total_bytes - got.arena_bytes) <= 0.02 * got.arena_bytes, (plan.total_bytes, got.arena_bytes)


def test_fit_measure_on_emulated_reports_the_board_figures(firmware):
    firmware("cortex-m4-256k")  # skips here when the toolchain is missing
    path = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite")
    out = subprocess.run([sys.executable, "-m", "edgert", "fit", str(path), "--target", "cortex-m4-256k",
                          "--measure-on", "emulated", "--no-micro", "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout)
    assert d["arena_source"] == "measured-target" and d["arena_bytes"] > 0
    assert d["arena_plan_bytes"] == plan_arena(path, "cortex-m4").total_bytes
    assert abs(d["arena_plan_bytes"] - d["arena_bytes"]) <= 0.02 * d["arena_bytes"]
    assert d["instructions"] > 0 and "cortex-m4" in d["measured_on"]
    assert d["latency_ms"] > 0  # the estimate stays, beside the measured instructions


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4-256k", "cortex-m55"])
def test_built_depthwise_model_on_the_board(firmware, target):
    """Depthwise shapes the conformance models lack: a 5x5 depthwise (CMSIS-NN's buffered path; on
    Helium a 4 x 124-channel block buffer), a valid 3x3 one and a 1x3 conv, built with TensorFlow."""
    pytest.importorskip("tensorflow")
    from firmware_tools.measure import measure_on_emulated
    from tests.helpers import arena_test_model

    firmware(target)  # skips here when the toolchain is missing
    data = arena_test_model("depthwise_int8")
    got = measure_on_emulated(data, target)
    plan = plan_arena(data, BOARDS[target])
    assert plan.complete and got.arena_bytes
    assert abs(plan.total_bytes - got.arena_bytes) <= 0.02 * got.arena_bytes, (plan.total_bytes, got.arena_bytes)
