"""Measure a model on an emulated board: the arena TFLite Micro really takes there, and an invoke's instructions.

Boots our firmware (TFLite Micro + CMSIS-NN) for a target profile in QEMU with the model programmed
into its flash image (:meth:`Emulator.program`, no UART upload), reads INFO's ``arena_used``
(``MicroInterpreter::arena_used_bytes()`` on the 32-bit core) and runs one INVOKE on zero inputs
for its ``insns``: instructions QEMU retired with ``-icount shift=0``, which is deterministic.
QEMU models no cycle counter: these are instructions, never cycles.

``edgert fit --measure-on emulated`` uses it (the CLI, never ``edgert`` core, imports firmware_tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgert.errors import DeviceError

__all__ = ["EmulatedMeasurement", "measure_on_emulated"]


@dataclass(frozen=True)
class EmulatedMeasurement:
    """What one model measured on one emulated board.

    Attributes:
        arena_bytes: ``arena_used`` from the device's INFO (None when it did not report it).
        instructions: Instructions of one invoke (None when the device did not count them).
        board: ``"<qemu machine> (<core>)"``.
        target: The target profile the firmware was built for.
        kernels: The firmware's kernel set (``cmsis-nn`` or ``reference``).
    """

    arena_bytes: int | None
    instructions: int | None
    board: str
    target: str
    kernels: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"arena_bytes": self.arena_bytes, "instructions": self.instructions, "board": self.board,
                "target": self.target, "kernels": self.kernels}


def measure_on_emulated(model, target, *, kernels: str = "cmsis-nn") -> EmulatedMeasurement:
    """Boot the target's emulated board with ``model`` in its flash and measure its arena and one invoke.

    The model is programmed into the board's flash image before boot (as a debug probe would), so
    nothing waits on the emulated UART's upload; the INVOKE's zero inputs still travel over SMP.

    Args:
        model: A path, the model's bytes or a :class:`~edgert.model.ModelFile`.
        target: A target profile (name, ``.toml`` path or ``Target``) that has an emulated board.
        kernels: The firmware's kernel set.

    Returns:
        The :class:`EmulatedMeasurement`.

    Raises:
        FirmwareBuildError / ToolchainMissingError: no board for the target, or no toolchain/QEMU.
        DeviceError and subclasses: the board refused the model (too large, invoke failed).
    """
    import numpy as np

    from edgert.model import read_model
    from firmware_tools.emulate import Emulator
    from firmware_tools.firmware import build_firmware
    from firmware_tools.flash import connect, device_info, invoke

    spec = read_model(model)
    fw = build_firmware(target, kernels=kernels, progress=None)
    em = Emulator(fw)
    try:  # stop() also removes the temporary flash image, whether programming or booting failed
        em.program(spec.data)
        em.start()
        info = device_info(em.port)
        if info.active is None or info.active.get("sha256") != spec.sha256:
            raise DeviceError(f"the emulated {fw.target} board did not load the programmed model",
                              "rebuild the firmware: edgert device firmware --target " + fw.target)
        with connect(em.port) as link:
            res = invoke(link, [np.zeros(t.shape, t.dtype).tobytes() for t in spec.inputs], info=info)
    finally:
        em.stop()
    return EmulatedMeasurement(arena_bytes=info.arena_used, instructions=res.instructions,
                               board=f"{fw.board.machine} ({fw.board.core.name})", target=fw.target,
                               kernels=fw.kernels)
