"""Foreign models built in the test with TensorFlow: LSTM on TFLM, float CNN and a mid-graph
unsupported op on the Edge TPU. Reported as not fitting with the op names, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgert.fit import check_fit, fit_markdown  # noqa: E402

pytestmark = pytest.mark.slow


def _convert(model, int8: bool) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = (1, *model.input_shape[1:])
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def lstm_tflite() -> bytes:
    inp = keras.Input((8, 4), batch_size=1)
    out = keras.layers.Dense(3)(keras.layers.LSTM(6)(inp))
    # float: TF 2.21's int8 converter crashes on LSTMs, which is what users of an MCU would try first
    return _convert(keras.Model(inp, out), int8=False)


@pytest.fixture(scope="module")
def small_cnn():
    inp = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Lambda(lambda t: tf.math.exp(t * 0.1))(x)  # EXP: not in the Edge TPU op set
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


def test_lstm_on_tflm_names_its_ops(lstm_tflite):
    report = check_fit(lstm_tflite, "cortex-m4-256k")
    assert not report.fits
    assert report.unsupported_ops, report.to_dict()
    assert {"WHILE", "FULLY_CONNECTED"} <= set(report.unsupported_ops)
    assert "WHILE" in report.check("ops").detail
    assert not report.check("full_int8").ok


def test_float_cnn_on_coral_names_its_ops(small_cnn):
    report = check_fit(_convert(small_cnn, int8=False), "coral-usb")
    assert not report.fits
    assert report.unsupported_ops["CONV_2D"] == 2
    assert report.edgetpu["subgraphs"] == 0 and report.edgetpu["cpu_ops"]["CONV_2D"] == 2


def test_edgetpu_partition_stops_at_first_unsupported_op(small_cnn):
    report = check_fit(_convert(small_cnn, int8=True), "coral-usb")
    tpu = report.edgetpu
    assert tpu["first_unsupported"]["op"] == "EXP"
    assert tpu["subgraphs"] == 1 and tpu["mapped_ops"] >= 1  # the first conv is on the Edge TPU
    # everything from EXP on runs on the CPU, even the supported conv and dense after it
    assert tpu["cpu_ops"]["EXP"] == 1 and tpu["cpu_ops"]["CONV_2D"] == 1 and tpu["cpu_ops"]["FULLY_CONNECTED"] == 1
    assert report.unsupported_ops == {"EXP": 1} and not report.fits


def test_lstm_runs_on_android_gpu_with_cpu_fallback(lstm_tflite):
    from edgert.model import read_model

    report = check_fit(lstm_tflite, "android-gpu")
    assert report.fits and report.unsupported_ops == {}
    # the WHILE loop and its int/bool bookkeeping are not GPU-delegate ops: they fall back to the CPU
    assert report.delegate["name"] == "gpu" and "WHILE" in report.delegate["cpu_ops"]
    total = sum(read_model(lstm_tflite).ops.values())
    assert report.delegate["delegated_ops"] + sum(report.delegate["cpu_ops"].values()) == total
    assert "gpu delegate" in fit_markdown(report)
