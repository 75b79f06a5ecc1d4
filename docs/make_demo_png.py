"""Rebuild docs/demo.png, the README's picture of a run, from a fresh demo's report figures.

    labctl demo --out demo-run && python docs/make_demo_png.py demo-run/report
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = ("forming_iv", "program_cdf", "symmetry_traces", "retention_fit")


def main(report: Path, out: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11.2, 6.4), dpi=100)
    for ax, name in zip(axes.ravel(), PANELS, strict=True):
        ax.imshow(plt.imread(report / f"{name}.png"))
        ax.set_axis_off()
    fig.suptitle("labctl demo on the simulated cmo-hfox-1t1r chip: forming, program-verify, "
                 "symmetry point, retention", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-run/report"),
         Path(__file__).with_name("demo.png"))
