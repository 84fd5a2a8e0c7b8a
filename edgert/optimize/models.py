"""Small reference architectures: the digits teacher the demo and the benchmarks train."""

from __future__ import annotations

from typing import Any

from edgert.optimize._keras import keras

__all__ = ["digits_teacher", "DIGITS_SIZE"]

#: Digits are upscaled from 8×8 to this size: enough spatial extent for two conv+pool stages.
DIGITS_SIZE = 16


def digits_teacher(size: int = DIGITS_SIZE, classes: int = 10, width: float = 1.0, seed: int = 0) -> Any:
    """A small CNN for ``size``×``size`` grayscale digits, inputs in [0, 1], softmax output.

    32 and 64 filters in two conv stages and a 64-unit hidden layer: small enough
    to train in seconds on 2 cores, wide enough that removing half of the filters
    still leaves a working network (so structured pruning has something to cut).
    It is a plain chain of layers so structured pruning and width scaling apply.

    Args:
        size: Input height and width.
        classes: Output classes.
        width: Multiplier on every hidden layer's filters/units (1.0 = the teacher).
        seed: Initialisation seed.
    """
    k = keras()
    k.utils.set_random_seed(seed)

    def w(n: int) -> int:
        return max(1, int(round(n * width)))

    inp = k.Input(shape=(size, size, 1), name="image")
    x = k.layers.Conv2D(w(32), 3, padding="same", activation="relu", name="conv1")(inp)
    x = k.layers.MaxPooling2D(2, name="pool1")(x)
    x = k.layers.Conv2D(w(64), 3, padding="same", activation="relu", name="conv2")(x)
    x = k.layers.MaxPooling2D(2, name="pool2")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(w(64), activation="relu", name="hidden")(x)
    x = k.layers.Dropout(0.2, name="dropout")(x)
    out = k.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return k.Model(inp, out, name="digits_cnn" if width == 1.0 else f"digits_cnn_w{width:g}")
