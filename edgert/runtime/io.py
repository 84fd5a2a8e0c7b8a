"""Quantize/dequantize and turn user inputs into tensors."""

from __future__ import annotations

import numpy as np

from edgert.model.reader import TensorSpec

__all__ = ["quantize", "dequantize"]


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
