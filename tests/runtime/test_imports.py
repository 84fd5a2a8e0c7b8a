"""edgert.runtime and edgert.loop import on a device without TensorFlow (checked in a clean interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.runtime

_HEAVY = ("tensorflow", "keras", "cv2", "tflite_micro", "sklearn")


def _modules_after(code: str) -> list[str]:
    script = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_pulls_in_no_tensorflow():
    loaded = _modules_after("import edgert, edgert.runtime, edgert.loop")
    assert "edgert" in loaded
    assert not [m for m in loaded if m in _HEAVY]
    # Importing is cheap: no backend is loaded until a model is.
    assert "ai_edge_litert" not in loaded and "tflite_runtime" not in loaded


def test_running_a_model_pulls_in_no_tensorflow(conformance_dir):
    model = conformance_dir / "models" / "tflm__hello_world_int8.tflite"
    loaded = _modules_after(
        "import numpy as np, edgert\n"
        f"m = edgert.load_model({str(model)!r}, trusted=True)\n"
        "m.predict(np.zeros((1, 1), np.float32))"
    )
    assert not [m for m in loaded if m in _HEAVY]
    assert "ai_edge_litert" in loaded or "tflite_runtime" in loaded
