"""Latency and energy of the index-free two-FeFET array against an index-based sparse layout
and a dense network, from event counts measured by the run and per-event costs in a TOML file.

Seed 001 (Ning et al., Nat. Electron. 8, 222, 2025) reports, from NeuroSim simulations of
VGG-8, ~10x lower latency and ~9x lower energy than a dense network of equal accuracy; its
cost parameters are not published, so this model is our own, with every per-event cost in
``cost_fefet.toml`` (cited or marked placeholder).  Designs:

* ``index_free`` - the two-FeFET arrays as trained: all ``rows x cols`` cell pairs are present,
  masked ones conduct ``g_off``; one MVM drives every row; ADCs sized to the largest number
  of active rows of a column; updates as measured on the main run (VAU line slots, or
  cell-by-cell pulses); the binary mask is rewritten row by row at each topology update (one
  enable and one disable slot per row).
* ``index_free_cell`` - the same arrays updated cell by cell (events of the exact run).
* ``index_based`` - the same ``nnz`` weights packed column-wise into ``K x cols`` arrays
  (``K`` = the largest active count of a column) with a ``ceil(log2 rows)``-bit row index per
  weight in SRAM.  Rows no longer carry one input for every column, so every MVM first reads
  the indices and gathers each cell's input, ``gather_columns`` columns per pass; updates are
  cell by cell through the index (a vector update needs a regular layout: events of the exact
  run); every moved connection rewrites its index and programs a fresh cell.
* ``dense`` - the same network without pruning (its accuracy is measured by the same run:
  the "dense network of equal accuracy" is taken to be the same architecture trained dense),
  with the update events measured on its own run (same update rule as the main run).

Every design pays the digital work of its update (the per-cell gradient matrix for cell-by-cell
updates, only the vectors for the VAU) and RigL's dense regrowth gradient at each topology
update.

The headline ``latency_ratio``/``energy_ratio`` are dense / index-free per inference (one
sample through the network); the training-run figures are stored beside them.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

from labctl.errors import ConfigError
from labctl.pipelines.param_file import check_values, read_sections

DEFAULT_FILE = "cost_fefet.toml"
DESIGNS = ("index_free", "index_free_cell", "index_based", "dense")
_INT_KEYS = ("adc_base_bits", "adc_max_bits", "columns_per_adc", "index_bits_per_cycle",
             "gather_columns")


@dataclass(frozen=True)
class CostParams:
    """Per-event costs (see ``cost_fefet.toml`` for the sources)."""

    read_time_s: float
    pulse_time_s: float
    pulse_energy_J: float
    line_energy_J: float
    mask_write_J: float
    mask_write_time_s: float
    adc_base_bits: float
    adc_max_bits: float
    adc_time_per_bit_s: float
    adc_fom_J: float
    columns_per_adc: float
    dac_row_J: float
    index_bit_read_J: float
    index_bit_write_J: float
    index_bits_per_cycle: float
    index_cycle_s: float
    gather_J: float
    gather_columns: float
    mac_J: float
    macs_per_s: float
    # the gate pulse the per-pulse costs above are given for (optional in a file; a run's own
    # pulse rescales them: :meth:`for_pulse`)
    pulse_ref_V: float = 2.0
    pulse_ref_width_s: float = 100e-6

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def for_pulse(self, amplitude_V: float, width_s: float) -> CostParams:
        """The costs of the pulse a run actually sends: a pulse slot lasts its width, and a
        pulse's gate energy and a slot's line energy are capacitive, C V**2 (scaled by
        ``(V / pulse_ref_V)**2``).  Mask writes are separate pulses and keep their costs."""
        if self.pulse_ref_V <= 0 or self.pulse_ref_width_s <= 0:
            raise ConfigError("cost model: pulse_ref_V and pulse_ref_width_s must be > 0",
                              key="pulse_ref_V")
        v2 = (abs(float(amplitude_V)) / self.pulse_ref_V) ** 2
        stretch = float(width_s) / self.pulse_ref_width_s
        return replace(self, pulse_time_s=self.pulse_time_s * stretch,
                       pulse_energy_J=self.pulse_energy_J * v2,
                       line_energy_J=self.line_energy_J * v2,
                       pulse_ref_V=abs(float(amplitude_V)), pulse_ref_width_s=float(width_s))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CostParams:
        optional = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        return cls(**check_values({**optional, **values}, [f.name for f in fields(cls)],
                                  "cost model", whole=_INT_KEYS))


def load_cost_model(path: str | None = None) -> CostParams:
    """Read a cost-model TOML (sections are for the reader; keys must be unique)."""
    return CostParams.from_dict(read_sections(path, "labctl.pipelines.sparse", DEFAULT_FILE,
                                              "cost model", "cost_model"))


# --- the measured workload ---------------------------------------------------------------------
@dataclass(frozen=True)
class LayerLoad:
    """One layer as measured: shape, active weights, inputs and conductances."""

    rows: int
    cols: int
    nnz: int               # active weights of the sparse network
    max_col_nnz: int       # largest number of active rows in one column
    input_ms: float        # mean of x^2 of the layer inputs (x in [0, 1] of full scale)
    g_on_S: float          # mean conductance of an active cell
    g_off_S: float         # mean conductance of a masked cell


@dataclass(frozen=True)
class UpdateLoad:
    """Per-step update events of one design's training run (means over its steps)."""

    mode: str              # "vau", "cell" or "cell-batch"
    pulses: float          # gate pulses on weight FeFETs
    slots: float           # pulse time slots (VAU: parallel line slots; cell: per-cell pulses)
    mask_writes: float     # sparsity-FeFET writes (topology updates), per step
    moved: float           # connections moved by topology updates, per step
    topology_updates: float = 0.0   # topology updates per step


@dataclass(frozen=True)
class Workload:
    layers: tuple[LayerLoad, ...]
    read_voltage_V: float
    batch: int
    steps: int
    topology_period: int


# --- analog MVM ---------------------------------------------------------------------------------
def adc_bits(active_rows: int, p: CostParams) -> int:
    need = p.adc_base_bits + math.ceil(math.log2(max(active_rows, 0) + 1))
    return int(min(p.adc_max_bits, max(need, 1)))


def _mvm(driven_rows: int, outputs: int, active_per_output: int, cells_on: float,
         cells_off: float, lay: LayerLoad, v_V: float, p: CostParams) -> tuple[float, float]:
    """(latency, energy) of one differential MVM: two arrays, one conversion per output."""
    bits = adc_bits(active_per_output, p)
    t = p.read_time_s + math.ceil(outputs / p.columns_per_adc) * bits * p.adc_time_per_bit_s
    cell_J = 2 * lay.input_ms * v_V ** 2 * p.read_time_s * (cells_on * lay.g_on_S
                                                          + cells_off * lay.g_off_S)
    e = cell_J + outputs * p.adc_fom_J * 2.0 ** bits + driven_rows * p.dac_row_J
    return t, e


def _index_bits(lay: LayerLoad) -> int:
    return max(1, math.ceil(math.log2(lay.rows)))


def layer_inference(design: str, lay: LayerLoad, v_V: float, p: CostParams, *,
                    backward: bool = False) -> tuple[float, float]:
    """(latency, energy) of one sample through one layer (``backward``: the transposed MVM)."""
    n_in, n_out = (lay.cols, lay.rows) if backward else (lay.rows, lay.cols)
    size = lay.rows * lay.cols
    if design == "dense":
        return _mvm(n_in, n_out, n_in, size, 0, lay, v_V, p)
    per_out = lay.max_col_nnz if not backward else math.ceil(lay.nnz / lay.rows)
    if design in ("index_free", "index_free_cell"):
        return _mvm(n_in, n_out, per_out, lay.nnz, size - lay.nnz, lay, v_V, p)
    # index-based: fetch every index, gather every cell's input, column-group passes
    bits = lay.nnz * _index_bits(lay)
    t_idx = math.ceil(bits / p.index_bits_per_cycle) * p.index_cycle_s
    e_idx = bits * p.index_bit_read_J + lay.nnz * p.gather_J
    passes = math.ceil(n_out / p.gather_columns)
    t_pass, _ = _mvm(0, min(n_out, int(p.gather_columns)), per_out, 0, 0, lay, v_V, p)
    _, e_mvm = _mvm(passes * lay.max_col_nnz, n_out, per_out, lay.nnz, 0, lay, v_V, p)
    return t_idx + passes * t_pass, e_idx + e_mvm


def inference(design: str, w: Workload, p: CostParams) -> tuple[float, float]:
    """(latency s, energy J) of one sample through the whole network."""
    parts = [layer_inference(design, lay, w.read_voltage_V, p) for lay in w.layers]
    return sum(t for t, _ in parts), sum(e for _, e in parts)


# --- training ------------------------------------------------------------------------------------
def _update(design: str, u: UpdateLoad, w: Workload, p: CostParams) -> tuple[float, float]:
    """(latency, energy) of the update, topology change and digital work of one step."""
    cells = sum(lay.rows * lay.cols for lay in w.layers)
    lines = sum(lay.rows + lay.cols for lay in w.layers)
    driven = lines if u.mode == "vau" else 2 * len(w.layers)
    t = u.slots * p.pulse_time_s
    e = u.pulses * p.pulse_energy_J + u.slots * driven * p.line_energy_J
    # digital: the exact update needs the per-cell matrix; the VAU only the vectors
    macs: float = w.batch * (lines if u.mode == "vau" else cells)
    macs += w.batch * cells * u.topology_updates   # RigL's dense regrowth gradient
    t += macs / p.macs_per_s
    e += macs * p.mac_J
    if design == "index_based":
        idx_bits = sum(_index_bits(lay) * lay.nnz for lay in w.layers) / max(cells, 1)
        addressed = u.slots  # every addressed pulse looks up its cell's index
        t += addressed * idx_bits / p.index_bits_per_cycle * p.index_cycle_s
        e += addressed * idx_bits * p.index_bit_read_J
        e += u.moved * (idx_bits * p.index_bit_write_J + 2 * p.mask_write_J)
        t += u.moved * p.mask_write_time_s
    else:
        # the mask is binary: written row by row, one enable and one disable slot per row
        e += u.mask_writes * p.mask_write_J
        t += u.topology_updates * sum(2 * lay.rows for lay in w.layers) * p.mask_write_time_s
    return t, e


def training_step(design: str, u: UpdateLoad, w: Workload, p: CostParams) -> tuple[float, float]:
    """(latency, energy) of one mini-batch step: forward and backward MVMs, then the update."""
    t_mvm = e_mvm = 0.0
    for k, lay in enumerate(w.layers):
        for backward in (False, True) if k > 0 else (False,):
            t, e = layer_inference(design, lay, w.read_voltage_V, p, backward=backward)
            t_mvm += t
            e_mvm += e
    t_up, e_up = _update(design, u, w, p)
    return w.batch * t_mvm + t_up, w.batch * e_mvm + e_up


def compare(w: Workload, updates: dict[str, UpdateLoad], p: CostParams) -> dict[str, Any]:
    """Per design: inference and training-run latency/energy; ratios against index-free."""
    out: dict[str, Any] = {"designs": list(DESIGNS)}
    for key in ("inference_latency_s", "inference_energy_J", "train_latency_s",
                "train_energy_J"):
        out[key] = []
    for design in DESIGNS:
        t_inf, e_inf = inference(design, w, p)
        u = updates.get(design)
        if u is None:
            t_tr = e_tr = float("nan")
        else:
            t_step, e_step = training_step(design, u, w, p)
            t_tr, e_tr = w.steps * t_step, w.steps * e_step
        out["inference_latency_s"].append(t_inf)
        out["inference_energy_J"].append(e_inf)
        out["train_latency_s"].append(t_tr)
        out["train_energy_J"].append(e_tr)
    return out


def ratios(table: dict[str, Any], key: str, design: str) -> float:
    """``design`` over ``index_free`` for one column of :func:`compare`'s table."""
    names = list(table["designs"])
    ref = table[key][names.index("index_free")]
    val = table[key][names.index(design)]
    return float(val / ref) if ref and math.isfinite(ref) and math.isfinite(val) else float("nan")
