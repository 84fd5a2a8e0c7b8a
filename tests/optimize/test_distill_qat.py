"""Knowledge distillation and quantization-aware fine-tuning on real digits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from edgert.errors import InputDataError


def test_distilled_student_with_under_a_third_of_the_parameters_is_within_two_points(teacher, digits_split):
    from edgert.optimize.distill import distill

    train, test = digits_split
    r = distill(teacher, 0.5, train.x, train.y, epochs=40, eval_data=(test.x, test.y))
    assert r.labeled and r.alpha == pytest.approx(0.5) and r.temperature == pytest.approx(2.0)
    assert r.parameter_ratio <= 0.3
    assert r.student_parameters < r.teacher_parameters
    assert r.student_accuracy >= r.teacher_accuracy - 0.02
    d = r.to_dict()
    assert d["student_bytes_float32"] == 4 * r.student_parameters


def test_distillation_learns_from_the_teacher_alone_on_unlabeled_data(teacher, digits_split):
    from edgert.optimize.distill import distill

    train, test = digits_split
    r = distill(teacher, 0.5, train.x, None, epochs=10, eval_data=(test.x, test.y))
    # No labels: the hard-label term is off and only the teacher's soft targets teach.
    assert not r.labeled and r.alpha == 0.0
    assert r.student_accuracy > 0.85


def test_distillation_takes_a_given_student_architecture(teacher, digits_split):
    import keras

    from edgert.optimize.distill import distill

    train, test = digits_split
    inp = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    student = keras.Model(inp, keras.layers.Dense(10)(x))  # logits output: handled as well
    r = distill(teacher, student, train.x, train.y, epochs=3, eval_data=(test.x, test.y))
    assert r.student is student
    assert r.student_parameters == student.count_params()
    wrong = keras.Model(inp, keras.layers.Dense(3)(x))
    with pytest.raises(InputDataError, match="same classes"):
        distill(teacher, wrong, train.x, train.y, epochs=1)


def test_soft_targets_flatten_with_temperature(teacher, digits_split):
    from edgert.optimize.distill import soft_targets

    x = digits_split[1].x[:20]
    sharp, soft = soft_targets(teacher, x, 1.0), soft_targets(teacher, x, 8.0)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(soft.max(axis=1) < sharp.max(axis=1) + 1e-6)
    assert np.array_equal(soft.argmax(axis=1), sharp.argmax(axis=1))


def test_fake_quantize_uses_at_most_255_symmetric_levels_per_channel():
    from edgert.optimize.qat import fake_quantize

    w = np.random.default_rng(0).normal(size=(3, 3, 4, 6)).astype("float32")
    q = fake_quantize(w, (0, 1, 2))
    for c in range(6):
        scale = np.abs(w[..., c]).max() / 127
        levels = np.round(q[..., c] / scale)
        np.testing.assert_allclose(levels * scale, q[..., c], atol=1e-6)
        assert np.abs(levels).max() <= 127
    np.testing.assert_allclose(fake_quantize(q, (0, 1, 2)), q, atol=1e-6)  # idempotent
    assert np.abs(q - w).max() <= np.abs(w).max() / 127


def test_quantization_aware_fine_tuning_keeps_int8_accuracy(teacher, digits_split, int8_of, tflite_top1):
    from edgert.optimize.qat import quantization_aware_fine_tune

    train, _ = digits_split
    tuned = quantization_aware_fine_tune(teacher, train.x, train.y, epochs=2)
    assert tuned is not teacher
    # Training moved the float shadow weights (the result is not just the teacher again).
    changed = [not np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(teacher.weights, tuned.weights, strict=True)]
    assert any(changed)
    assert tflite_top1(int8_of(tuned)) >= tflite_top1(int8_of(teacher)) - 0.01
