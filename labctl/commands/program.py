"""``labctl program WEIGHTS``: map a weight matrix to conductances, place it, program it.

WEIGHTS is a ``.npy`` or ``.csv`` file, or ``FILE.h5:dataset``.  Every check on the weights
(readable, numeric, 2-D, not empty, finite, not all zero, fits with ``--no-tiling``) runs
before the backend is touched and before any run file exists.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_common, emit
from labctl.errors import ConfigError

COMMAND = "program"


def register(sub: Any) -> None:
    from labctl.commands.run_program import add_verify_options

    p = sub.add_parser("program", help="transfer a weight matrix onto the chip (program-verify)",
                       description="Map weights to conductances (a differential pair per weight "
                       "or one device against a reference), place the matrix on the array "
                       "(tiles over several loads when it is larger), and program every cell "
                       "with identical-pulse program-verify.")
    p.add_argument("weights", metavar="WEIGHTS",
                   help="weight matrix: FILE.npy, FILE.csv or FILE.h5:dataset (2-D)")
    p.add_argument("--mapping", choices=("differential", "reference"), default="differential",
                   help="a pair G+ - G- per weight (default) or one device against a reference")
    p.add_argument("--window-S", type=finite_float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="conductance window the weights map onto (default: the chip's window "
                   "inset by 1.25 %% of its span at each end)")
    p.add_argument("--w-max", type=finite_float, default=None,
                   help="|weight| mapped to the window's edge (default: the largest |weight|)")
    p.add_argument("--no-tiling", action="store_true",
                   help="refuse a matrix that does not fit the array instead of tiling it")
    p.add_argument("--no-form", action="store_true",
                   help="do not electro-form cells that read as unformed (default: form them "
                   "first, as `run forming` does)")
    add_verify_options(p, tolerance=0.02)
    add_common(p)
    p.set_defaults(handler=handle)


def _split_source(spec: str) -> tuple[Path, str | None]:
    if ".h5:" in spec or ".hdf5:" in spec:
        path, _, dataset = spec.rpartition(":")
        return Path(path), dataset
    return Path(spec), None


def load_weights(spec: str) -> np.ndarray:
    """The weight matrix named by ``spec``; ConfigError (one line) for anything unusable."""
    import warnings

    if not spec.strip():
        raise ConfigError("no weights file given", key="weights")
    from labctl.commands.array_file import check_array_file

    path, dataset = _split_source(spec)
    h5 = dataset is not None or path.suffix in (".h5", ".hdf5")
    check_array_file(path, "weights file", "weights",
                     expected="a .npy or .csv file or FILE.h5:dataset",
                     suffix_ok=h5 or path.suffix in (".npy", ".csv"))
    try:
        with warnings.catch_warnings():   # numpy warns of an empty text file: said below
            warnings.simplefilter("ignore")
            if h5:
                w = _load_h5(path, dataset)
            elif path.suffix == ".npy":
                w = np.load(path, allow_pickle=False)
            else:
                w = np.loadtxt(path, delimiter=",", ndmin=2, dtype=float)
    except ConfigError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError(f"weights file {spec} is not a numeric array: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                          key="weights") from None
    return check_weights(w, spec)


def _load_h5(path: Path, dataset: str | None) -> np.ndarray:
    import h5py

    if not dataset:
        raise ConfigError(f"weights file {path}: name the dataset as {path}:DATASET",
                          key="weights")
    with h5py.File(path, "r", locking=False) as f:
        if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
            raise ConfigError(f"weights file {path} has no dataset '{dataset}'", key="weights")
        return np.array(f[dataset][()])


def check_weights(w: np.ndarray, name: str) -> np.ndarray:
    """Numeric, 2-D, not empty, finite, not all zero -> float64 copy."""
    if w.dtype.kind not in "iuf":
        raise ConfigError(f"weights {name} hold {w.dtype} values, not numbers", key="weights")
    if w.ndim != 2:
        raise ConfigError(f"weights {name} must be a 2-D matrix, got {w.ndim}-D shape "
                          f"{tuple(w.shape)}", key="weights")
    if w.size == 0:
        raise ConfigError(f"weights {name} are empty (shape {tuple(w.shape)})", key="weights")
    w = w.astype(float)
    bad = ~np.isfinite(w)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ConfigError(f"weights {name} contain {int(bad.sum())} NaN/infinite values "
                          f"(first at [{r}, {c}])", key="weights")
    if not np.any(w):
        raise ConfigError(f"weights {name} are all zero: nothing to map", key="weights")
    return w


def _sha256(w: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(w, dtype="<f8").tobytes()).hexdigest()


def build_transfer(args: argparse.Namespace, weights: np.ndarray, info: Any) -> Any:
    """Mapping, placement and plan for ``weights`` on an array described by ``info``."""
    from labctl.commands.run_program import verify_config
    from labctl.pipelines.tiling import place
    from labctl.pipelines.weight_mapping import default_window, make_mapping
    from labctl.protocols.transfer import Transfer, TransferConfig, TransferPlan

    window = tuple(args.window_S) if args.window_S else default_window(info.g_min_S,
                                                                       info.g_max_S)
    lo, hi = window
    if lo < info.g_min_S * (1 - 1e-9) or hi > info.g_max_S * (1 + 1e-9):
        raise ConfigError(f"--window-S {lo:g} {hi:g} is outside the chip's window "
                          f"{info.g_min_S:g}..{info.g_max_S:g} S", key="window")
    mapping = make_mapping(weights, args.mapping, (lo, hi), args.w_max)
    clipped = int(np.count_nonzero(np.abs(weights) > mapping.w_max))
    if clipped:   # the user's --w-max, below the largest |w|: say what it costs
        print(f"labctl: note: --w-max {mapping.w_max:g} clips {clipped} of {weights.size} "
              f"weights (largest |w| {float(np.abs(weights).max()):g}) to +-w_max; the errors "
              f"reported are against the clipped weights", file=sys.stderr)
    device_g = mapping.conductances(weights)
    placement = place(device_g.shape, info.shape, group=mapping.devices_per_weight,
                      tiling=not args.no_tiling)
    loads = tuple(placement.load_targets(device_g, k) for k in range(placement.loads))
    weight_maps = []   # per load, array-shaped: which weight a cell serves, and its sign
    for k, (r, c, _) in enumerate(loads):
        dr, dc = placement.load_devices(k)
        wc, sign = mapping.weight_terms(dc)
        index = np.full(info.shape, -1, dtype=np.int64)
        signs = np.zeros(info.shape, dtype=np.int64)
        index[r, c], signs[r, c] = dr * weights.shape[1] + wc, sign
        weight_maps.append((index, signs))
    cfg = TransferConfig(weights_source=str(args.weights), weights_sha256=_sha256(weights),
                         weights_shape=(int(weights.shape[0]), int(weights.shape[1])),
                         mapping=mapping.to_dict(), placement=placement.to_dict(),
                         verify=verify_config(args), form=not getattr(args, "no_form", False))
    return Transfer(cfg, TransferPlan(weights=weights, device_targets_S=device_g, loads=loads,
                                      weight_maps=tuple(weight_maps)))


def _open(args: argparse.Namespace) -> Any:
    from labctl.commands.backend import check_resume_backend, open_backend
    from labctl.data.runfile import RunReader

    if args.resume:   # the recorded backend, and only that (execute_protocol checks the rest)
        with RunReader(args.resume) as rr:
            check_resume_backend(args, rr.backend, args.resume)
    return open_backend(args)


def _of_w_max(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2e} of w_max"


def human(s: dict[str, Any]) -> str:
    if not s.get("cells"):
        return f"program: nothing programmed\n  run file        {s['run_file']}"
    return (f"program: {s['cells']} cells ({s['mapping']}, {s['tiles']} tile(s) on {s['loads']} "
            f"load(s)), tolerance {100 * s['tolerance']:.3g} %\n"
            f"  converged       {s['converged']}/{s['cells']}\n"
            f"  pulses          mean {s['pulses_mean']:.1f}, max {s['pulses_max']}\n"
            f"  G error (rms)   {1e9 * s['g_error_rms_S']:.1f} nS per device\n"
            f"  weight error    {_of_w_max(s.get('weight_error_rms'))} (rms"
            + (", each weight's devices combined" if s.get("mapping") != "reference" else "")
            + ")\n" + _notes(s) + f"  run file        {s['run_file']}")


def _notes(s: dict[str, Any]) -> str:
    """Lines a user should not miss: most cells missed the tolerance; a matrix that needed
    several loads of the array (only the last stays on the chip)."""
    out = ""
    if s["converged"] < 0.9 * s["cells"]:
        out += (f"  WARNING         only {s['converged']} of {s['cells']} cells converged "
                f"within the pulse limit: the chip holds a poor copy of the matrix\n")
    if s.get("loads", 1) > 1:
        out += (f"  note            {s['loads']} loads of the array: only the last stays on the "
                f"chip, so `labctl pipeline inference` needs a die that holds the whole "
                f"matrix (on the simulator: --rows/--cols)\n")
    return out


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.data.runfile import check_writable

    weights = load_weights(args.weights)
    if not args.resume and args.out:
        check_writable(args.out)
    array = _open(args)
    try:
        protocol = build_transfer(args, weights, array.info)
    except BaseException:
        array.close()
        raise
    summary = execute_protocol(args, COMMAND, protocol, array_factory=lambda: array)
    emit(summary, as_json=args.json, human=human)
    return 0
