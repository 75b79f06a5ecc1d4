"""``labctl run forming``."""

from __future__ import annotations

import argparse
from typing import Any

from labctl.commands.argtypes import finite_float
from labctl.commands.common import add_common, emit


def register(sub: Any) -> None:
    p = sub.add_parser("forming", help="electro-form every cell, then condition (seed 004)",
                       description="Ramp each cell under gate-limited compliance until it forms, "
                       "then the post-forming and conditioning sweeps.")
    p.add_argument("--v-stop-V", type=finite_float, default=4.0,
                   help="ramp maximum (default 4.0 V)")
    p.add_argument("--v-step-V", type=finite_float, default=0.01, help="ramp step (default 0.01 V)")
    p.add_argument("--gate-V", type=finite_float, default=1.2,
                   help="forming gate voltage (default 1.2 V)")
    p.add_argument("--compliance-A", type=finite_float, default=1e-3,
                   help="SMU compliance (default 1e-3 A; the transistor limits the current)")
    p.add_argument("--conditioning-cycles", type=int, default=2,
                   help="reset/set conditioning sweep pairs (default 2)")
    add_common(p)
    p.set_defaults(handler=handle)


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def human(s: dict[str, Any]) -> str:
    from labctl.commands.quantity import quantity

    def f(x: Any, scale: float, fmt: str, unit: str = "") -> str:
        return quantity(x, fmt, scale=scale, unit=unit)

    v_std = f(s["v_form_std_V"], 1, ".3f", "V")
    earlier = s.get("formed_by_interrupted_session") or 0
    head = (f"forming: {s['formed']}/{s['ramped']} cells formed "
            f"(yield {f(s['yield'], 100, '.1f', '%')})\n")
    if s.get("already_formed"):
        k = s["already_formed"]
        head += (f"  {k} of {s['cells']} cells already read as formed and "
                 f"{'was' if k == 1 else 'were'} left alone (no forming voltage)\n")
    if earlier:
        head += (f"  {_cells(earlier)} formed by an interrupted session (forming voltage not "
                 f"recorded)\n")
    return (head +
            f"  V_form (1T1R)   {f(s['v_form_mean_V'], 1, '.3f', 'V')}"
            + ("" if v_std == "n/a" else f" +/- {v_std}") + "\n"
            f"  V_form (ReRAM)  {f(s['v_form_reram_mean_V'], 1, '.3f', 'V')}\n"
            f"  I_form          {f(s['i_form_mean_A'], 1e6, '.1f', 'uA')}\n"
            f"  G after         {f(s['g_after_mean_S'], 1e6, '.2f', 'uS')}\n"
            f"  run file        {s['run_file']}")


def handle(args: argparse.Namespace) -> int:
    from labctl.commands.common import execute_protocol
    from labctl.protocols.forming import Forming, FormingConfig

    cfg = FormingConfig(v_stop_V=args.v_stop_V, v_step_V=args.v_step_V, gate_V=args.gate_V,
                        compliance_A=args.compliance_A,
                        conditioning_cycles=args.conditioning_cycles)
    summary = execute_protocol(args, "run forming", Forming(cfg))
    emit(summary, as_json=args.json, human=human)
    return 0
