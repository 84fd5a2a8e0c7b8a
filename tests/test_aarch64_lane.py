"""The aarch64 lane's contract when the host cannot run it: one line, exit 0 locally, exit 1 under CI=true."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

LANE = Path(__file__).resolve().parents[1] / "tools" / "aarch64_lane.py"


@pytest.fixture
def lane(monkeypatch):
    spec = importlib.util.spec_from_file_location("aarch64_lane", LANE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module.os, "geteuid", lambda: 1000)  # not root: no chroot, no mounts
    return module


@pytest.mark.parametrize("in_ci, code, word", [(False, 0, "skipped"), (True, 1, "FAILED")])
def test_without_root_the_lane_says_why_in_one_line(lane, monkeypatch, capsys, in_ci, code, word):
    monkeypatch.setattr(lane, "IN_CI", in_ci)
    assert lane.main([]) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"aarch64 lane {word}: needs root") and "sudo make test-aarch64" in err


def test_the_pi_venvs_follow_pyproject_and_the_makefile(lane, monkeypatch):
    monkeypatch.setenv("EDGERT_PI_PACKAGES", '"tflite-runtime==2.14.*" "numpy<2" pillow')
    specs = lane.venv_specs()
    assert specs["tflite-runtime"][:3] == ["tflite-runtime==2.14.*", "numpy<2", "pillow"]
    assert "ai-edge-litert" not in " ".join(specs["tflite-runtime"])
    assert any(p.startswith("ai-edge-litert") for p in specs["ai-edge-litert"])
    assert any(p.startswith("opencv-python-headless") for p in specs["ai-edge-litert"])
