"""Fault injection for the simulated board: the ``--fault`` plan and what it does to received bytes.

PROTOCOL.md section 7 lists the specs. Byte positions count received bytes
from 0, frame positions count decoded frames from 0; the plan is mutable so a
test can add a fault to a running simulator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from edgert.errors import InputDataError

__all__ = ["Faults"]


@dataclass
class Faults:
    """Fault injection plan (PROTOCOL.md section 7). Byte positions count received bytes from 0."""

    flip: list[int] = field(default_factory=list)
    drop: list[tuple[int, int]] = field(default_factory=list)
    dup: list[tuple[int, int]] = field(default_factory=list)
    drop_frame: set[int] = field(default_factory=set)
    dup_frame: set[int] = field(default_factory=set)
    silent_at: int | None = None
    disconnect_at: list[int] = field(default_factory=list)
    powerloss_at: int | None = None
    wrong_hash: bool = False
    noise: bool = False

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...]) -> Faults:
        """Build a plan from ``--fault`` strings (``flip@N``, ``drop@N:L``, ``powerloss@N``, ``wrong-hash``...).

        Raises:
            InputDataError: A spec that is not understood.
        """
        f = cls()
        for spec in specs:
            kind, _, arg = spec.partition("@")
            try:
                n, _, length = arg.partition(":")
                if kind == "flip":
                    f.flip.append(int(n))
                elif kind in ("drop", "dup"):
                    getattr(f, kind).append((int(n), int(length or 1)))
                elif kind == "drop-frame":
                    f.drop_frame.add(int(n))
                elif kind == "dup-frame":
                    f.dup_frame.add(int(n))
                elif kind == "silent":
                    f.silent_at = int(n or 0)
                elif kind == "disconnect":
                    f.disconnect_at.append(int(n))
                elif kind == "powerloss":
                    f.powerloss_at = int(n)
                elif kind == "wrong-hash":
                    f.wrong_hash = True
                elif kind == "noise":
                    f.noise = True
                else:
                    raise ValueError(kind)
            except ValueError:
                raise InputDataError(f"unknown fault {spec!r}",
                                     "use flip@N, drop@N:L, dup@N:L, drop-frame@K, dup-frame@K, silent@N, "
                                     "disconnect@N, powerloss@N, wrong-hash or noise") from None
        return f

    def corrupt(self, data: bytes, start: int) -> bytes:
        """``data`` (received bytes ``start``...) after the plan's bit flips, dropped and repeated bytes."""
        if not (self.flip or self.drop or self.dup):
            return data
        out = bytearray()
        for i, b in enumerate(data):
            pos = start + i
            if pos in self.flip:
                b ^= 0x01
            if any(n <= pos < n + length for n, length in self.drop):
                continue
            out.append(b)
            for n, length in self.dup:
                if pos == n + length - 1:
                    out += data[max(0, n - start): i + 1]
        return bytes(out)

    def digest(self, data: bytes) -> bytes:
        """The SHA-256 the device computes of ``data``: wrong in its first byte under ``wrong-hash``."""
        digest = hashlib.sha256(data).digest()
        if self.wrong_hash:
            digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
        return digest
