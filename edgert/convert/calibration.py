"""Calibration and evaluation data: image folders, .npy/.npz files, arrays and iterables.

Images go through the same preprocessing the runtime applies to camera frames
(:func:`edgert.runtime.preprocess.image_preprocess_for`), driven by the
``preprocessing`` dict that ends up in the model's metadata, so the model is
calibrated on exactly what it will see on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import InputDataError
from edgert.files import load_numpy
from edgert.model.metadata import read_labels  # re-exported: convert reads labels with the same rules as run
from edgert.progress import report

__all__ = [
    "IMAGE_SUFFIXES",
    "DEFAULT_MAX_SAMPLES",
    "default_preprocessing",
    "is_image_shape",
    "load_calibration",
    "load_labeled",
    "calibration_summary",
    "read_labels",
]

log = logging.getLogger("edgert.convert")

#: Files read as images from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff")
#: Calibration samples used at most: TFLite's calibrator gains little beyond a few hundred.
DEFAULT_MAX_SAMPLES = 500


def is_image_shape(input_shape: tuple[int, ...]) -> bool:
    """True when an input of this shape (no batch) takes an image: H x W x 1|3."""
    return len(input_shape) == 3 and input_shape[-1] in (1, 3) and min(input_shape[:2]) >= 2


def default_preprocessing(
    input_shape: tuple[int, ...], mean: float | list | None = None, std: float | list | None = None
) -> dict | None:
    """The metadata ``preprocessing`` dict for an image input (None for non-image inputs).

    Defaults to pixels scaled to [0, 1] (mean 0, std 255), the runtime's default.
    """
    if not is_image_shape(input_shape):
        return None
    h, w, c = input_shape
    return {
        "input_size": [int(h), int(w)],
        "layout": "NHWC",
        "color": "grayscale" if c == 1 else "rgb",
        "resize": "bilinear",
        "mean": 0.0 if mean is None else mean,
        "std": 255.0 if std is None else std,
    }


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _image_plan(input_shape: tuple[int, ...], preprocessing: dict | None, where: Path):
    if not is_image_shape(input_shape):
        raise InputDataError(
            f"{where}: an image folder was given but the model input {list(input_shape)} is not an image",
            "pass the data as .npy/.npz arrays of the input's shape",
        )
    from edgert.model.reader import TensorSpec
    from edgert.runtime.preprocess import image_preprocess_for

    spec = TensorSpec(name="input", index=0, shape=(1, *input_shape), dtype="float32")
    return image_preprocess_for(spec, {"preprocessing": preprocessing or default_preprocessing(input_shape)})


def _load_images(files: list[Path], plan, progress, label: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    out = []
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img.load()
                arr = plan(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
        except (UnidentifiedImageError, OSError) as e:
            raise InputDataError(f"{f}: not a readable image ({e})") from None
        out.append(np.asarray(arr, np.float32).reshape(plan.shape[1:]))
        report(progress, i + 1, len(files), label)
    return np.stack(out)


def _fit_shape(arr: np.ndarray, input_shape: tuple[int, ...], where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == object:
        raise InputDataError(f"{where}: samples have different shapes", f"every sample must be {list(input_shape)}")
    if tuple(arr.shape) == tuple(input_shape):
        arr = arr[None]
    elif tuple(arr.shape[1:]) != tuple(input_shape):
        # (N, H, W) for an (H, W, 1) input: the channel axis is implied.
        if input_shape and input_shape[-1] == 1 and tuple(arr.shape[1:]) == tuple(input_shape[:-1]):
            arr = arr[..., None]
        else:
            raise InputDataError(
                f"{where}: data has shape {list(arr.shape)}, the model input is {list(input_shape)} per sample",
                f"give an array of shape [N, {', '.join(map(str, input_shape))}]",
            )
    if arr.shape[0] == 0:
        raise InputDataError(f"{where}: no samples", "give at least one calibration sample")
    if arr.dtype.kind not in "fiub":
        raise InputDataError(f"{where}: data of dtype {arr.dtype} is not numeric")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise InputDataError(f"{where}: data contains NaN or infinity")
    return arr


def _npz_array(path: Path, key_order: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    try:
        with load_numpy(path, ".npz") as z:
            names = list(z.files)
            if not names:
                raise InputDataError(f"{path}: .npz holds no arrays")
            key = next((k for k in key_order if k in names), names[0])
            y = z["y"] if "y" in names else None
            return z[key], y
    except (ValueError, OSError) as e:
        raise InputDataError(f"{path}: not a readable .npz ({str(e).splitlines()[0]})") from None


def load_calibration(
    source: Any,
    input_shape: tuple[int, ...],
    progress=None,
    *,
    preprocessing: dict | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
) -> np.ndarray:
    """Calibration samples as float32 ``(N, *input_shape)``, the float model's input.

    Args:
        source: An image folder (searched recursively; images resized with
            Pillow and normalised by ``preprocessing``), a ``.npy`` file, a
            ``.npz`` file (key ``x`` or the first array), a numpy array, or an
            iterable of samples.
        input_shape: Model input shape without the batch dimension.
        progress: Progress callback (per image read).
        preprocessing: Metadata ``preprocessing`` dict for images (default: [0, 1] pixels).
        max_samples: Use at most this many samples (evenly spread over the data).

    Raises:
        InputDataError: Missing path, empty folder, unreadable image, wrong shape, no samples.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.exists():
            raise InputDataError(f"{p}: calibration data not found")
        if p.is_dir():
            files = _image_files(p)
            if not files:
                raise InputDataError(
                    f"{p}: calibration folder has no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)",
                    "put sample inputs (images) in it, or pass a .npy/.npz file",
                )
            files = _spread(files, max_samples)
            plan = _image_plan(input_shape, preprocessing, p)
            return _load_images(files, plan, progress, "calibration images")
        suffix = p.suffix.lower()
        if suffix == ".npy":
            arr = load_numpy(p, ".npy")
        elif suffix == ".npz":
            arr, _ = _npz_array(p, ("x", "calibration", "images", "inputs"))
        elif suffix in IMAGE_SUFFIXES:
            arr = _load_images([p], _image_plan(input_shape, preprocessing, p), progress, "calibration images")
        else:
            raise InputDataError(
                f"{p}: calibration data must be an image folder, .npy or .npz", "convert your samples to a .npy array"
            )
        return _spread(_fit_shape(arr, input_shape, str(p)), max_samples)
    if isinstance(source, np.ndarray):
        return _spread(_fit_shape(source, input_shape, "calibration array"), max_samples)
    if isinstance(source, Iterable):
        samples = []
        for s in source:
            a = np.asarray(s[0] if isinstance(s, (list, tuple)) and len(s) == 1 else s)
            samples.append(_fit_shape(a, input_shape, "calibration sample"))
            if sum(len(x) for x in samples) >= max_samples:
                break
        if not samples:
            raise InputDataError("calibration iterable yielded no samples", "give at least one sample")
        return np.concatenate(samples)[:max_samples]
    raise InputDataError(f"cannot read calibration data from a {type(source).__name__}")


def _spread(items, n: int):
    """At most ``n`` items, evenly spread (a folder sorted by class keeps every class)."""
    if len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return items[idx] if isinstance(items, np.ndarray) else [items[i] for i in idx]


def load_labeled(
    source: Any,
    input_shape: tuple[int, ...],
    *,
    preprocessing: dict | None = None,
    labels: list[str] | None = None,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Labeled evaluation data: ``(x float32 (N, *input_shape), y, class_names)``.

    Args:
        source: A folder with one subfolder of images per class (class index =
            position of the subfolder name in ``labels`` when all names are
            labels, else sorted order), a ``.npz`` with ``x`` and ``y``, or an
            ``(x, y)`` tuple of arrays.
        input_shape: Model input shape without the batch dimension.
        preprocessing: Image preprocessing (see :func:`load_calibration`).
        labels: The model's class names, if known.
        progress: Progress callback.

    Raises:
        InputDataError: Missing data, no classes/images, no ``y``, mismatched lengths.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if isinstance(source, tuple) and len(source) == 2:
        x = _fit_shape(np.asarray(source[0]), input_shape, "evaluation x")
        y = np.asarray(source[1])
        classes = labels
    elif isinstance(source, (str, Path)) and Path(source).is_dir():
        root = Path(source)
        dirs = sorted(d for d in root.iterdir() if d.is_dir() and _image_files(d))
        if not dirs:
            raise InputDataError(
                f"{root}: evaluation folder needs one subfolder of images per class", "e.g. eval/cat/*.png, eval/dog/*.png"
            )
        names = [d.name for d in dirs]
        if labels and all(n in labels for n in names):
            index = {n: labels.index(n) for n in names}
            classes = labels
        elif all(n.isdigit() for n in names):  # eval/0 .. eval/12: the folder name is the class index
            index = {n: int(n) for n in names}
            classes = labels or [str(i) for i in range(max(index.values()) + 1)]
        else:
            index = {n: i for i, n in enumerate(names)}
            classes = names
        files, y_list = [], []
        for d in dirs:
            for f in _image_files(d):
                files.append(f)
                y_list.append(index[d.name])
        x = _load_images(files, _image_plan(input_shape, preprocessing, root), progress, "evaluation images")
        y = np.asarray(y_list, np.int64)
    elif isinstance(source, (str, Path)):
        p = Path(source)
        if not p.exists():
            raise InputDataError(f"{p}: evaluation data not found")
        if p.suffix.lower() != ".npz":
            raise InputDataError(f"{p}: evaluation data must be a labeled folder or a .npz with x and y")
        arr, y = _npz_array(p, ("x",))
        if y is None:
            raise InputDataError(f"{p}: .npz has no 'y' array", "save it with np.savez(path, x=inputs, y=targets)")
        x = _fit_shape(arr, input_shape, str(p))
        classes = labels
    else:
        raise InputDataError(f"cannot read evaluation data from a {type(source).__name__}")
    if len(x) != len(y):
        raise InputDataError(f"evaluation data has {len(x)} inputs but {len(y)} targets")
    return x, y, classes


def calibration_summary(x: np.ndarray, source: Any) -> dict[str, Any]:
    """The metadata ``calibration`` entry: sample count, where from, value range."""
    where = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    return {
        "samples": int(len(x)),
        "source": where,
        "min": float(np.min(x)),
        "max": float(np.max(x)),
        "mean": float(np.mean(x)),
    }
