"""Wrap a model as a signed MCUboot image with imgtool (the tool MCUboot ships), and check one.

Devices that require signatures (INFO ``sign: true``) take the model as an
MCUboot image: a 32-byte header, the model as the payload, and TLVs with the
payload's SHA-256 and an ed25519 or ECDSA P-256 signature. The device checks
the image with its provisioned public key before activating (PROTOCOL.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import tempfile
from pathlib import Path

from firmware_tools.errors import SignatureError

__all__ = ["IMAGE_MAGIC", "make_image", "sign_model", "verify_image", "image_payload", "image_hash", "image_size", "load_key"]

log = logging.getLogger("edgert.firmware.signing")

#: MCUboot image header magic (little-endian u32 at offset 0).
IMAGE_MAGIC = 0x96F3B83D
_HEADER_SIZE = 32
_TLV_MAGIC, _TLV_PROT_MAGIC, _TLV_SHA256 = 0x6907, 0x6908, 0x10
_SUPPORTED = ("Ed25519", "ECDSA256P1")


def load_key(path: str | Path):
    """Load an imgtool key (private or public PEM).

    Raises:
        SignatureError: Missing/unreadable key, or a key type other than ed25519 / ECDSA P-256.
    """
    from imgtool import keys

    p = Path(path)
    if not p.is_file():
        raise SignatureError(f"signing key {p} not found", "generate one: imgtool keygen -k key.pem -t ed25519")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            key = keys.load(str(p))
    except (ValueError, TypeError, OSError, keys.PasswordRequired) as e:
        raise SignatureError(f"cannot read signing key {p}: {e}", "pass an unencrypted PEM key made by imgtool keygen") from None
    if key is None or not any(type(key).__name__.startswith(n) for n in _SUPPORTED):
        raise SignatureError(f"unsupported key type in {p}", "use an ed25519 or ECDSA P-256 key (imgtool keygen -t ed25519)")
    return key


def make_image(payload: bytes, key=None, *, version: str = "0.0.0") -> bytes:
    """Wrap ``payload`` as an MCUboot image with imgtool: header, payload, SHA-256 TLV, signature TLV if ``key``.

    Args:
        payload: The image payload.
        key: A loaded imgtool private key, or None for an unsigned (hash-only) image.
        version: Image version string (``major.minor.revision``).
    """
    from imgtool import image as imgmod

    with tempfile.TemporaryDirectory(prefix="edgert-image-") as tmp:
        src, dst = os.path.join(tmp, "payload.bin"), os.path.join(tmp, "payload.img")
        with open(src, "wb") as f:
            f.write(payload)
        img = imgmod.Image(version=imgmod.versmod.decode_version(version), header_size=_HEADER_SIZE, pad_header=True)
        # imgtool prints progress notes on stdout; stdout belongs to our --json output.
        with contextlib.redirect_stdout(io.StringIO()) as noise:
            img.load(src)
            img.create(key, "hash", None)
            img.save(dst)
        if noise.getvalue().strip():
            log.debug("imgtool: %s", noise.getvalue().strip())
        return Path(dst).read_bytes()


def sign_model(model: bytes, key_path: str | Path, *, version: str = "0.0.0") -> bytes:
    """Return ``model`` wrapped as an MCUboot image signed with the key at ``key_path``.

    Args:
        model: The .tflite bytes (the image payload).
        key_path: imgtool PEM private key (ed25519 or ECDSA P-256).
        version: Image version string (``major.minor.revision``).
    """
    key = load_key(key_path)
    if not hasattr(key, "sign") and not hasattr(key, "sign_digest"):
        raise SignatureError(f"{key_path} is a public key; signing needs the private key")
    return make_image(model, key, version=version)


def image_payload(image: bytes) -> bytes:
    """The payload (the model) inside an MCUboot image.

    Raises:
        SignatureError: Not an MCUboot image, or truncated.
    """
    if len(image) < _HEADER_SIZE:
        raise SignatureError("image is shorter than an MCUboot header")
    magic, _load, hdr_size, _prot, img_size = struct.unpack_from("<IIHHI", image)
    if magic != IMAGE_MAGIC:
        raise SignatureError("not an MCUboot image (bad magic)", "sign the model: --sign key.pem")
    if hdr_size + img_size > len(image):
        raise SignatureError("MCUboot image is truncated")
    return bytes(image[hdr_size : hdr_size + img_size])


def _tlv_areas(image: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each TLV area (protected first, if any) after the payload; empty if malformed."""
    try:
        _magic, _load, hdr_size, _prot, img_size = struct.unpack_from("<IIHHI", image)
        off, areas = hdr_size + img_size, []
        magic, total = struct.unpack_from("<HH", image, off)
        if magic == _TLV_PROT_MAGIC:
            areas.append((off, off + total))
            off += total
            magic, total = struct.unpack_from("<HH", image, off)
        if magic != _TLV_MAGIC:
            return []
        areas.append((off, off + total))
        return areas
    except struct.error:
        return []


def image_size(image: bytes) -> int:
    """Bytes an MCUboot image occupies (header, payload, TLVs); 0 when ``image`` does not start with one."""
    if len(image) < _HEADER_SIZE or struct.unpack_from("<I", image)[0] != IMAGE_MAGIC:
        return 0
    areas = _tlv_areas(image)
    return min(len(image), areas[-1][1]) if areas else 0


def image_hash(image: bytes) -> bytes | None:
    """The SHA-256 TLV of an MCUboot image (what Image state reports as ``hash``), or None."""
    areas = _tlv_areas(image)
    if not areas:
        return None
    start, end = areas[-1]
    off = start + 4
    while off + 4 <= end:
        kind, _, length = struct.unpack_from("<BBH", image, off)
        if kind == _TLV_SHA256:
            return bytes(image[off + 4 : off + 4 + length])
        off += 4 + length
    return None


def verify_image(image: bytes, keys_: list) -> bytes:
    """Check an MCUboot image's hash and signature against trusted keys; return its payload.

    Args:
        image: The image bytes.
        keys_: imgtool key objects the device trusts.

    Raises:
        SignatureError: Unsigned, signed by another key, tampered, or not an image.
    """
    from imgtool import image as imgmod

    payload = image_payload(image)
    with tempfile.TemporaryDirectory(prefix="edgert-verify-") as tmp:
        path = os.path.join(tmp, "slot.img")
        with open(path, "wb") as f:
            f.write(image)
        results = []
        for key in keys_:
            with contextlib.redirect_stdout(io.StringIO()):
                result = imgmod.Image.verify(path, key)[0]
            if result == imgmod.VerifyResult.OK:
                return payload
            results.append(result.name)
    if not keys_:
        raise SignatureError("no trusted key provisioned on the device")
    reason = "tampered (hash mismatch)" if "INVALID_HASH" in results else "no valid signature from a trusted key"
    raise SignatureError(f"image rejected: {reason}", "sign with the key the device trusts: --sign key.pem")
