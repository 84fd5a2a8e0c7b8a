"""Helpers shared by test modules in several folders: one home, imported as ``tests.helpers``.

Fixtures live in ``conftest.py`` files; plain functions that tests call live here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["arena_test_model", "ARENA_TEST_MODELS", "firmware_toolchain_missing", "user_error_line"]


def user_error_line(capsys: Any, argv: list[str] | None = None, *, alone: bool = True) -> str:
    """The one ``edgert CMD: error:`` line a user error prints (exit 2, no traceback, nothing on stdout).

    Args:
        capsys: pytest's capsys.
        argv: Run ``edgert argv`` first and require exit 2; None reads what an earlier call printed.
        alone: stderr holds nothing else (the contract); False allows log lines around it (the loop logs).
    """
    from edgert.cli import main

    code = main(argv) if argv is not None else 2
    captured = capsys.readouterr()
    assert code == 2, (argv, captured.err)
    assert captured.out == "" and "Traceback" not in captured.err, captured
    lines = captured.err.splitlines()
    errors = [line for line in lines if line.startswith("edgert") and ": error:" in line]
    assert len(errors) == 1 and (len(lines) == 1 or not alone), captured.err
    assert not errors[0].startswith("usage:")
    return errors[0]


def firmware_toolchain_missing() -> str | None:
    """Why our Cortex-M firmware cannot be built and booted here (toolchain, QEMU, TFLM tree), or None."""
    from edgert.errors import EdgertError
    from firmware_tools.emulate import find_qemu
    from firmware_tools.firmware import check_toolchain, find_tflm_tree

    try:
        check_toolchain()
        find_qemu()
        find_tflm_tree()
    except EdgertError as e:
        return str(e)
    return None


def _lstm(keras: Any) -> Any:
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 4), batch_size=1)
    # unroll=True: TF 2.21's converter turns a Keras 3 LSTM into a WHILE loop otherwise (no TFLM kernel)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.LSTM(6, unroll=True)(inp)))


def _depthwise(keras: Any) -> Any:
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3), batch_size=1)
    x = keras.layers.DepthwiseConv2D(5, padding="same")(inp)  # 5x5: the CMSIS-NN "opt" path with a buffer
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="valid")(x)  # 3x3: no buffer on DSP cores
    x = keras.layers.Conv2D(6, (1, 3), padding="same")(x)  # 1xN
    x = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    return keras.Model(inp, keras.layers.Softmax()(x))


#: Models the arena tests build with TensorFlow: name -> (builder, activations).
ARENA_TEST_MODELS = {"lstm_int8": (_lstm, "int8"), "depthwise_int8": (_depthwise, "int8"),
                     "depthwise_int16x8": (_depthwise, "int16")}


def arena_test_model(name: str) -> bytes:
    """One of :data:`ARENA_TEST_MODELS`, converted for real (int8 or int16x8, calibrated on random data)."""
    import keras
    import numpy as np
    import tensorflow as tf

    build, mode = ARENA_TEST_MODELS[name]
    model = build(keras)
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
