"""Quantize/dequantize, and turn user input files into tensors.

:func:`load_input` reads what ``edgert predict`` accepts: a ``.npy`` tensor,
an image (through :func:`edgert.runtime.preprocess.prepare_image`) or a 16-bit
PCM ``.wav`` for models whose input is a raw audio window.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np

from edgert.errors import InputDataError
from edgert.files import load_numpy
from edgert.model.reader import TensorSpec

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "NPY_SUFFIXES",
    "dequantize",
    "load_input",
    "quantize",
    "random_input",
    "to_input_dtype",
]

log = logging.getLogger("edgert.runtime.tensors")

NPY_SUFFIXES = (".npy",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
AUDIO_SUFFIXES = (".wav",)
#: A 1-D input counts as a raw audio window when the clip is within this factor of its length
#: (0.975 s YAMNet windows from 1 s clips); otherwise it expects computed features.
_AUDIO_LENGTH_SLACK = 2.0


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float values -> the tensor's integer dtype by its scale and zero point (round half to even, clamp)."""
    dtype = np.dtype(spec.dtype)
    if not spec.quantized:
        return np.asarray(values, dtype=dtype)
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(values, np.float32) / np.float32(spec.scale)) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Integer tensor values -> float32 by the tensor's scale and zero point (floats pass through)."""
    if not spec.quantized:
        return np.asarray(values)
    return (np.asarray(values, np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)


def to_input_dtype(values: np.ndarray, spec: TensorSpec, what: str = "data") -> np.ndarray:
    """Bring ``values`` to the input's dtype: as is, quantized (floats for a quantized input), or a lossless cast.

    Args:
        values: The user's array.
        spec: The input tensor.
        what: How to name the data in an error (e.g. the file name).

    Raises:
        InputDataError: The values cannot become the input's dtype without changing them
            (floats for an unquantized integer input, integers out of the dtype's range),
            or floats that are NaN or infinite.
    """
    target = np.dtype(spec.dtype)
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputDataError(f"{what}: holds NaN or infinite values", "replace them first, e.g. with numpy.nan_to_num")
    if arr.dtype == target:
        return arr
    if spec.quantized and arr.dtype.kind == "f":
        return quantize(arr, spec)
    if arr.dtype.kind in "biu" and target.kind in "iu":
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise InputDataError(
                f"{what}: values {arr.min()}..{arr.max()} do not fit input {spec.name!r} ({spec.dtype})",
                f"pass values in {info.min}..{info.max}" + (" or floats to quantize" if spec.quantized else ""),
            )
        return arr.astype(target)
    if arr.dtype.kind in "biuf" and target.kind == "f":
        return arr.astype(target)
    raise InputDataError(
        f"{what}: {arr.dtype.name} values do not fit input {spec.name!r} ({spec.dtype})",
        f"pass {spec.dtype} values" + (" or floats to quantize" if spec.quantized else ""),
    )


def random_input(spec: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    """A random tensor of the input's shape and dtype (the full integer range, floats in [-1, 1)).

    Used to time a model (``edgert bench``) and to compare interpreters on equal inputs.
    """
    dtype = np.dtype(spec.dtype)
    shape = tuple(spec.shape)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise InputDataError(f"input {spec.name!r} has dtype {spec.dtype}, which edgert cannot generate data for")


def load_input(path: str | Path, spec: TensorSpec, metadata: dict | None = None) -> np.ndarray:
    """Read one input file into a tensor for ``spec`` (its shape and dtype, quantized when it is).

    Args:
        path: ``.npy`` (a raw tensor: used as is when its dtype is the input's,
            float data is quantized for quantized inputs), an image
            (``.png .jpg .jpeg .bmp .gif``) or a 16-bit PCM ``.wav``.
        spec: The model input the data is for.
        metadata: The model's edgert metadata (image preprocessing), or None.

    Raises:
        InputDataError: Missing/unreadable file, unknown type, or data that does
            not fit the input (both shapes named).
    """
    p = Path(path)
    if not p.is_file():
        what = "not a regular file" if p.exists() else "no such file"
        raise InputDataError(f"{p}: {what}", "check the input path")
    suffix = p.suffix.lower()
    if suffix in NPY_SUFFIXES:
        return _load_npy(p, spec)
    if suffix in IMAGE_SUFFIXES:
        return _load_image(p, spec, metadata)
    if suffix in AUDIO_SUFFIXES:
        return _load_wav(p, spec)
    raise InputDataError(
        f"{p}: unknown input type {suffix or '(no extension)'!r}",
        f"pass a .npy tensor, an image ({' '.join(IMAGE_SUFFIXES)}) or a 16-bit .wav",
    )


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _load_npy(p: Path, spec: TensorSpec) -> np.ndarray:
    arr = load_numpy(p, ".npy")
    shape = tuple(spec.shape)
    if arr.shape != shape:
        # (49, 10) for (1, 49, 10, 1) is the same tensor; anything else is a user mistake.
        if _squeezed(arr.shape) != _squeezed(shape):
            raise InputDataError(
                f"{p}: array of shape {list(arr.shape)} does not fit input {spec.name!r} of shape {list(shape)}",
                "save the array with the model's input shape",
            )
        arr = arr.reshape(shape)
    return to_input_dtype(arr, spec, str(p))


def _load_image(p: Path, spec: TensorSpec, metadata: dict | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from edgert.runtime.preprocess import prepare_image

    try:
        with Image.open(p) as img:
            img.load()  # decode now, inside the try: truncated files fail here
            return prepare_image(img, spec, metadata)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputDataError(f"{p}: not a readable image ({e})") from None


def _load_wav(p: Path, spec: TensorSpec) -> np.ndarray:
    try:
        with wave.open(str(p), "rb") as w:
            width, channels, rate, frames = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError, OSError) as e:
        raise InputDataError(f"{p}: not a readable PCM .wav ({e})", "pass a 16-bit PCM .wav") from None
    if width != 2:
        raise InputDataError(f"{p}: {8 * width}-bit samples are not supported", "convert it to 16-bit PCM")
    pcm = np.frombuffer(raw, dtype="<i2")
    pcm = pcm[: len(pcm) - len(pcm) % channels].reshape(-1, channels)
    samples = pcm[:, 0] if channels == 1 else pcm.astype(np.float32).mean(axis=1)
    window = _squeezed(tuple(spec.shape))
    is_window = (
        len(window) == 1
        and samples.size > 0
        and 1 / _AUDIO_LENGTH_SLACK <= window[0] / samples.size <= _AUDIO_LENGTH_SLACK
    )
    if not is_window:
        raise InputDataError(
            f"{p}: the model expects features of shape {list(spec.shape)}, not {samples.size} audio samples",
            "compute the features (e.g. the spectrogram the model was trained on) and pass them as a .npy",
        )
    n = window[0]
    if samples.size != n:
        log.warning(
            "%s: %d samples at %d Hz, the model takes %d; %s",
            p, samples.size, rate, n, "cropping the end" if samples.size > n else "padding with silence",
        )
        samples = samples[:n] if samples.size > n else np.pad(samples, (0, n - samples.size))
    if spec.dtype == "int16" and not spec.quantized:
        return np.asarray(samples, np.int16).reshape(spec.shape)  # the model takes raw PCM
    floats = (np.asarray(samples, np.float32) / np.float32(32768.0)).reshape(spec.shape)
    if spec.quantized:
        return quantize(floats, spec)
    if np.dtype(spec.dtype).kind != "f":
        raise InputDataError(f"{p}: input {spec.name!r} takes {spec.dtype}, not audio samples", "pass a .npy")
    return floats.astype(spec.dtype)
