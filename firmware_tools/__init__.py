"""firmware_tools: put models on microcontrollers over serial (SMP), validate them there, export C arrays."""
