"""Runtime families: every profile (shipped or a user's) dispatches to one family, and every failure code has a fix."""

from __future__ import annotations

import string
import subprocess
import sys

import pytest

from edgert.errors import TargetError
from edgert.fit import check_fit
from edgert.runtime.micro import MicroError
from edgert.targets import (
    FIXES,
    KINDS,
    OP_SETS,
    Code,
    CpuDelegate,
    EdgeTPU,
    TFLiteMicro,
    fixes_for,
    list_targets,
    load_target,
    runtime_for,
    runtimes,
)
from edgert.targets.problems import Fix
from tests.conftest import CONFORMANCE, require_conformance

pytestmark = pytest.mark.runtime

# The fields every profile states, for a user profile that inherits nothing.
_BASE = """
description = "a user's own board"
ram_bytes = 262144
flash_bytes = 1048576
quantization = "int8"
input_dtype = "int8"
output_dtype = "int8"
threads = 1
delegate = "none"
clock_hz = 100_000_000
cycles_per_mac = { conv = 1.0, depthwise = 1.0, fully_connected = 1.0, pool = 1.0, elementwise = 1.0, other = 1.0 }
active_power_mw = 10.0
idle_power_mw = 0.1
"""


@pytest.mark.parametrize("kind, op_set, family", [
    ("mcu", "tflm", TFLiteMicro),
    ("edgetpu", "edgetpu", EdgeTPU),
    ("cpu", "xnnpack", CpuDelegate),
    ("cpu", "tflite", CpuDelegate),
    ("gpu", "gpu", CpuDelegate),
])
def test_a_user_profile_of_each_family_dispatches_to_it(tmp_path, kind, op_set, family):
    path = tmp_path / "board.toml"
    path.write_text(f'name = "board"\nkind = "{kind}"\nop_set = "{op_set}"\n' + _BASE)
    target = load_target(path)
    assert isinstance(target.runtime, family)
    assert target.arena is family.arena  # derived from the family when the file leaves it out
    assert "runtime" not in target.to_dict()  # `edgert targets --json` keeps its keys


@pytest.mark.parametrize("kind, op_set, ram_words, extra", [
    ("mcu", "tflm", "tensor arena", None),
    ("edgetpu", "edgetpu", "Edge TPU's", "edgetpu"),
    ("cpu", "xnnpack", "activations", "delegate"),
    ("cpu", "tflite", "activations", None),
])
def test_check_fit_asks_the_users_profile_family(tmp_path, kind, op_set, ram_words, extra):
    model = require_conformance(CONFORMANCE / "models" / "tflm__hello_world_int8.tflite")
    path = tmp_path / "board.toml"
    path.write_text(f'name = "board"\nkind = "{kind}"\nop_set = "{op_set}"\n' + _BASE)
    report = check_fit(model, path, measure_micro=False).to_dict()
    ram = next(c for c in report["checks"] if c["name"] == "ram")
    assert ram_words in ram["detail"]
    assert {k for k in ("edgetpu", "delegate") if k in report} == ({extra} if extra else set())


def test_shipped_profiles_dispatch_by_op_set():
    families = {t.name: type(t.runtime) for t in list_targets()}
    assert families["cortex-m4-256k"] is families["esp32-s3"] is families["cortex-m7-stm32h7"] is TFLiteMicro
    assert families["coral-usb"] is EdgeTPU
    assert families["raspberry-pi-4"] is families["android-gpu"] is CpuDelegate


def test_every_op_set_and_kind_has_exactly_one_family():
    claimed = [s for r in runtimes() for s in r.op_sets]
    assert sorted(claimed) == sorted(OP_SETS)
    assert {k for r in runtimes() for k in r.kinds} == set(KINDS)
    assert all(runtime_for(s).op_sets.count(s) == 1 for s in OP_SETS)


@pytest.mark.parametrize("text, key", [
    ('kind = "mcu"\nop_set = "xnnpack"', "'kind'"),       # an MCU cannot run the XNNPACK delegate
    ('kind = "cpu"\nop_set = "tflm"', "'kind'"),
    ('kind = "cpu"\nop_set = "xnnpack"\narena = true', "'arena'"),  # only TFLite Micro has an arena
    ('kind = "mcu"\nop_set = "tflm"\narena = false', "'arena'"),
])
def test_a_profile_whose_fields_disagree_on_the_runtime_is_one_clear_line(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n' + text + "\n" + _BASE)
    with pytest.raises(TargetError) as info:
        load_target(path)
    message = str(info.value)
    assert str(path) in message and key in message and "\n" not in message


def test_every_failure_code_has_a_fix_that_formats():
    params = {"target": "t", "op_set": "s", "input_dtype": "int8"}
    for runtime in runtimes():
        params.update(runtime.fix_params())
    fields = {f for fix in FIXES.values() for _, f, _, _ in string.Formatter().parse(fix.text) if f}
    assert fields <= set(params)
    for code in Code:
        assert isinstance(FIXES[code], Fix) and fixes_for([code], **params)


def test_fixes_are_chosen_by_code_in_order_and_generic_only_alone():
    params = {"target": "coral-usb", "op_set": "edgetpu", "input_dtype": "uint8", "resize": 8}
    generic = fixes_for([Code.DILATION], **params)
    assert generic == "use ops from the target's supported list (edgetpu)"
    both = fixes_for([Code.BATCH_DIMENSION, Code.DILATION, Code.CUSTOM_OP], **params)
    assert both.split("; ") == [FIXES[Code.CUSTOM_OP].text, FIXES[Code.BATCH_DIMENSION].text]
    # Two codes with the same fix give it once.
    assert fixes_for([Code.FLOAT_COMPUTE, Code.NOT_8BIT], **params).count("quantize to full int8") == 1


def test_formats_follow_the_family():
    assert load_target("cortex-m4-256k").runtime.formats == ("int8", "int16x8")
    assert load_target("coral-usb").runtime.formats == ("int8",)
    assert set(load_target("raspberry-pi-4").runtime.formats) == {"float16", "dynamic", "int8", "int16x8"}


def test_tflite_micro_refusals_carry_the_op_names_as_data():
    # The text TFLite Micro prints is read once, where it is captured; callers get op names.
    from edgert.runtime.micro import _refused_ops

    assert _refused_ops("Didn't find op for builtin opcode 'GELU' version '1'") == ("GELU",)
    assert _refused_ops("Failed to get registration from op code CUSTOM") == ()
    assert MicroError("x", refused_ops=["GELU"]).refused_ops == ("GELU",)


def test_targets_and_fit_import_without_tensorflow():
    # A Raspberry Pi with only the runtime checks fits too: nothing here may pull in TensorFlow.
    code = ("import sys, edgert.targets, edgert.fit\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'tflite_micro'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_firmware_builds_ask_the_family_not_the_kind(tmp_path):
    from firmware_tools.firmware import FirmwareBuildError, firmware_layout

    path = tmp_path / "board.toml"
    path.write_text('name = "board"\nkind = "mcu"\nop_set = "tflm"\n' + _BASE)
    assert firmware_layout(load_target(path)) == firmware_layout("cortex-m4-256k")  # same RAM and flash
    with pytest.raises(FirmwareBuildError, match="not a microcontroller"):
        firmware_layout("coral-usb")
