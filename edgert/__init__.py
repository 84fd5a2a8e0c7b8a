"""edgert: take a trained neural network onto small devices and keep it running there offline.

``edgert.load_model(path_or_bytes)`` is the front door; the subpackages are:
``edgert.model`` (the .tflite artifact), ``edgert.runtime`` (the interpreter
facade), ``edgert.loop`` (the on-device loop), and the host-only
``edgert.convert`` / ``edgert.optimize`` (which import TensorFlow lazily).
"""

from __future__ import annotations

from edgert.errors import (
    BackendError,
    ConversionError,
    DelegateError,
    DeviceError,
    EdgertError,
    InputDataError,
    InvalidModelError,
    TargetError,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConversionError",
    "DelegateError",
    "DeviceError",
    "EdgertError",
    "InputDataError",
    "InvalidModelError",
    "TargetError",
    "__version__",
    "load_model",
]


def load_model(source, **options):
    """Load a .tflite model for inference; see :func:`edgert.runtime.load_model`."""
    from edgert.runtime import load_model as _load

    return _load(source, **options)
