r"""Cross-check against IBM's aihwkit (the reference simulator): seed 004's AGAD run and speed.

Not a labctl dependency: run it in a venv with aihwkit beside labctl (the aihwkit 1.1.0 wheel
for Python 3.11 is built against torch 2.10)::

    python3 -m venv .venv-aihwkit && .venv-aihwkit/bin/pip install -e '.[datasets]' aihwkit==1.1.0 \
        torch==2.10.0
    .venv-aihwkit/bin/python benchmarks/aihwkit_reference.py agad --epochs 12 [--seed S]
    .venv-aihwkit/bin/python benchmarks/aihwkit_reference.py agad --gamma 2 --dw-min 0.36 \
        --up-down -0.42 0
    .venv-aihwkit/bin/python benchmarks/aihwkit_reference.py speed

``agad``: MNIST 784-256-128-10 with aihwkit's AGAD (``build_config("agad")``, seed 004's
lr 1e-2, fast_lr 0.1, a transfer every 3 samples, batch 32) on a soft-bounds device with
seed 004's measured statistics (~22 states: dw_min 0.09 on [-1, 1]; NSR 0.9: dw_min_std 0.9)
and its up/down asymmetry: ``up_down`` -0.22 puts the symmetry point at w = -0.22, SP skew
0.61 (the measured device), 0 at w = 0 (the symmetric variant).  aihwkit's own MNIST example
network: sigmoid activations, digital biases, no weight scaling (aihwkit's defaults); with
ReLU and no weight scaling training diverged (NaN) within three epochs.

``speed``: samples/s (wall and process CPU, one thread) of aihwkit's ReRAM-SB presets for
each algorithm on 784-256-128-10, batch 32, and of AGAD with the settings labctl runs
(seed 004's: a transfer every 3 samples, pulse trains of <= 5) — ``bench_train.py``'s peers.
"""

from __future__ import annotations

import argparse
import json
import time

try:
    import torch
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator import presets
    from aihwkit.simulator.configs import build_config
    from aihwkit.simulator.configs.devices import PowStepDevice, SoftBoundsDevice
    from torch import nn
except ImportError as exc:  # pragma: no cover - optional, run by hand
    raise SystemExit(f"aihwkit_reference.py needs aihwkit and torch ({exc}); see its "
                     "docstring") from None

from labctl.datasets import load_dataset

SIZES = (784, 256, 128, 10)
BATCH = 32


def mnist() -> tuple[torch.Tensor, ...]:
    d = load_dataset("mnist")
    return (torch.tensor(d.x_train.reshape(len(d.x_train), -1), dtype=torch.float32),
            torch.tensor(d.y_train, dtype=torch.long),
            torch.tensor(d.x_test.reshape(len(d.x_test), -1), dtype=torch.float32),
            torch.tensor(d.y_test, dtype=torch.long))


def network(cfg: object, activation: type[nn.Module]) -> AnalogSequential:
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(AnalogLinear(n_in, n_out, bias=True, rpu_config=cfg))
        if k < len(SIZES) - 2:
            layers.append(activation())
    return AnalogSequential(*layers)


def agad_config(*, dw_min: float = 0.09, nsr: float = 0.9, up_down: float = -0.22,
                up_down_dtod: float = 0.01, gamma: float | None = None, fast_lr: float = 0.1,
                transfer_every: float = 3.0, seed: int = 0) -> object:
    """aihwkit's AGAD (``build_config("agad")``) with seed 004's settings on a soft-bounds
    device (or, with ``gamma``, the power-step "generalized soft bounds" device)."""
    if gamma is None:
        device = SoftBoundsDevice(dw_min=dw_min, dw_min_std=nsr, up_down=up_down,
                                  up_down_dtod=up_down_dtod, w_max=1.0, w_min=-1.0)
    else:
        device = PowStepDevice(dw_min=dw_min, dw_min_std=nsr, up_down=up_down,
                               up_down_dtod=up_down_dtod, w_max=1.0, w_min=-1.0,
                               pow_gamma=gamma)
    cfg = build_config("agad", device=device, construction_seed=seed)
    cfg.device.fast_lr = fast_lr
    cfg.device.transfer_every = transfer_every
    return cfg


def trainer(model: AnalogSequential, lr: float) -> AnalogSGD:
    opt = AnalogSGD(model.parameters(), lr=lr)
    opt.regroup_param_groups(model)
    return opt


def step(model: nn.Module, opt: AnalogSGD, x: torch.Tensor, y: torch.Tensor) -> float:
    """One mini-batch of SGD through the analog tiles; returns the batch loss."""
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def run_agad(a: argparse.Namespace) -> None:
    torch.manual_seed(a.seed)
    xtr, ytr, xte, yte = mnist()
    xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    cfg = agad_config(dw_min=a.dw_min, nsr=a.nsr, up_down=a.up_down,
                      up_down_dtod=a.up_down_dtod, gamma=a.gamma, fast_lr=a.fast_lr,
                      transfer_every=a.transfer_every, seed=a.seed)
    model = network(cfg, {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[a.activation])
    opt = trainer(model, a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    for epoch in range(1, a.epochs + 1):
        t0, loss_sum = time.perf_counter(), 0.0
        perm = torch.randperm(len(xtr), generator=gen)
        for b in range(0, len(xtr), BATCH):
            idx = perm[b:b + BATCH]
            loss_sum += step(model, opt, xtr[idx], ytr[idx]) * len(idx)
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum())
                          for i in range(0, len(xte), 1000))
        model.train()
        print(json.dumps({"up_down": a.up_down, "up_down_dtod": a.up_down_dtod, "seed": a.seed,
                          "epoch": epoch,
                          "accuracy": correct / len(xte), "train_loss": loss_sum / len(xtr),
                          "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)


SPEED_CONFIGS = {"sgd": ("ReRamSBPreset", presets.ReRamSBPreset),
                 "ttv1": ("TikiTakaReRamSBPreset", presets.TikiTakaReRamSBPreset),
                 "ttv2": ("TTv2ReRamSBPreset", presets.TTv2ReRamSBPreset),
                 "cttv2": ("ChoppedTTv2ReRamSBPreset", presets.ChoppedTTv2ReRamSBPreset),
                 "agad": ("AGADReRamSBPreset", presets.AGADReRamSBPreset),
                 "agad ": ("seed-004 settings", agad_config)}


def run_speed(a: argparse.Namespace) -> None:
    xtr, ytr, _, _ = mnist()
    print(f"aihwkit, {'-'.join(map(str, SIZES))}, batch {BATCH}, 1 thread, {a.batches} batches")
    for alg, (preset, make) in SPEED_CONFIGS.items():
        model = network(make(), nn.Sigmoid)
        opt = trainer(model, 0.01)
        batches = [(xtr[b * BATCH:(b + 1) * BATCH], ytr[b * BATCH:(b + 1) * BATCH])
                   for b in range(a.warmup + a.batches)]
        for x, y in batches[:a.warmup]:
            step(model, opt, x, y)
        t0, c0 = time.perf_counter(), time.process_time()
        for x, y in batches[a.warmup:]:
            step(model, opt, x, y)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = a.batches * BATCH
        print(f"{alg:6s} {preset:26s} wall {n / wall:7.0f}  cpu {n / cpu:7.0f} samples/s",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    g = sub.add_parser("agad", help="seed 004's MNIST AGAD run, measured vs symmetric device")
    g.add_argument("--up-down", type=float, nargs="+", default=[-0.22, 0.0])
    g.add_argument("--up-down-dtod", type=float, default=0.01,
                   help="device-to-device spread of up_down (aihwkit's default 0.01)")
    g.add_argument("--dw-min", type=float, default=0.09)
    g.add_argument("--nsr", type=float, default=0.9)
    g.add_argument("--epochs", type=int, default=12)
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--fast-lr", type=float, default=0.1)
    g.add_argument("--transfer-every", type=float, default=3.0)
    g.add_argument("--activation", choices=("sigmoid", "relu"), default="sigmoid")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--limit", type=int, default=None, help="first N training samples only")
    g.add_argument("--gamma", type=float, default=None,
                   help="PowStepDevice exponent instead of soft bounds (then dw_min ~ "
                   "0.09 / 0.5**gamma keeps ~22 states at the symmetry point, and SP skew 0.61 "
                   "needs up_down -0.111 at gamma 0.5, -0.42 at gamma 2)")
    s = sub.add_parser("speed", help="samples/s of aihwkit's ReRAM-SB presets")
    s.add_argument("--batches", type=int, default=400)
    s.add_argument("--warmup", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.what == "speed":
        run_speed(a)
        return
    for up_down in a.up_down:
        run_agad(argparse.Namespace(**{**vars(a), "up_down": up_down}))


if __name__ == "__main__":
    main()
