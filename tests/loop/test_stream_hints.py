"""A stream that gave no prediction says why, in one warning line with the fix: stdin through the real command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.loop.conftest import AD01_INT8, VWW_INT8, csv_line

pytestmark = pytest.mark.runtime


def _run(model, source: str, data: bytes) -> tuple[dict, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "edgert", "run", str(model), "--source", source, "--json"],
                          input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout), proc.stderr.decode().splitlines()


def test_stdin_too_short_for_an_image_model_says_how_many_values_a_window_needs(vww_model):
    summary, log = _run(VWW_INT8, "stdin", b"1 2 3\n" * 40)
    assert summary["frames"] == 0 and summary["malformed"] == 0
    assert [line for line in log if "ended after" in line] == [
        "WARNING: stdin: ended after 120 values, a window needs 27648; send at least one whole model input"
    ]


def test_stdin_where_every_line_is_malformed_says_why(ad01_model):
    lines = b"".join(csv_line(np.full(120, 0.5)) for _ in range(7))
    summary, log = _run(AD01_INT8, "stdin?columns=128", lines)
    assert summary["frames"] == 0 and summary["malformed"] == 7
    assert [line for line in log if "malformed:" in line] == [
        "WARNING: stdin (columns=128): all 7 lines were malformed: lines have 120 values, not columns=128;"
        " set columns=120 or check baud= and format="
    ]
