"""What each instrument model can do at most (datasheet figures), for station validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labctl.errors import ConfigError


@dataclass(frozen=True)
class Capability:
    """What one instrument model can do at most (datasheet figures) and which role it plays."""

    role: str
    max_voltage_V: float = 0.0
    max_current_A: float = 0.0
    min_width_s: float = 0.0
    max_width_s: float = 0.0
    inputs: int = 0
    outputs: int = 0
    #: (first, last) digital I/O trigger line of an SMU that runs the on-instrument verify
    #: loop (``[wiring.triggers]``); (0, 0) where the driver has none
    trigger_lines: tuple[int, int] = (0, 0)


# Datasheet limits per driver (reference/instruments.md).  Matrix port counts are for a fully
# populated mainframe; a serial relay board states its size in its options.
CAPABILITIES: dict[str, Capability] = {
    "keithley-2450": Capability("smu", max_voltage_V=200.0, max_current_A=1.05),
    "keithley-2636b": Capability("smu", max_voltage_V=200.0, max_current_A=1.5,
                                 trigger_lines=(1, 14)),   # digio.trigger[1..14] [src: 2600B]
    # B2902A: 1.5 A is the DC limit (3.03 A only pulsed), the compliance the driver takes
    "keysight-b2902a": Capability("smu", max_voltage_V=210.0, max_current_A=1.5),
    # 33500B: +/-10 V into high-Z, 16 ns minimum width [mem]; 81150A: +/-10 V high-Z (+/-5 V
    # into 50 ohm), width >= 4.1 ns [mem].
    "keysight-33500b": Capability("pulse", max_voltage_V=10.0, min_width_s=16e-9,
                                  max_width_s=1000.0),
    "keysight-81150a": Capability("pulse", max_voltage_V=10.0, min_width_s=4.1e-9,
                                  max_width_s=999.5),
    # 707B: 8 rows (A-H) x 12 columns x 6 slots; B2200A: 14 inputs x 12 outputs x 4 cards.
    "keithley-707b": Capability("matrix", max_voltage_V=200.0, max_current_A=1.0, inputs=8,
                                outputs=72),
    "keysight-b2200": Capability("matrix", max_voltage_V=200.0, max_current_A=1.0, inputs=14,
                                 outputs=48),
    # home-built relay box: its size is stated in the station options (inputs/outputs)
    "serial-relay": Capability("matrix", max_voltage_V=50.0, max_current_A=0.5, inputs=8,
                               outputs=64),
}


def matrix_size(spec: Any) -> tuple[int, int]:
    """(input ports, output ports) of the matrix as its driver options configure it."""
    o = spec.options
    try:
        if spec.driver == "keithley-707b":
            return int(o.get("rows", 8)), int(o.get("columns", 12)) * int(o.get("slots", 1))
        if spec.driver == "keysight-b2200":
            return int(o.get("inputs", 14)), int(o.get("outputs", 12))
        if spec.driver == "serial-relay":
            return int(o.get("rows", 8)), int(o.get("columns", 8))
    except (TypeError, ValueError):
        raise ConfigError("station file: instruments.matrix.options must give integer sizes",
                          key="instruments.matrix.options") from None
    cap = CAPABILITIES[spec.driver]
    return cap.inputs, cap.outputs
