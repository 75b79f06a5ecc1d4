"""``labctl run symmetry-point``: open-loop pulses, figures of merit, fitted preset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_common, default_out, emit
from labctl.commands.out_file import check_out_file
from labctl.errors import ConfigError

DEFAULT_BASE = "cmo-hfox-1t1r"


def register(sub: Any) -> None:
    p = sub.add_parser("symmetry-point", help="open-loop identical pulses: states, SP skew, NSR "
                       "and a fitted device preset (seed 004)",
                       description="Batches of up then down pulses, then alternating single "
                       "pulses; per device G_max, G_min, G_sp, step, number of states, SP skew "
                       "and NSR; fits the soft-bounds model and writes it as a preset.")
    p.add_argument("--up-V", type=finite_float, default=1.35,
                   help="potentiation amplitude (1.35 V)")
    p.add_argument("--down-V", type=finite_float, default=-1.3,
                   help="depression amplitude (-1.3 V)")
    p.add_argument("--width-s", type=finite_float, default=2.5e-6, help="pulse width (2.5e-6 s)")
    p.add_argument("--batch-pulses", type=int, default=400, help="pulses per batch (400)")
    p.add_argument("--cycles", type=int, default=2, help="up/down batch pairs (2)")
    p.add_argument("--alternating-pulses", type=int, default=500,
                   help="1-up-1-down pulses at the end (500)")
    p.add_argument("--read-repeats", type=int, default=20,
                   help="reads without pulses at the end, for the read noise (20)")
    p.add_argument("--preset-out", default=None, metavar="FILE.toml",
                   help="fitted preset to write (default: next to the run file)")
    p.add_argument("--no-form", action="store_true",
                   help="do not electro-form cells that read as unformed (default: form them "
                   "first, as `run forming` does)")
    add_common(p)
    p.set_defaults(handler=handle)


def base_preset(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Text and parsed table of the preset the fit feeds: --preset on the simulator, else
    the default chip's."""
    from labctl.sim_backend.presets import load_preset, preset_path

    name = (args.preset or DEFAULT_BASE) if (args.backend or "sim") == "sim" else DEFAULT_BASE
    preset = load_preset(name)
    if preset.get("model") != "cmo-hfox":
        raise ConfigError(f"the symmetry-point fit writes a cmo-hfox preset; preset {name!r} "
                          f"is a {preset.get('model')!r} model", key="preset")
    return preset_path(name).read_text(), preset


def recorded_preset_out(run_file: str) -> str:
    """The preset path a symmetry-point run file recorded ('' if it is none)."""
    from labctl.data.runfile import RunReader

    with RunReader(run_file) as rr:
        return str(rr.config.get("preset_out") or "") \
            if rr.command == "run symmetry-point" else ""


def preset_beside(run: Path) -> Path:
    """The default preset file of a run file: ``RUN-preset.toml`` in the same directory."""
    return run.with_name(run.stem + "-preset.toml")


def preset_out_path(args: argparse.Namespace) -> Path:
    if args.preset_out:
        path = Path(args.preset_out)
    elif args.resume and recorded_preset_out(args.resume):
        # the default is derived from the run file's name: a copied or renamed run file
        # keeps the preset path it recorded (it is part of the config the resume checks)
        path = Path(recorded_preset_out(args.resume))
    else:
        run = Path(args.resume or args.out or default_out("run symmetry-point"))
        args.out = args.out or (None if args.resume else str(run))
        path = preset_beside(run)
    check_out_file(path, "--preset-out", suffix=".toml",
                   why_suffix="the simulator loads presets from .toml files")
    if path.exists():   # runs made with it name it by path: replacing it would change them
        raise ConfigError(f"--preset-out {path} already exists (a preset is never "
                          f"overwritten: runs made with it record its path); choose a new name",
                          key="preset_out")
    return path


def write_preset(summary: dict[str, Any], base_text: str, path: Path) -> None:
    from labctl.protocols.analysis.preset_toml import fitted_preset_text, pulse_notes, pulse_table

    fit = summary["fit"]
    if not fit.get("population"):
        raise ConfigError("no device could be fitted", key="preset_out")
    fitted, devices = int(summary.get("devices_fitted", 0)), int(summary["devices"])
    step = summary.get("dg_sp_mean_S")
    noise = summary.get("read_sigma_mean_S")
    moved = step is not None and step > 0 and (noise is None or step > 2 * noise)
    if fitted < 0.5 * devices and moved:
        # steps well above the read noise, yet most devices unfitted: too few pulses
        raise ConfigError(f"too few pulses to fit most devices ({fitted} of {devices} fitted, "
                          f"mean step at the symmetry point {1e9 * float(step or 0):.3g} nS): "
                          f"measure more pulses (--batch-pulses, --cycles, --alternating-pulses)",
                          key="preset_out")
    if fitted < 0.5 * devices or step is None or not step > 0:
        # pulses below the switching threshold: a few devices' noise is no device model
        raise ConfigError(f"the pulses moved few devices ({fitted} of {devices} fitted, mean "
                          f"step at the symmetry point "
                          f"{'n/a' if step is None else f'{1e9 * step:.3g} nS'}): check "
                          f"--up-V/--down-V/--width-s", key="preset_out")
    note = f"labctl run symmetry-point, {fit['population']['devices_fitted']} devices, " \
           f"{Path(summary['run_file']).name}"
    try:
        text = fitted_preset_text(
            base_text, name=path.stem,
            source=f"fitted by labctl run symmetry-point from {Path(summary['run_file']).name}",
            table_values={"pulse": pulse_table(fit["population"], fit["scheme"])}, note=note,
            key_notes=pulse_notes(Path(summary["run_file"]).name))
    except ValueError as e:   # a fitted value is not finite (nan from too few pulses)
        raise ConfigError(f"the fit gave no usable value ({e}): measure more pulses "
                          f"(--batch-pulses, --cycles, --alternating-pulses)",
                          key="preset_out") from None
    # only a preset the simulator can load is written (a fit of a few noisy pulses can give
    # an upside-down window)
    import tomllib

    from labctl.sim_backend.presets import model_class

    preset = tomllib.loads(text)
    try:
        model_class(preset["model"]).from_preset(preset, path.stem)
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"the fit gave a preset the simulator cannot use ({e}): measure "
                          f"more pulses (--batch-pulses, --cycles, --alternating-pulses)",
                          key="preset_out") from None
    path.write_text(text)


def human(s: dict[str, Any]) -> str:
    def f(x: Any, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)

    return (f"symmetry point: {s['devices']} devices, {s.get('devices_fitted', 'n/a')} "
            f"fitted\n"
            f"  N states        mean {f(s['n_states_mean'], '.1f')} "
            f"(min {f(s['n_states_min'], '.1f')}, max {f(s['n_states_max'], '.1f')})\n"
            f"  SP skew         mean {f(s['sp_skew_mean'], '.3f')}\n"
            f"  NSR             mean {f(s['nsr_mean'], '.3f')}\n"
            f"  fitted preset   {s['preset_file'] or 'none written'}\n"
            f"  run file        {s['run_file']}")


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.protocols.symmetry_point import SymmetryPoint, SymmetryPointConfig

    out = preset_out_path(args)
    base_text, base = base_preset(args)
    pulse = base.get("pulse", {})
    cfg = SymmetryPointConfig(
        up_V=args.up_V, down_V=args.down_V, width_s=args.width_s,
        batch_pulses=args.batch_pulses, cycles=args.cycles,
        alternating_pulses=args.alternating_pulses, read_repeats=args.read_repeats,
        preset_out=str(out.resolve()),
        fit_g_exponent=float(pulse.get("g_exponent", 0.0)),
        fit_g_ref_S=float(pulse.get("g_ref_S", 1.0)),
        fit_sigma_g_rel=float(pulse.get("sigma_g_rel", 0.0)), form=not args.no_form)
    summary = execute_protocol(args, "run symmetry-point", SymmetryPoint(cfg))
    try:
        write_preset(summary, base_text, out)
    except ConfigError as e:
        # the measurement is complete and kept; only the model it was to give is not
        sys.stderr.write(f"labctl: warning: no preset written: {e}\n")
        summary = {**summary, "preset_file": None, "preset_error": str(e)}
    emit(summary, as_json=args.json, human=human, json_view=without_per_device)
    return 0


def without_per_device(summary: dict[str, Any]) -> dict[str, Any]:
    """The --json line without the per-device lists (7 values and 8 fit parameters per
    device: 8 MB on a 128x128 die); they stay in the run file's summary, where the report
    and replay read them."""
    where = "in the run file's summary"
    out = {**summary, "per_device": where}
    if isinstance(summary.get("fit"), dict):
        out["fit"] = {**summary["fit"], "per_device": where}
    return out
