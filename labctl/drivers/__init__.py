"""Instrument drivers (SMU, pulse generator, switching matrix) and the HardwareArray."""
