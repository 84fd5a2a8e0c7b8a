"""The device simulator: an emulated SMP board on a real pseudo-terminal (``python -m firmware_tools.sim``)."""

from firmware_tools.sim.device import Faults, Simulator
from firmware_tools.sim.store import FlashStore, PowerLoss

__all__ = ["Faults", "FlashStore", "PowerLoss", "Simulator"]
