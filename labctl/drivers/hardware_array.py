"""HardwareArray: the Array interface over an SMU, a pulse generator and a switching matrix.

Each Array operation is the sequence a bench engineer writes (DESIGN.md, Safety):
every voltage is checked against the station limits before anything is sent; the cell is
routed with an exclusive close (bit line to the SMU or the generator, word line to the
gate source, source line to ground); the SMU's compliance is set before its output goes
on; the generator pulses, the SMU reads; the routes open at the end of the operation.
As a context manager, any exit -- normal, error, timeout, Ctrl-C/SIGTERM (which the CLI
turns into KeyboardInterrupt) -- leaves every output off and every route open.

Sign conventions: pulse amplitudes are semantic (positive = set); the bit-line voltage is
``chip.set_polarity * amplitude``.  Sweep and read voltages are physical.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.array import ArrayInfo, Cells, FloatArray, SweepResult
from labctl.drivers.bench_lock import BenchLock
from labctl.drivers.bench_open import clear_stale_errors, identify_all, instrument_names
from labctl.drivers.links import Links, station_from_description
from labctl.drivers.roles import Instrument, PulseGenerator, SourceMeter, SwitchMatrix
from labctl.drivers.station import Station, load_station
from labctl.errors import ConfigError, InstrumentError, LimitError
from labctl.interrupts import interrupts_deferred
from labctl.operation_time import OperationTimes

log = logging.getLogger(__name__)

Route = tuple[int, int]

LINE_FREQUENCY_HZ = 50.0


class HardwareArray:
    """The Array interface on a probe station described by a station file."""

    #: True when the instruments are a replayed transcript (no bench behind)
    replaying = False
    #: route changes (exclusive closes) so far: each is one relay actuation time on a bench
    switches = 0
    #: the instruments' locks while this process drives them (None: replay, or not yet held)
    _bench_lock: BenchLock | None = None
    #: the die this class drives (two-FeFET dies: fefet_array.FefetHardwareArray)
    technology = "1t1r-reram"

    def __init__(self, station: Station, instruments: dict[str, Instrument], *,
                 links: Links | None = None) -> None:
        if station.chip.technology != self.technology:
            raise ConfigError(f"{type(self).__name__} drives {self.technology} chips; this "
                              f"station's is {station.chip.technology}", key="chip.technology")
        self.station = station
        self.instruments = instruments
        self.links = links
        self.smu: SourceMeter = instruments["smu"]  # type: ignore[assignment]
        self.pulser: PulseGenerator = instruments["pulse"]  # type: ignore[assignment]
        self.matrix: SwitchMatrix = instruments["matrix"]  # type: ignore[assignment]
        self.gate: SourceMeter | None = instruments.get("gate")  # type: ignore[assignment]
        chip, lim = station.chip, station.limits
        self._info = ArrayInfo(rows=chip.rows, cols=chip.cols, technology=chip.technology,
                               limits=lim, g_min_S=chip.g_min_S, g_max_S=chip.g_max_S,
                               read_voltage_V=chip.read_voltage_V,
                               gate_voltage_V=chip.gate_voltage_V,
                               set_polarity=chip.set_polarity,
                               selector_resistance_ohm=chip.selector_resistance_ohm,
                               description=f"station {station.name} {chip.rows}x{chip.cols}")
        # the die's clock is wall-clock time (POSIX seconds), advanced monotonically within
        # this process: times a run records stay comparable across processes (a resumed
        # retention run, an inference of yesterday's transfer)
        self._t0 = time.monotonic()
        self._epoch0 = time.time()
        self._identity: dict[str, str] = {}
        self._smu_compliance: float | None = None
        self._smu_on = False
        self._gate_level: float | None = None
        self._pulse_cfg: tuple[float, float, int] | None = None
        self._pulse_on = False
        self._armed: tuple[float, float, float] | None = None
        self._script_loaded = False
        self._route: tuple[Route, ...] | None = None
        self._ops_since_check = 0
        #: cell operations and the time they took, per kind: the station's pace (not kept
        #: for an emulated die on a frozen clock, which does not age while the bench works)
        self.operation_times = OperationTimes()
        emulation = station.emulation
        self._paced = emulation is None or emulation.clock != "frozen"
        self._sleep: Callable[[float], None] = time.sleep
        self._closed = False
        #: roles that did not answer at open, or answered as another instrument: the safe
        #: shutdown leaves them alone (it would only send them commands they cannot take)
        self._unreachable: set[str] = set()
        #: roles whose safe shutdown was not confirmed (warned about once)
        self._unconfirmed: set[str] = set()
        #: transcript entries per resource already handed out by take_transcript()
        self._transcript_taken: dict[str, int] = {}
        try:
            self._open_bench()
        except BaseException:
            self._shutdown()
            raise

    def _open_bench(self) -> None:
        """Before any output, source or route command: every instrument is the one its
        driver expects, stale errors are cleared; then every output off, every route open."""
        self._identity, failed = identify_all(self.station, self.instruments)
        if failed:
            self._unreachable = set(failed)
            raise next(iter(failed.values()))
        clear_stale_errors(self.station, self.instruments)
        self.safe()

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_station(cls, path: str | Path, *, record: bool = True) -> HardwareArray:
        """Validate the station file, open every instrument, leave the bench safe.

        With ``record`` every command and response is kept (:attr:`transcript`) so the
        CLI stores it in the run file and ``from_transcript`` can replay it offline.
        """
        station = load_station(path)
        # one process per bench: held until close (bench_lock.py)
        lock = BenchLock.acquire((spec.resource for spec in station.instruments.values()),
                                 names=instrument_names(station))
        try:
            array = cls._build(station, Links.open(station, record=record))
        except BaseException:
            lock.release()
            raise
        array._bench_lock = lock
        return array

    @classmethod
    def from_transcript(cls, backend: dict[str, Any], transcript: dict[str, Any]) -> HardwareArray:
        """Rebuild a recorded hardware run with no instrument: the same drivers answer from
        the transcript of the run file.

        ``backend`` is the run file's backend description (it carries the station file's
        text); ``transcript`` maps ``resource``, ``direction``, ``text`` and ``time_s`` to
        equal-length sequences (the run file's ``transcript/*`` datasets).  The first command
        that differs from the recording raises ``TranscriptMismatch`` (an InstrumentError)
        naming it.  Waits do not sleep.
        """
        station = station_from_description(backend)
        links = Links.open(station, replay=Links.entries(transcript))
        array = cls._build(station, links)
        array._sleep = lambda s: None
        array.replaying = True
        return array

    @classmethod
    def from_run_file(cls, reader: Any) -> HardwareArray:
        """``from_transcript`` on an open run file (a RunReader: ``backend``, ``data(name)``).

        This is ``labctl replay --backend transcript``: the protocol re-executed on the
        result gives the recorded reads and summary, or TranscriptMismatch at the first
        command that differs.
        """
        if "transcript/text" not in reader:
            raise ConfigError(f"{getattr(reader, 'path', 'the run file')} holds no instrument "
                              "transcript (only hardware runs record one)", key="backend")
        names = ("resource", "time_s", "direction", "text")
        return cls.from_transcript(reader.backend,
                                   {n: reader.data(f"transcript/{n}") for n in names})

    @classmethod
    def _build(cls, station: Station, links: Links) -> HardwareArray:
        try:
            instruments = links.drivers(station)
        except BaseException:
            links.close()
            raise
        if station.chip.technology == "fefet-2t" and cls is HardwareArray:
            from labctl.drivers.fefet_array import FefetHardwareArray

            return FefetHardwareArray(station, instruments, links=links)
        native = (station.wiring.set_line is not None
                  and callable(getattr(instruments["smu"], "program_verify", None)))
        if native and cls is HardwareArray:
            from labctl.drivers.verifying_array import VerifyingHardwareArray

            return VerifyingHardwareArray(station, instruments, links=links)
        return cls(station, instruments, links=links)

    # --- Array interface ---------------------------------------------------------------------
    @property
    def info(self) -> ArrayInfo:
        return self._info

    @property
    def round_trips(self) -> int:
        """VISA (or serial) round trips made by all instruments so far."""
        if self.links is not None:
            return sum(int(t.round_trips) for t in self.links.transports.values())
        return sum(int(getattr(i, "round_trips", 0)) for i in _unique(self.instruments))

    def sweep(self, cells: Cells, voltages_V: npt.ArrayLike, *, gate_V: float,
              compliance_A: float) -> SweepResult:
        v = np.asarray(voltages_V, dtype=float).ravel()
        lim = self._info.limits
        lim.check_voltage(v)
        lim.check_current(float(compliance_A))
        self._check_gate(gate_V)
        r, c = cells.indices(self._info.shape)
        out = np.zeros((r.size, v.size))
        with self._operation("sweep", r.size * v.size):
            self._gate_to(gate_V)
            self._smu_ready(float(compliance_A))
            for k, (row, col) in enumerate(zip(r.tolist(), c.tolist(), strict=True)):
                self._connect("smu", row, col)
                self._smu_on_()
                out[k] = np.asarray(self.smu.sweep(v.tolist()), dtype=float)
                if abs(v[-1]) > self._info.read_voltage_V:
                    self._smu_off()  # never switch relays with a high level on the line
        return SweepResult(voltage_V=v, current_A=out)

    def _pulse_plan(self, cells: Cells, amplitude_V: float | npt.ArrayLike,
                    count: int | npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         np.ndarray, np.ndarray]:
        """(rows, cols, semantic amplitudes, physical amplitudes, counts) per addressed cell."""
        r, c = cells.indices(self._info.shape)
        amp = np.broadcast_to(np.asarray(amplitude_V, dtype=float), r.shape)
        n = np.broadcast_to(np.asarray(count, dtype=np.int64), r.shape)
        if np.any(n < 0):
            raise ValueError("pulse count must be >= 0")
        return r, c, amp, amp * self._info.set_polarity, n

    def pulse(self, cells: Cells, amplitude_V: float | npt.ArrayLike, width_s: float, *,
              gate_V: float | None = None, count: int | npt.ArrayLike = 1) -> None:
        r, c, amp, phys, n = self._pulse_plan(cells, amplitude_V, count)
        self._info.limits.check_voltage(phys)
        self._info.limits.check_width(float(width_s))
        g = self._gate_value(gate_V)
        active = np.flatnonzero((n > 0) & (amp != 0))
        if active.size == 0:
            return
        # group equal (amplitude, count) so the generator is reprogrammed as rarely as possible
        order = active[np.lexsort((n[active], phys[active]))]
        with self._operation("pulse", active.size):
            self._gate_to(g)
            for k in order.tolist():
                self._pulser_to(float(phys[k]), float(width_s), int(n[k]))
                self._connect("pulse", int(r[k]), int(c[k]))
                self.pulser.fire()

    def read(self, cells: Cells, *, voltage_V: float | None = None,
             gate_V: float | None = None) -> FloatArray:
        v = self._info.read_voltage_V if voltage_V is None else float(voltage_V)
        self._info.limits.check_voltage(v)
        if v == 0:
            raise LimitError("cannot read a conductance at 0 V", quantity="read voltage", value=0.0)
        g = self._gate_value(gate_V)
        r, c = cells.indices(self._info.shape)
        out = np.zeros(r.size)
        with self._operation("read", r.size):
            self._gate_to(g)
            self._smu_ready(self._read_compliance())
            for k, (row, col) in enumerate(zip(r.tolist(), c.tolist(), strict=True)):
                self._connect("smu", row, col)
                self._smu_on_()
                out[k] = self.smu.measure_current(v) / v
        return out

    def mask(self, cells: Cells, enabled: bool | npt.ArrayLike) -> None:
        """1T1R: switch a cell out with reset pulses and back in with set pulses (chip.mask_*)."""
        r, c = cells.indices(self._info.shape)
        en = np.broadcast_to(np.asarray(enabled, dtype=bool), r.shape)
        chip = self.station.chip
        amp = np.where(en, chip.mask_set_V, -chip.mask_reset_V)
        self.pulse(Cells.at(r, c), amp, chip.mask_width_s, count=chip.mask_pulses)

    def mvm(self, inputs_V: npt.ArrayLike, *, transpose: bool = False) -> FloatArray:
        """Column currents of row voltages, measured cell by cell and summed (superposition).

        One SMU cannot drive every row at once, so each cell is routed alone and measured
        at every input voltage of the batch in one instrument sweep; the currents of a
        column add up as they would on the shared bit line (IR drop on the lines excluded).
        """
        x = np.asarray(inputs_V, dtype=float)
        squeeze = x.ndim == 1
        x2 = np.atleast_2d(x)
        n_in = self._info.cols if transpose else self._info.rows
        if x2.shape[1] != n_in:
            raise ValueError(f"mvm inputs have {x2.shape[1]} entries, expected {n_in}")
        self._info.limits.check_voltage(x2)
        g = self._gate_value(None)
        n_out = self._info.rows if transpose else self._info.cols
        out = np.zeros((x2.shape[0], n_out))
        cell_inputs = int(np.count_nonzero(x2)) * n_out
        with self._operation("mvm", cell_inputs):
            self._gate_to(g)
            self._smu_ready(self._read_compliance())
            for row in range(self._info.rows):
                for col in range(self._info.cols):
                    vin = x2[:, col] if transpose else x2[:, row]
                    nz = np.flatnonzero(vin)
                    if nz.size == 0:
                        continue
                    self._connect("smu", row, col)
                    self._smu_on_()
                    i = np.asarray(self.smu.sweep(vin[nz].tolist()), dtype=float)
                    out[nz, row if transpose else col] += i
        return out[0] if squeeze else out

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("cannot wait a negative time")
        self._sleep(float(seconds))

    def now(self) -> float:
        return self._epoch0 + (time.monotonic() - self._t0)

    def describe(self) -> dict[str, Any]:
        return {"backend": "station", "station": str(self.station.path),
                "instruments": dict(self._identity),
                "drivers": {k: v.driver for k, v in self.station.instruments.items()},
                "station_toml": self.station.text}

    @property
    def transcript(self) -> dict[str, tuple[Any, str]] | None:
        """Every command/response so far as run-file datasets ``name -> (values, units)``,
        in time order across instruments (``time_s``: POSIX seconds)."""
        if self.links is None or not self.links.recorded:
            return None
        return _transcript_columns(self.links.recorded, {})

    def take_transcript(self) -> dict[str, tuple[Any, str]] | None:
        """Like :attr:`transcript`, but only the entries since the previous call: a run file
        appends them as the run goes."""
        if self.links is None or not self.links.recorded:
            return None
        columns = _transcript_columns(self.links.recorded, self._transcript_taken)
        self._transcript_taken = {res: len(e) for res, e in self.links.recorded.items()}
        return columns

    # --- safety ------------------------------------------------------------------------------
    def safe(self) -> None:
        """Every output off, sources to zero, every route open.  Never raises, and a Ctrl-C
        or SIGTERM arriving meanwhile (a second one, while the first is being handled) waits
        until every instrument has been told: it must not leave one output on."""
        with interrupts_deferred():
            self._safe_all()

    def _safe_all(self) -> None:
        failed: dict[str, str] = {}
        for role in ("pulse", "pulse_reset", "smu", "gate", "matrix"):
            inst = self.instruments.get(role)
            if inst is None or role in self._unreachable:
                continue
            try:
                inst.safe()
                why = getattr(inst, "shutdown_error", None)   # not confirmed after a retry
            except Exception as e:  # noqa: BLE001 - a dead link must not stop the others
                why = str(e)
            if why:
                failed[role] = why
        new = {r: why for r, why in failed.items() if r not in self._unconfirmed}
        if new:   # once per run and role, however often the shutdown is retried
            first = next(iter(new.values()))
            log.warning("safe(): %s did not confirm outputs off / routes open (%s): check "
                        "them by hand", ", ".join(new), first[:200])
        self._unconfirmed |= set(failed)
        self._smu_on = self._pulse_on = False
        self._armed = None
        self._gate_level = None
        self._route = None

    def _recover_links(self) -> None:
        """After a fault: reopen every link so late replies of a stalled or dropped
        connection cannot be mistaken for answers, and safe() reaches every instrument
        (interrupts wait, as in :meth:`safe`)."""
        if self.links is None or self.replaying:
            return
        with interrupts_deferred():
            for t in self.links.transports.values():
                try:
                    t.reconnect()
                except Exception as e:  # noqa: BLE001 - safe() still tries the others
                    log.warning("reconnecting %s failed: %s", getattr(t, "name", t), e)

    def close(self) -> None:
        if self._closed:
            return
        self._shutdown()

    def _shutdown(self) -> None:
        """Outputs off, links closed, bench freed; an interrupt meanwhile waits for all three."""
        with interrupts_deferred():
            if not self.replaying:
                self.safe()
            self._closed = True
            if self.links is not None:
                self.links.close()
            if self._bench_lock is not None:   # the bench is safe and closed: free it (a
                self._bench_lock.release()     # failed safe() keeps it until this process exits)
                self._bench_lock = None

    def __enter__(self) -> HardwareArray:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and not self._closed:
            self._recover_links()
        self.close()

    def check_errors(self) -> None:
        """Drain every instrument's error queue; the first error raises InstrumentError."""
        self._ops_since_check = 0
        for role, inst in self.instruments.items():
            errs = inst.errors()
            if errs:
                code, text = errs[0]
                raise InstrumentError(f"{role} ({self.station.instruments[role].driver}) "
                                      f"reported error {code}: {text}", instrument=role,
                                      code=code, text=text)

    # --- the steps of an operation ------------------------------------------------------------
    def _operation(self, kind: str, cell_ops: int) -> _Operation:
        return _Operation(self, kind, cell_ops)

    def _end_operation(self, ok: bool) -> None:
        if not ok:
            with interrupts_deferred():   # both, before an interrupt meanwhile is raised
                self._recover_links()
                self.safe()
            return
        self._open_routes()
        self._ops_since_check += 1
        if self._ops_since_check >= self.station.timing.error_check_every:
            try:
                self.check_errors()
            except BaseException:   # an instrument that reports an error: nothing stays on
                with interrupts_deferred():
                    self._recover_links()
                    self.safe()
                raise

    def _read_compliance(self) -> float:
        return self._info.limits.max_current_A

    def _gate_value(self, gate_V: float | None) -> float:
        g = self._info.gate_voltage_V if gate_V is None else float(gate_V)
        self._check_gate(g)
        return g

    def _check_gate(self, gate_V: float) -> None:
        self._info.limits.check_voltage(gate_V, terminal="gate")
        fixed = self.station.wiring.gate_fixed_V
        if fixed is not None and abs(gate_V - fixed) > 1e-9:
            raise LimitError(f"gate voltage {gate_V:g} V requested but this station's word lines "
                             f"are fixed at {fixed:g} V", quantity="gate voltage", value=gate_V,
                             limit=fixed)

    def _gate_to(self, gate_V: float) -> None:
        if self.gate is None or self._gate_level == gate_V:
            return
        if self._gate_level is None:
            self.gate.configure(compliance_A=self._info.limits.max_current_A,
                                nplc=self._nplc())
            self.gate.output(True)
        hold = getattr(self.gate, "source_voltage", None)
        if callable(hold):
            hold(gate_V)
        else:
            self.gate.measure_current(gate_V)  # sets the level (and reads the gate leakage)
        self._gate_level = gate_V

    def _nplc(self) -> float:
        return max(0.001, self.station.timing.read_aperture_s * LINE_FREQUENCY_HZ)

    def _smu_ready(self, compliance_A: float) -> None:
        """Compliance (and aperture) before the output goes on; resent only when it changes."""
        if self._smu_compliance != compliance_A:
            self.smu.configure(compliance_A=compliance_A, nplc=self._nplc())
            self._smu_compliance = compliance_A

    def _smu_on_(self) -> None:
        if not self._smu_on:
            assert self._smu_compliance is not None, "compliance must be set before output on"
            self.smu.output(True)
            self._smu_on = True

    def _smu_off(self) -> None:
        if self._smu_on:
            self.smu.output(False)
            self._smu_on = False

    def _pulser_to(self, amplitude_V: float, width_s: float, count: int) -> None:
        cfg = (amplitude_V, width_s, count)
        if self._pulse_cfg != cfg:
            extra = self._pulse_extras(self.pulser, width_s)
            self.pulser.configure_pulse(amplitude_V=amplitude_V, width_s=width_s, count=count,
                                        **extra)
            self._pulse_cfg = cfg
            self._armed = None
        if not self._pulse_on:
            self.pulser.output(True)
            self._pulse_on = True

    def _pulse_extras(self, gen: PulseGenerator, width_s: float) -> dict[str, float]:
        """The station's pulse period, for drivers whose configure_pulse takes one."""
        import inspect

        if "period_s" not in inspect.signature(gen.configure_pulse).parameters:
            return {}
        return {"period_s": max(self.station.timing.pulse_period_s, 2.0 * width_s)}

    def routes_for(self, source: str | tuple[str, ...], row: int, col: int) -> tuple[Route, ...]:
        """Matrix routes that put cell (row, col) on ``source`` ('smu', 'pulse' or several):
        its bit line to the source(s), its word line to the gate, its source line to ground."""
        w = self.station.wiring
        names = (source,) if isinstance(source, str) else source
        return (*((w.inputs[n], w.bit(col)) for n in names), (w.gate_input, w.word(row)),
                (w.inputs["ground"], w.source(row)))

    def _connect(self, source: str | tuple[str, ...], row: int, col: int) -> None:
        self._close(self.routes_for(source, row, col))

    def _close(self, routes: tuple[Route, ...]) -> None:
        """Exactly ``routes`` closed (an exclusive close; nothing sent when they already are)."""
        if routes == self._route:
            return
        self.matrix.connect(list(routes), exclusive=True)
        self._route = routes
        self.switches += 1
        if self.station.timing.settling_s > 0:
            self._sleep(self.station.timing.settling_s)

    def _open_routes(self) -> None:
        if self._route is not None:
            self.matrix.open_all()
            self._route = None


class _Operation:
    """Context of one Array operation: open routes at the end, make safe on any error; a
    completed one adds its cell operations and wall-clock time to the station's pace."""

    def __init__(self, array: HardwareArray, kind: str, cell_ops: int) -> None:
        self.array = array
        #: cell operations per kind; an operation that does several kinds (an on-instrument
        #: loop) sets them all, and its time is shared out in proportion
        self.shares = {kind: cell_ops}
        self.t0 = 0.0

    def __enter__(self) -> _Operation:
        if self.array._closed:
            raise InstrumentError("the hardware array is closed", instrument="station")
        self.t0 = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        self.array._end_operation(exc_type is None)
        total = sum(self.shares.values())
        if exc_type is None and total > 0 and self.array._paced:
            seconds = time.monotonic() - self.t0
            for kind, ops in self.shares.items():
                self.array.operation_times.add(kind, ops, seconds * ops / total)


def _transcript_columns(recorded: dict[str, list[Any]],
                        skip: dict[str, int]) -> dict[str, tuple[Any, str]]:
    """The entries of every resource past its first ``skip[resource]``, merged in time order,
    as run-file columns ``name -> (values, units)``."""
    rows = [(res, t, d, x) for res, entries in recorded.items()
            for t, d, x in entries[skip.get(res, 0):]]
    rows.sort(key=lambda e: e[1])
    return {"resource": (np.array([r[0] for r in rows], dtype=object).astype(str), ""),
            "time_s": (np.array([r[1] for r in rows], dtype=float), "s"),
            "direction": (np.array([r[2] for r in rows], dtype=object).astype(str), ""),
            "text": (np.array([r[3] for r in rows], dtype=object).astype(str), "")}


def _unique(instruments: dict[str, Instrument]) -> Iterator[Instrument]:
    seen: set[int] = set()
    for inst in instruments.values():
        if id(inst) not in seen:
            seen.add(id(inst))
            yield inst
