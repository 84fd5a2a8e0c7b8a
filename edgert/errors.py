"""One error family for everything a user can fix.

Every error a user can act on derives from :class:`EdgertError`. The CLI maps
each one to exit code 2 and prints ``str(error)``: one line saying what is
wrong, followed by the hint that says what to do.
"""

from __future__ import annotations

__all__ = [
    "EdgertError",
    "InvalidModelError",
    "InterpreterRejectedError",
    "BackendError",
    "DelegateError",
    "TargetError",
    "InputDataError",
    "ConversionError",
    "DeviceError",
]


class EdgertError(Exception):
    """Base of all user-fixable edgert errors.

    Args:
        message: What is wrong, in one line.
        hint: What the user can do about it, in one line (optional).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InvalidModelError(EdgertError):
    """The file is not a usable .tflite model (corrupt, crafted, truncated, crashes the interpreter)."""


class InterpreterRejectedError(InvalidModelError):
    """The interpreter refused to build from the file; ``reason`` is its own first line."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"the interpreter rejected the model: {reason}", hint)


class BackendError(EdgertError):
    """No usable interpreter backend (missing, broken install, wrong numpy)."""


class DelegateError(BackendError):
    """A requested delegate (e.g. the Edge TPU) could not be loaded."""


class TargetError(EdgertError):
    """Unknown or malformed target profile."""


class InputDataError(EdgertError):
    """User data is unusable: missing file, wrong shape, empty folder, bad option value."""


class ConversionError(EdgertError):
    """The model could not be converted (not a model, unsupported layer, converter failure)."""


class DeviceError(EdgertError):
    """A device or port is unreachable, silent, or answered with an error."""
