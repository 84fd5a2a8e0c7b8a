"""An emulated Zephyr board on a real pseudo-terminal, speaking SMP serial (``python -m firmware_tools.sim``).

The simulator owns the master side of a pty; hosts open the slave (through a
stable symlink, :attr:`Simulator.port`) with pyserial like any
``/dev/ttyACM0``. Bytes are paced at the configured line rate in both
directions, so throughput and timeouts behave like a real UART. Handlers
implement the OS, Image and File groups and the edgert group (PROTOCOL.md) on a
file-backed flash (:mod:`firmware_tools.sim_store`); INVOKE runs the real
TFLite Micro interpreter under the profile's RAM.

One module per concern:

* :mod:`~firmware_tools.sim.board`: :class:`Simulator`, which wires the parts, boots and reboots, answers OS and INFO
* :mod:`~firmware_tools.sim.line`: the pty and its pacing
* :mod:`~firmware_tools.sim.smp`: frames in, requests routed, replies out
* :mod:`~firmware_tools.sim.models`: A/B model slots (File group, ACTIVATE, ROLLBACK)
* :mod:`~firmware_tools.sim.mcuboot`: MCUboot image slots (Image group, swap/revert on reset)
* :mod:`~firmware_tools.sim.uploads`: the offset rules both uploads share
* :mod:`~firmware_tools.sim.tflm`: INVOKE and the tensor transfers on TFLite Micro
* :mod:`~firmware_tools.sim.faults`: the ``--fault`` plan
* :mod:`~firmware_tools.sim.__main__`: the command line of ``python -m firmware_tools.sim``
"""

from firmware_tools.sim.board import DEFAULT_BUF_COUNT, DEFAULT_BUF_SIZE, IMAGE_OVERHEAD, Simulator, describe
from firmware_tools.sim.faults import Faults

__all__ = ["Faults", "Simulator", "DEFAULT_BUF_SIZE", "DEFAULT_BUF_COUNT", "IMAGE_OVERHEAD", "describe"]
