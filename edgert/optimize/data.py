"""Labeled data for optimize: ``.npz`` files, labeled image folders, and scikit-learn's digits.

No TensorFlow here: data loading is numpy + Pillow so it can be tested cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgert.errors import InputDataError
from edgert.files import load_numpy

__all__ = [
    "Dataset", "check_classifier_data", "load_dataset", "split_dataset", "digits_dataset", "digit_pixels", "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".gif", ".webp")


@dataclass
class Dataset:
    """Model-ready inputs with integer labels.

    Attributes:
        x: float32 array shaped like the model input (batch first).
        y: int64 class indices, or None when the data is unlabeled.
        labels: Class names (index → name) when known.
    """

    x: np.ndarray
    y: np.ndarray | None
    labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


def _fit_shape(x: np.ndarray, input_shape: tuple, source: str) -> np.ndarray:
    """Make ``x`` batch-first with the model's per-sample shape, adding a channel axis if that is all that is missing."""
    want = tuple(int(d) for d in input_shape[1:])
    if x.shape[1:] == want:
        return x
    if x.ndim == len(want) and want[-1] == 1 and x.shape[1:] == want[:-1]:
        return x[..., None]
    raise InputDataError(
        f"{source}: samples are shaped {list(x.shape[1:])} but the model takes {list(want)}",
        "store x already preprocessed for the model (same size, channels and scaling)",
    )


def load_dataset(source: str | Path, input_shape: tuple, *, require_labels: bool = True) -> Dataset:
    """Load labeled data for a model whose input is ``input_shape`` (batch first, e.g. ``(None, 16, 16, 1)``).

    Args:
        source: An ``.npz`` with arrays ``x`` (model-ready float inputs) and ``y`` (integer labels,
            optional ``labels`` names), or a folder with one sub-folder of images per class
            (images are resized to the model input and scaled to [0, 1]).
        input_shape: The model's input shape.
        require_labels: Raise when the data has no labels.

    Raises:
        InputDataError: Missing file, no labels, wrong shape, empty folder.
    """
    path = Path(source)
    if not path.exists():
        raise InputDataError(f"{path}: no such file or folder", "pass an .npz with x and y, or a folder of class sub-folders")
    if path.is_dir():
        data = _load_folder(path, input_shape)
    elif path.suffix.lower() == ".npz":
        data = _load_npz(path, input_shape)
    else:
        raise InputDataError(f"{path}: not an .npz file or a folder",
                             "pass an .npz with x and y, or a folder of class sub-folders")
    if require_labels and data.y is None:
        raise InputDataError(
            f"{path}: the data has no labels (no 'y' array)",
            "optimize measures accuracy, so add integer class labels as 'y' to the .npz",
        )
    if data.y is not None and len(data.y) != len(data.x):
        raise InputDataError(f"{path}: {len(data.x)} samples but {len(data.y)} labels", "x and y must have the same length")
    if not np.all(np.isfinite(data.x)):
        raise InputDataError(f"{path}: x contains NaN or infinite values", "clean the data before optimizing")
    return data


def _load_npz(path: Path, input_shape: tuple) -> Dataset:
    try:
        with load_numpy(path, ".npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise InputDataError(f"{path}: not a readable .npz ({e})", "write it with numpy.savez(path, x=..., y=...)") from None
    if "x" not in arrays:
        raise InputDataError(f"{path}: no 'x' array (found: {', '.join(sorted(arrays)) or 'none'})",
                             "save inputs as x and labels as y")
    x = np.asarray(arrays["x"], dtype=np.float32)
    if x.ndim < 2:
        raise InputDataError(f"{path}: x must be batch-first samples, got shape {list(x.shape)}")
    y = arrays.get("y")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2:  # one-hot labels
            y = np.argmax(y, axis=1)
        if not np.issubdtype(y.dtype, np.integer):
            if np.any(np.asarray(y, dtype=np.float64) != np.round(y)):
                raise InputDataError(f"{path}: y must hold integer class indices", "store labels as integers 0..N-1")
        y = y.astype(np.int64)
        if y.size and y.min() < 0:
            raise InputDataError(f"{path}: y holds negative class indices", "store labels as integers 0..N-1")
    labels = [str(v) for v in arrays["labels"].tolist()] if "labels" in arrays else []
    return Dataset(_fit_shape(x, input_shape, str(path)), y, labels)


def _load_folder(path: Path, input_shape: tuple) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise InputDataError(f"{path}: no class sub-folders", "put each class's images in a sub-folder named after the class")
    if len(input_shape) != 4:
        raise InputDataError(f"{path}: image folders need an image model (input H×W×C), this one takes {list(input_shape[1:])}")
    h, w, c = (int(d) for d in input_shape[1:4])
    xs, ys = [], []
    for idx, name in enumerate(classes):
        for f in sorted((path / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
                    arr = np.asarray(im, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as e:
                raise InputDataError(f"{f}: not a readable image ({e})") from None
            xs.append(arr.reshape(h, w, c))
            ys.append(idx)
    if not xs:
        raise InputDataError(f"{path}: the class folders hold no images", f"supported: {', '.join(IMAGE_SUFFIXES)}")
    return Dataset(np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64), classes)


def check_classifier_data(data: Dataset, classes: int) -> None:
    """Refuse data optimize cannot measure top-1 on: no labels, a model with fewer than two outputs,
    labels beyond the model's ``classes`` outputs.

    Raises:
        InputDataError: Which of these it is, and the fix.
    """
    if data.y is None:
        raise InputDataError("the data has no labels", "optimize measures accuracy: give integer class labels (y)")
    if classes < 2:
        raise InputDataError(f"the model outputs {classes} value(s): optimize measures top-1 and needs a classifier",
                             "use `edgert convert` for regression models")
    if data.y.max() >= classes:
        raise InputDataError(f"labels go up to {int(data.y.max())} but the model has {classes} outputs",
                             "labels must be class indices 0..N-1 of the model's outputs")


def split_dataset(data: Dataset, test_fraction: float = 0.3, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (train, held-out) with every class represented in both when possible."""
    rng = np.random.default_rng(seed)
    n = len(data)
    if data.y is None:
        order = rng.permutation(n)
        cut = int(round(n * (1 - test_fraction)))
        return Dataset(data.x[order[:cut]], None, data.labels), Dataset(data.x[order[cut:]], None, data.labels)
    train_list: list[int] = []
    test_list: list[int] = []
    for cls in np.unique(data.y):
        idx = rng.permutation(np.flatnonzero(data.y == cls))
        k = int(round(len(idx) * test_fraction))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        test_list.extend(idx[:k])
        train_list.extend(idx[k:])
    train_idx, test_idx = rng.permutation(train_list), rng.permutation(test_list)
    return (
        Dataset(data.x[train_idx], data.y[train_idx], data.labels),
        Dataset(data.x[test_idx], data.y[test_idx], data.labels),
    )


def digit_pixels(images: np.ndarray, size: int) -> np.ndarray:
    """scikit-learn digits (8×8, values 0..16) as uint8 grayscale pictures of ``size``×``size`` (bilinear upscale).

    This is the one place digits become pictures, shared by training and by the
    demo's video so both see the same pixels.
    """
    from PIL import Image

    pix = np.clip(np.round(np.asarray(images, dtype=np.float32) * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    if size == pix.shape[-1]:
        return pix
    return np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.Resampling.BILINEAR)) for p in pix])


def digits_dataset(size: int = 16) -> Dataset:
    """scikit-learn's digits (1797 real scanned handwritten digits shipped with scikit-learn) as model inputs.

    Returns:
        x float32 ``(N, size, size, 1)`` in [0, 1] (pixel / 255), y int64 0..9, labels "0".."9".
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = digit_pixels(d.images, size).astype(np.float32)[..., None] / 255.0
    return Dataset(x, d.target.astype(np.int64), [str(i) for i in range(10)])
