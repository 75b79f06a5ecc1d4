"""``labctl pipeline prune``: prune the random weights an electroformed chip gives (seed 000)."""

from __future__ import annotations

import argparse
from typing import Any

from labctl.commands.argtypes import finite_float, positive_int
from labctl.commands.common import add_blas_threads, add_common, blas_threads, emit

DEFAULT_NETWORK = {"digits": "mlp", "fsdd-mfcc": "crnn-fsdd"}  # others: cnn-fmnist
DEFAULT_BITS = {"fsdd-mfcc": 3}  # seed 000: 3 bit spoken digits, 4 bit Fashion-MNIST


def register(sub: Any) -> None:
    from labctl.datasets import DATASET_NAMES
    from labctl.pipelines.nn.models import NETWORK_NAMES

    p = sub.add_parser(
        "prune", help="form a chip, learn which of its random weights to keep (seed 000)",
        description="Electro-form the array, read its random conductances as weights, train "
        "edge-popup scores in software, RESET the pruned edges on the chip and infer with "
        "analog MVMs; compared with the software network, the software weights programmed "
        "onto the same chip, and the unpruned random network.")
    p.add_argument("--dataset", default="fashion-mnist", choices=DATASET_NAMES,
                   help="data set (default fashion-mnist; the README says how each is installed)")
    p.add_argument("--network", default=None, choices=NETWORK_NAMES,
                   help="network (default: mlp for digits, crnn-fsdd for fsdd-mfcc, else "
                   "cnn-fmnist)")
    p.add_argument("--data-dir", default=None, help="directory with your own copy (IDX files)")
    p.add_argument("--limit", type=int, default=None,
                   help="use at most this many samples per split")
    p.add_argument("--keep", type=finite_float, default=0.5,
                   help="fraction of weights kept per layer (default 0.5); a target: the "
                   "mask flips' hysteresis lets the final fraction differ by about a point "
                   "(the summary's kept_fraction is measured)")
    p.add_argument("--epochs", type=int, default=60, help="score-training epochs (default 60)")
    p.add_argument("--software-epochs", type=int, default=None,
                   help="epochs of the software baseline (default: --epochs)")
    p.add_argument("--bits", type=int, default=None,
                   help="input/activation bits (default 4; 3 for fsdd-mfcc)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch (default 128)")
    p.add_argument("--chip-test-limit", type=positive_int, default=None,
                   help="infer only this many test samples on the chip (default all)")
    p.add_argument("--verify-max-pulses", type=int, default=300,
                   help="pulse cap per cell when programming the software baseline (default 300)")
    add_blas_threads(p)
    p.add_argument("--energy-model", default=None, metavar="FILE",
                   help="energy model TOML (default: labctl/pipelines/energy_prune.toml)")
    add_common(p, preset_default="rram-40nm-random")
    p.set_defaults(handler=handle)


def human(s: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return "   n/a" if x is None else f"{100 * x:5.1f} %"

    def joule(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3g} J"

    label = s["dataset_label"]
    named = s["dataset"] in label.lower() or s["dataset"].replace("-", " ") in label.lower()
    shown = label if named else f"{label} ({s['dataset']})"
    lines = [f"prune: {shown}, network {s['network']}, kept "
             f"{pct(s['kept_fraction']).strip()} of the weights"]
    if s.get("stand_in"):
        lines.append(f"  NOTE: stand-in data set: {s['dataset_label']}")
    lines.append(f"  {'approach':<12}{'accuracy':>10}{'set/reset ops':>15}{'energy':>13}")
    for a in ("software", "programmed", "random", "pruned"):
        lines.append(f"  {a:<12}{pct(s['accuracy_' + a]):>10}{s['set_reset_ops'][a]:>15}"
                     f"{joule(s['energy_J'][a]):>13}")
    # seed 000 counts every mask flip of the training (a topology trained on the chip); this
    # run trained the scores in software and applied the final mask once
    lines.append(f"  pruned ops: every mask flip of the training, as seed 000 counts them; "
                 f"the final mask took {s.get('set_reset_ops_applied', 0)} resets on this chip")
    lines.append(f"  run file        {s['run_file']}")
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.datasets import load_dataset
    from labctl.pipelines.energy import load_energy_model
    from labctl.pipelines.prune import PruneConfig, PrunePipeline

    # everything that can fail on bad input happens before a backend opens or a file exists
    data = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed, limit=args.limit)
    energy = load_energy_model(args.energy_model)
    cfg = PruneConfig(
        dataset=args.dataset, network=args.network or DEFAULT_NETWORK.get(args.dataset,
                                                                          "cnn-fmnist"),
        dataset_label=data.label, stand_in=data.stand_in, data_dir=args.data_dir,
        limit=args.limit, keep=args.keep, epochs=args.epochs,
        software_epochs=args.software_epochs,
        bits=args.bits if args.bits is not None else DEFAULT_BITS.get(args.dataset, 4),
        batch_size=args.batch_size,
        seed=args.seed, chip_test_limit=args.chip_test_limit,
        verify_max_pulses=args.verify_max_pulses, energy=energy.as_dict())
    pipeline = PrunePipeline(cfg, data)
    if args.backend == "sim" or args.backend is None:
        args.rows = args.rows or pipeline.layout.rows
        args.cols = args.cols or pipeline.layout.cols
    pipeline.layout.check((args.rows or pipeline.layout.rows, args.cols or pipeline.layout.cols))
    with blas_threads(args.blas_threads):
        summary = execute_protocol(args, "pipeline prune", pipeline,
                                   default_preset="rram-40nm-random",
                                   provenance=data.provenance())
    emit(summary, as_json=args.json, human=human)
    return 0
