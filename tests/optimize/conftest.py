"""Fixtures for the optimize tests: one digits split and one small teacher for the whole session.

The machine is shared (2 cores, 8 engineers): the teacher trains once, for few
epochs, and every test derives what it needs from it.
"""

from __future__ import annotations

import numpy as np
import pytest

# No importorskip here: a conftest that raises Skipped breaks collection in the tflite-runtime venv.
# Each test module that needs TensorFlow/scikit-learn skips itself at its top instead.

TEACHER_EPOCHS = 25


@pytest.fixture(scope="session")
def digits_split():
    """(train, held_out) Datasets of 16×16 digits, the same split the demo uses."""
    from edgert.optimize.data import digits_dataset, split_dataset

    return split_dataset(digits_dataset(16), 0.3, 0)


@pytest.fixture(scope="session")
def teacher(digits_split):
    """The digits teacher CNN, trained once per session."""
    from edgert.optimize.models import digits_teacher
    from edgert.optimize.pruning import fine_tune

    train, _ = digits_split
    model = digits_teacher(16, seed=0)
    fine_tune(model, train.x, train.y, epochs=TEACHER_EPOCHS, seed=0)
    return model


@pytest.fixture(scope="session")
def teacher_path(teacher, tmp_path_factory):
    """The teacher saved as .keras (what a user passes to `edgert optimize`)."""
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    teacher.save(path)
    return path


@pytest.fixture(scope="session")
def digits_npz(digits_split, tmp_path_factory):
    """All digits as an .npz with x and y (the `--data` format)."""
    train, test = digits_split
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=np.concatenate([train.x, test.x]), y=np.concatenate([train.y, test.y]))
    return path


@pytest.fixture(scope="session")
def int8_of(digits_split):
    """Convert a Keras model to full-int8 .tflite bytes (calibrated on training digits)."""
    from edgert.convert import convert_keras

    train, _ = digits_split

    def convert(model, mode="int8"):
        rep = train.x[:200] if mode in ("int8", "int16x8") else None
        return convert_keras(model, mode=mode, representative_data=rep)

    return convert


@pytest.fixture(scope="session")
def tflite_top1(digits_split):
    """Top-1 of .tflite bytes on the held-out digits, through the real interpreter."""
    from edgert.convert import evaluate

    _, test = digits_split

    def top1(data: bytes) -> float:
        return float(evaluate(data, test.x, test.y)["top1"])

    return top1
