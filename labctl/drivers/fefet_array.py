"""FefetHardwareArray: the Array interface on a two-FeFET die (seed 001) at a probe station.

Each cell is a sparsity FeFET in series with a weight FeFET between its row's source line
and its column's bit line; the weight FeFETs' gates run along the rows (the word lines),
the sparsity FeFETs' gates along the columns (``wiring.mapping.sparsity``), as in seed 001's
array (Ext. Data Fig. 6: update lines across the rows, sparsity lines down the columns).

- ``read`` / ``sweep`` / ``mvm``: the SMU on the cell's bit line, its source line grounded,
  the gate source-meter holding the read gate on its word line and its sparsity line.
- ``pulse``: gate pulses on the weight FeFET.  The generator drives the cell's word line;
  the cell's bit line is grounded, so its ferroelectric sees the whole pulse; every other bit
  line is held by the gate source-meter at ``chip.inhibit_fraction`` of the pulse (the V/2
  scheme), so the other cells of the row see at most half of it, below the coercive voltage.
- ``mask``: the same on the sparsity FeFETs: the generator on the cell's sparsity line, its
  source line grounded, the other source lines at the inhibit level; ``chip.mask_set_V``
  programs it on, ``-chip.mask_reset_V`` off.

The addressing scheme is this module's, not the seed's (which does not give one): check on
your die that half the pulse disturbs no cell (`labctl run ...` on a test pattern, or the
emulator with your preset), and set ``chip.inhibit_fraction`` to what your die needs.
Every level is checked against the station limits before anything is sent: pulses and
inhibit levels against ``limits.max_voltage_V`` (as the simulator checks a FeFET's write
gate), read gates against ``limits.max_gate_voltage_V``, and what the unselected cells of a
pulse see (``max(f, 1 - f) |V|``) against ``chip.max_disturb_V``, below the coercive voltage.

Not done here: the inhibit level is held on the channel lines for the whole burst (between
its pulses too, the other cells of the pulsed gate line see ``-f V`` as DC), and the lines
of the scheme that are not driven float; a V/3 scheme with a second generator channel
would bias every line only during the pulse.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from labctl.array import Cells
from labctl.drivers.hardware_array import HardwareArray, Route
from labctl.errors import LimitError


class FefetHardwareArray(HardwareArray):
    """A two-FeFET die: weight FeFETs pulsed on the word lines, sparsity FeFETs on the
    sparsity lines, the unselected cells inhibited through their channel lines."""

    technology = "fefet-2t"

    def routes_for(self, source: str | tuple[str, ...], row: int, col: int) -> tuple[Route, ...]:
        """Read routes: as a 1T1R cell's, plus the cell's sparsity line on the gate source."""
        w = self.station.wiring
        return (*super().routes_for(source, row, col), (w.gate_input, w.sparsity_gate(col)))

    def pulse(self, cells: Cells, amplitude_V: float | npt.ArrayLike, width_s: float, *,
              gate_V: float | None = None, count: int | npt.ArrayLike = 1) -> None:
        """Gate pulses on the weight FeFETs (positive potentiates); ``gate_V`` (the read
        gate) plays no part, as in the simulator."""
        if gate_V is not None:
            self._gate_value(gate_V)   # still a level someone asked for: within the limits
        self._gate_pulses(cells, amplitude_V, width_s, count, line="word")

    def mask(self, cells: Cells, enabled: bool | npt.ArrayLike) -> None:
        """Program the cells' sparsity FeFETs on (enabled) or off with gate pulses."""
        r, c = cells.indices(self._info.shape)
        en = np.broadcast_to(np.asarray(enabled, dtype=bool), r.shape)
        chip = self.station.chip
        amp = np.where(en, chip.mask_set_V, -chip.mask_reset_V)
        self._gate_pulses(Cells.at(r, c), amp, chip.mask_width_s, chip.mask_pulses,
                          line="sparsity")

    def _gate_pulses(self, cells: Cells, amplitude_V: float | npt.ArrayLike, width_s: float,
                     count: int | npt.ArrayLike, *, line: str) -> None:
        r, c, amp, phys, n = self._pulse_plan(cells, amplitude_V, count)
        lim, chip = self._info.limits, self.station.chip
        lim.check_voltage(phys, terminal="write gate")
        inhibit = phys * chip.inhibit_fraction
        lim.check_voltage(inhibit)          # on the bit or source lines
        lim.check_width(float(width_s))
        seen = chip.disturb_V(phys)
        if chip.max_disturb_V is not None and np.any(seen > chip.max_disturb_V):
            k = int(np.argmax(seen))
            raise LimitError(f"a {phys[k]:g} V gate pulse puts {seen[k]:g} V on the unselected "
                             f"cells (inhibit_fraction {chip.inhibit_fraction:g}), more than "
                             f"chip.max_disturb_V = {chip.max_disturb_V:g} V: they would "
                             "switch too", quantity="disturb voltage", value=float(seen[k]),
                             limit=chip.max_disturb_V)
        active = np.flatnonzero((n > 0) & (amp != 0))
        if active.size == 0:
            return
        # one inhibit level and one generator setting per group of equal pulses
        order = active[np.lexsort((n[active], phys[active]))]
        with self._operation("pulse", active.size):
            for k in order.tolist():
                self._pulser_to(float(phys[k]), float(width_s), int(n[k]))
                # relays switch with the hold source at 0 V, never at the inhibit level
                self._gate_to(0.0)
                self._close(self._pulse_routes(line, int(r[k]), int(c[k])))
                self._gate_to(float(inhibit[k]))
                self.pulser.fire()
            self._gate_to(0.0)                # before the routes open at the operation's end

    def _pulse_routes(self, line: str, row: int, col: int) -> tuple[Route, ...]:
        """The generator on the cell's gate line, the cell's channel line grounded, the other
        channel lines at the inhibit level (the gate source-meter); the rest floats."""
        w = self.station.wiring
        pulse, ground, hold = w.inputs["pulse"], w.inputs["ground"], w.gate_input
        if line == "word":
            channel = [w.bit(j) for j in range(self._info.cols)]
            return ((pulse, w.word(row)), (ground, channel[col]),
                    *((hold, p) for j, p in enumerate(channel) if j != col))
        channel = [w.source(i) for i in range(self._info.rows)]
        return ((pulse, w.sparsity_gate(col)), (ground, channel[row]),
                *((hold, p) for i, p in enumerate(channel) if i != row))
