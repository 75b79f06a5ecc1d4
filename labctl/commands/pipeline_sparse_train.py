"""``labctl pipeline sparse-train``: index-free sparse training on two-FeFET arrays (seed 001)."""

from __future__ import annotations

import argparse
from typing import Any

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_blas_threads, add_common, blas_threads, emit
from labctl.errors import ConfigError

DEFAULT_PRESET = "mos2-fefet-2t"
DEFAULT_HIDDEN = {"digits": "64"}   # others: 128
DEFAULT_LR = {"digits": 0.2}        # others: 0.5 (tuned on short runs; placeholders)


def register(sub: Any) -> None:
    from labctl.datasets import DATASET_NAMES

    p = sub.add_parser(
        "sparse-train", help="prune, update and regrow inside two-FeFET arrays (seed 001)",
        description="Sparse training with the mask in the sparsity FeFETs and gate-pulse "
        "updates of the weight FeFETs (vectorial approximate or exact cell-by-cell), RigL "
        "prune/regrow through Array.mask; compared with the exact update and a dense network "
        "on the same arrays, plus the VAU error against sparsity and a latency/energy model.")
    p.add_argument("--dataset", default="digits", choices=DATASET_NAMES,
                   help="data set (default digits; 'letters' is a labelled synthetic stand-in "
                   "for EMNIST letters)")
    p.add_argument("--data-dir", default=None, help="directory with your own copy (IDX files)")
    p.add_argument("--limit", type=int, default=None,
                   help="use at most this many samples per split")
    p.add_argument("--sparsity", type=finite_float, default=0.75,
                   help="fraction of all weights pruned (default 0.75; per layer see "
                   "--distribution)")
    p.add_argument("--distribution", default="erk", choices=("erk", "uniform"),
                   help="per-layer sparsity at the overall --sparsity: erk (RigL's default: "
                   "small layers denser) or uniform")
    p.add_argument("--regrow-init", default="keep", choices=("keep", "zero"),
                   help="regrown connections keep what their weight FeFET holds (default) or "
                   "are programmed to zero weight first (RigL's choice)")
    p.add_argument("--update", default="vau", choices=("vau", "cell", "cell-batch"),
                   help="weight update: vectorial approximate (vau, default), exact cell by cell "
                   "per sample (cell), or exact on the digitally accumulated batch gradient "
                   "(cell-batch)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per network (default 8)")
    p.add_argument("--hidden", default=None,
                   help="hidden layer sizes, comma separated (default 64 for digits, else 128)")
    p.add_argument("--lr", type=finite_float, default=None,
                   help="learning rate in weight units, cosine annealed (default 0.2 for "
                   "digits, else 0.5)")
    p.add_argument("--batch-size", type=int, default=16, help="mini-batch (default 16)")
    p.add_argument("--logit-gain", type=finite_float, default=3.0,
                   help="digital gain of the output layer (default 3)")
    p.add_argument("--pulse-V", type=finite_float, default=2.0,
                   help="weight-FeFET gate pulse amplitude (default 2.0 V; nothing switches "
                   "below the coercive voltage)")
    p.add_argument("--pulse-width-s", type=finite_float, default=100e-6,
                   help="gate pulse width (default 100e-6 s)")
    p.add_argument("--topology-period", type=int, default=25,
                   help="steps between RigL prune/regrow updates (default 25)")
    p.add_argument("--prune-fraction", type=finite_float, default=0.3,
                   help="initial prune/regrow fraction, cosine-decayed (default 0.3, RigL)")
    p.add_argument("--topology-end", type=finite_float, default=0.75,
                   help="stop topology updates after this fraction of training (default 0.75)")
    p.add_argument("--map-epochs", default=None,
                   help="epochs after which the weight and mask maps are stored, comma "
                   "separated, 0 = before training (default: 0, the middle and the last)")
    p.add_argument("--vau-runs", type=int, default=50,
                   help="random runs per sparsity of the VAU error curve (default 50)")
    p.add_argument("--eval-passes", type=int, default=3,
                   help="test passes (fresh read noise each) averaged per epoch (default 3)")
    p.add_argument("--batches-per-yield", type=int, default=100,
                   help="mini-batches between checkpoints (default 100; raise it for large "
                   "arrays, whose simulator snapshots are big)")
    p.add_argument("--no-baselines", action="store_true",
                   help="train only the main network (no cell-by-cell or dense comparison)")
    add_blas_threads(p)
    p.add_argument("--cost-model", default=None, metavar="FILE",
                   help="cost model TOML (default: labctl/pipelines/sparse/cost_fefet.toml)")
    add_common(p, preset_default=DEFAULT_PRESET, hidden=("rows", "cols"))
    p.set_defaults(handler=handle)


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        if any(not v.strip() for v in parts):   # "64,,32" or "64,": not what was meant
            raise ValueError(text)
        return tuple(int(v) for v in parts)
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated whole numbers, got {text!r}",
                          key=what.lstrip("-")) from None


def human(s: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{100 * x:.1f} %"

    def num(x: Any, fmt: str = ".3g") -> str:
        return "n/a" if x is None else format(x, fmt)

    def times(x: Any) -> str:
        return "n/a" if x is None else f"x{x:.3g}"

    lines = [f"sparse-train: {s.get('dataset_label', s['dataset'])}, sparsity "
             f"{pct(s['sparsity'])} (read back {pct(s.get('measured_sparsity'))}), update "
             f"{s['update']}, network {s['network']}"]
    if s.get("stand_in"):
        lines.append(f"  NOTE: stand-in data set: {s.get('dataset_label')}")
    lines += [f"  {'accuracy (' + s['update'] + ')':<24}{pct(s['accuracy'])}",
              f"  accuracy cell-by-cell   {pct(s['accuracy_cell_by_cell'])}",
              f"  accuracy dense          {pct(s['accuracy_dense'])}",
              f"  VAU MSE (dw_min^2)      {num(s['vau_mse'])} "
              f"({num(s.get('vau_mse_relative'))} x the exact update's mean square)",
              f"  dense / index-free      latency {times(s['latency_ratio'])}, energy "
              f"{times(s['energy_ratio'])} (inference)",
              f"  index-based / index-free latency {times(s.get('latency_ratio_index_based'))}, "
              f"energy {times(s.get('energy_ratio_index_based'))} (inference)",
              f"  training run vs index-free: dense latency "
              f"{times(s.get('train_latency_ratio'))} energy {times(s.get('train_energy_ratio'))}; "
              f"cell-by-cell {times(s.get('train_latency_ratio_cell_by_cell'))} / "
              f"{times(s.get('train_energy_ratio_cell_by_cell'))}; index-based "
              f"{times(s.get('train_latency_ratio_index_based'))} / "
              f"{times(s.get('train_energy_ratio_index_based'))}",
              f"  training samples/s      {num(s.get('samples_per_s'), '.0f')}",
              f"  run file                {s['run_file']}"]
    return "\n".join(lines)


def build_config(args: argparse.Namespace) -> Any:
    from labctl.pipelines.sparse import (
        PulseConfig,
        SparseTrainConfig,
        TopologyConfig,
        load_cost_model,
    )

    hidden = _ints(args.hidden, "--hidden") or _ints(DEFAULT_HIDDEN.get(args.dataset, "128"),
                                                     "--hidden")
    assert hidden is not None  # the default is a string, so the second _ints gives a tuple
    cost = load_cost_model(args.cost_model)
    return SparseTrainConfig(
        dataset=args.dataset, sparsity=args.sparsity, distribution=args.distribution,
        regrow_init=args.regrow_init, update=args.update, hidden=hidden,
        epochs=args.epochs, batch=args.batch_size,
        lr=args.lr if args.lr is not None else DEFAULT_LR.get(args.dataset, 0.5),
        logit_gain=args.logit_gain,
        topology=TopologyConfig(alpha=args.prune_fraction, period=args.topology_period,
                                end_fraction=args.topology_end),
        pulse=PulseConfig(amplitude_V=args.pulse_V, width_s=args.pulse_width_s),
        baselines=not args.no_baselines, map_epochs=_ints(args.map_epochs, "--map-epochs"),
        eval_passes=args.eval_passes, vau_runs=args.vau_runs, cost=cost.as_dict(),
        batches_per_yield=args.batches_per_yield,
        cost_model_file=str(args.cost_model or "cost_fefet.toml (built in)"), seed=args.seed)


def array_factory(args: argparse.Namespace, plan: list[tuple[str, int, int]]) -> Any:
    """Simulated: one array per plan entry; a bench: windows of its one die."""
    from labctl.array import Array
    from labctl.commands.backend import open_backend, open_sim, sim_pace
    from labctl.pipelines.array_bank import make_bank
    from labctl.pipelines.sparse.arrays import ArrayWindow, tile

    if (args.backend or "sim") == "sim":
        # every network gets the same dies (equal seeds), each array of a network its own seed
        pace = sim_pace(args)
        arrays = {name: open_sim(args.preset or DEFAULT_PRESET, rows, cols,
                                 args.seed * 1000 + _array_index(name), default_preset=
                                 DEFAULT_PRESET, pace_s=pace) for name, rows, cols in plan}
        return make_bank(arrays)
    from labctl.pipelines.sparse.train import require_two_fefet

    die = open_backend(args, default_preset=DEFAULT_PRESET)
    try:
        require_two_fefet(die.info.technology)   # before the sizes: no size would do
        places = tile(plan, die.info.shape)
    except ConfigError:
        die.close()
        raise
    except ValueError as e:
        die.close()
        raise ConfigError(f"{e}; use --no-baselines, a smaller --hidden or a larger die",
                          key="backend") from None
    windows: dict[str, Array] = {n: ArrayWindow(die, *places[n], r, c) for n, r, c in plan}
    return make_bank(windows, owners=[die])


def _array_index(name: str) -> int:
    """``<network>.L<k>.<pos|neg>`` -> 2k (+1 for neg): the same for every network."""
    _, layer, pol = name.split(".")
    return 2 * int(layer[1:]) + (pol == "neg")


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.datasets import load_dataset
    from labctl.pipelines.sparse import SparseData, SparseTraining, array_plan

    if args.rows is not None or args.cols is not None:
        raise ConfigError("--rows/--cols are set by the network's layer sizes here", key="rows")
    # everything that can fail on bad input happens before a backend opens or a file exists
    cfg = build_config(args)
    cfg.validate()
    data = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed, limit=args.limit)
    sdata = SparseData.from_dataset(data)
    protocol = SparseTraining(cfg, sdata)
    plan = array_plan(cfg, sdata.x_train.shape[1], sdata.n_classes)
    with blas_threads(args.blas_threads):
        summary = execute_protocol(args, "pipeline sparse-train", protocol,
                                   default_preset=DEFAULT_PRESET, provenance=data.provenance(),
                                   array_factory=lambda: array_factory(args, plan))
    from labctl.data.runfile import RunReader
    from labctl.pipelines.sparse.analysis import samples_per_s

    with RunReader(summary["run_file"]) as reader:
        speed = samples_per_s(reader)
    summary = {**summary, "dataset_label": data.label, "stand_in": data.stand_in,
               "source": data.source, "samples_per_s": speed}
    emit(summary, as_json=args.json, human=human)
    return 0
