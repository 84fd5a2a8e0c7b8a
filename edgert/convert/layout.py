"""Channels-first models (PyTorch, ONNX) converted to channels-last, and their data moved with them.

PyTorch and ONNX models take images as NCHW and sensor windows as NCL; TFLite
kernels (and every device runtime) are channels-last, so the converted model
takes NHWC / NLC. Calibration and evaluation data may come in either layout:
arrays in the source model's layout are transposed here, so a user can feed the
converter the same tensors they trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import InputDataError

__all__ = [
    "CHANNELS_FIRST",
    "CHANNELS_LAST",
    "layout_record",
    "channels_last_shape",
    "layout_of",
    "parse_input_shape",
    "to_channels_first",
    "to_channels_last",
    "adapt_data",
]

#: Layout names by rank (without the batch dimension) of a channels-first input.
CHANNELS_FIRST = {3: "NCHW", 2: "NCL"}


#: The converted model's layout for each channels-first layout.
CHANNELS_LAST = {"NCHW": "NHWC", "NCL": "NLC"}


def layout_record(source) -> dict[str, str]:
    """Metadata/report entries: the source model's input layout and the one the converted model takes."""
    layout = getattr(source, "source_layout", None)
    if not layout:
        return {}
    return {"input_layout": layout, "converted_input_layout": CHANNELS_LAST[layout]}


def layout_of(shape: tuple[int, ...]) -> str | None:
    """The channels-first layout of a source input of ``shape`` (no batch), None for flat inputs."""
    return CHANNELS_FIRST.get(len(shape))


def channels_last_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(C, H, W) -> (H, W, C)``, ``(C, L) -> (L, C)``; other ranks unchanged."""
    if layout_of(shape) is None:
        return tuple(shape)
    return (*shape[1:], shape[0])


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """A batch ``(N, C, ...)`` moved to ``(N, ..., C)``."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), 1, -1))


def to_channels_first(x: np.ndarray) -> np.ndarray:
    """A batch ``(N, ..., C)`` moved to ``(N, C, ...)``."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1))


def parse_input_shape(text: str | Any) -> tuple[int, ...] | None:
    """``"1,3,32,32"`` (or a sequence) -> ``(1, 3, 32, 32)``; the batch dimension is included.

    Raises:
        InputDataError: Not a list of positive integers.
    """
    if text is None:
        return None
    parts = [p for p in str(text).replace("x", ",").split(",") if p.strip()] if isinstance(text, str) else list(text)
    try:
        dims = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        dims = ()
    if len(dims) < 2 or any(d <= 0 for d in dims):
        raise InputDataError(
            f"--input-shape {text!r} is not a shape", "give every dimension with the batch, e.g. --input-shape 1,3,96,96"
        )
    return dims


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    from edgert.files import load_numpy

    try:
        with load_numpy(path, ".npz") as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise InputDataError(f"{path}: not a readable .npz ({str(e).splitlines()[0]})") from None


def _move(x: np.ndarray, source_shape: tuple[int, ...], model_shape: tuple[int, ...]) -> np.ndarray:
    # Only arrays that are in the source layout (and not already channels-last) move.
    arr = np.asarray(x)
    if tuple(arr.shape[1:]) == tuple(source_shape) and tuple(source_shape) != tuple(model_shape):
        return to_channels_last(arr)
    if tuple(arr.shape) == tuple(source_shape) and tuple(source_shape) != tuple(model_shape):
        return to_channels_last(arr[None])
    return arr


def adapt_data(data: Any, source, *, labeled: bool = False) -> Any:
    """Calibration or evaluation data with channels-first arrays moved to the converted model's layout.

    Args:
        data: What the user passed: a path (``.npy``/``.npz``; folders of images are
            read channels-last already), an array, an ``(x, y)`` tuple, or an iterable.
        source: The :class:`~edgert.convert.loader.SourceModel`; nothing changes unless it
            has a ``source_input_shape`` that differs from its ``input_shape``.
        labeled: Evaluation data: a ``.npz`` keeps its ``y`` (as an ``(x, y)`` tuple).

    Returns:
        ``data`` itself, or the arrays in the converted model's layout (a ``.npz`` with
        ``y`` becomes an ``(x, y)`` tuple).
    """
    src = getattr(source, "source_input_shape", None)
    if data is None or src is None or tuple(src) == tuple(source.input_shape):
        return data
    model = tuple(source.input_shape)
    if isinstance(data, tuple) and len(data) == 2:
        return (_move(data[0], src, model), data[1])
    if isinstance(data, np.ndarray):
        return _move(data, src, model)
    if isinstance(data, (str, Path)):
        p = Path(data)
        if p.is_file() and p.suffix.lower() == ".npy":
            from edgert.files import load_numpy

            return _move(load_numpy(p, ".npy"), src, model)
        if p.is_file() and p.suffix.lower() == ".npz":
            arrays = _npz_arrays(p)
            key = next((k for k in ("x", "calibration", "images", "inputs") if k in arrays), next(iter(arrays), None))
            if key is None:
                return data  # load_calibration says what is wrong
            x = _move(arrays[key], src, model)
            return (x, arrays["y"]) if labeled and "y" in arrays else x
        return data
    if isinstance(data, list):
        return [_move(np.asarray(s), src, model) for s in data]
    return data
