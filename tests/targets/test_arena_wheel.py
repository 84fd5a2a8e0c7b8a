"""The planner against the real TFLite Micro wheel (64-bit host, reference kernels) on models the
test builds with TensorFlow: an LSTM (unrolled: FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD,
UNPACK), depthwise convolutions of several shapes, and the same network with int16 activations
(int16x8). The conformance models are compared in test_micro.py."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("tflite_micro")

from edgert.model import read_model  # noqa: E402
from edgert.model.memory import ARENA_CONFIGS, plan_arena  # noqa: E402
from edgert.runtime.micro import micro_arena_bytes  # noqa: E402

pytestmark = pytest.mark.slow


def _convert(model, mode: str) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    shape = (1, *model.input_shape[1:])
    rng = np.random.default_rng(0)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(8))
    if mode == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int16
    return conv.convert()


def _lstm():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 4), batch_size=1)
    # unroll=True: TF 2.21's converter turns a Keras 3 LSTM into a WHILE loop otherwise (no TFLM kernel)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.LSTM(6, unroll=True)(inp)))


def _depthwise():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3), batch_size=1)
    x = keras.layers.DepthwiseConv2D(5, padding="same")(inp)  # 5x5: the CMSIS-NN "opt" path with a buffer
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="valid")(x)  # 3x3: no buffer on DSP cores
    x = keras.layers.Conv2D(6, (1, 3), padding="same")(x)  # 1xN
    x = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    return keras.Model(inp, keras.layers.Softmax()(x))


MODELS = {"lstm_int8": (_lstm, "int8"), "depthwise_int8": (_depthwise, "int8"),
          "depthwise_int16x8": (_depthwise, "int16")}


@pytest.fixture(scope="module")
def built():
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            build, mode = MODELS[name]
            cache[name] = _convert(build(), mode)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(MODELS))
def test_plan_within_2_percent_of_the_wheel(built, name):
    data = built(name)
    real = micro_arena_bytes(data)
    plan = plan_arena(data)
    assert plan.complete, plan.unknown_ops
    assert abs(plan.total_bytes - real) <= 0.02 * real, (plan.total_bytes, real, plan.breakdown)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_core_has_a_complete_plan(built, name):
    model = read_model(built(name))
    for config in ("cortex-m4", "cortex-m7", "cortex-m55"):
        plan = plan_arena(model, config)
        assert plan.complete, (config, plan.unknown_ops)
        assert plan.total_bytes < plan_arena(model).total_bytes or plan.breakdown["scratch"] > 0


def test_int16_activations_take_their_own_figures(built):
    i8, i16 = read_model(built("depthwise_int8")), read_model(built("depthwise_int16x8"))
    assert {t.dtype for t in i16.inputs} == {"int16"}
    # activations twice the size, and int16 softmax keeps two 513-entry LUTs in the tail
    assert plan_arena(i16).head_bytes > plan_arena(i8).head_bytes
    assert plan_arena(i16, "cortex-m4").breakdown["kernels"] >= plan_arena(i8, "cortex-m4").breakdown["kernels"] + 2 * 1026
    assert set(ARENA_CONFIGS) >= {"cortex-m4", "cortex-m55", "tflm-host-64bit"}
