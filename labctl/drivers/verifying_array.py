"""HardwareArray with the program-verify loop run by the SMU itself (ProgramVerifyCapable).

The 2636B runs the loop of devices.md as a TSP script (reference/instruments.md 2.7): it
reads the cell, asserts a digio trigger line wired to the Trig In of the set or the reset
generator channel, and repeats until the conductance is in the band -- one VISA round
trip per cell instead of several per pulse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.array import Cells, FloatArray, IntArray
from labctl.drivers.hardware_array import HardwareArray
from labctl.drivers.roles import PulseGenerator
from labctl.errors import LimitError


class VerifyingHardwareArray(HardwareArray):
    """A station whose SMU runs the program-verify loop itself (ProgramVerifyCapable).

    Needs a 2600B-style SMU with an on-box verify script, two generator channels (set on
    ``pulse``, reset on ``pulse_reset``) armed for external triggers, and the SMU's digio
    lines wired to their trigger inputs (``[wiring.triggers]``).  Per cell: one exclusive
    close that puts the SMU and both generators on the bit line, then one round trip that
    reads, pulses and re-reads inside the instrument until the cell is in its band.
    """

    def program_verify(self, cells: Cells, targets_S: npt.ArrayLike, tolerance: float, *,
                       max_pulses: int, set_V: npt.ArrayLike, reset_V: npt.ArrayLike,
                       width_s: float, gate_V: float | None = None
                       ) -> tuple[FloatArray, IntArray, IntArray]:
        """(conductance_S, pulses or -1, set pulses) per cell: the SMU's script runs the loop
        and reports how many of its pulses were sets."""
        r, c = cells.indices(self._info.shape)
        t = np.broadcast_to(np.asarray(targets_S, dtype=float), r.shape)
        pol = self._info.set_polarity
        up = np.broadcast_to(np.asarray(set_V, dtype=float), r.shape) * pol
        down = np.broadcast_to(np.asarray(reset_V, dtype=float), r.shape) * pol
        lim = self._info.limits
        lim.check_voltage(up)
        lim.check_voltage(down)
        lim.check_width(float(width_s))
        if not 0 < tolerance < 0.5:
            raise LimitError(f"tolerance {tolerance} must be in (0, 0.5)", quantity="tolerance")
        g = self._gate_value(gate_V)
        v_read = self._info.read_voltage_V
        g_out = np.full(r.size, np.nan)
        p_out = np.full(r.size, -1, dtype=np.int64)
        s_out = np.zeros(r.size, dtype=np.int64)
        reset_gen: PulseGenerator = self.instruments["pulse_reset"]  # type: ignore[assignment]
        smu: Any = self.smu
        pulses = 0
        with self._operation("read", 0) as op:
            self._gate_to(g)
            self._smu_ready(self._read_compliance())
            if not self._script_loaded:
                smu.load_verify_script(set_line=self.station.wiring.set_line,
                                       reset_line=self.station.wiring.reset_line)
                self._script_loaded = True
            for k in np.lexsort((down, up)).tolist():
                self._arm(reset_gen, float(up[k]), float(down[k]), float(width_s))
                self._connect(("smu", "pulse", "pulse_reset"), int(r[k]), int(c[k]))
                self._smu_on_()
                out = smu.program_verify(read_voltage_V=v_read, g_low_S=t[k] * (1 - tolerance),
                                         g_high_S=t[k] * (1 + tolerance), max_pulses=max_pulses)
                g_out[k] = out.conductance_S
                p_out[k] = out.pulses if out.converged else -1
                s_out[k] = out.set_pulses
                pulses += int(out.pulses)
            # the loop read each cell once and after each pulse: its time is shared out
            # over those reads and pulses alike (their cost inside the SMU is not told apart)
            op.shares = {"read": r.size + pulses, "pulse": pulses}
        return g_out, p_out, s_out

    def _arm(self, reset_gen: PulseGenerator, up_V: float, down_V: float, width_s: float) -> None:
        """Both generator channels armed for one external trigger each (set, reset)."""
        key = (up_V, down_V, width_s)
        if self._armed == key:
            return
        for gen, amp in ((self.pulser, up_V), (reset_gen, down_V)):
            gen.configure_pulse(amplitude_V=amp, width_s=width_s, count=1,  # type: ignore[call-arg]
                                trigger="EXT", **self._pulse_extras(gen, width_s))
            gen.output(True)
        self._pulse_on = True
        self._pulse_cfg = None
        self._armed = key


