"""Target profiles: shipped ones load, inherit, a user's own file works, bad input is one clear line."""

from __future__ import annotations

import dataclasses

import pytest

from edgert.cli import main
from edgert.errors import TargetError
from edgert.targets import Target, list_targets, load_target, target_names

pytestmark = pytest.mark.runtime

REQUIRED = {
    "raspberry-pi-4", "raspberry-pi-5", "android-arm64", "android-gpu", "coral-usb",
    "cortex-m4-256k", "cortex-m7-stm32h7", "esp32-s3",
}

BOARD = """
inherits = "cortex-m4-256k"
name = "my-board"
description = "my own M4 board with 128 KiB"
ram_bytes = 131072
cycles_per_mac = { conv = 10.0 }
"""


def test_every_required_profile_ships_and_loads():
    assert REQUIRED <= set(target_names())
    targets = {t.name: t for t in list_targets()}
    for name in REQUIRED:
        t = targets[name]
        assert isinstance(t, Target)
        assert t.ram_bytes > 0 and t.flash_bytes > 0 and t.clock_hz > 0 and t.active_power_mw > 0
        assert set(t.cycles_per_mac) >= {"conv", "depthwise", "fully_connected", "pool", "elementwise", "other"}
    assert targets["cortex-m4-256k"].ram_bytes == 256 * 1024 and targets["cortex-m4-256k"].flash_bytes == 2**20
    assert targets["cortex-m7-stm32h7"].ram_bytes == 2**20 and targets["cortex-m7-stm32h7"].flash_bytes == 2 * 2**20
    assert targets["esp32-s3"].ram_bytes == 512 * 1024 and targets["esp32-s3"].flash_bytes == 8 * 2**20
    coral = targets["coral-usb"]
    assert coral.kind == "edgetpu" and coral.static_shapes and coral.full_int8 and coral.param_cache_bytes == 8 * 2**20
    assert targets["android-gpu"].quantization == "float16" and targets["android-gpu"].delegate == "gpu"
    assert targets["android-arm64"].delegate == "xnnpack"
    assert "181.9" in targets["cortex-m4-256k"].calibration  # says which published result it is calibrated on


def test_profiles_are_frozen():
    t = load_target("coral-usb")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.ram_bytes = 1  # type: ignore[misc]


def test_inherits_merges_and_overrides():
    m4, m7 = load_target("cortex-m4-256k"), load_target("cortex-m7-stm32h7")
    assert m7.inherits == "cortex-m4-256k"
    assert (m7.op_set, m7.quantization, m7.arena) == (m4.op_set, m4.quantization, m4.arena)  # inherited
    assert m7.clock_hz == 480_000_000 != m4.clock_hz  # overridden


def test_user_toml_with_inherits(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(BOARD)
    t = load_target(str(path))
    assert t.name == "my-board" and t.ram_bytes == 131072
    assert t.cycles_per_mac["conv"] == 10.0
    assert t.cycles_per_mac["depthwise"] == load_target("cortex-m4-256k").cycles_per_mac["depthwise"]  # merged key by key
    assert t.source == str(path)


@pytest.mark.parametrize(
    "text, words",
    [
        ("name = 'x'\nram_bytes = [", ["malformed TOML"]),
        ('inherits = "cortex-m4-256k"\nram_bytes = "lots"', ["'ram_bytes'", "expected int"]),
        ('inherits = "cortex-m4-256k"\nkind = "toaster"', ["'kind'", "toaster"]),
        ('inherits = "no-such-board"', ["'inherits'", "unknown target"]),
        ('inherits = "cortex-m4-256k"\nbogus = 1', ["'bogus'", "unknown field"]),
        ('name = "x"\ndescription = "d"', ["'kind'", "missing"]),
        ('inherits = "cortex-m4-256k"\ncycles_per_mac = { warp = 1.0 }', ["cycles_per_mac.warp"]),
    ],
)
def test_bad_profile_names_file_key_and_problem(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError) as info:
        load_target(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for w in words:
        assert w in message


def test_unknown_name():
    with pytest.raises(TargetError, match="unknown target 'mars-rover'"):
        load_target("mars-rover")


@pytest.mark.parametrize("target", ["mars-rover", "BAD_TOML"])
def test_cli_bad_target_exits_2_with_one_line(tmp_path, capsys, target):
    bad = tmp_path / "bad.toml"
    bad.write_text("ram_bytes = = 3")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x00" * 8)
    code = main(["fit", str(model), "--target", str(bad) if target == "BAD_TOML" else target, "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("unknown target" in lines[0] or "malformed TOML" in lines[0])


def test_cli_targets_json(capsys):
    import json

    assert main(["targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {t["name"] for t in data["targets"]}
    assert REQUIRED <= names
    first = data["targets"][0]
    for key in ("ram_bytes", "flash_bytes", "quantization", "input_dtype", "output_dtype", "op_set", "threads",
                "delegate", "clock_hz", "cycles_per_mac", "active_power_mw", "idle_power_mw"):
        assert key in first
