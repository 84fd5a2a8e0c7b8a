"""How edgert uses SMP: group/command ids, the edgert group's messages, response checks.

The standard groups' messages come from the maintained ``smp`` package
(``smp.file_management``, ``smp.image_management``, ``smp.os_management``);
the edgert group (user group 64) is defined here on the same base classes, so
every request is encoded the one way ``smp`` encodes it. PROTOCOL.md is the
prose version of this module.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import cbor2
from smp import error as smperr
from smp import file_management as smpfs
from smp import header as smphdr
from smp import message as smpmsg

from firmware_tools.errors import (
    DeviceRejectedError,
    HashMismatchError,
    ModelTooLargeError,
    ProtocolError,
    SignatureError,
)

__all__ = [
    "OP_READ",
    "OP_READ_RSP",
    "OP_WRITE",
    "OP_WRITE_RSP",
    "GROUP_OS",
    "GROUP_IMAGE",
    "GROUP_FILE",
    "GROUP_EDGERT",
    "OS_ECHO",
    "OS_RESET",
    "OS_MCUMGR_PARAMS",
    "FILE_UPLOAD",
    "FILE_STATUS",
    "FILE_HASH",
    "IMAGE_STATE",
    "IMAGE_UPLOAD",
    "IMAGE_ERASE",
    "CMD_INFO",
    "CMD_ACTIVATE",
    "CMD_ROLLBACK",
    "CMD_INVOKE",
    "CMD_TENSOR_WRITE",
    "CMD_TENSOR_READ",
    "MGMT_ERR",
    "FS_ERR",
    "EdgertErr",
    "STAGED_NAME",
    "IMAGE_STAGED_NAME",
    "ERR_OK",
    "ERR_UNKNOWN",
    "ERR_NO_MODEL",
    "ERR_HASH_MISMATCH",
    "ERR_TOO_LARGE",
    "ERR_BAD_INPUT",
    "ERR_INVOKE_FAILED",
    "ERR_NO_PREVIOUS",
    "ERR_NOT_SUPPORTED",
    "ERR_SIGNATURE_INVALID",
    "InfoRequest",
    "ActivateRequest",
    "RollbackRequest",
    "InvokeRequest",
    "TensorWriteRequest",
    "TensorReadRequest",
    "parse_packet",
    "response_error",
    "raise_for_error",
    "make_packet",
]

#: SMP header op codes (byte 0, bits 0-2): a reply's op is its request's + 1.
OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = (int(op) for op in smphdr.OP)

GROUP_OS = int(smphdr.GroupId.OS_MANAGEMENT)
GROUP_IMAGE = int(smphdr.GroupId.IMAGE_MANAGEMENT)
GROUP_FILE = int(smphdr.GroupId.FILE_MANAGEMENT)
#: MGMT_GROUP_ID_PERUSER: the first group id Zephyr leaves to applications.
GROUP_EDGERT = 64

# The standard groups' command ids, as the maintained ``smp`` package numbers them.
OS_ECHO = int(smphdr.CommandId.OSManagement.ECHO)
OS_RESET = int(smphdr.CommandId.OSManagement.RESET)
OS_MCUMGR_PARAMS = int(smphdr.CommandId.OSManagement.MCUMGR_PARAMETERS)
FILE_UPLOAD = int(smphdr.CommandId.FileManagement.FILE_DOWNLOAD_UPLOAD)
FILE_STATUS = int(smphdr.CommandId.FileManagement.FILE_STATUS)
FILE_HASH = int(smphdr.CommandId.FileManagement.FILE_HASH_CHECKSUM)
IMAGE_STATE = int(smphdr.CommandId.ImageManagement.STATE)
IMAGE_UPLOAD = int(smphdr.CommandId.ImageManagement.UPLOAD)
IMAGE_ERASE = int(smphdr.CommandId.ImageManagement.ERASE)

#: The edgert group's commands (PROTOCOL.md section 4).
CMD_INFO, CMD_ACTIVATE, CMD_ROLLBACK, CMD_INVOKE, CMD_TENSOR_WRITE, CMD_TENSOR_READ = range(6)

#: SMP-level error codes (``{"rc": N}``) and the File group's (``{"err": {"group": 8, "rc": N}}``).
MGMT_ERR = smperr.MGMT_ERR
FS_ERR = smpfs.FS_MGMT_ERR

#: The file name a model is uploaded to before ACTIVATE.
STAGED_NAME = "/edgert/staged.tflite"
#: ACTIVATE ``name`` for a signed MCUboot image uploaded to image slot 1 with the Image group.
IMAGE_STAGED_NAME = "img:1"


class EdgertErr(IntEnum):
    """The edgert group's error codes (``{"err": {"group": 64, "rc": N}}``): the one table, PROTOCOL.md section 4."""

    OK = 0
    UNKNOWN = 1
    NO_MODEL = 2
    HASH_MISMATCH = 3
    TOO_LARGE = 4
    BAD_INPUT = 5
    INVOKE_FAILED = 6
    NO_PREVIOUS = 7
    NOT_SUPPORTED = 8
    SIGNATURE_INVALID = 9


(
    ERR_OK,
    ERR_UNKNOWN,
    ERR_NO_MODEL,
    ERR_HASH_MISMATCH,
    ERR_TOO_LARGE,
    ERR_BAD_INPUT,
    ERR_INVOKE_FAILED,
    ERR_NO_PREVIOUS,
    ERR_NOT_SUPPORTED,
    ERR_SIGNATURE_INVALID,
) = EdgertErr


class InfoRequest(smpmsg.ReadRequest):
    """edgert INFO: the active/previous model, slot size, RAM, target, capabilities."""

    _GROUP_ID = GROUP_EDGERT
    _COMMAND_ID = CMD_INFO


class ActivateRequest(smpmsg.WriteRequest):
    """edgert ACTIVATE: verify the staged model's SHA-256 on the device, then switch to it atomically."""

    _GROUP_ID = GROUP_EDGERT
    _COMMAND_ID = CMD_ACTIVATE

    name: str
    sha: bytes


class RollbackRequest(smpmsg.WriteRequest):
    """edgert ROLLBACK: make the previous model active again."""

    _GROUP_ID = GROUP_EDGERT
    _COMMAND_ID = CMD_ROLLBACK


class InvokeRequest(smpmsg.WriteRequest):
    """edgert INVOKE: run the active model once, on inline inputs or (``inputs`` None) on the staged ones."""

    _GROUP_ID = GROUP_EDGERT
    _COMMAND_ID = CMD_INVOKE

    inputs: list[bytes] | None = None


class TensorWriteRequest(smpmsg.WriteRequest):
    """edgert TENSOR_WRITE: put ``data`` into input ``index`` at ``off`` (= the bytes the device holds; 0 restarts)."""

    _GROUP_ID = GROUP_EDGERT
    _COMMAND_ID = CMD_TENSOR_WRITE

    index: int
    off: int
    data: bytes


class TensorReadRequest(smpmsg.ReadRequest):
    """edgert TENSOR_READ: bytes of output ``index`` from ``off``, as many as fit one reply."""

    _GROUP_ID = GROUP_EDGERT
    _COMMAND_ID = CMD_TENSOR_READ

    index: int
    off: int


def make_packet(op: int, group: int, command: int, seq: int, body: dict[str, Any], version: int = 1) -> bytes:
    """Encode an SMP packet (header + CBOR map) for a reply or an ad-hoc request.

    Args:
        op: ``smp.header.OP`` value (0 read, 1 read rsp, 2 write, 3 write rsp).
        group: SMP group id.
        command: Command id within the group.
        seq: Sequence number (echoed from the request for replies).
        body: The CBOR map.
        version: 1 for SMP v2 (the default), 0 for SMP v1.
    """
    payload = cbor2.dumps(body)
    head = ((version & 0b11) << 3) | (op & 0b111)
    header = bytes([head, 0]) + len(payload).to_bytes(2, "big") + group.to_bytes(2, "big") + bytes([seq & 0xFF, command & 0xFF])
    return header + payload


def parse_packet(packet: bytes) -> tuple[dict[str, int], dict[str, Any]]:
    """Split an SMP packet into its header fields and its CBOR map.

    Returns:
        ``({"op", "version", "flags", "length", "group", "seq", "id"}, body)``.

    Raises:
        ProtocolError: Short packet, length field disagreeing, or a body that is not a CBOR map.
    """
    if len(packet) < 8:
        raise ProtocolError(f"SMP packet of {len(packet)} bytes is shorter than its 8-byte header")
    head = {
        "op": packet[0] & 0b111,
        "version": (packet[0] >> 3) & 0b11,
        "flags": packet[1],
        "length": int.from_bytes(packet[2:4], "big"),
        "group": int.from_bytes(packet[4:6], "big"),
        "seq": packet[6],
        "id": packet[7],
    }
    if head["length"] != len(packet) - 8:
        raise ProtocolError(f"SMP header says {head['length']} payload bytes, packet has {len(packet) - 8}")
    try:
        body = cbor2.loads(packet[8:]) if head["length"] else {}
    except (cbor2.CBORDecodeError, ValueError, EOFError) as e:
        raise ProtocolError(f"SMP payload is not valid CBOR: {e}") from None
    if not isinstance(body, dict):
        raise ProtocolError("SMP payload is not a CBOR map")
    return head, body


def response_error(body: dict[str, Any]) -> tuple[int, int] | None:
    """``(group, rc)`` when the reply carries an SMP error (v2 ``err`` map or v1 ``rc``), else None."""
    err = body.get("err")
    if isinstance(err, dict) and err.get("rc", 0):
        return int(err.get("group", 0)), int(err["rc"])
    rc = body.get("rc", 0)
    if isinstance(rc, int) and rc:
        return 0, rc
    return None


# Keyed by plain rc ints as they arrive in replies (an EdgertErr member hashes and compares equal to its value).
_EDGERT_ERROR_CLASS: dict[int, type[DeviceRejectedError]] = {
    ERR_HASH_MISMATCH: HashMismatchError,
    ERR_TOO_LARGE: ModelTooLargeError,
    ERR_SIGNATURE_INVALID: SignatureError,
}

_EDGERT_HINTS: dict[int, str] = {
    ERR_NO_MODEL: "flash a model first: edgert flash MODEL --port PORT",
    ERR_HASH_MISMATCH: "the upload was corrupted; flash again",
    ERR_TOO_LARGE: "use a smaller model (edgert fit MODEL --target T) or a board with more flash/RAM",
    ERR_BAD_INPUT: "check the input tensor shapes and dtypes against the model",
    ERR_NO_PREVIOUS: "there is no earlier model on the device to roll back to",
    ERR_NOT_SUPPORTED: "the device firmware does not implement this command",
    ERR_SIGNATURE_INVALID: "sign the model with the key the device trusts: --sign key.pem",
}


def raise_for_error(body: dict[str, Any], what: str) -> None:
    """Raise the matching :class:`DeviceRejectedError` subclass when ``body`` is an SMP error reply.

    Args:
        body: The reply's CBOR map.
        what: What was asked, for the message (e.g. ``"ACTIVATE"``).
    """
    found = response_error(body)
    if found is None:
        return
    group, rc = found
    if group == GROUP_EDGERT:
        cls = _EDGERT_ERROR_CLASS.get(rc, DeviceRejectedError)
        name = EdgertErr(rc).name if rc in EdgertErr._value2member_map_ else f"rc {rc}"
        raise cls(f"device refused {what}: {name}", _EDGERT_HINTS.get(rc), group=group, rc=rc)
    raise DeviceRejectedError(f"device refused {what}: SMP group {group} error {rc}", group=group, rc=rc)
