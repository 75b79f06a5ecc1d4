"""``labctl run program``: program-verify of evenly spaced levels or of a targets file."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_common, emit
from labctl.errors import ConfigError


def add_verify_options(p: argparse.ArgumentParser, *, tolerance: float) -> None:
    """Options of the closed loop, shared with ``run retention``."""
    p.add_argument("--tolerance", type=finite_float, default=tolerance,
                   help=f"acceptance range p as a fraction of G_target (default {tolerance})")
    p.add_argument("--max-pulses", type=int, default=1000,
                   help="pulse cap per cell and attempt; cells that hit it are reported "
                        "(default 1000; `labctl program` retries such cells twice, so its "
                        "pulse counts add up the attempts)")
    p.add_argument("--width-s", type=finite_float, default=2.5e-6,
                   help="set/reset pulse width (default 2.5e-6 s)")
    p.add_argument("--reset", choices=("sweep", "pulses"), default="sweep",
                   help="reset to HRS by a quasi-static sweep (default, seed 004; 1T1R only) "
                   "or 20 pulses (at --reset-V when given, else -1.5 V)")
    p.add_argument("--set-V", type=finite_float, default=None, metavar="V",
                   help="one set amplitude for every target, with --reset-V, instead of seed "
                   "004's table for the CMO/HfOx die (1.35-1.5 V set, -1.3 to -1.5 V reset); "
                   "e.g. --set-V 2.3 --reset-V -2.3 --width-s 1e-4 --reset pulses for "
                   "mos2-fefet-2t")
    p.add_argument("--reset-V", type=finite_float, default=None, metavar="V",
                   help="the reset amplitude that goes with --set-V (negative; also the "
                   "amplitude of --reset pulses)")


def add_level_options(p: argparse.ArgumentParser, *, levels: int | None,
                      repeats: int | None) -> None:
    p.add_argument("--levels", type=int, default=levels,
                   help="number of evenly spaced levels (default 35)")
    p.add_argument("--g-min-S", type=finite_float, default=10e-6,
                   help="lowest level (default 10e-6 S)")
    p.add_argument("--g-max-S", type=finite_float, default=90e-6,
                   help="highest level (default 90e-6 S)")
    p.add_argument("--repeats", type=int, default=repeats,
                   help=f"cells per level (default {repeats or 1}); batches reset and reuse "
                   "the cells when the chip is smaller than levels x repeats")


def register(sub: Any) -> None:
    p = sub.add_parser("program", help="program-verify levels with identical pulses (seed 004)",
                       description="Closed-loop programming with identical pulses: reset to HRS, "
                       "then set/reset pulses until every cell is within +/- p*G_target.")
    add_level_options(p, levels=None, repeats=None)
    p.add_argument("--targets", default=None, metavar="FILE",
                   help="per-cell targets in siemens (.npy or .csv), one per cell, instead of "
                   "--levels")
    add_verify_options(p, tolerance=0.02)
    p.add_argument("--no-form", action="store_true",
                   help="do not electro-form cells that read as unformed (default: form them "
                   "first, as `run forming` does)")
    add_common(p)
    p.set_defaults(handler=handle)


def verify_config(args: argparse.Namespace) -> Any:
    from labctl.protocols.program_verify import VerifyConfig

    amplitudes: dict[str, Any] = {}
    set_V, reset_V = getattr(args, "set_V", None), getattr(args, "reset_V", None)
    if (set_V is None) != (reset_V is None):
        raise ConfigError("--set-V and --reset-V go together (one amplitude pair replaces "
                          "the amplitude table)", key="set_V")
    if set_V is not None and reset_V is not None:
        if not set_V > 0 > reset_V:
            raise ConfigError(f"--set-V must be > 0 and --reset-V < 0, got {set_V:g} and "
                              f"{reset_V:g} V", key="set_V")
        # one row up to 1 S: above every window (finite, so the config stays plain JSON)
        amplitudes["amplitudes"] = ((1.0, float(set_V), float(reset_V)),)
        amplitudes["reset_pulse_V"] = float(reset_V)    # --reset pulses: the same amplitude
    cfg = VerifyConfig(tolerance=args.tolerance, max_pulses=args.max_pulses,
                       width_s=args.width_s, reset=args.reset, **amplitudes)
    cfg.validate()
    return cfg


def load_targets(path: str) -> np.ndarray:
    """Targets from a .npy or .csv file (siemens); ConfigError for anything unreadable."""
    import warnings

    from labctl.commands.array_file import check_array_file

    p = Path(path)
    check_array_file(p, "targets file", "targets", expected="a .npy or .csv file",
                     suffix_ok=p.suffix in (".npy", ".csv"))
    try:
        with warnings.catch_warnings():   # numpy warns of an empty text file: said below
            warnings.simplefilter("ignore")
            t = (np.load(p, allow_pickle=False) if p.suffix == ".npy"
                 else np.loadtxt(p, delimiter=",", ndmin=1, dtype=float))
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError(f"targets file {path} is not a numeric array: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                          key="targets") from None
    if t.size == 0:
        raise ConfigError(f"targets file {path} holds no values", key="targets")
    if t.dtype.kind not in "iuf":
        raise ConfigError(f"targets file {path} holds {t.dtype} values, not numbers",
                          key="targets")
    if t.ndim not in (1, 2) or t.size == 0:
        raise ConfigError(f"targets file {path}: expected a 1-D or 2-D array, got shape "
                          f"{t.shape}", key="targets")
    return t.astype(float)


def check_targets_for_chip(t: np.ndarray, rows: int, cols: int, g_lo_S: float,
                           g_hi_S: float, *, path: str) -> np.ndarray:
    """One target per cell ((rows, cols) or rows*cols values) inside the window; flat."""
    from labctl.protocols.program import check_targets

    if not (t.shape == (rows, cols) or (t.ndim == 1 and t.size == rows * cols)):
        raise ConfigError(f"targets file {path} has shape {t.shape}; the {rows}x{cols} chip "
                          f"needs ({rows}, {cols}) or {rows * cols} values", key="targets")
    check_targets(t, g_lo_S, g_hi_S)
    return t.ravel()


def checked_factory(args: argparse.Namespace, check: Callable[[Any], None]
                    ) -> Callable[[], Any]:
    """Open the backend, run ``check(array.info)`` and close it again on failure.

    Chip-dependent validation (window, shape) happens here: after the backend is known but
    before the run file is created and before any pulse.
    """

    def factory() -> Any:
        from labctl.commands.backend import open_backend

        array = open_backend(args)
        try:
            check(array.info)
        except BaseException:
            array.close()
            raise
        return array

    return factory


def human(s: dict[str, Any]) -> str:
    from labctl.commands.quantity import percent_down, quantity

    fit = s.get("sigma_fit_S") or {}
    ov = [x for x in s.get("adjacent_overlap", []) if x is not None]

    def f(x: Any, fmt: str, scale: float = 1.0, unit: str = "") -> str:
        return quantity(x, fmt, scale=scale, unit=unit)

    slope, icpt = fit.get("slope"), fit.get("intercept_S")
    icpt_f = float(icpt) if icpt is not None else float("nan")
    sigma_fit = (f"{f(slope, '.4g')} * G {'-' if icpt_f < 0 else '+'} "
                 f"{f(abs(icpt_f), '.4g', 1e6, 'uS')}"
                 if f(slope, "g") != "n/a" and f(icpt, "g") != "n/a" else
                 "n/a (needs two or more levels of two or more cells)")
    missed = int(s["not_converged"])
    n_conv = int(s["cells_programmed"]) - missed
    among = "" if not missed else f" (the {n_conv} converged cells)"
    all_cells = ("" if not missed or s.get("pulses_mean_all") is None else
                 f"\n                  all {s['cells_programmed']} cells mean "
                 f"{s['pulses_mean_all']:.2f} ({missed} stopped at the pulse cap)")
    judged = "" if not missed else f", judged on the {n_conv} converged cells"
    separated = ("n/a, no cell converged" if n_conv == 0 else
                 f"{'yes' if s['levels_separated'] else 'no'}{judged}")
    return (f"program: {s['cells_programmed']} cells, {len(s['levels'])} levels, tolerance "
            f"{100 * s['tolerance']:.3g} %\n"
            f"  converged       {percent_down(s['converged_fraction'], 2)} % "
            f"({s['not_converged']} not converged)\n"
            f"  pulses          mean {f(s['pulses_mean'], '.2f')}, median "
            f"{f(s['pulses_median'], '.1f')}, max {f(s['pulses_max'], 'g')}{among}{all_cells}\n"
            f"  sigma fit       {sigma_fit}\n"
            f"  max overlap     {f(max(ov) if ov else None, '.3g', 100, '%')} (levels "
            f"separated: {separated})\n"
            f"  run file        {s['run_file']}")


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.protocols.program import Program, ProgramConfig, check_targets, level_targets

    vcfg = verify_config(args)
    targets = None
    if args.targets is not None:
        if args.levels is not None or args.repeats is not None:
            raise ConfigError("--targets replaces --levels and --repeats; give one or the other",
                              key="targets")
        targets = load_targets(args.targets)
        check_targets(targets, 0.0, float("inf"))
        cfg = ProgramConfig(targets_file=str(Path(args.targets).resolve()), verify=vcfg,
                            form=not args.no_form)
    else:
        cfg = ProgramConfig(levels=35 if args.levels is None else args.levels,
                            g_min_S=args.g_min_S, g_max_S=args.g_max_S,
                            repeats=1 if args.repeats is None else args.repeats, verify=vcfg,
                            form=not args.no_form)
    cfg.validate()

    def check(info: Any) -> None:
        if targets is not None:
            check_targets_for_chip(targets, info.rows, info.cols, info.g_min_S, info.g_max_S,
                                   path=args.targets)
        else:
            check_targets(level_targets(cfg), info.g_min_S, info.g_max_S)

    summary = execute_protocol(args, "run program", Program(cfg, targets_S=targets),
                               array_factory=checked_factory(args, check))
    emit(summary, as_json=args.json, human=human)
    return 0
