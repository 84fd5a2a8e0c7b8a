"""The digits CNN converted for every target profile: runs, stays accurate, shrinks, carries metadata."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgert.convert import evaluate
from edgert.model import read_model
from edgert.runtime import load_model, quantize
from edgert.targets import list_targets

TARGETS = [t.name for t in list_targets()]
MCU_TARGETS = [t.name for t in list_targets() if t.kind == "mcu"]
#: The contract's `fit` keys every report.json carries.
FIT_KEYS = ("target", "fits", "checks", "arena_bytes", "flash_bytes", "latency_ms", "energy_uj", "unsupported_ops")


def _litert_top1(data: bytes, x: np.ndarray, y: np.ndarray) -> float:
    m = load_model(data, backend="ai_edge_litert")
    pred = [int(np.argmax(m.predict(x[i : i + 1])[0])) for i in range(len(x))]
    return float(np.mean(np.asarray(pred) == y))


@pytest.mark.parametrize("target", TARGETS)
def test_every_profile_converts_and_runs_in_litert(converted, digits_workspace, target):
    ws = digits_workspace
    result = converted[target]
    model = read_model(result.path)
    assert model.data == result.tflite
    float_top1 = float(np.mean(np.argmax(ws.model.predict(ws.x_test, verbose=0), 1) == ws.y_test))
    top1 = _litert_top1(result.tflite, ws.x_test, ws.y_test)
    assert top1 > 0.8, f"{target}: converted model is not a digits classifier (top-1 {top1:.3f})"
    assert evaluate(result.tflite, ws.x_test, ws.y_test) == {"samples": len(ws.y_test), "top1": pytest.approx(top1)}
    # Our own accuracy report agrees with this independent run of the same data.
    assert result.accuracy["converted_top1"] == pytest.approx(top1, abs=1e-9)
    assert result.accuracy["float_top1"] == pytest.approx(float_top1, abs=1e-9)
    mode = result.report["converter"]["mode"]
    if mode == "int8":
        assert abs(float_top1 - top1) <= 0.01, f"{target}: int8 top-1 {top1:.4f} vs float {float_top1:.4f}"
        assert all(t.quantized for t in model.inputs + model.outputs)
    assert result.fits, f"{target}: {[c for c in result.report['checks'] if not c['ok']]}"


def test_target_decides_converter_settings(converted):
    coral = read_model(converted["coral-usb"].tflite)
    assert [t.dtype for t in coral.inputs + coral.outputs] == ["uint8", "uint8"]
    assert converted["coral-usb"].report["converter"]["supported_ops"] == ["TFLITE_BUILTINS_INT8"]
    mcu = read_model(converted["cortex-m4-256k"].tflite)
    assert [t.dtype for t in mcu.inputs + mcu.outputs] == ["int8", "int8"]
    gpu = read_model(converted["android-gpu"].tflite)
    assert gpu.inputs[0].dtype == "float32"
    weights = [t for t in gpu.tensors() if t.is_constant and t.num_elements > 100]
    assert weights and all(t.dtype == "float16" for t in weights)

    def dense_scales(data):
        m = read_model(data)
        tensors = m.tensors()
        return {len(tensors[op.inputs[1]].scales) for op in m.operators() if op.name == "FULLY_CONNECTED"}

    # Per-tensor dense weights where edgetpu_compiler / older TFLM need them, per-channel on CPUs.
    assert dense_scales(converted["coral-usb"].tflite) == {1}
    assert dense_scales(converted["cortex-m4-256k"].tflite) == {1}
    assert dense_scales(converted["raspberry-pi-4"].tflite) == {96, 10}
    for name, result in converted.items():
        for t in read_model(result.tflite).inputs:
            assert t.shape[0] == 1 and not t.is_dynamic, name


@pytest.mark.parametrize("target", MCU_TARGETS)
def test_mcu_outputs_match_tflite_micro(converted, digits_workspace, target):
    from edgert.runtime.micro import run_micro

    data = converted[target].tflite
    litert = load_model(data, backend="ai_edge_litert")
    spec = litert.inputs[0]
    for i in (0, 57, 211):
        x = quantize(digits_workspace.x_test[i : i + 1], spec).reshape(spec.shape)
        expected = litert.predict(x, dequantize_output=False)[0]
        got = run_micro(data, [x])[0]
        assert got.dtype == expected.dtype == np.int8
        # Reference kernels vs XNNPACK/optimized kernels may round one step apart.
        assert np.max(np.abs(got.astype(int) - expected.astype(int))) <= 1
        assert int(np.argmax(got)) == int(np.argmax(expected))


def test_int8_is_at_most_three_tenths_of_float32(converted, float32_size):
    for name, result in converted.items():
        if result.report["converter"]["mode"] == "int8":
            assert len(result.tflite) <= 0.3 * float32_size, f"{name}: {len(result.tflite)} vs float32 {float32_size}"
            assert result.report["model"]["float32_size_bytes"] == pytest.approx(float32_size, rel=0.02)


def test_metadata_round_trips(converted, digits_workspace):
    ws = digits_workspace
    source_sha = hashlib.sha256(ws.keras_path.read_bytes()).hexdigest()
    for name, result in converted.items():
        meta = read_model(result.path).metadata
        assert meta["schema"] == "edgert.metadata/1"
        assert meta["target"] == name
        assert meta["task"] == "classification"
        assert meta["labels"] == ws.labels_path.read_text().split()
        assert meta["source"] == {"sha256": source_sha, "format": "keras"}
        assert meta["preprocessing"]["input_size"] == [16, 16]
        assert meta["preprocessing"]["color"] == "grayscale"
        assert meta["converter"]["mode"] == result.report["converter"]["mode"]
        assert meta["converter"]["tensorflow"]
        if meta["converter"]["mode"] in ("int8", "int16x8"):
            assert meta["calibration"]["samples"] == 120
            assert meta["calibration"]["source"] == str(ws.cal_dir)
        else:  # float16 weights only: nothing was calibrated, and the metadata does not pretend so
            assert "calibration" not in meta
        assert meta["postprocessing"]["output"] == "probabilities"
        # The runtime reads it back and uses it: a raw 8-bit image goes straight in.
        m = load_model(result.path, backend="ai_edge_litert")
        assert m.metadata == meta


def test_runtime_preprocessing_from_metadata_matches(converted, digits_workspace):
    from PIL import Image

    from edgert.runtime.preprocess import prepare_image

    png = sorted((digits_workspace.eval_dir / "3").glob("*.png"))[0]
    result = converted["raspberry-pi-4"]
    m = load_model(result.tflite)
    with Image.open(png) as img:
        tensor = prepare_image(img, m.inputs[0], m.metadata)
    m.set_input(0, tensor)
    m.invoke()
    assert int(np.argmax(m.get_output(0))) == 3


def test_report_files(converted):
    for name, result in converted.items():
        out = result.path.parent
        report = json.loads((out / "report.json").read_text())
        for key in FIT_KEYS:
            assert key in report, f"{name}: report.json lacks {key}"
        assert report["target"] == name
        assert report["accuracy"]["agreement"] >= 0.98
        assert report["model"]["sha256"] == hashlib.sha256(result.tflite).hexdigest()
        md = (out / "report.md").read_text()
        assert f"Conversion report: {name}" in md and "float top-1" in md
        layers = report["accuracy"]["layers"]
        assert layers["layers"], f"{name}: empty per-layer table"
        if report["converter"]["mode"] == "int8":
            assert layers["method"] == "quantization_debugger"
            names = {row["layer"] for row in layers["layers"]}
            assert {"conv_a", "conv_b", "hidden"} <= names
            snrs = [row["snr_db"] for row in layers["layers"] if row["snr_db"] is not None]
            assert snrs == sorted(snrs) and snrs[0] > 10.0
        has_c = (out / "model_data.h").is_file() and (out / "model_data.cc").is_file()
        assert has_c == (name in MCU_TARGETS)
        if name in MCU_TARGETS:
            header = (out / "model_data.h").read_text()
            arena = report["c_source"]["arena_bytes"]
            assert arena == report["arena_bytes"]  # fit's arena on the target, not the 64-bit wheel's
            if arena is None:  # a core without an arena model: no number rather than a low one
                assert report["arena_source"] == "unknown" and "ArenaMeasuredBytes" not in header
                assert "arena_used_bytes()" in header
            else:
                assert f"ArenaMeasuredBytes = {arena};" in header
    coral = converted["coral-usb"].report
    assert "edgetpu" in coral
    tpu = coral["edgetpu_compiler"]
    assert tpu["available"] is False
    assert tpu["command"].startswith("edgetpu_compiler -s -o ")
    assert tpu["command"].endswith("model.tflite")


def test_trusted_after_conversion(converted):
    from edgert.runtime import select_backend
    from edgert.runtime.safe import lookup_verdict

    result = converted["raspberry-pi-4"]
    verdict = lookup_verdict(hashlib.sha256(result.tflite).hexdigest(), select_backend())
    assert verdict is not None


@pytest.mark.parametrize("kind", ["saved_model", "h5", "memory"])
def test_other_model_sources(digits_workspace, tmp_path, kind):
    from edgert.convert import convert

    ws = digits_workspace
    if kind == "saved_model":
        source = tmp_path / "saved"
        ws.model.export(str(source))
    elif kind == "h5":
        source = tmp_path / "digits.h5"
        ws.model.save(source)
    else:
        source = ws.model
    result = convert(source, target="raspberry-pi-4", calibration=ws.cal_npy, eval_data=ws.eval_npz, measure_micro=False)
    assert result.path is None and result.files == {}
    meta = read_model(result.tflite).metadata
    assert meta["source"]["format"] == kind
    assert len(meta["source"]["sha256"]) == 64
    assert meta["task"] == "classification" and "labels" not in meta
    assert result.accuracy["drop_points"] <= 1.0 and result.accuracy["agreement"] >= 0.98
    probs = load_model(result.tflite).predict(ws.x_test[:1])[0]
    expected = ws.model.predict(ws.x_test[:1], verbose=0)
    assert np.max(np.abs(probs - expected)) < 0.05


def test_regressor_reports_mse():
    from edgert.convert import convert
    from edgert.convert._tf import import_keras

    keras = import_keras()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 1))).astype(np.float32)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=30, verbose=0)
    result = convert(model, target="raspberry-pi-4", calibration=x[:128], eval_data=(x[128:], y[128:]), measure_micro=False)
    acc = result.accuracy
    assert acc["task"] == "regression"
    float_mse = float(np.mean((model.predict(x[128:], verbose=0) - y[128:]) ** 2))
    assert acc["float_mse"] == pytest.approx(float_mse, rel=1e-4)
    assert acc["converted_mse"] < 4 * float_mse + 0.05  # int8 costs a little, not everything
    assert read_model(result.tflite).metadata["task"] == "regression"
    assert "preprocessing" not in read_model(result.tflite).metadata
