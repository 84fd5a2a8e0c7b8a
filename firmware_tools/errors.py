"""The device error family: everything that can go wrong talking to a board.

All derive from :class:`edgert.errors.DeviceError`, so the CLI maps them to
exit code 2 with one line (esptool's ``FatalError`` idea).
"""

from __future__ import annotations

from edgert.errors import DeviceError

__all__ = [
    "DeviceError",
    "PortError",
    "DeviceSilentError",
    "ProtocolError",
    "DeviceRejectedError",
    "HashMismatchError",
    "ModelTooLargeError",
    "SignatureError",
    "TensorTooLargeError",
]


class PortError(DeviceError):
    """The serial port cannot be opened, or vanished and did not come back."""


class DeviceSilentError(DeviceError):
    """The port opened but the device did not answer within the (size-scaled) timeout."""


class ProtocolError(DeviceError):
    """The device answered something that is not valid SMP for the request."""


class DeviceRejectedError(DeviceError):
    """The device answered the request with an SMP error code.

    Attributes:
        group: SMP group of the error (64 for the edgert group).
        rc: The error code.
    """

    def __init__(self, message: str, hint: str | None = None, *, group: int = 0, rc: int = 0) -> None:
        super().__init__(message, hint)
        self.group = group
        self.rc = rc


class HashMismatchError(DeviceRejectedError):
    """The device's SHA-256 of the uploaded model differs from the host's: nothing was activated."""


class ModelTooLargeError(DeviceRejectedError):
    """The model does not fit the device (slot size, RAM, or the target profile)."""


class SignatureError(DeviceRejectedError):
    """The device requires a signed image and rejected (or was not given) a valid signature."""


class TensorTooLargeError(DeviceRejectedError):
    """An INVOKE request is larger than the device's SMP buffer and the device cannot take tensors in chunks.

    Raised by the host before anything is sent (PROTOCOL.md section 4: ``tensor_io``).
    """
