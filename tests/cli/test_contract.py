"""The command contract every subcommand shares (GUIDE.md): a user error is exit 2 and one line on stderr.

Runs the real entry point in-process; nothing here needs a model, a port or TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgert.cli import build_parser, main
from edgert.jsonutil import json_default
from tests.helpers import user_error_line

pytestmark = pytest.mark.runtime

MISSING = "/nonexistent/edgert-missing.tflite"


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_unknown_option_is_one_line(command, capsys):
    line = user_error_line(capsys, [command, "--no-such-option"])
    assert "error:" in line and "--help" in line


@pytest.mark.parametrize(
    "argv, says",
    [
        ([], "no command given"),
        (["device"], "no action given"),
        (["no-such-command"], "invalid choice"),
        (["bench", MISSING, "--runs", "0"], "--runs: must be at least 1, got 0"),
        (["predict", MISSING, "x.npy", "--threads", "two"], "--threads: expected a whole number, got 'two'"),
        (["run", MISSING, "--source", "camera:0", "--max-frames", "0"], "--max-frames: must be at least 1"),
        (["flash", MISSING, "--port", "loop://", "--baud", "0"], "--baud: must be at least 1"),
        (["device", "simulate", "--baud", "-1"], "--baud: must be 0 or more"),
        (["export-c", MISSING, "-o", "out", "--arena", "-5"], "--arena: must be at least 1"),
        (["run", MISSING, "--source", "video:x.mp4", "--prepare-threads", "-1"], "--prepare-threads: must be 0 or more"),
        (["bench", MISSING, "--kernels", "fast"], "invalid choice: 'fast' (choose from 'auto', 'builtin', 'reference')"),
        (["run", MISSING, "--source", "camera:0", "--stall-timeout", "0"], "--stall-timeout: must be above 0, got 0"),
        (["run", MISSING, "--source", "camera:0", "--threshold", "nan"], "--threshold: expected a finite number, got 'nan'"),
        (["fit", MISSING, "-t", "cortex-m4-256k", "--battery-mah", "-1"], "--battery-mah: must be above 0"),
        (["optimize", MISSING, "-t", "x", "-d", "y", "-o", "z", "--max-accuracy-drop", "-1"],
         "--max-accuracy-drop: must be 0 or more"),
        (["optimize", MISSING, "-t", "x", "-d", "y", "-o", "z", "--max-accuracy-drop", "1", "--test-fraction", "1"],
         "--test-fraction: must be between 0 and 1 (exclusive), got 1"),
        (["optimize", MISSING, "-t", "x", "-d", "y", "-o", "z", "--max-accuracy-drop", "1", "--alpha", "1.5"],
         "--alpha: must be from 0 to 1"),
        (["optimize", MISSING, "-t", "x", "-d", "y", "-o", "z", "--max-accuracy-drop", "1", "--formats", "int8,int4"],
         "--formats: unknown int4; choose from float16,dynamic,int8,int16x8"),
        (["demo", "--frames", "0"], "--frames: must be at least 1"),
    ],
)
def test_usage_errors_are_one_line(argv, says, capsys):
    assert says in user_error_line(capsys, argv)


def test_ctrl_c_while_the_command_line_is_read_is_one_line(monkeypatch, capsys):
    import edgert.cli

    def interrupted():  # what SIGINT does during the subcommand imports
        raise KeyboardInterrupt

    monkeypatch.setattr(edgert.cli, "build_parser", interrupted)
    assert main(["run", MISSING, "--source", "camera:0"]) == 130
    assert capsys.readouterr().err == "edgert: interrupted\n"


@pytest.mark.parametrize("argv", [["inspect", MISSING, "--json"], ["fit", MISSING, "--target", "cortex-m4-256k", "--json"],
                                  ["export-c", MISSING, "-o", "out", "--json"]])
def test_missing_model_is_one_line(argv, capsys):
    assert MISSING in user_error_line(capsys, argv)


def test_json_default_covers_result_types():
    class Result:
        def to_dict(self):
            return {"ok": True}

    value = {"n": np.int8(-3), "f": np.float32(0.5), "a": np.arange(3, dtype=np.uint8), "r": Result(), "p": Path("a/b")}
    expected = {"n": -3, "f": 0.5, "a": [0, 1, 2], "r": {"ok": True}, "p": "a/b"}
    assert json.loads(json.dumps(value, default=json_default)) == expected


@pytest.mark.parametrize("command", ["predict", "bench", "run"])
def test_kernels_option_offers_exactly_the_runtime_kernel_sets(command):
    # The CLI spells the choices out (importing edgert.runtime at start-up would load numpy).
    from edgert.runtime.backend import KERNELS

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    kernels = next(a for a in sub._actions if a.dest == "kernels")
    assert list(kernels.choices) == list(KERNELS) and kernels.default == "auto"
