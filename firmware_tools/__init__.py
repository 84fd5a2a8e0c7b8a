"""firmware_tools: put models on microcontrollers over serial (SMP), validate them there, export C arrays."""

__all__ = ["cli", "errors", "flash", "framing", "link", "protocol", "signing", "sim", "sim_store", "validate"]
