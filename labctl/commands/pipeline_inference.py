"""``labctl pipeline inference RUN.h5``: MVM accuracy of a transferred matrix over time.

RUN.h5 is the run file of a ``labctl program`` transfer.  On the simulator the transfer's
last checkpoint holds the programmed chip; it is re-opened (same preset, size and seed, with
the wire resistance asked for here) and restored.  On a station the chip simply is still
programmed.  The inference writes its own run file whose config names the transfer file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_common, emit
from labctl.errors import ConfigError, DataFormatError

COMMAND = "pipeline inference"
#: the simulator's wire resistance per segment unless --wire-resistance-ohm says otherwise
SIM_WIRE_RESISTANCE_OHM = 0.35


def register(sub: Any) -> None:
    p = sub.add_parser("inference", help="analog MVM accuracy of a transferred matrix, 1 s..10 y",
                       description="Random inputs through the DAC, the chip's MVM (IR drop, "
                       "read noise, relaxation on the array clock) and the ADC; RMSE against "
                       "floating point and its breakdown by cause (seed 004 benchmark).")
    p.add_argument("transfer", metavar="RUN.h5", help="run file of a `labctl program` transfer")
    p.add_argument("--dac-bits", type=int, default=6, help="input DAC resolution (default 6)")
    p.add_argument("--adc-bits", type=int, default=8, help="output ADC resolution (default 8)")
    p.add_argument("--wire-resistance-ohm", type=finite_float, default=None,
                   help="wire resistance per segment between cells of the simulated chip "
                   f"(default {SIM_WIRE_RESISTANCE_OHM} ohm); not for a station, whose chip "
                   "has its own")
    p.add_argument("--inputs", type=int, default=100, help="random input vectors (default 100)")
    p.add_argument("--times", default="1s,1h,1d,1y,10y",
                   help="times after the transfer, comma separated, with units s/min/h/d/y "
                   "(a bare number is seconds; default 1s,1h,1d,1y,10y)")
    p.add_argument("--calibration", choices=("rows", "columns", "none"), default="rows",
                   help="once, at the first time: 'rows' (default) fits a gain and offset per "
                   "column and a reference per row, 'columns' the per-column part only, "
                   "'none' nothing")
    p.add_argument("--calibration-inputs", type=int, default=0, metavar="N",
                   help="random input vectors the calibration is fitted to (default: 4 per "
                   "row of the largest tile, at least 256; on a station each is one more "
                   "point in every cell's sweep)")
    p.add_argument("--adc-sigmas", type=finite_float, default=3.5,
                   help="ADC full scale in standard deviations of the expected output "
                   "(default 3.5)")
    add_common(p, hidden=("preset", "rows", "cols"))   # the transfer's chip, re-opened
    for action in p._actions:   # the chip is re-opened as the transfer left it
        if action.dest == "seed":
            action.help = ("seed of the random input vectors (default 0); the simulated chip "
                           "is re-opened with the transfer's own seed")
        elif action.dest == "backend":
            action.help = ("the chip the transfer was programmed on (default): its simulated "
                           "chip, or its station, which must still hold the weights; give "
                           "the station file again only to name it")
    p.set_defaults(handler=handle)


def _device_index(placement: Any) -> tuple[np.ndarray, np.ndarray]:
    """Array cell -> device-matrix (row, col); -1 where no tile sits."""
    dr = np.full(placement.array_shape, -1, dtype=np.int64)
    dc = np.full(placement.array_shape, -1, dtype=np.int64)
    for t in placement.tiles:
        n, m = t.shape
        rr, cc = np.meshgrid(np.arange(t.rows[0], t.rows[1]), np.arange(t.cols[0], t.cols[1]),
                             indexing="ij")
        dr[t.at[0]:t.at[0] + n, t.at[1]:t.at[1] + m] = rr
        dc[t.at[0]:t.at[0] + n, t.at[1]:t.at[1] + m] = cc
    return dr, dc


def read_transfer(path: str) -> tuple[Any, dict[str, Any], dict[str, Any] | None, str]:
    """(ChipPlan, backend description, checkpoint) of a complete transfer run file."""
    from labctl.data.runfile import RunReader
    from labctl.pipelines.inference import ChipPlan
    from labctl.pipelines.tiling import Placement
    from labctl.pipelines.weight_mapping import Mapping
    from labctl.protocols.transfer import load_results

    with RunReader(path) as rr:
        if rr.command != "program":
            raise ConfigError(f"{path} is a '{rr.command}' run, not a `labctl program` transfer",
                              key="transfer")
        if rr.status != "complete":
            state = rr.shown_status   # 'killed' for a file nobody writes
            raise ConfigError(f"{path}: the transfer is {state}, not complete" + (
                " (wait for it to finish)" if state == "running" else
                " (resume it with `labctl program ... --resume`)"), key="transfer")
        cfg = rr.config
        try:
            mapping = Mapping.from_dict(cfg["mapping"])
            placement = Placement.from_dict(cfg["placement"])
            weights = rr.data("transfer/weights")
            res = load_results(rr, placement.loads)
            end_s = float(rr.data("transfer/load_end_s")[-1])
        except KeyError as e:
            raise DataFormatError(f"{path} lacks transfer data ({e})") from None
        ckpt = rr.checkpoint()
        backend = rr.backend
        status = rr.status
    dr, dc = _device_index(placement)
    g_prog = np.full(placement.matrix_shape, np.nan)
    last = res["load"] == placement.loads - 1
    rows, cols = res["row"][last].astype(int), res["col"][last].astype(int)
    g_prog[dr[rows, cols], dc[rows, cols]] = res["g_S"][last]
    w = np.clip(weights / mapping.w_max, -1.0, 1.0)
    plan = ChipPlan(weights=w, mapping=mapping, placement=placement, g_programmed_S=g_prog,
                    pulses=res["pulses"].astype(np.int64), programmed_at_s=end_s)
    return plan, backend, ckpt, status


def effective_backend(args: argparse.Namespace, transfer: dict[str, Any]) -> str:
    """The backend the inference runs on: the chip the transfer programmed.

    No ``--backend``: that chip, wherever it is (the simulator, or the transfer's station).
    ``--backend sim`` is refused for a transfer made on a station (the file would claim the
    simulator for a hardware run); a station file must be the transfer's own;
    ``transcript:RUN.h5`` (``labctl replay --backend transcript``) answers from a recording.
    """
    from labctl.commands.backend import recorded_stations

    stations = recorded_stations(transfer)
    given = args.backend
    if given is not None and given.startswith("transcript:"):
        if not stations:
            raise ConfigError(f"{args.transfer}: the transfer ran on the simulator; there is "
                              f"no instrument transcript to replay", key="backend")
        return str(given)
    if not stations:
        if given not in (None, "sim"):
            raise ConfigError(f"--backend {given}: the inference re-opens the chip the "
                              f"transfer ran on ({args.transfer}: the simulator); these options "
                              f"do not apply", key="backend")
        return "sim"
    if given is None:
        return stations[0]
    if given == "sim" or str(Path(given).resolve()) != stations[0]:
        raise ConfigError(f"--backend {given}: the transfer {args.transfer} ran on station "
                          f"{stations[0]}, where the programmed chip is; omit --backend or pass "
                          f"--backend {stations[0]}", key="backend")
    return stations[0]


def _chip_factory(args: argparse.Namespace, backend: dict[str, Any],
                  ckpt: dict[str, Any] | None) -> Any:
    from labctl.commands.backend import backend_from_description, open_backend, open_sim, sim_pace

    def open_chip() -> Any:
        if str(args.backend).startswith("transcript:"):
            return open_backend(args)
        if backend.get("backend") != "sim":
            return backend_from_description(backend)
        if ckpt is None or "backend" not in ckpt:
            raise DataFormatError(f"{args.transfer} holds no snapshot of the simulated chip")
        array = open_sim(backend.get("preset_source") or backend["preset"], int(backend["rows"]),
                         int(backend["cols"]), int(backend["seed"]),
                         wire_resistance_ohm=_wire_resistance(args, backend) or 0.0,
                         pace_s=sim_pace(args) or backend.get("pace_s"))
        array.restore(ckpt["backend"])  # type: ignore[attr-defined]
        return array

    return open_chip


def _row_label(label: str, t_actual_s: float | None) -> str:
    """'1s', or '1s (read at 3.83 s)' when the read came noticeably later than asked."""
    from labctl.pipelines.inference import parse_times, read_late

    if t_actual_s is None or not read_late(parse_times(label)[0], t_actual_s):
        return label
    at = f"{t_actual_s:.3g}" if t_actual_s < 1000 else f"{t_actual_s:.0f}"
    return f"{label} (read at {at} s)"


#: breakdown terms estimated by removing read noise in quadrature (can come out at zero)
_BY_SUBTRACTION = ("ir_drop", "mvm_vs_reads")


def human(s: dict[str, Any]) -> str:
    wires = s.get("wire_resistance_ohm")
    rows = {lab: _row_label(lab, s.get("t_actual_s", {}).get(lab)) for lab in s["rmse"]}
    w = max([5, *(len(r) for r in rows.values())])
    lines = [f"inference: {s['cells']} cells, {s['inputs']} inputs, {s['dac_bits']}-bit in, "
             f"{s['adc_bits']}-bit out" + ("" if wires is None else f", {wires} ohm/segment"),
             "  RMSE against floating point, in units of y = (W / w_max) x with x in [-1, 1]",
             f"  {'t':>{w}} {'RMSE':>7}   " + " ".join(f"{c[:12]:>12}" for c in
                                                       next(iter(s['rmse_breakdown'].values()),
                                                            {}))]
    for lab, v in s["rmse"].items():
        b = s["rmse_breakdown"][lab]
        # a term estimated by subtracting noise in quadrature can come out at or below
        # zero: there it is below what the estimate resolves, not a measured 0
        lines.append(f"  {rows[lab]:>{w}} {v:7.4f}   "
                     + " ".join(f"{x:12.4f}" if x > 0 or c not in _BY_SUBTRACTION
                                else f"{'< noise':>12}" for c, x in b.items()))
    if any(x <= 0 and c in _BY_SUBTRACTION for b in s["rmse_breakdown"].values()
           for c, x in b.items()):
        lines.append("  < noise: the term's estimate (noise removed in quadrature) is at or "
                     "below zero")
    lines.append(f"  run file        {s['run_file']}")
    return "\n".join(lines)


#: longest real-time wait an inference schedule may ask of a station (the simulator's clock
#: jumps; a station's chip ages in wall-clock time, so the default 1y and 10y points are
#: for the simulator only)
MAX_STATION_WAIT_S = 7 * 86400.0


#: a station clock below this is not POSIX time: files of labctl versions whose station clock
#: counted from the start of each process
_EPOCH_2001_S = 1e9


def _station_age_check(transfer: str, programmed_at_s: float, first_s: float) -> None:
    """A station's chip ages in wall-clock time: refuse a transfer whose end time is not
    wall-clock time, and say when the first read comes later than asked."""
    import time

    if programmed_at_s < _EPOCH_2001_S:
        raise ConfigError(f"{transfer} was recorded by a labctl that counted a station's time "
                          f"from the start of each process, so the age of its weights is "
                          f"unknown; program them again", key="transfer")
    age = time.time() - programmed_at_s
    if age > first_s:
        print(f"labctl: note: the transfer ended {age:.3g} s ago: reads asked for earlier are "
              f"taken now and recorded at their real age; the chip must still hold the "
              f"transfer's weights (no other run on it since)", file=sys.stderr)


def _wire_resistance(args: argparse.Namespace, transfer: dict[str, Any]) -> float | None:
    """The simulator's wire resistance per segment; None for a station's chip, whose wires
    are its own (not known to labctl, so neither modelled nor recorded)."""
    if transfer.get("backend") == "sim":
        given = args.wire_resistance_ohm
        return SIM_WIRE_RESISTANCE_OHM if given is None else float(given)
    if args.wire_resistance_ohm is not None:
        raise ConfigError(f"--wire-resistance-ohm: the transfer {args.transfer} ran on a "
                          f"station, whose chip has its own wires; the option is for the "
                          f"simulator", key="wire_resistance_ohm")
    return None


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.pipelines.inference import Inference, InferenceConfig, parse_times

    if Path(args.transfer).is_dir():
        raise ConfigError(f"transfer file {args.transfer} is a directory", key="transfer")
    if not Path(args.transfer).is_file():
        raise ConfigError(f"transfer file {args.transfer} does not exist", key="transfer")
    given = [f"--{k}" for k in ("preset", "rows", "cols") if getattr(args, k) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: the inference re-opens the chip the transfer "
                          f"ran on ({args.transfer}); these options do not apply",
                          key=given[0].lstrip("-"))
    plan, backend, ckpt, _ = read_transfer(args.transfer)
    args.backend = effective_backend(args, backend)
    cfg = InferenceConfig(transfer_file=str(args.transfer), dac_bits=args.dac_bits,
                          adc_bits=args.adc_bits, inputs=args.inputs, input_seed=args.seed,
                          times_s=parse_times(args.times),
                          wire_resistance_ohm=_wire_resistance(args, backend),
                          adc_sigmas=args.adc_sigmas, calibration=args.calibration,
                          calibration_inputs=args.calibration_inputs)
    cfg.validate()
    if backend.get("backend") != "sim" and max(cfg.times_s) > MAX_STATION_WAIT_S:
        raise ConfigError(f"--times: the transfer ran on a station, where the chip ages in real "
                          f"time; {max(cfg.times_s):.3g} s is more than "
                          f"{MAX_STATION_WAIT_S / 86400:g} days (give --times, e.g. "
                          f"1s,1min,1h)", key="times")
    if backend.get("backend") != "sim" and not str(args.backend).startswith("transcript:"):
        _station_age_check(args.transfer, plan.programmed_at_s, cfg.times_s[0])
    protocol = Inference(cfg, plan)
    summary = execute_protocol(args, COMMAND, protocol,
                               wire_resistance_ohm=cfg.wire_resistance_ohm or 0.0,
                               provenance={"transfer_file": str(Path(args.transfer).resolve())},
                               array_factory=_chip_factory(args, backend, ckpt))
    emit(summary, as_json=args.json, human=human, json_view=with_below_noise)
    return 0


def with_below_noise(s: dict[str, Any]) -> dict[str, Any]:
    """The --json line names the terms the text table prints as '< noise' (estimated by
    subtracting noise in quadrature, at or below zero): their 0.0 is no measured zero."""
    below = {lab: [c for c, x in b.items() if x <= 0 and c in _BY_SUBTRACTION]
             for lab, b in s.get("rmse_breakdown", {}).items()}
    return {**s, "below_noise": {lab: cs for lab, cs in below.items() if cs}}
