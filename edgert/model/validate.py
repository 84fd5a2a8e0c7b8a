"""Structural validation of .tflite flatbuffers (hardened by the model-layer work)."""

from __future__ import annotations

from edgert.errors import InvalidModelError

__all__ = ["validate_model_bytes"]


def validate_model_bytes(data: bytes, name: str = "model") -> None:
    """Check that ``data`` is a structurally sound TFLite flatbuffer.

    Raises:
        InvalidModelError: with a one-line reason.
    """
    if len(data) < 16:
        raise InvalidModelError(f"{name}: {len(data)} bytes is too short to be a .tflite model")
    if data[4:8] != b"TFL3":
        raise InvalidModelError(f"{name}: not a TFLite flatbuffer (file identifier is {bytes(data[4:8])!r}, expected b'TFL3')")
