"""Fixtures of the converter tests: one small digits CNN trained per session, and its data on disk.

The CNN is trained here on scikit-learn's digits (real scanned handwriting),
upscaled from 8x8 to 16x16 so two 3x3 convolutions and a pooling layer fit.
Everything TensorFlow-related is created lazily and once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

#: Digits are 8x8 with values 0..16; upscaled 2x to this size.
SIDE = 16
#: First samples train (and calibrate); the rest are held out for evaluation.
N_TRAIN = 1400
LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class DigitsWorkspace:
    """Paths and arrays of the session's digits model."""

    root: Path
    keras_path: Path
    labels_path: Path
    cal_dir: Path
    cal_npy: Path
    eval_dir: Path
    eval_npz: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    model: object


def digits_images(images: np.ndarray) -> np.ndarray:
    """8x8 digits (0..16) -> 16x16 8-bit pixels (0..255)."""
    up = np.kron(images, np.ones((2, 2), np.float32))
    return np.clip(np.rint(up * (255.0 / 16.0)), 0, 255).astype(np.uint8)


def _write_pngs(folder: Path, pixels: np.ndarray, labels: np.ndarray | None) -> None:
    from PIL import Image

    for i, img in enumerate(pixels):
        sub = folder / str(int(labels[i])) if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(sub / f"{i:04d}.png")


@pytest.fixture(scope="session")
def digits_workspace(tmp_path_factory, digits) -> DigitsWorkspace:
    """Train the CNN once, save it as .keras, and write calibration/evaluation data in every format."""
    pytest.importorskip("tensorflow")
    from edgert.convert._tf import import_keras

    keras = import_keras()
    images, y = digits
    pixels = digits_images(images)
    x = (pixels.astype(np.float32) / 255.0)[..., None]  # the default preprocessing: mean 0, std 255
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((SIDE, SIDE, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_a"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_b"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(96, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
            keras.layers.Softmax(name="probs"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:N_TRAIN], y[:N_TRAIN], epochs=10, batch_size=32, verbose=0)

    root = tmp_path_factory.mktemp("digits")
    ws = DigitsWorkspace(
        root=root,
        keras_path=root / "digits.keras",
        labels_path=root / "labels.txt",
        cal_dir=root / "calibration",
        cal_npy=root / "calibration.npy",
        eval_dir=root / "eval",
        eval_npz=root / "eval.npz",
        x_train=x[:N_TRAIN],
        y_train=y[:N_TRAIN],
        x_test=x[N_TRAIN:],
        y_test=y[N_TRAIN:],
        model=model,
    )
    model.save(ws.keras_path)
    ws.labels_path.write_text("\n".join(LABELS) + "\n")
    # 120 training images as PNG: calibration sees what a camera would deliver.
    _write_pngs(ws.cal_dir, pixels[:120], None)
    np.save(ws.cal_npy, x[:200])
    _write_pngs(ws.eval_dir, pixels[N_TRAIN:], y[N_TRAIN:])
    np.savez(ws.eval_npz, x=x[N_TRAIN:], y=y[N_TRAIN:])
    return ws


@pytest.fixture(scope="session")
def float32_size(digits_workspace) -> int:
    """Size of the plain float32 conversion of the digits CNN."""
    from edgert.convert import convert_keras

    return len(convert_keras(digits_workspace.keras_path, mode="float32"))


@pytest.fixture(scope="session")
def converted(digits_workspace, tmp_path_factory):
    """``{target name: ConversionResult}``: the digits CNN converted for every target profile.

    Calibrated from the PNG folder, evaluated on the held-out labeled folder,
    labels from the text file — the `edgert convert` inputs, through the library.
    """
    from edgert.convert import convert
    from edgert.targets import list_targets

    ws = digits_workspace
    out = tmp_path_factory.mktemp("converted")
    results = {}
    for target in list_targets():
        results[target.name] = convert(
            ws.keras_path,
            target=target.name,
            calibration=ws.cal_dir,
            eval_data=ws.eval_dir,
            labels=ws.labels_path,
            output_dir=out / target.name,
        )
    return results
