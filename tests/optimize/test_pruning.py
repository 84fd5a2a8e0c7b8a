"""Magnitude and structured pruning on Keras 3, measured through real TFLite conversions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from edgert.errors import ConversionError, InputDataError


def test_polynomial_schedule_ramps_cubically_and_holds():
    from edgert.optimize.pruning import PolynomialSparsity

    s = PolynomialSparsity(0.0, 0.8, begin_step=10, end_step=110)
    values = [s(t) for t in range(0, 200, 5)]
    assert s(0) == 0.0 and s(10) == 0.0
    assert s(110) == pytest.approx(0.8) and s(500) == pytest.approx(0.8)
    assert all(b >= a for a, b in itertools.pairwise(values))
    # Cubic: half-way through the ramp, 1 - 0.5**3 = 87.5% of the final sparsity is already reached.
    assert s(60) == pytest.approx(0.8 * 0.875)


def test_magnitude_pruning_reaches_sparsity_but_only_gzip_shrinks(teacher, digits_split, int8_of, tflite_top1):
    from edgert.optimize.pruning import gzip_size, kernel_sparsity, magnitude_prune

    train, test = digits_split
    before = [np.asarray(w).copy() for w in teacher.weights]
    result = magnitude_prune(teacher, train.x, train.y, sparsity=0.6, epochs=2)
    # The teacher is untouched; the copy carries the masks folded into its weights.
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, teacher.weights, strict=True))
    assert kernel_sparsity(teacher) < 0.05
    assert result.sparsity == pytest.approx(0.6, abs=0.01)
    assert kernel_sparsity(result.model) == pytest.approx(result.sparsity)
    dense, sparse = int8_of(teacher), int8_of(result.model)
    # Unstructured zeros are still stored weights: the file is the same size ...
    assert abs(len(sparse) - len(dense)) < 0.02 * len(dense)
    # ... but compresses much better.
    assert gzip_size(sparse) < 0.8 * gzip_size(dense)
    assert tflite_top1(sparse) >= tflite_top1(dense) - 0.03


def test_magnitude_pruning_rejects_bad_sparsity_and_tiny_data(teacher, digits_split):
    from edgert.optimize.pruning import magnitude_prune

    train, _ = digits_split
    with pytest.raises(InputDataError, match="outside"):
        magnitude_prune(teacher, train.x, train.y, sparsity=1.2)
    with pytest.raises(InputDataError, match="fewer than one batch"):
        magnitude_prune(teacher, train.x[:10], train.y[:10], sparsity=0.5, batch_size=32)
    with pytest.raises(InputDataError, match="labels"):
        magnitude_prune(teacher, train.x, None, sparsity=0.5)


def test_structured_pruning_half_the_filters_shrinks_int8_and_keeps_accuracy(teacher, digits_split, int8_of, tflite_top1):
    from edgert.model import read_model
    from edgert.optimize.pruning import structured_prune

    train, _ = digits_split
    result = structured_prune(teacher, train.x, train.y, fraction=0.5, epochs=6)
    widths = {layer.name: layer.get_config().get("filters") or layer.get_config().get("units")
              for layer in result.model.layers if hasattr(layer, "kernel")}
    assert widths == {"conv1": 16, "conv2": 32, "hidden": 32, "probabilities": 10}
    dense, pruned = int8_of(teacher), int8_of(result.model)
    assert len(pruned) <= 0.6 * len(dense)
    # Fewer MACs is where the host speed-up comes from (benchmarks/optimize_tradeoffs.py times it).
    assert read_model(pruned).macs < 0.6 * read_model(dense).macs
    assert result.parameters[1] < 0.4 * result.parameters[0]
    assert tflite_top1(pruned) >= tflite_top1(dense) - 0.015


def _surgery_model():
    """A chain through Conv2D, BatchNorm, DepthwiseConv2D, Flatten and Dense, half of whose channels are dead."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(6, 1, activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(4, activation="relu", name="d1")(x)
    out = keras.layers.Dense(3, name="out")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    bn = model.get_layer("bn")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    dead1, dead2, dead3 = [0, 2, 5, 7], [1, 3, 4], [0, 3]
    # Dead channels: zero kernel and bias, and a BN/depthwise that maps zero to zero.
    k, b = model.get_layer("c1").get_weights()
    k[..., dead1], b[dead1] = 0, 0
    model.get_layer("c1").set_weights([k, b])
    gamma, beta, mean, var = bn.get_weights()
    beta[dead1], mean[dead1] = 0, 0
    bn.set_weights([gamma, beta, mean, var])
    k, b = model.get_layer("dw").get_weights()
    b[dead1] = 0
    model.get_layer("dw").set_weights([k, b])
    k, b = model.get_layer("c2").get_weights()
    k[..., dead2], b[dead2] = 0, 0
    model.get_layer("c2").set_weights([k, b])
    k, b = model.get_layer("d1").get_weights()
    k[:, dead3], b[dead3] = 0, 0
    model.get_layer("d1").set_weights([k, b])
    return model


def test_structured_pruning_removes_exactly_the_dead_channels_through_bn_depthwise_and_flatten():
    from edgert.optimize.pruning import structured_prune

    model = _surgery_model()
    pruned = structured_prune(model, fraction=0.5, epochs=0).model
    assert pruned.get_layer("c1").filters == 4 and pruned.get_layer("c2").filters == 3
    assert pruned.get_layer("d1").units == 2 and pruned.get_layer("out").units == 3
    assert pruned.get_layer("bn").get_weights()[0].shape == (4,)
    assert pruned.get_layer("dw").get_weights()[0].shape == (3, 3, 4, 1)
    x = np.random.default_rng(2).normal(size=(16, 6, 6, 2)).astype("float32")
    # Only channels that contributed nothing were removed, so the outputs are unchanged.
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_structured_pruning_refuses_a_branching_model():
    import keras

    from edgert.optimize.pruning import structured_prune

    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same")(a)
    x = keras.layers.Add()([a, b])
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ConversionError, match="branches|inputs"):
        structured_prune(keras.Model(inp, out), fraction=0.5, epochs=0)


def test_sequential_models_are_narrowed_too():
    import keras

    from edgert.optimize.distill import width_student
    from edgert.optimize.pruning import structured_prune

    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    pruned = structured_prune(model, fraction=0.5, epochs=0)
    widths = [layer.get_config().get("filters") or layer.get_config().get("units")
              for layer in pruned.model.layers if hasattr(layer, "kernel")]
    assert widths == [4, 3, 3]
    assert pruned.parameters == (model.count_params(), pruned.model.count_params())
    # A width-×0.5 student has the pruned shapes but fresh weights.
    student = width_student(model, 0.5)
    assert student.count_params() == pruned.model.count_params()
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    assert pruned.model.predict(x, verbose=0).shape == (4, 3)
