"""Inference figures: RMSE over time with its breakdown, analog vs floating-point outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullLocator

from labctl.pipelines.inference import cause_names, read_late, time_label
from labctl.plots.style import figure, save, title_note


def render(reader, out_dir: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    cfg = reader.config
    t = np.asarray(cfg["times_s"], dtype=float)
    rmse = reader.data("inference/rmse")
    br = reader.data("inference/breakdown")
    nominal = t[: rmse.size]
    # where the reads were taken (a station's chip may be read later than asked)
    t = (reader.data("inference/t_s")[: rmse.size] if "inference/t_s" in reader
         else nominal)
    labels = [f"{time_label(n)}\n(at {a:.3g} s)" if read_late(n, a) else time_label(n)
              for n, a in zip(nominal, t, strict=True)]
    t = np.maximum(t, 1e-3)
    paths = []
    fig, ax = figure(width_in=6.0)
    a = ax[0, 0]
    a.plot(t, rmse, "ko-", lw=2, label="measured (all causes)")
    for k, cause in enumerate(cause_names(cfg)):
        a.plot(t, br[:, k], "--", marker=".", label=cause.replace("_", " "))
    a.set_xscale("log")
    a.set_xticks(t, labels)
    a.xaxis.set_minor_locator(NullLocator())   # no "2x10^0" between the read times
    wires = (f", {cfg['wire_resistance_ohm']} ohm/segment"
             if reader.backend.get("backend") == "sim"
             and cfg.get("wire_resistance_ohm") is not None else "")
    a.set(xlabel="time after programming", ylabel="RMSE (units of w/w_max * x)",
          title=f"Analog MVM accuracy: {cfg['dac_bits']}-bit in, {cfg['adc_bits']}-bit out"
          f"{wires}\n{title_note(reader)}")
    a.legend(fontsize=7)
    paths.append(save(fig, out_dir, "inference_rmse"))

    y_fp = reader.data("inference/y_fp")
    y = reader.data("inference/y_analog")
    fig, ax = figure(2)
    for a, k in zip(ax[0], (0, y.shape[0] - 1), strict=True):
        a.plot(y_fp.ravel(), y[k].ravel(), ".", ms=1.5)
        lim = [y_fp.min(), y_fp.max()]
        a.plot(lim, lim, "k-", lw=0.6)
        late = f" (read at {t[k]:.3g} s)" if read_late(nominal[k], t[k]) else ""
        a.set(xlabel="floating point (W / w_max) x", ylabel="analog",
              title=f"t = {time_label(nominal[k])}{late}: RMSE {rmse[k]:.3f}")
    paths.append(save(fig, out_dir, "inference_scatter"))
    return paths
