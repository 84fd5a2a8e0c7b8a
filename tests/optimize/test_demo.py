"""`edgert demo`: the embedded default end to end (two of its four targets, to keep the shared machine free)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The real command line, as `make demo` runs it (two targets, few frames)."""
    out = tmp_path_factory.mktemp("demo") / "edgert-demo"
    proc = subprocess.run(
        [sys.executable, "-m", "edgert", "demo", "-o", str(out), "--targets", "cortex-m4-256k,raspberry-pi-4",
         "--frames", "12", "--json"],
        capture_output=True, text=True, timeout=900,
    )
    return out, proc


def test_demo_json_table_mcu_in_tflite_micro_and_live_loop(demo_run):
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # --json: exactly one object; TensorFlow chatter and live lines went to stderr
    rows = {r["target"]: r for r in doc["targets"]}
    assert set(rows) == {"cortex-m4-256k", "raspberry-pi-4"}
    mcu = rows["cortex-m4-256k"]
    assert mcu["chosen"] and mcu["format"] in ("int8", "int16x8")  # integer formats only on an MCU
    # int8 alone is ~0.27 of the float file; pruning, when it keeps the budget, goes further.
    assert mcu["accuracy_drop"] <= 1.0 and mcu["size_ratio"] <= 0.3
    assert mcu["tflm"]["samples"] == 200 and mcu["tflm"]["top1"] >= mcu["float_accuracy"] - 0.02
    for r in rows.values():
        for key in ("technique", "size_bytes", "arena_bytes", "accuracy", "float_accuracy", "host_latency_ms"):
            assert r[key] is not None, key
    loop = doc["loop"]
    assert loop["frames"] == 12 and loop["fps"] > 0 and loop["top1"] >= 0.8
    assert "held_out_digits.avi#" in proc.stderr  # the live console lines


def test_demo_artifacts_and_camera_stream(demo_run):
    out, _ = demo_run
    for target in ("cortex-m4-256k", "raspberry-pi-4"):
        assert (out / target / "candidates.json").is_file() and (out / target / "pareto.png").is_file()
        assert (out / target / "best" / "model.tflite").is_file()
    assert (out / "cortex-m4-256k" / "best" / "model_data.cc").is_file()
    cap = cv2.VideoCapture(str(out / "held_out_digits.avi"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 12 and frames[0].shape == (128, 128, 3)
    assert np.ptp(frames[0]) > 100  # a visible digit, not a blank frame


def test_demo_reuses_its_trained_teacher(demo_run):
    from edgert.demo import _teacher
    from edgert.optimize.data import digits_dataset, split_dataset

    out, _ = demo_run
    train, test = split_dataset(digits_dataset(16), 0.3, 0)
    stamp = (out / "teacher.keras").stat().st_mtime_ns
    model, info = _teacher(out, train, test, retrain=False, progress=None)
    assert info["reused"] is True and model.count_params() == info["parameters"]
    assert (out / "teacher.keras").stat().st_mtime_ns == stamp
